"""The grid LightningModule in process, against independent oracles: a single net's training
against ``torch.optim.Adam`` on torch's own layers in a plain loop with the stopping rule written out,
what each step logs and returns, the test against the formulas evaluated directly, the checkpoint
round trip, and the figures' choice of nets (seconds; end-to-end runs are in test_grid.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from analysis.grid import dividing_lines
from base.errors import ConfigError
from conftest import REPO, Logged
from datamodules.grid import GridDataModule, grid_points
from lightning_modules.grid import GridPerceptron, compiled_update, rows_for_compiled, seed_update, update_for
from lightning_modules.grid_nets import size
from lightning_modules.row_adam import RowAdam
from oracles import grid_outputs

# the reference's hand-designed step net (conf/experiment/check_step_manual.yaml)
REFERENCE_WEIGHTS = OmegaConf.to_container(OmegaConf.load(REPO / "conf/experiment/check_step_manual.yaml"))["model"]["weights"]


class Outputs(pl.Callback):
    """What every training step returned, and the metrics it logged."""

    def __init__(self):
        self.returned, self.logged = [], []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.returned.append(outputs)
        self.logged.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def _fit(model, batches_per_step, max_steps, test=True, logger=False, callbacks=()):
    """Train in process (and test, unless ``test=False``); returns the trainer and what each step
    returned and logged."""
    seen = Outputs()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, max_steps=max_steps, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[seen, *callbacks], log_every_n_steps=1)
    trainer.fit(model, datamodule=GridDataModule(batches_per_step=batches_per_step))
    if test:
        trainer.test(model, datamodule=GridDataModule(), verbose=False)
    return trainer, seen


def _test(model, logger=False):
    """The test alone (hand-set weights, nothing trained)."""
    trainer = pl.Trainer(accelerator="cpu", logger=logger, enable_progress_bar=False, enable_model_summary=False)
    trainer.test(model, datamodule=GridDataModule(), verbose=False)
    return trainer


class StopAt(pl.Callback):
    """Stops the run after Lightning step ``step`` (as a divergence check or a time limit would)."""

    def __init__(self, step):
        self.step, self.steps = step, 0

    def on_train_batch_end(self, trainer, *args):
        self.steps += 1
        trainer.should_stop = self.steps == self.step


class TorchGridNet(torch.nn.Module):
    """The oracle's net: torch's layers and sigmoid, nothing of the project's."""

    def __init__(self, H):
        super().__init__()
        self.hidden, self.output = torch.nn.Linear(2, H), torch.nn.Linear(H, 1)

    def forward(self, x):
        return torch.sigmoid(self.output(torch.sigmoid(self.hidden(x))))


def _torch_run(seed, H, lr, weight_decay, stop_after, budget, init_std=0.15, weights=None):
    """The oracle: ``nn.Linear(2, H)``, sigmoid, ``nn.Linear(H, 1)``, sigmoid (torch's layers, not
    the project's ``grid_forward``), from N(0, init_std) drawn with ``seed`` (hidden weight, hidden
    bias, output weight, output bias), or from ``weights`` (a dict by those names), BCE on the 9
    points and ``torch.optim.Adam``; an update is right when its forward pass classifies every
    point; stop after ``stop_after`` right updates in a row or ``budget`` updates. Returns the net,
    the losses and accuracies of every update's forward pass, and the 1-based update of the first
    right one."""
    x, y = grid_points()
    net = TorchGridNet(H)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in zip(("hidden_weight", "hidden_bias", "output_weight", "output_bias"), (net.hidden.weight, net.hidden.bias, net.output.weight, net.output.bias)):
            p.copy_(torch.randn(p.shape, generator=g) * init_std if weights is None else torch.tensor(weights[name], dtype=torch.float32))
    adam = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    losses, accs, first, streak = [], [], None, 0
    while len(losses) < budget and streak < stop_after:
        o = net(x)
        loss = F.binary_cross_entropy(o, y)
        acc = ((o >= 0.5) == (y >= 0.5)).float().mean().item()
        streak = streak + 1 if acc == 1 else 0
        if acc == 1 and first is None:
            first = len(losses) + 1
        adam.zero_grad()
        loss.backward()
        adam.step()
        losses.append(loss.item())
        accs.append(acc)
    return net, losses, accs, first


