"""A diverging run stops with one error line, exit status 1 and no results.json, in every study;
in a sweep it is recorded as failed and the sweep goes on."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from base.errors import ConfigError, TrainingDiverged
from callbacks.divergence import DivergenceCheck
from conftest import error_line, quiet, run_train


class _Strategy:
    @staticmethod
    def reduce_boolean_decision(decision, all=True):
        return bool(decision)


def _trainer(step: int = 0):
    return SimpleNamespace(global_step=step, strategy=_Strategy(), sanity_checking=False)


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


def test_the_documented_defaults():
    check = DivergenceCheck()
    assert (check.rise, check.window, check.check_every, check.start) == (10.0, 10, 10, None)


def _step(check, trainer, out, i=0):
    check.on_train_batch_end(trainer, _module(), out, None, i)


def test_the_check_runs_every_check_every_steps_and_at_each_epochs_end():
    check, trainer = DivergenceCheck(check_every=4), _trainer(1)
    check.on_train_start(trainer, _module())
    _step(check, trainer, {"loss": torch.tensor(math.nan)})
    for i in range(2):  # steps 2 and 3: not looked at yet (no host synchronisation)
        trainer.global_step += 1
        _step(check, trainer, {"loss": torch.tensor(1.0)}, i)
    trainer.global_step += 1
    with pytest.raises(TrainingDiverged, match="at update 1 the training loss became nan"):
        _step(check, trainer, {"loss": torch.tensor(1.0)})  # step 4
    check = DivergenceCheck(check_every=1000)
    check.on_train_start(trainer, _module())
    _step(check, trainer, {"loss": torch.tensor(math.inf)})
    with pytest.raises(TrainingDiverged, match="became inf"):
        check.on_train_epoch_end(trainer, _module())


def test_the_update_a_step_reports_and_outputs_without_a_dict():
    """A population's step reports its last update (``global_step`` counts steps there); a bare
    tensor and ``None`` (a skipped step) are outputs Lightning allows."""
    with pytest.raises(TrainingDiverged, match="at update 499 the training loss became nan"):
        _feed(DivergenceCheck(), [{"loss": torch.tensor([[0.5], [math.nan], [0.5]]), "update": 500, "global_step": 1}])
    check, trainer = DivergenceCheck(check_every=1), _trainer(7)
    check.on_train_start(trainer, _module())
    check.on_train_batch_end(trainer, _module(), None, None, 0)  # nothing to record
    check.on_train_batch_end(trainer, _module(), torch.tensor(0.5), None, 0)
    assert check.start == 0.5
    with pytest.raises(TrainingDiverged, match="at update 7 the training loss became nan"):
        check.on_train_batch_end(trainer, _module(), torch.tensor(math.nan), None, 1)


def test_the_first_bad_update_is_kept_even_when_it_is_update_0():
    """-1 means "none yet": update 0 is an update like any other, and a later bad loss does not
    replace the first."""
    with pytest.raises(TrainingDiverged, match="at update 0 the training loss became nan"):
        _feed(DivergenceCheck(check_every=1000), [{"loss": torch.tensor(math.nan), "update": 0}, {"loss": torch.tensor(math.inf), "update": 5}])


def test_a_nan_loss_between_checks_stops_the_run_before_the_next_evaluation_draws_anything():
    """KMNIST evaluates after an epoch's last step, before the epoch-end check: the check runs
    first in every evaluation of training (not in a sanity check, where nothing has trained)."""
    check, trainer = DivergenceCheck(check_every=1000), _trainer()
    check.on_train_start(trainer, _module())
    check.on_train_batch_end(trainer, _module(), {"loss": torch.tensor([2.3, math.nan]), "update": 2}, None, 0)
    trainer.sanity_checking = True
    check.on_validation_start(trainer, _module())  # a sanity check: nothing is decided
    trainer.sanity_checking = False
    with pytest.raises(TrainingDiverged, match="at update 2 the training loss became nan"):
        check.on_validation_start(trainer, _module())


class _Net(torch.nn.Module):
    def __init__(self, bad: float, **hparams):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([[1.0, bad, 2.0], [bad, 0.0, 1.0]]))
        self.b = torch.nn.Parameter(torch.zeros(4))
        self.hparams = hparams


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_weights_non_finite_before_the_first_update_end_the_run_naming_their_settings(bad):
    """A setting that draws weights beyond float32 (model.init=1e38) or a diverged checkpoint: no
    update can repair them, and a view of them would fail; the line names the settings behind them."""
    trainer = _trainer()
    trainer.ckpt_path = None
    with pytest.raises(TrainingDiverged) as caught:
        DivergenceCheck().on_train_start(trainer, _Net(bad, init=1e38, lr=0.1, forget_bias=None, weights_file="w.json"))
    assert str(caught.value) == ("the weights hold NaN or infinite values before the first update (2 of 10); "
                                 "check what drew or set them: model.init=1e+38, model.weights_file='w.json'")
    trainer.ckpt_path = "run/checkpoints/last.ckpt"
    with pytest.raises(TrainingDiverged, match=r"check what drew or set them: ckpt_path='run/checkpoints/last.ckpt'$"):
        DivergenceCheck().on_train_start(trainer, _Net(bad))
    DivergenceCheck().on_train_start(trainer, _Net(3.0, init=1e38))  # finite: training starts


@pytest.mark.parametrize("hparams, settings", [
    ({"init_std": 1e300, "weight_scale": 10.0}, "model.init_std=1e+300, model.weight_scale=10.0"),
    ({"forget_bias": math.inf, "input_bias": -1.0}, "model.forget_bias=inf, model.input_bias=-1.0"),
    ({"weights": {"hidden_bias": [math.nan]}}, "model.weights={'hidden_bias': [nan]}"),
    ({"lr": 0.1}, "the network's initialisation"),
])
def test_one_non_finite_weight_is_enough_and_the_line_names_every_setting_behind_the_weights(hparams, settings):
    net = _Net(1.0, **hparams)
    with torch.no_grad():
        net.b[2] = math.nan  # one of 10
    trainer = SimpleNamespace(global_step=0, strategy=_Strategy())
    with pytest.raises(TrainingDiverged) as caught:
        DivergenceCheck().on_train_start(trainer, net)
    assert str(caught.value) == f"the weights hold NaN or infinite values before the first update (1 of 10); check what drew or set them: {settings}"
    del net.hparams  # a module without hparams, a trainer without ckpt_path: the module's own initialisation
    with pytest.raises(TrainingDiverged, match=r"check what drew or set them: the network's initialisation$"):
        DivergenceCheck().on_train_start(SimpleNamespace(global_step=0, strategy=_Strategy()), net)


def test_weights_gone_bad_on_another_process_stop_this_one_at_the_start_too():
    trainer = SimpleNamespace(global_step=0, strategy=_AnotherProcess(others=True))
    with pytest.raises(TrainingDiverged, match=r"^the weights hold NaN or infinite values before the first update \(0 of 10\)"):
        DivergenceCheck().on_train_start(trainer, _Net(1.0))
    DivergenceCheck().on_train_start(SimpleNamespace(global_step=0, strategy=_AnotherProcess(others=False)), _Net(1.0))


@pytest.mark.parametrize("kwargs, line", [
    ({"rise": 1}, "rise=1 is invalid; allowed: null (no check of the rise) or a finite number > 1"),
    ({"rise": math.inf}, "rise=inf is invalid; allowed: null (no check of the rise) or a finite number > 1"),
    ({"window": 0}, "window=0 is invalid; allowed: an integer >= 1"),
    ({"check_every": 0}, "check_every=0 is invalid; allowed: an integer >= 1"),
])
def test_the_checks_own_settings_are_refused_by_key(kwargs, line):
    with pytest.raises(ConfigError) as caught:
        DivergenceCheck(**kwargs)
    assert str(caught.value) == line
    assert DivergenceCheck(rise=1.5, window=1, check_every=1).rise == 1.5 and DivergenceCheck(rise=None).rise is None


def test_a_process_that_trained_nothing_checks_with_the_others():
    """In a population split over processes, one may hold no seeds: its steps return empty losses,
    and it still takes part in every decision without failing."""
    empty = [{"loss": torch.zeros(0)} for _ in range(12)]
    _feed(DivergenceCheck(check_every=5), empty)
    resumed = DivergenceCheck(check_every=5)  # ... also after a resume, which restores the start
    resumed.load_state_dict({"start": 1.0})
    _feed(resumed, [dict(step) for step in empty])
    check = DivergenceCheck(check_every=1)
    check._check(_trainer(), _module())  # before any step


def test_the_rise_is_measured_against_rise_times_the_start():
    start = [{"loss": torch.tensor(2.0)}]
    _feed(DivergenceCheck(rise=10), start + [{"loss": torch.tensor(20.0)}] * 10)  # exactly 10x: not more than
    _feed(DivergenceCheck(rise=10), start + [{"loss": torch.tensor(6.0)}] * 10)   # 3x
    with pytest.raises(TrainingDiverged, match=r"rose to 20.01 by update 11 \(mean of the last 10 steps\), more than 10 times its start, 2;"):
        _feed(DivergenceCheck(rise=10), start + [{"loss": torch.tensor(20.01)}] * 10)
    # a perfect start (loss ~0) is no scale: 1e-3 is, so a climb to 0.5 is divergence
    with pytest.raises(TrainingDiverged, match="more than 10 times its start, 0.0001"):
        _feed(DivergenceCheck(rise=10), [{"loss": torch.tensor(1e-4)}] + [{"loss": torch.tensor(0.5)}] * 10)
    _feed(DivergenceCheck(rise=10), [{"loss": torch.tensor(1e-4)}] + [{"loss": torch.tensor(0.009)}] * 10)


class _AnotherProcess:
    """Two processes: the other one's decision is ``others``; every decision is "any", not "all"."""

    def __init__(self, others):
        self.others = others

    def reduce_boolean_decision(self, decision, all=True):
        assert all is False, "a single process's bad loss must stop every process"
        return bool(decision) or self.others


