"""The grid perceptron: dividing lines, weight checks, the stopping rule, and the three
experiments end to end through train.py (its updates against autograd + torch.optim.Adam are in
test_population.py)."""


import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from conftest import error_line, load_results, quiet, run_train
from datamodules import GridDataModule
from datamodules.grid import grid_points
from analysis.grid import dividing_line
from lightning_modules.grid import GridPerceptron
from lightning_modules.grid_nets import GridNet, load_weights
from base.errors import ConfigError

STEP_WEIGHTS = {
    "hidden_weight": [[1, 1], [1, 1], [1, 1], [1, 1]],
    "hidden_bias": [-0.5, -1.5, -2.5, -3.5],
    "output_weight": [[1, -1, 1, -1]],
    "output_bias": [-0.5],
}


def test_grid_points_are_a_checkerboard():
    xy, target = grid_points()
    assert xy.shape == (9, 2) and target.shape == (9, 1)
    assert {tuple(p) for p in xy.tolist()} == {(x, y) for x in range(3) for y in range(3)}
    assert all(t == (x + y) % 2 for (x, y), t in zip(xy.tolist(), target.flatten().tolist()))


@pytest.mark.parametrize(
    "w, b, equation, on",
    [
        ((1, 1), -0.5, "y = -1.00 x + 0.50", "above"),
        ((1, 1), -3.5, "y = -1.00 x + 3.50", "above"),
        ((-1, 2), 2, "y = 0.50 x - 1.00", "above"),
        ((2, -4), 1, "y = 0.50 x + 0.25", "below"),
        ((2, 0), -1, "x = 0.50", "right"),
        ((-3, 0), -3, "x = -1.00", "left"),
        ((0, -2), 1, "y = 0.50", "below"),
        ((0, 0), 0.3, None, "everywhere"),
        ((0, 0), -1, None, "nowhere"),
    ],
)
def test_dividing_line_equations(w, b, equation, on):
    assert dividing_line(w, b) == {"equation": equation, "on": on}


def test_dividing_line_side_agrees_with_the_unit():
    """The side named 'on' is where w.x + b >= 0, checked at a point off the line."""
    for w, b in [((1, 1), -0.5), ((2, -4), 1), ((2, 0), -1), ((-3, 0), -3), ((0, -2), 1)]:
        d = dividing_line(w, b)
        probe = {"above": (0.3, 5.0), "below": (0.3, -5.0), "right": (5.0, 0.3), "left": (-5.0, 0.3)}[d["on"]]
        assert w[0] * probe[0] + w[1] * probe[1] + b > 0


def test_step_of_zero_is_one():
    net = GridNet(1, "step")
    with torch.no_grad():
        net.hidden.weight.copy_(torch.tensor([[1.0, 1.0]]))
        net.hidden.bias.fill_(-1.0)
        net.output.weight.fill_(1.0)
        net.output.bias.fill_(-1.0)
    h, o = net.activations(torch.tensor([[0.5, 0.5], [0.0, 0.0]]))
    assert h.flatten().tolist() == [1.0, 0.0] and o.flatten().tolist() == [1.0, 0.0]


def test_load_weights_checks_shapes_and_names_them():
    w = load_weights(STEP_WEIGHTS, None, 4)
    assert w["hidden_weight"].shape == (4, 2) and w["output_bias"].shape == (1,)
    flat = {**STEP_WEIGHTS, "output_weight": [1, -1, 1, -1], "output_bias": -0.5}
    assert torch.equal(load_weights(flat, None, 4)["output_weight"], w["output_weight"])
    with pytest.raises(ConfigError, match=r"hidden_bias has shape \[3\]; expected shapes: hidden_weight \[4, 2\], hidden_bias \[4\]"):
        load_weights({**STEP_WEIGHTS, "hidden_bias": [1, 2, 3]}, None, 4)
    with pytest.raises(ConfigError, match=r"hidden_weight has shape \[4, 2\]; expected shapes: hidden_weight \[5, 2\]"):
        load_weights(STEP_WEIGHTS, None, 5)
    with pytest.raises(ConfigError, match="exactly the keys"):
        load_weights({k: v for k, v in STEP_WEIGHTS.items() if k != "output_bias"}, None, 4)
    with pytest.raises(ConfigError, match="both set"):
        load_weights(STEP_WEIGHTS, "w.yaml", 4)