def test_a_single_net_trains_as_torch_adam_and_stops_by_the_rule():
    """From the reference's hand-set weights (wrong on some points with sigmoids) at lr 0.05: the
    same first right update (62), the same stopping update (30 right in a row, inside a step of
    20), the same weights; each step logs the loss and accuracy of its last update's forward pass
    and returns its first and last losses, the update count and the samples. About 90 updates:
    two float32 engines agree to rounding over a few updates, not over thousands."""
    model = GridPerceptron(hidden_units=4, lr=0.05, stop_after_perfect=30, weights=REFERENCE_WEIGHTS)
    trainer, seen = _fit(model, batches_per_step=20, max_steps=400)
    net, losses, accs, first = _torch_run(0, 4, 0.05, 1e-5, 30, 400, weights=REFERENCE_WEIGHTS)
    assert first == 62 and len(losses) == 91 and len(losses) % 20  # the oracle stopped by the rule, inside a step
    assert accs[0] < 1  # the start is wrong somewhere: training made it right
    record = model.attempts[0][-1]
    assert (int(model.updates[0]), record["first_perfect_update"]) == (len(losses), first)
    assert record["outcome"] == "100% held for 30 updates" and record["updates"] == len(losses) and model.ended == [True]
    assert model.clock == len(seen.returned) * 20 and trainer.global_step == 0  # the updates are the module's, outside optimizer.step
    mine = model.weights_of(model.seed_list[0])
    for key, p in zip(("hidden_weight", "hidden_bias", "output_weight", "output_bias"), net.parameters()):
        torch.testing.assert_close(torch.tensor(mine[key]), p.detach(), atol=1e-5, rtol=1e-4, msg=key)

    done = 0
    for out, logged in zip(seen.returned, seen.logged):
        n = min(20, len(losses) - done)
        assert out["update"] == done + n and out["samples"] == 9 * n
        assert out["loss"].shape == (2, 1)
        assert out["loss"][0, 0].item() == pytest.approx(losses[done], rel=1e-3)
        assert out["loss"][1, 0].item() == pytest.approx(losses[done + n - 1], rel=1e-3)
        assert logged["loss/train"] == pytest.approx(losses[done + n - 1], rel=1e-3)
        assert logged["acc/train"] == pytest.approx(accs[done + n - 1])
        assert logged["step"] == done + n
        done += n
    assert done == len(losses)
    assert model.training_view()["updates"] == len(losses) and model.training_view()["attempt"] == 1
    torch.testing.assert_close(model.training_view()["net"](grid_points()[0]), net(grid_points()[0]).detach(), atol=1e-4, rtol=1e-3)


def _direct(weights, x, y):
    """The trained net's formulas evaluated directly: hidden, output, BCE, points right."""
    W1, b1 = torch.tensor(weights["hidden_weight"]), torch.tensor(weights["hidden_bias"])
    W2, b2 = torch.tensor(weights["output_weight"]), torch.tensor(weights["output_bias"])
    h = 1 / (1 + torch.exp(-(x @ W1.T + b1)))
    o = 1 / (1 + torch.exp(-(h @ W2.T + b2)))
    loss = -(y * torch.log(o) + (1 - y) * torch.log(1 - o)).mean()
    return h, o, loss.item(), int(((o >= 0.5) == (y >= 0.5)).sum())