@pytest.mark.parametrize("rise", [10.0, None])
def test_a_loss_that_went_bad_on_another_process_stops_this_one_too(rise):
    trainer = SimpleNamespace(global_step=1, strategy=_AnotherProcess(others=True))
    check = DivergenceCheck(rise=rise, check_every=1)
    check.on_train_start(trainer, _module())
    with pytest.raises(TrainingDiverged) as caught:
        check.on_train_batch_end(trainer, _module(), {"loss": torch.tensor(1.0)}, None, 0)
    assert str(caught.value) == ("training diverged: a training loss on another process became NaN or infinite; "
                                 "try a smaller model.lr (now 0.5); the logs and any checkpoints written so far stay in the run folder")


def test_a_loss_that_rose_on_another_process_stops_this_one_too():
    class RoseElsewhere(_AnotherProcess):
        calls = 0

        def reduce_boolean_decision(self, decision, all=True):
            self.calls += 1
            return super().reduce_boolean_decision(decision, all) if self.calls % 2 == 1 else True

    trainer = SimpleNamespace(global_step=1, strategy=RoseElsewhere(others=False))
    check = DivergenceCheck(check_every=1)
    check.on_train_start(trainer, _module())
    with pytest.raises(TrainingDiverged) as caught:
        check.on_train_batch_end(trainer, _module(), {"loss": torch.tensor(1.0)}, None, 0)
    assert str(caught.value).startswith("training diverged: the training loss of another process rose far above its start; try a smaller model.lr")
    trainer.strategy = _AnotherProcess(others=False)  # and with `all` checked on this decision too
    with pytest.raises(TrainingDiverged, match="rose to"):
        _step(check, trainer, {"loss": torch.tensor(30.0)})
    check.on_train_start(trainer, _module())


