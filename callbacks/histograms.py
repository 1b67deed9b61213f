"""Histograms over training: the weights, their gradients and, for an LSTM, its gate activations,
in TensorBoard's HISTOGRAMS and DISTRIBUTIONS tabs."""

from __future__ import annotations

import torch
from pytorch_lightning import Callback

from base.contracts import CountsUpdates, NamedWeights
from base.errors import ConfigError, check, check_int
from callbacks.figures import tensorboard_writer


def bounded_sample(values: torch.Tensor, max_samples: int, generator: torch.Generator) -> torch.Tensor:
    """``values``' finite entries flattened, or ``max_samples`` of them drawn without replacement
    when there are more: the histogram's cost stays bounded on NetConv's 200,704-weight layer, and
    its shape is that of the whole within sampling error. NaN and inf are left out (TensorBoard
    cannot bucket them); a tensor with no finite entry gives an empty sample, which is not drawn."""
    flat = values.detach().flatten().float().cpu()
    flat = flat[torch.isfinite(flat)]  # TensorBoard cannot bucket NaN or inf (a diverging run, before its check ends it)
    if flat.numel() <= max_samples:
        return flat
    return flat[torch.randperm(flat.numel(), generator=generator)[:max_samples]]


class HistogramCallback(Callback):
    """At update 0 and then at the first update at or after each multiple of ``every_updates`` (the
    grid, which makes many updates a Lightning step: after the first step that reaches it): a
    histogram per weight tensor of the module's watched net (``weights/<name>``), of its gradient in
    that update (``gradients/<name>``; none under the Kalman filter; the grid's, of its loss at
    those weights), and for an
    LSTM of each gate's activations on the seed's validation sequences (``gates/<gate>``, all units
    together). At most ``max_samples`` values a histogram. TensorBoard's histogram keeps bucket
    counts, not the values: a histogram costs about 3 KB of event file whatever ``max_samples``.

    The module must give ``named_weights``/``named_gradients``/``named_activations``
    (``base.contracts.NamedWeights``);
    a population shows its watched seed (``analyse_seed``, else the first). Rank 0 writes."""

    def __init__(self, every_updates: int = 500, max_samples: int = 10_000, gates: bool = True):
        check_int("every_updates", every_updates, 1)
        check(isinstance(gates, bool), "gates", gates, "true or false")
        check_int("max_samples", max_samples, 1)
        self.every_updates, self.max_samples, self.gates = every_updates, max_samples, gates
        self._done: set[int] = set()

    def setup(self, trainer, pl_module, stage):
        if not isinstance(pl_module, NamedWeights):
            raise ConfigError(f"callbacks.histograms needs a module that names its weights (named_weights, named_gradients), not {type(pl_module).__name__}")

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if not isinstance(pl_module, CountsUpdates):
            self._record(trainer, pl_module, trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # the grid makes many updates a Lightning step, outside optimizer.step, and counts them itself
        if isinstance(pl_module, CountsUpdates):
            self._record(trainer, pl_module, pl_module.updates_done())

    def _record(self, trainer, pl_module, step: int) -> None:
        writer = tensorboard_writer(trainer) if trainer.is_global_zero else None
        bucket = step // self.every_updates  # a step of several updates may pass a multiple
        if writer is None or bucket in self._done:
            return
        self._done.add(bucket)
        gen = torch.Generator().manual_seed(step)
        for group, tensors in (("weights", pl_module.named_weights()), ("gradients", pl_module.named_gradients())):
            for name, values in tensors.items():
                self._add(writer, f"{group}/{name}", bounded_sample(values, self.max_samples, gen), step)
        if self.gates:
            for name, values in pl_module.named_activations().items():
                self._add(writer, f"gates/{name}", bounded_sample(values, self.max_samples, gen), step)

    @staticmethod
    def _add(writer, tag: str, sample: torch.Tensor, step: int) -> None:
        if sample.numel():
            writer.add_histogram(tag, sample, step)