def test_load_weights_from_yaml_file(tmp_path):
    import yaml

    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(STEP_WEIGHTS))
    assert load_weights(None, str(path), 4)["hidden_bias"].tolist() == [-0.5, -1.5, -2.5, -3.5]
    with pytest.raises(ConfigError, match="no such file"):
        load_weights(None, str(tmp_path / "missing.yaml"), 4)


@pytest.mark.parametrize("bad", [dict(hidden_units=0), dict(activation="relu"), dict(lr=0), dict(restarts=-1), dict(weight_scale=0)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ConfigError):
        GridPerceptron(**bad)


def _train(max_steps: int, batches_per_step: int = 250, **kwargs):
    model = GridPerceptron(init_seed=7, **kwargs)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, max_steps=max_steps, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(model, datamodule=GridDataModule(batches_per_step=batches_per_step))
    return model, trainer


def test_training_stops_when_100_percent_has_held():
    model, _ = _train(200_000, stop_after_perfect=500)
    attempt = model.attempts[0][-1]
    assert attempt["first_perfect_update"] is not None
    assert model.updates[0] == attempt["first_perfect_update"] + 500 - 1  # stops at the 500th right update in a row
    assert "held" in attempt["outcome"]


def test_the_update_budget_is_trainer_max_steps_in_updates_whatever_the_step_size():
    """trainer.max_steps counts updates for the grid as for every study: 2,500 updates in steps
    of 1,000 stop halfway through the third step (3 Lightning steps)."""
    model, trainer = _train(2_500, batches_per_step=1000, stop_after_perfect=10**6)
    assert model.updates.tolist() == [2_500] and trainer.fit_loop.epoch_loop.batch_progress.total.completed == 3
    assert "budget of 2,500" in model.attempts[0][-1]["outcome"]
    with pytest.raises(ConfigError, match=r"trainer.max_steps=-1 is invalid for the grid study; allowed: an integer >= 1"):
        _train(-1)


# ---- end to end through train.py ------------------------------------------------------------


def _png_is_a_drawing(path) -> bool:
    image = np.asarray(Image.open(path).convert("RGB"))
    colours = len(np.unique(image.reshape(-1, 3), axis=0))
    return image.shape[0] > 200 and image.shape[1] > 200 and colours > 10 and image.std() > 10


@pytest.mark.slow
def test_hand_designed_step_net_and_its_x10_sigmoid_version_classify_all_points(tmp_path):
    for experiment in ("check_step_manual", "check_sig_manual"):
        run = tmp_path / experiment
        proc = run_train(f"experiment={experiment}", *quiet(run))
        assert proc.returncode == 0, proc.stderr[-3000:]
        r = load_results(run)
        assert r["test_correct"] == 9 and r["test_acc"] == 1.0 and r["updates"] == 0
        assert [line["equation"] for line in r["dividing_lines"]] == [f"y = -1.00 x + {b:.2f}" for b in (0.5, 1.5, 2.5, 3.5)]
        assert len(r["point_table"]) == 9 and all(row["correct"] for row in r["point_table"])
        assert "Final accuracy: 9/9 (100.0%)" in proc.stdout and "h0: y = -1.00 x + 0.50" in proc.stdout
        names = [f"hid_4_{i}.png" for i in range(4)] + ["out_4.png", "lines_4.png", "surfaces_4.png"]
        for name in names:
            assert _png_is_a_drawing(run / "figures" / name), name
    assert load_results(tmp_path / "check_sig_manual")["weights"]["hidden_bias"] == [-5.0, -15.0, -25.0, -35.0]
    assert load_results(tmp_path / "check_step_manual")["point_table"][1]["hidden"] == [1.0, 0.0, 0.0, 0.0]


@pytest.mark.slow
def test_too_small_a_scale_fails_honestly(tmp_path):
    run = tmp_path / "run"
    proc = run_train("experiment=check_sig_manual", "model.weight_scale=1", *quiet(run))
    assert proc.returncode == 0
    r = load_results(run)
    assert r["test_correct"] == 5 and r["test_acc"] < 1
    wrong = [(row["x"], row["y"]) for row in r["point_table"] if not row["correct"]]
    assert sorted(wrong) == [(0, 1), (1, 0), (1, 2), (2, 1)]  # every target-1 point off the diagonal x + y = 2
    assert "Final accuracy: 5/9 (55.6%)" in proc.stdout and proc.stdout.count("<- wrong") == 4


@pytest.mark.slow
def test_trained_sigmoid_net_with_restarts_reaches_100_percent(tmp_path):
    """Seed 4 gets stuck (never 100% in 200,000 updates, measured); a restart gets past it."""
    run = tmp_path / "run"
    proc = run_train("experiment=check_sig", "seed=4", "model.restarts=2", "model.restart_after=20000", *quiet(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = load_results(run)
    assert r["test_acc"] == 1.0
    first, second = r["attempts"]
    assert first["seed"] == 4 and first["updates"] == 20_000 and first["first_perfect_update"] is None and "re-initialised" in first["outcome"]
    assert second["seed"] == 5 and second["first_perfect_update"] is not None and "held" in second["outcome"]
    assert r["first_perfect_update"] == second["first_perfect_update"]
    assert r["updates"] == 20_000 + second["updates"]
    assert "Attempt 2 (seed 5)" in proc.stdout
    # the maps were logged during training: several frames on TensorBoard's slider
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    tb.Reload()
    frames = [e.step for e in tb.Images("decision/all")]
    assert len(frames) >= 5 and frames[0] == 0 and frames == sorted(frames)
    assert {"decision/hid_0", "decision/out", "decision/lines", "activation/surfaces"} <= set(tb.Tags()["images"])
    assert tb.Scalars("loss/train")[-1].step == r["updates"]  # curves are plotted against updates
    # the final checkpoint replaced the periodic ones (at 10,000 and 20,000 updates); it used to be
    # written beside them as last-v1.ckpt, leaving last.ckpt at update 20,000
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    from lightning_modules.grid import GridPerceptron

    assert GridPerceptron.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu").weights_of(4) == r["weights"]


@pytest.mark.slow
def test_stuck_run_without_restarts_reports_failure(tmp_path):
    run = tmp_path / "run"
    proc = run_train("experiment=check_sig", "seed=4", "trainer.max_steps=20000", *quiet(run))
    assert proc.returncode == 0
    r = load_results(run)
    assert r["test_acc"] < 1 and r["first_perfect_update"] is None and r["updates"] == 20_000
    assert "budget" in r["attempts"][0]["outcome"]


@pytest.mark.slow
def test_user_weights_from_command_line_and_file(tmp_path):
    # the command line replaces one tensor: biases that put all four lines at the same place
    run = tmp_path / "cli"
    proc = run_train("experiment=check_step_manual", "model.weights.hidden_bias=[-0.5,-0.5,-0.5,-0.5]", *quiet(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert load_results(run)["test_correct"] < 9
    # a YAML file with all four tensors
    import yaml

    weights = tmp_path / "w.yaml"
    weights.write_text(yaml.safe_dump(STEP_WEIGHTS))
    run = tmp_path / "file"
    proc = run_train("experiment=check_step_manual", "model.weights=null", f"model.weights_file={weights}", *quiet(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert load_results(run)["test_correct"] == 9


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides, must_contain",
    [
        (["experiment=check_step_manual", "model.weights.hidden_bias=[1,2]"], ["hidden_bias has shape [2]", "hidden_weight [4, 2]", "output_weight [1, 4]"]),
        (["experiment=check_sig", "model.hidden_units=0"], ["model.hidden_units=0", "integer >= 1"]),
        (["experiment=check_step_manual", "fit=true"], ["activation='step' cannot be trained"]),
    ],
)
def test_grid_errors_are_one_line(overrides, must_contain, tmp_path):
    proc = run_train(*overrides, *quiet(tmp_path / "run"))
    assert proc.returncode == 1
    line = error_line(proc)
    for text in must_contain:
        assert text in line, line