@pytest.mark.parametrize("hparams, advice", [
    ({"lr": 0.5}, "try a smaller model.lr (now 0.5)"),
    ({"lr": 0.5, "optimizer": {"_partial_": True, "lr": 0.01}}, "try a smaller model.lr (now 0.5)"),
    ({"optimizer": {"_partial_": True, "lr": 0.01}}, "try a smaller model.optimizer.lr (now 0.01)"),
    ({"optimizer": {"_partial_": True}}, "try a smaller model.optimizer.lr"),
    ({"optimizer": "adam"}, "try a smaller model.lr"),
    ({}, "try a smaller model.lr"),
    ({"lr": math.nan}, "try a smaller model.lr"),
    ({"lr": "${lr}"}, "try a smaller model.lr"),
])
def test_the_advice_names_the_learning_rate_key_of_the_module(hparams, advice):
    assert DivergenceCheck._advice(SimpleNamespace(hparams=hparams)) == advice + "; the logs and any checkpoints written so far stay in the run folder"


@pytest.mark.slow
@pytest.mark.parametrize("name, overrides, lr", [
    ("kmnist", ["experiment=kmnist_full", "trainer.max_epochs=1", "data.source=bundled"], "model.optimizer.lr"),
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
@pytest.mark.parametrize("overrides, setting", [
    (["experiment=lstm_anb2nc3n", "model.init=1e38", "trainer.max_steps=200"], "model.init=1e+38"),
    (["experiment=check_sig", "model.init_std=1e300"], "model.init_std=1e+300"),
])
def test_weights_beyond_float32_end_the_run_in_one_line_before_any_view_draws_them(overrides, setting, tmp_path):
    """Before, the histograms' first view (update 0) failed on them with TensorBoard's "The
    histogram is empty" traceback."""
    proc = run_train(*overrides, *quiet(tmp_path / "run"))
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert error_line(proc).startswith("error: the weights hold NaN or infinite values before the first update (") and setting in error_line(proc)
    assert "Traceback" not in proc.stderr and not (tmp_path / "run" / "results.json").exists()


@pytest.mark.slow
def test_a_diverging_run_in_a_sweep_is_recorded_and_the_sweep_goes_on(tmp_path):
    proc = run_train("-m", "experiment=srn_anb2n", "trainer.max_steps=250", "model.optimizer.lr=1e12,0.01",
                     f"hydra.sweep.dir={tmp_path}", "callbacks.progress_bar.refresh_rate=0")
    assert proc.returncode == 1, proc.stderr[-2000:]
    diverged, healthy = tmp_path / "0", tmp_path / "1"
    assert (diverged / "error.txt").read_text().startswith("TrainingDiverged: training diverged: ")
    assert not (diverged / "results.json").exists()
    assert (healthy / "results.json").exists() and not (healthy / "error.txt").exists()