def test_a_populations_test_and_summary_are_the_formulas_evaluated_directly():
    """Seeds 2-4 for 3,000 updates (some reach 100%, some not): each seed's test loss, points right
    and accuracy against its weights through the formulas; the logged success rate and mean
    accuracy; the summary's analysed seed (the first that succeeded), its point table and dividing
    lines; the figures draw it and the first failed seed; the population's own entries."""
    model = GridPerceptron(seeds=3, init_seed=2, hidden_units=5, lr=0.01, stop_after_perfect=10**6)
    trainer, seen = _fit(model, batches_per_step=1000, max_steps=3_000)
    x, y = grid_points()
    direct = {s: _direct(model.weights_of(s), x, y) for s in model.seed_list}
    outcomes = {r["seed"]: r for r in model.seed_outcomes()}
    succeeded = [s for s in model.seed_list if direct[s][3] == 9]
    assert len(succeeded) == 2, "the case needs both outcomes, unevenly"
    for s, (h, o, loss, right) in direct.items():
        r = outcomes[s]
        assert r["test_correct"] == right and r["test_acc"] == right / 9 and r["test_loss"] == pytest.approx(loss, rel=1e-4)
        assert r["outcome"] == ("succeeded" if right == 9 else "failed") and r["updates"] == 3_000 and r["attempts"] == 1
        torch.testing.assert_close(model.net_of(s)(x), o, atol=1e-6, rtol=1e-5)
    accs = [direct[s][3] / 9 for s in model.seed_list]
    assert trainer.callback_metrics["hp/success_rate"].item() == pytest.approx(2 / 3)
    assert trainer.callback_metrics["hp/acc_test"].item() == pytest.approx(sum(accs) / 3)
    assert "hp/loss_test" not in trainer.callback_metrics
    # each step logged the population's seeds still training and the mean of their last losses
    assert all(logged["population/training"] == 3 for logged in seen.logged[:-1]) and seen.logged[-1]["population/training"] == 0
    assert seen.returned[-1]["loss"].shape == (2, 3) and seen.logged[-1]["population/loss"] == pytest.approx(seen.returned[-1]["loss"][1].mean().item(), rel=1e-6)

    summary = model.test_summary()
    s = succeeded[0]
    h, o, loss, right = direct[s]
    assert summary["analysed_seed"] == s and summary["test_correct"] == 9 and summary["test_total"] == 9 and summary["test_acc"] == 1.0
    assert summary["test_loss"] == pytest.approx(loss, rel=1e-4)
    assert (summary["activation"], summary["hidden_units"], summary["weight_scale"]) == ("sigmoid", 5, 1.0)
    assert summary["weights"] == model.weights_of(s) and summary["updates"] == 3_000
    assert summary["attempts"] == [{"attempt": 1, "seed": s, "start_update": 0, "first_perfect_update": outcomes[s]["first_perfect_update"],
                                    "outcome": "update budget of 3,000 spent", "updates": 3_000}]
    assert summary["dividing_lines"] == dividing_lines(summary["weights"]["hidden_weight"], summary["weights"]["hidden_bias"])
    for row, point, hidden, out in zip(summary["point_table"], x.tolist(), h.tolist(), o[:, 0].tolist()):
        assert [row["x"], row["y"]] == point and row["target"] == (sum(point) % 2) and row["correct"]
        assert row["hidden"] == pytest.approx(hidden, abs=1e-4) and row["output"] == pytest.approx(out, abs=1e-4)
    assert summary["population"] == 3 and summary["success_rate"] == 2 / 3 and summary["success"]["succeeded"] == 2
    firsts = sorted(outcomes[t]["first_perfect_update"] for t in succeeded)
    assert summary["updates_to_success"]["succeeded"] == 2 and summary["updates_to_success"]["min"] == firsts[0] and summary["updates_to_success"]["censored_at"] == [3_000]
    assert [r["seed"] for r in summary["seeds"]] == [2, 3, 4] and all("attempt_records" not in r for r in summary["seeds"])

    failed = next(t for t in model.seed_list if t not in succeeded)
    shown = model.nets_to_show()
    assert [(n.seed, n.prefix, n.label, n.updates) for n in shown] == [(s, "", f"seed {s} (reached 100%)", 3_000), (failed, f"seed{failed}_", f"seed {failed} (did not reach 100%)", 3_000)]
    assert shown[1].weights == model.weights_of(failed)
    torch.testing.assert_close(shown[1].net(x), direct[failed][1], atol=1e-6, rtol=1e-5)
    assert model.training_view() is None and model.net(x).tolist() == model.net_of(s)(x).tolist()
    # the histograms follow the first seed, or analyse_seed; a population's TensorBoard logger shows the watched seed's weights
    assert {k: v.tolist() for k, v in model.named_weights().items()} == model.weights_of(2) and model.named_activations() == {}
    # and the gradient of its loss at those weights, against autograd through the formulas as matrix products
    theta = torch.nn.Parameter(torch.cat([torch.tensor(v).flatten() for v in model.weights_of(2).values()])[None])
    o = grid_outputs(theta, 5, x)
    F.binary_cross_entropy(o, y.expand_as(o)).backward()
    got = model.named_gradients()
    assert list(got) == ["hidden_weight", "hidden_bias", "output_weight", "output_bias"] and got["hidden_weight"].shape == (5, 2)
    torch.testing.assert_close(torch.cat([v.flatten() for v in got.values()]), theta.grad[0], atol=1e-7, rtol=1e-5)
    assert GridPerceptron(seeds=3, init_seed=2).named_gradients() == {}  # before training: no points seen
    watched = GridPerceptron(seeds=3, init_seed=2, analyse_seed=4)
    assert watched.watched_seed() == 4 and {k: v.tolist() for k, v in watched.named_weights().items()} == watched.weights_of(4)


