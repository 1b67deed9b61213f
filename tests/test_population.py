"""Many seeds in one process (``seeds=N``): each seed's network ends exactly as it would alone.

The contract: seed s inside a population ends with the same outcome, the same update of first
success, the same number of updates and the same weights, bit for bit, as ``seed=s`` trained
alone, restarts and failures included."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl

from analysis.population import success_rate, updates_distribution
from conftest import error_line, load_results, quiet, run_train
from datamodules.grid import GridDataModule
from lightning_modules.grid import GridPerceptron
from lightning_modules.grid_fast import adam_updates, size
from lightning_modules.grid_population import GridPopulation


def _points():
    x = np.array([[a, b] for a in range(3) for b in range(3)], np.float32)
    return x, (x.sum(1) % 2)[:, None].astype(np.float32)


def test_rows_update_alone_or_together_bit_for_bit():
    """grid_fast's rows are independent: a row's result does not depend on the other rows, on
    how many there are, or on rows stopping around it."""
    H, x, y = 5, *_points()
    rng = np.random.default_rng(0)
    theta = (rng.standard_normal((6, size(H))) * 0.15).astype(np.float32)
    limits = np.array([6000, 1200, 0, 6000, 2500, 6000])

    def run(rows):
        th, m, v = theta[rows].copy(), np.zeros((len(rows), size(H)), np.float32), np.zeros((len(rows), size(H)), np.float32)
        r = adam_updates(th, m, v, np.zeros(len(rows), np.int64), H, x, y, limits[rows], lr=0.05, weight_decay=1e-5, stop_after_correct=400)
        return th, r

    together, r_all = run(list(range(6)))
    for i in range(6):
        alone, r_one = run([i])
        assert np.array_equal(alone[0], together[i]), i
        assert (r_one.done[0], r_one.first_correct[0], r_one.streak[0]) == (r_all.done[i], r_all.first_correct[i], r_all.streak[i])
    assert r_all.done[2] == 0 and np.array_equal(together[2], theta[2])  # limit 0: untouched
    assert r_all.done[1] <= 1200 and all(d <= lim for d, lim in zip(r_all.done, limits))
    stopped = r_all.streak >= 400  # stopped by the rule: exactly at 400 updates in a row
    assert stopped.sum() == 4 and (r_all.streak[stopped] == 400).all() and (r_all.done[stopped] >= r_all.first_correct[stopped] + 400).all()
    assert r_all.done[4] == 2500 and r_all.streak[4] < 400  # stopped by its limit


def _fit(model, batches_per_step=1000):
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, log_every_n_steps=1)
    trainer.fit(model, datamodule=GridDataModule(batches_per_step=batches_per_step))
    trainer.test(model, datamodule=GridDataModule(), verbose=False)
    return model


def test_each_seed_of_a_population_ends_as_it_would_alone():
    """Seeds 0-5 with one restart allowed after 5,000 updates: some succeed in their first
    attempt, some after a restart, some fail twice; a chunk of 700 updates puts every threshold
    inside a chunk of the population, where the single runs chunk by 1,000."""
    settings = dict(max_updates=7_000, restarts=1, restart_after=5_000, stop_after_perfect=1500)
    population = _fit(GridPopulation(seeds=6, init_seed=0, **settings), batches_per_step=700)
    outcomes = {r["seed"]: r for r in population.seed_outcomes()}
    assert set(outcomes) == set(range(6))
    kinds = set()
    for seed in range(6):
        alone = _fit(GridPerceptron(init_seed=seed, **settings), batches_per_step=1000).test_summary()
        mine = outcomes[seed]
        assert mine["updates"] == alone["updates"] and mine["first_perfect_update"] == alone["first_perfect_update"], seed
        assert mine["attempts"] == len(alone["attempts"]) and mine["attempt_records"] == alone["attempts"], seed
        assert population.weights_of(seed) == alone["weights"], seed  # bit for bit
        assert mine["test_acc"] == alone["test_acc"]
        kinds.add((mine["outcome"], mine["attempts"]))
    assert {("failed", 2), ("succeeded", 1), ("succeeded", 2)} <= kinds


def test_population_statistics():
    assert success_rate([True] * 95 + [False] * 5)["interval95"] == [0.888, 0.978]
    d = updates_distribution([100, None, 300, 200, None], [150, 5000, 350, 250, 4000])
    assert (d["succeeded"], d["censored"], d["censored_at"], d["median"], d["min"], d["max"]) == (3, 2, [4000, 5000], 200.0, 100, 300)
    assert updates_distribution([None], [10]) == {"succeeded": 0, "censored": 1, "censored_at": [10]}


@pytest.mark.slow
def test_seeds_run_end_to_end_and_in_a_sweep(tmp_path):
    run = tmp_path / "run"
    proc = run_train("experiment=check_sig", "seeds=6", "seed=2", "model.max_updates=20000", *quiet(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = load_results(run)
    assert r["population"] == 6 and [s["seed"] for s in r["seeds"]] == [2, 3, 4, 5, 6, 7]
    outcomes = [s["outcome"] for s in r["seeds"]]
    assert outcomes[2] == "failed" and r["success"]["succeeded"] == outcomes.count("succeeded") and r["success_rate"] == r["success"]["rate"]
    assert r["analysed_seed"] == next(s["seed"] for s in r["seeds"] if s["outcome"] == "succeeded")
    assert r["updates_to_success"]["censored"] == outcomes.count("failed")
    assert f"Population of 6 seeds (2..7): {outcomes.count('succeeded')}/6 succeeded" in proc.stdout
    figures = {p.name for p in (run / "figures").iterdir()}
    assert {"updates_to_success.png", "hid_5_0.png", "out_5.png", "seed4_hid_5_0.png", "seed4_out_5.png"} <= figures
    # the same seed alone: the same result
    alone = tmp_path / "alone"
    assert run_train("experiment=check_sig", "seed=3", "model.max_updates=20000", *quiet(alone)).returncode == 0
    a = load_results(alone)
    assert (a["updates"], a["first_perfect_update"], a["weights"]) == (r["seeds"][1]["updates"], r["seeds"][1]["first_perfect_update"],
                                                                      _weights_from_checkpoint(run, 3))

    sweep = tmp_path / "sweep"
    proc = run_train("-m", "experiment=check_sig", "model.hidden_units=2,5", "seeds=4", "model.max_updates=15000", f"hydra.sweep.dir={sweep}",
                     "callbacks.progress_bar.refresh_rate=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (sweep / "summary.md").read_text()
    assert "| success_rate | success_interval95 |" in md and "- success_rate: mean" in md
    assert (sweep / "summary.png").stat().st_size > 5000


def _weights_from_checkpoint(run, seed):
    """Seed ``seed``'s weights from a population run's checkpoint."""
    return GridPopulation.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu").weights_of(seed)


@pytest.mark.parametrize("overrides, expected", [
    (["experiment=kmnist_lin", "seeds=3"], "seeds=3 is invalid for the kmnist study; allowed: 1"),
    (["experiment=check_sig", "seeds=0"], "seeds=0 is invalid; allowed: an integer >= 1"),
    (["experiment=check_sig", "seeds=3", "analyse_seed=7"], "model.analyse_seed=7 is invalid; allowed: null (the first seed that succeeds) or one of the trained seeds, 42..44"),
    (["experiment=check_step_manual", "seeds=3"], "model.activation='step' is invalid"),
])
def test_bad_population_settings_are_one_line(overrides, expected, tmp_path):
    proc = run_train(*overrides, "data.source=files", f"data.root={tmp_path / 'none'}", *quiet(tmp_path / "run")) if "kmnist" in overrides[0] \
        else run_train(*overrides, *quiet(tmp_path / "run"))
    assert proc.returncode == 1
    assert expected in error_line(proc)
