"""A diverging run stops with one error line, exit status 1 and no results.json, in every study;
in a sweep it is recorded as failed and the sweep goes on."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from base.errors import TrainingDiverged
from callbacks.divergence import DivergenceCheck
from conftest import error_line, quiet, run_train


class _Strategy:
    @staticmethod
    def reduce_boolean_decision(decision, all=True):
        return bool(decision)


def _trainer(step: int = 0):
    return SimpleNamespace(global_step=step, strategy=_Strategy())


def _module(lr=0.5):
    return SimpleNamespace(hparams={"lr": lr})


def _feed(check: DivergenceCheck, steps: list[dict]) -> None:
    trainer = _trainer()
    check.on_train_start(trainer, _module())
    for i, out in enumerate(steps):
        trainer.global_step = out.pop("global_step", i + 1)
        check.on_train_batch_end(trainer, _module(), out, None, i)
    check.on_train_end(trainer, _module())


def test_nan_inside_a_group_of_updates_names_its_update():
    """A KMNIST step makes several updates: the error names the update, not the step."""
    check = DivergenceCheck(check_every=1000)
    steps = [{"loss": torch.full((4,), 2.3), "global_step": 4}, {"loss": torch.tensor([2.0, 1.9, math.nan, math.nan]), "global_step": 8}]
    with pytest.raises(TrainingDiverged, match=r"at update 7 the training loss became nan; try a smaller model.lr \(now 0.5\)"):
        _feed(check, steps)


def test_infinite_loss_of_one_seed_fails_the_population():
    check = DivergenceCheck()
    steps = [{"loss": torch.tensor([[0.7, 0.7, 0.7]]), "update": 1}, {"loss": torch.tensor([[0.6, math.inf, 0.6]]), "update": 2}]
    with pytest.raises(TrainingDiverged, match="at update 2 the training loss became inf"):
        _feed(check, steps)


def test_a_loss_that_rises_ten_times_above_its_start_fails_and_one_that_falls_does_not():
    rising = [{"loss": torch.tensor(0.7 * 1.5**i)} for i in range(30)]  # ends ~ 0.7 * 1.5**29
    with pytest.raises(TrainingDiverged, match=r"more than 10 times its start, 0.7\b"):
        _feed(DivergenceCheck(rise=10), rising)
    _feed(DivergenceCheck(rise=10), [{"loss": torch.tensor(0.7 / (1 + i))} for i in range(30)])
    # a noisy but healthy run: single steps up to 20x above the start, but not 10 of them on average
    noisy = [{"loss": torch.tensor(14.0 if i % 5 == 0 else 0.5)} for i in range(1, 40)]
    _feed(DivergenceCheck(rise=10), [{"loss": torch.tensor(0.7)}] + noisy)
    _feed(DivergenceCheck(rise=None), rising)  # switched off


def test_the_start_is_kept_across_a_resume():
    first = DivergenceCheck()
    _feed(first, [{"loss": torch.tensor(2.0)}, {"loss": torch.tensor(1.0)}])
    resumed = DivergenceCheck()
    resumed.load_state_dict(first.state_dict())
    with pytest.raises(TrainingDiverged, match="its start, 2"):
        _feed(resumed, [{"loss": torch.tensor(25.0)}] * 12)


@pytest.mark.slow
@pytest.mark.parametrize("name, overrides, lr", [
    ("kmnist", ["experiment=kmnist_full", "trainer.max_epochs=1", "data.source=bundled"], "model.lr"),
    ("grid", ["experiment=check_sig"], "model.lr"),
    ("grid population", ["experiment=check_sig", "seeds=3"], "model.lr"),
    ("srn", ["experiment=srn_anb2n", "trainer.max_steps=300"], "model.optimizer.lr"),
    ("lstm population", ["experiment=lstm_anb2nc3n", "seeds=2", "trainer.max_steps=300"], "model.optimizer.lr"),
])
def test_a_diverging_run_of_each_study_exits_1_with_one_line(name, overrides, lr, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train(*overrides, f"{lr}=1e12", *quiet(run_dir))
    assert proc.returncode == 1, proc.stderr[-2000:]
    line = error_line(proc)
    assert line.startswith("error: training diverged: ") and f"{lr} (now 1e+12)" in line, line
    assert "Traceback" not in proc.stderr
    assert not (run_dir / "results.json").exists()
    assert (run_dir / ".hydra" / "config.yaml").exists() and list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))


@pytest.mark.slow
def test_a_diverging_run_in_a_sweep_is_recorded_and_the_sweep_goes_on(tmp_path):
    proc = run_train("-m", "experiment=srn_anb2n", "trainer.max_steps=250", "model.optimizer.lr=1e12,0.01",
                     f"hydra.sweep.dir={tmp_path}", "callbacks.progress_bar.refresh_rate=0")
    assert proc.returncode == 1, proc.stderr[-2000:]
    diverged, healthy = tmp_path / "0", tmp_path / "1"
    assert (diverged / "error.txt").read_text().startswith("TrainingDiverged: training diverged: ")
    assert not (diverged / "results.json").exists()
    assert (healthy / "results.json").exists() and not (healthy / "error.txt").exists()