def test_an_ended_seed_leaves_the_step_and_a_stopped_run_closes_its_attempts():
    """Seeds 6 and 7 in steps of 200, a budget of 1,401 updates: seed 6 is held at update 753 and
    leaves (later steps return and average only seed 7's losses, and count one seed training);
    seed 7 spends its budget to the last single update. A run stopped after its first step closes
    the open attempts by whether they had reached 100%. The test's metrics reach the logger under
    their own names."""
    model = GridPerceptron(seeds=2, init_seed=6, hidden_units=5, lr=0.01, stop_after_perfect=300)
    logger = Logged()
    trainer, seen = _fit(model, batches_per_step=200, max_steps=1_401, test=False, logger=logger)
    assert model.updates.tolist() == [753, 1_401] and model.ended == [True, True]
    assert [a[-1]["outcome"] for a in model.attempts] == ["100% held for 300 updates", "update budget of 1,401 spent"]
    shapes = [tuple(out["loss"].shape) for out in seen.returned]
    assert shapes == [(2, 2)] * 4 + [(2, 1)] * 4 and seen.returned[-1]["samples"] == 9 and seen.returned[-1]["update"] == 1_401
    assert [logged["population/training"] for logged in seen.logged] == [2, 2, 2, 1, 1, 1, 1, 0]
    assert seen.logged[5]["population/loss"] == pytest.approx(seen.returned[5]["loss"][1, 0].item())
    trainer.test(model, datamodule=GridDataModule(), verbose=False)
    tested = logger.calls[-1][0]
    assert {"hp/success_rate", "hp/acc_test"} <= set(tested) and not any(k.endswith(("_step", "_epoch")) for k in tested)

    stopped = GridPerceptron(seeds=2, init_seed=6, hidden_units=5, lr=0.01, stop_after_perfect=300)
    _fit(stopped, batches_per_step=500, max_steps=5_000, callbacks=[StopAt(1)])
    records = [r["attempt_records"][0] for r in stopped.seed_outcomes()]
    assert [(r["outcome"], r["updates"]) for r in records] == [("stopped after reaching 100%", 500), ("stopped before reaching 100%", 500)]
    assert [a[-1]["outcome"] for a in stopped.attempts] == ["running", "running"]  # the record itself stays open


