"""The literature's protocol as settings (Suzgun et al. 2019): the end symbol, a fixed training set
replayed, and the generalisation test after every evaluation (the curve), in process against the
module's own test on the data module's strings."""

from __future__ import annotations

import functools

import pytest
import pytorch_lightning as pl
import torch

from datamodules.grammar import GrammarDataModule
from lightning_modules.long_strings import wrong_per_length
from lightning_modules.objectives import Objective
from lightning_modules.recurrent import SequencePredictor
from lightning_modules.recurrent_nets import Layout


@pytest.mark.parametrize("objective", ["legal_next", "next_symbol"])
def test_the_streamed_test_with_the_end_symbol_scores_what_the_modules_test_scores(objective):
    """Three drawn LSTMs with four outputs (a, b, c, T) on a^n b^n c^n T, n = 1..12: per string the
    wrong scored positions of the streamed test equal the module's test on the data module's strings."""
    layout = Layout("lstm", 4, 3)
    flat = torch.stack([layout.initial("uniform", torch.Generator().manual_seed(s)) for s in range(3)])
    lengths = list(range(1, 13))
    obj = Objective.of(objective, None)
    streamed = wrong_per_length(layout, flat, obj, "anbncn", lengths, end_symbol=True)
    model = SequencePredictor(seeds=3, cell="lstm", hidden_units=3, num_symbols=4, objective=objective)
    dm = GrammarDataModule(language="anbncn", blocks=1, eval_blocks=1, end_symbol=True)
    batch = dm.batch([dm.language.sequence([n]) for n in lengths])
    assert batch["targets"][0, 2].item() == 3  # a b c -> T
    wrong = model._evaluate({k: v[None] for k, v in batch.items()}, [0, 1, 2], flat)["wrong"]
    assert torch.equal(streamed, wrong) and streamed.sum() > 0


def test_the_curve_ends_where_the_test_finds_the_final_net():
    """Two LSTMs on Suzgun et al.'s task (n <= 5), a fixed set of 30 strings shared by both, the
    generalisation test tracked every 200 updates: one curve point per evaluation per seed at the
    updates evaluated, and the last (update 600, the final weights) is the final test's
    max_n_generalised, found on the data module's strings by the module's own test."""
    model = SequencePredictor(seeds=2, init_seed=5, cell="lstm", hidden_units=3, num_symbols=4, init="uniform", objective="legal_next", loss="mse",
                              optimizer=functools.partial(torch.optim.RMSprop, lr=0.01))
    dm = GrammarDataModule(language="anbncn", max_n=5, blocks=1, eval_blocks=1, eval_sequences=5, eval_max_n=20, seed=5, seeds=2,
                           end_symbol=True, train_strings=30, train_set_seed=5, track_generalisation=True)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, max_steps=600, val_check_interval=200, check_val_every_n_epoch=None, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    outcomes = model.seed_outcomes()
    for o in outcomes:
        curve = o["generalisation_curve"]
        assert [u for u, _ in curve] == [200, 400, 600]
        assert curve[-1][1] == o["max_n_generalised"]
    assert any(v > 0 for o in outcomes for _, v in o["generalisation_curve"])  # (here 0, 5, 6 and 2, 3, 5)


def test_the_stored_numbers_are_the_papers():
    """The authors' stored first failing n (docs/data, read from their repository) at epochs 15, 50
    and 150: the ranges and medians quoted from their results, and the 10 trials at epoch 150."""
    import statistics

    from orchestration.literature import stored_first_failing

    paper = stored_first_failing()
    assert paper.shape == (10, 150)
    for epoch, low, high, median in ((15, 10, 148, 73.5), (50, 86, 201, 133), (150, 83, 244, 139.5)):
        v = paper[:, epoch - 1]
        assert (v.min(), v.max(), statistics.median(v.tolist())) == (low, high, median)
    assert paper[:, 149].tolist() == [144, 109, 113, 83, 192, 124, 135, 165, 150, 244]


def test_a_runs_curve_becomes_first_failing_n_per_epoch():
    """max_n_generalised + 1 per epoch (an epoch: 1,000 updates); a seed right on every tested
    length (400) is shown as more than 400."""
    from orchestration.literature import run_first_failing, summary_rows, stored_first_failing

    results = {"tested_up_to": 400, "seeds": [{"generalisation_curve": [[1000, 3], [2000, 400]]}, {"generalisation_curve": [[1000, 0], [2000, 9], [3000, 12]]}]}
    ours, tested = run_first_failing(results, 1000)
    assert ours.tolist() == [[4, 401], [1, 10]] and tested == 400
    rows = summary_rows(stored_first_failing(), ours, [2, 3], tested)
    assert rows[2] == "| 2 (2,000) | 1-3, median 1 (1, 1, 1, 1, 1, 1, 1, 1, 2, 3) | 10-(>400), median 205.5 (10, >400) |" and len(rows) == 3
