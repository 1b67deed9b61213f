"""A recurrent net's hidden (and cell) states in TensorBoard's embedding projector: one point per
step of the test sequences, to turn in 3-D and colour by count, phase or symbol."""

from __future__ import annotations

import numpy as np
from pytorch_lightning import Callback

from analysis.recurrent import trace_batch
from base.errors import check_int
from base.languages import PHASES, SYMBOLS
from callbacks.figures import check_local_logdir, tensorboard_writer, write_embedding


def state_points(tr: dict[str, np.ndarray], max_points: int) -> tuple[int, dict[str, list]]:
    """How many of a trace's positions to show (whole sequences, in order, up to ``max_points``;
    at least the first sequence's, cut at ``max_points``) and their metadata columns: ``symbol``
    (the input), ``phase``, ``position`` (in its block of that symbol, from 1), ``count`` (the
    count state), ``n`` (the block length) and ``sequence`` (its index)."""
    seq = tr["sequence"]
    ends = np.flatnonzero(np.diff(seq)) + 1  # where each later sequence starts
    fitting = [e for e in ends if e <= max_points]
    k = int(fitting[-1]) if fitting and len(seq) > max_points else min(len(seq), max_points)
    columns = {
        "symbol": [SYMBOLS[s] for s in tr["symbol"][:k]],
        "phase": [PHASES[p] for p in tr["phase"][:k]],
        "position": tr["step"][:k].tolist(),
        "count": tr["count"][:k].tolist(),
        "n": tr["n"][:k].tolist(),
        "sequence": seq[:k].tolist(),
    }
    return k, columns


class StateProjector(Callback):
    """After ``trainer.test``, on rank 0: the analysed net's states on its test sequences (a
    population: the analysed seed's net on that seed's sequences) in the projector, tags
    ``hidden_states`` and, for the LSTM, ``cell_states``; at most ``max_points`` steps (whole
    sequences). TensorBoard only."""

    def __init__(self, max_points: int = 10_000):
        check_int("max_points", max_points, 1)
        self.max_points = max_points

    def setup(self, trainer, pl_module, stage):
        check_local_logdir(trainer)

    def on_test_end(self, trainer, pl_module):
        if not trainer.is_global_zero or tensorboard_writer(trainer) is None:
            return
        shown = pl_module.nets_to_show()[0]
        dm = trainer.datamodule
        tr = trace_batch(shown.net, dm.batch(dm.test_sequences_of(shown.seed)))
        k, columns = state_points(tr, self.max_points)
        for key in ("hidden", "cell"):
            if key in tr:
                write_embedding(trainer, tr[key][:k], columns, f"{key}_states")