def test_a_single_runs_test_logs_its_loss_and_a_hand_set_net_is_its_weights():
    """The reference's hand-designed net, x10 in sigmoid units: every point right, the loss logged directly;
    its figures show it alone, with no label."""
    model = GridPerceptron(hidden_units=4, activation="sigmoid", weights=REFERENCE_WEIGHTS, weight_scale=10.0)
    trainer = _test(model)
    x, y = grid_points()
    scaled = {k: (torch.tensor(v, dtype=torch.float32) * 10).tolist() for k, v in REFERENCE_WEIGHTS.items()}
    h, o, loss, right = _direct(scaled, x, y)
    assert right == 9 and model.weights_of(0) == scaled
    assert trainer.callback_metrics["hp/loss_test"].item() == pytest.approx(loss, rel=1e-4)
    assert trainer.callback_metrics["hp/acc_test"].item() == 1.0 and "hp/success_rate" not in trainer.callback_metrics
    summary = model.test_summary()
    assert "population" not in summary and "analysed_seed" not in summary and summary["updates"] == 0 and summary["attempts"] == []
    assert summary["first_perfect_update"] is None and summary["weight_scale"] == 10.0
    shown = model.nets_to_show()
    assert [(n.seed, n.prefix, n.label, n.updates) for n in shown] == [(0, "", "", 0)]
    assert model.training_view()["updates"] == 0 and model.training_view()["attempt"] == 1
    logger = Logged()
    _test(model, logger)
    assert set(logger.calls[-1][0]) == {"hp/loss_test", "hp/acc_test", "epoch"}

    # the step net itself (evaluated, not trained): its units are Heaviside steps, so its outputs are the targets exactly
    stepped = GridPerceptron(hidden_units=4, activation="step", weights=REFERENCE_WEIGHTS)
    assert stepped.net_of(0)(x).tolist() == y.tolist() and stepped.activations(x)[1][0].tolist() == y.tolist()


def test_an_output_of_exactly_one_half_counts_as_one():
    """All-zero weights give 0.5 at every point: the rule ``output >= 0.5`` predicts 1 there, so
    the 4 points of target 1 are right."""
    zero = {"hidden_weight": [[0, 0]] * 2, "hidden_bias": [0, 0], "output_weight": [[0, 0]], "output_bias": [0]}
    model = GridPerceptron(hidden_units=2, weights=zero)
    trainer = _test(model)
    assert model.seed_outcomes()[0]["test_correct"] == 4 and trainer.callback_metrics["hp/acc_test"].item() == pytest.approx(4 / 9)


def test_a_step_net_cannot_be_trained():
    model = GridPerceptron(hidden_units=2, activation="step")
    with pytest.raises(ConfigError) as info:
        _fit(model, batches_per_step=10, max_steps=10, test=False)
    assert str(info.value) == "activation='step' cannot be trained (its gradient is zero everywhere); use fit=false, or activation=sigmoid"


def test_a_checkpoint_brings_back_every_seeds_life():
    """What ``on_save_checkpoint`` writes puts a fresh module back where the trained one was:
    updates, streaks, which seeds ended, the clock and every attempt (a restart included); a
    checkpoint from before the clock was saved starts it at 0, one with no seeds changes nothing."""
    trained = GridPerceptron(seeds=3, init_seed=1, restarts=2, restart_after=1_500, stop_after_perfect=400, lr=0.02)
    _fit(trained, batches_per_step=500, max_steps=4_000, test=False)
    assert any(len(a) > 1 for a in trained.attempts) and any(trained.ended)
    checkpoint: dict = {}
    trained.on_save_checkpoint(checkpoint)
    fresh = GridPerceptron(seeds=3, init_seed=1, restarts=2, restart_after=1_500, stop_after_perfect=400, lr=0.02)
    fresh.on_load_checkpoint(checkpoint)
    assert fresh.updates.tolist() == trained.updates.tolist() and fresh.streak.tolist() == trained.streak.tolist()
    assert fresh.ended == trained.ended and fresh.clock == trained.clock == 4_000
    assert [a.state_dict() for a in fresh.attempts] == [a.state_dict() for a in trained.attempts]
    assert fresh.updates is not checkpoint["seeds"]["updates"]  # copied into the module's own arrays

    older = {k: v for k, v in checkpoint.items()}
    older["seeds"] = {k: v for k, v in checkpoint["seeds"].items() if k != "clock"}
    again = GridPerceptron(seeds=3, init_seed=1, restarts=2, restart_after=1_500)
    again.on_load_checkpoint(older)
    assert again.clock == 0 and again.updates.tolist() == trained.updates.tolist()
    untouched = GridPerceptron(seeds=3, init_seed=1)
    untouched.on_load_checkpoint({})
    assert untouched.updates.tolist() == [0, 0, 0] and untouched.ended == [False] * 3 and [len(a) for a in untouched.attempts] == [1, 1, 1]
    # a seed trained on another process arrives whole and ended
    other = GridPerceptron(seeds=3, init_seed=1, restarts=2, restart_after=1_500)
    other._load_seed_state(2, trained._seed_state(2))
    assert other.ended == [False, False, True] and other.weights_of(3) == trained.weights_of(3) and int(other.streak[2]) == int(trained.streak[2])


def test_row_adam_has_torch_adams_defaults_and_takes_one_parameter():
    p = torch.nn.Parameter(torch.zeros(2, 21))
    ours, theirs = RowAdam([p]).defaults, torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))]).defaults
    assert {k: ours[k] for k in ("lr", "betas", "eps", "weight_decay")} == {k: theirs[k] for k in ("lr", "betas", "eps", "weight_decay")}
    with pytest.raises(ValueError, match=r"^RowAdam updates one parameter: the \(rows, P\) weights of a population$"):
        RowAdam([p, torch.nn.Parameter(torch.zeros(1, 21))])


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_a_saturated_net_is_updated_as_torch_updates_it(compiled):
    """Weights so large that the output is exactly 0 or 1 in float32 at some points: torch's BCE
    clamps log() at -100 and its gradient's denominator at 1e-12; the update is that BCE under
    autograd, step for step (its first loss, its weights after 20 updates against autograd +
    Adam on the formulas written as matrix products), eagerly or compiled."""
    H = 2
    x, y = grid_points()
    start = torch.tensor([[30.0, 30.0, -30.0, 30.0, 5.0, -5.0, 40.0, -40.0, 20.0]])
    assert start.shape[1] == size(H)
    theirs = torch.nn.Parameter(start.clone())
    adam = torch.optim.Adam([theirs], lr=0.01)
    losses = []
    for _ in range(20):
        o = grid_outputs(theirs, H, x)
        loss = F.binary_cross_entropy(o, y.expand_as(o))
        losses.append(loss.item())
        adam.zero_grad()
        loss.backward()
        adam.step()
    assert losses[0] > 10  # some points are saturated the wrong way: each costs the clamped 100
    # beside it, a row of zeros: 0.5 everywhere, never every point right, a loss of log 2
    stacked = torch.nn.Parameter(torch.cat([start, torch.zeros_like(start)]))
    optimizer = RowAdam([stacked], lr=0.01)
    (rows,) = optimizer.rows([0, 1])
    update = (compiled_update if compiled else update_for)(H, optimizer.settings)
    rows = rows_for_compiled(rows) if compiled else rows
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # log(0) of a saturated point is clamped, not warned about
        first = update(rows.weights, rows.exp_avg, rows.exp_avg_sq, rows.step, x, y)
        for _ in range(19):
            last = update(rows.weights, rows.exp_avg, rows.exp_avg_sq, rows.step, x, y)
    optimizer.store(rows)
    assert float(first[0][0]) == pytest.approx(losses[0], rel=1e-5) and float(last[0][0]) == pytest.approx(losses[-1], rel=1e-4)
    assert float(first[0][1]) == pytest.approx(np.log(2), rel=1e-6) and not bool(last[2][1]) and last[1].shape == (2, 9, 1)
    torch.testing.assert_close(stacked[:1].detach(), theirs.detach(), atol=1e-4, rtol=1e-4)


def test_the_defaults_are_the_configs():
    """A module built in Python trains as ``model=grid_perceptron`` does: the constructor's defaults
    against conf/model/grid_perceptron.yaml, key by key."""
    conf = OmegaConf.to_container(OmegaConf.load(REPO / "conf/model/grid_perceptron.yaml"))
    hp = GridPerceptron().hparams
    keys = ["hidden_units", "activation", "init_std", "lr", "weight_decay", "stop_after_perfect", "restarts", "restart_after", "weights", "weights_file", "weight_scale"]
    assert {k: hp[k] for k in keys} == {k: conf[k] for k in keys}
    assert (hp.seeds, hp.init_seed, hp.analyse_seed) == (1, 0, None)


def test_a_budget_of_one_update_and_a_net_right_from_its_first_update():
    """``trainer.max_steps=1`` is one update; the reference's net x10 is right on its first
    forward pass, so its first 100% is update 1 and it stops after ``stop_after_perfect`` updates."""
    model = GridPerceptron(init_seed=6)
    _fit(model, batches_per_step=10, max_steps=1, test=False)
    assert model.updates.tolist() == [1] and model.attempts[0][-1]["outcome"] == "update budget of 1 spent"
    right = GridPerceptron(hidden_units=4, weights=REFERENCE_WEIGHTS, weight_scale=10.0, stop_after_perfect=5)
    _fit(right, batches_per_step=10, max_steps=100, test=False)
    assert right.attempts[0][-1]["first_perfect_update"] == 1 and right.updates.tolist() == [5]


def test_each_step_reaches_the_logger_at_the_update_it_ends_on():
    """TensorBoard's x-axis is the ``step`` a module logs: a single run's loss and accuracy, a
    population's seeds training and mean loss, at the update each Lightning step ended on."""
    for model, names in ((GridPerceptron(init_seed=6, stop_after_perfect=10**6), {"loss/train", "acc/train"}),
                         (GridPerceptron(seeds=2, init_seed=6, stop_after_perfect=10**6), {"population/training", "population/loss"})):
        logger = Logged()
        _fit(model, batches_per_step=300, max_steps=750, test=False, logger=logger)
        assert [(set(m) - {"epoch"}, step) for m, step in logger.calls] == [(names, 300), (names, 600), (names, 750)]


def test_a_restart_counts_its_first_100_percent_from_its_own_start_and_leaves_the_other_seeds_alone(caplog):
    """Seed 7 fails its first attempt and restarts at update 1,000 as seed 8 (oracle: seed 8 run
    fresh, whose first 100% comes at update f > 1,000): the second attempt's first 100% is f,
    counted from the restart, not 1,000 + f or f - 1,000. Seed 6, which is not restarted, keeps
    its own Adam state: it ends as seed 6 alone. The restart is logged and recorded in words."""
    settings = dict(hidden_units=5, lr=0.01, stop_after_perfect=10**6, restarts=1, restart_after=1_000)
    fresh = GridPerceptron(init_seed=8, **(settings | {"restarts": 0}))
    _fit(fresh, batches_per_step=500, max_steps=3_500, test=False)
    f = fresh.attempts[0][0]["first_perfect_update"]
    assert f is not None and 1_000 < f < 3_500
    alone = GridPerceptron(init_seed=6, **settings)
    _fit(alone, batches_per_step=500, max_steps=4_500, test=False)
    with caplog.at_level("INFO", logger="lightning_modules.grid"):
        pair = GridPerceptron(seeds=2, init_seed=6, **settings)
        _fit(pair, batches_per_step=500, max_steps=4_500, test=False)
    first, second = pair.attempts[1].state_dict()
    assert first["outcome"] == "no 100% after 1,000 updates: re-initialised" and first["updates"] == 1_000 and first["first_perfect_update"] is None
    assert second["seed"] == 8 and second["start_update"] == 1_000 and second["first_perfect_update"] == f
    assert (second["outcome"], second["updates"]) == ("update budget of 4,500 spent", 3_500)
    assert "seed 7: attempt 1 reached no 100% in 1000 updates; re-initialising with seed 8" in caplog.messages
    assert pair.weights_of(6) == alone.weights_of(6) and len(pair.attempts[0]) == 1

    stopped = GridPerceptron(seeds=2, init_seed=6, **(settings | {"restart_after": 300}))
    _fit(stopped, batches_per_step=500, max_steps=4_000, callbacks=[StopAt(2)])
    last = stopped.seed_outcomes()[1]["attempt_records"][-1]
    assert (last["seed"], last["start_update"], last["updates"]) == (8, 300, 500)  # a step ends at a restart: 300, then 500 more


def test_an_output_of_exactly_one_half_is_right_for_a_target_of_one_in_the_update_too():
    """All-zero weights output 0.5 at every point: with every target 1, the update's forward pass
    has every point right (``>= 0.5``)."""
    H, x = 2, grid_points()[0]
    zeros = torch.zeros(1, size(H))
    _, o, ok = seed_update(zeros.clone(), zeros.clone(), zeros.clone(), torch.tensor(0.0), x, torch.ones(9, 1), H, 0.01, 0.9, 0.999, 1e-8, 0.0)
    assert (o == 0.5).all() and ok.tolist() == [True]
