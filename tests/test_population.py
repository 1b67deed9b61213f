"""Many seeds in one process (``seeds=N``): each seed's network ends exactly as it would alone.

The contract: seed s inside a population ends with the same outcome, the same update of first
success, the same number of updates and the same weights, bit for bit, as ``seed=s`` trained
alone, restarts and failures included."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

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
    never_download = ["data.source=files", f"data.root={tmp_path / 'none'}"] if "kmnist" in overrides[0] else []
    proc = run_train(*overrides, *never_download, *quiet(tmp_path / "run"))
    assert proc.returncode == 1
    assert expected in error_line(proc)


# ---- recurrent nets ----------------------------------------------------------------------------


def _fit_sequences(model, data, max_steps=None):
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, max_steps=max_steps or -1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1000, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data, verbose=False)
    return model


@pytest.mark.parametrize("cell, language, hidden, restart_after, max_updates", [("srn", "anb2n", 2, 500, 1500), ("lstm", "anb2nc3n", 3, 200, 400)])
def test_each_recurrent_seed_of_a_population_ends_as_a_population_of_one(cell, language, hidden, restart_after, max_updates):
    """Five seeds with Adam, restarts and the early stop, against each seed alone through the same
    module: the same outcome, first solve, updates, attempts and weights, bit for bit."""
    from datamodules.grammar import GrammarDataModule
    from lightning_modules.recurrent_population import SequencePopulation

    settings = dict(cell=cell, hidden_units=hidden, num_symbols=3 if "c" in language else 2, init=0.3 if cell == "srn" else "uniform",
                    optimizer="adam", lr=0.01, restarts=2, restart_after=restart_after, max_updates=max_updates, eval_every=100, solved_evaluations=3)
    data = dict(language=language, batch_size=8, eval_sequences=20, eval_max_n=8)
    population = _fit_sequences(SequencePopulation(seeds=5, init_seed=10, **settings), GrammarDataModule(seed=10, seeds=5, population=True, **data))
    together = {r["seed"]: r for r in population.seed_outcomes()}
    kinds = set()
    for seed in range(10, 15):
        one = _fit_sequences(SequencePopulation(seeds=1, init_seed=seed, **settings), GrammarDataModule(seed=seed, seeds=1, population=True, **data))
        alone, mine = one.seed_outcomes()[0], together[seed]
        for key in ("outcome", "updates", "first_solved_update", "stopped_early_at_update", "attempts", "det_acc", "error", "max_n_generalised"):
            assert alone[key] == mine[key], (seed, key)
        i = population.seed_list.index(seed)
        assert torch.equal(one.theta[0], population.theta[i]), seed  # every weight, bit for bit
        kinds.add((alone["outcome"], alone["attempts"] > 1))
    assert len(kinds) >= 2, kinds  # not every seed the same story


def test_a_population_trains_on_for_its_patience_after_solving():
    """The same seeds with patience 0, 400 and None (the full schedule): identical until a seed is
    held solved, then it stops at once, 400 updates later, or never."""
    from datamodules.grammar import GrammarDataModule
    from lightning_modules.recurrent_population import SequencePopulation

    settings = dict(cell="srn", hidden_units=2, num_symbols=2, init=0.3, optimizer="adam", lr=0.01, restarts=2, restart_after=1000,
                    max_updates=3000, eval_every=100, solved_evaluations=3)
    data = dict(language="anb2n", batch_size=8, eval_sequences=20, eval_max_n=8)

    def outcomes(patience):
        pop = _fit_sequences(SequencePopulation(seeds=4, init_seed=10, solved_patience=patience, **settings), GrammarDataModule(seed=10, seeds=4, population=True, **data))
        return {r["seed"]: r for r in pop.seed_outcomes()}

    at_once, later, never = outcomes(0), outcomes(400), outcomes(None)
    held = [s for s, r in at_once.items() if r["stopped_early_at_update"] is not None]
    assert held, at_once
    for s in held:
        assert later[s]["first_solved_update"] == at_once[s]["first_solved_update"]
        assert later[s]["stopped_early_at_update"] == at_once[s]["stopped_early_at_update"] + 400 == later[s]["updates"]
    assert all(r["stopped_early_at_update"] is None and r["updates"] == 3000 for r in never.values())


def test_a_population_of_one_follows_the_single_network():
    """The population's arithmetic (a loop of batched products) against the fused nn.RNN of
    SequencePredictor: the same initial weights, the same sequences, and the same losses to float
    rounding over the first updates."""
    from datamodules.grammar import GrammarDataModule, SequenceStream
    from lightning_modules.recurrent import SequencePredictor
    from lightning_modules.recurrent_population import SequencePopulation, forward

    single = SequencePredictor(cell="srn", hidden_units=2, num_symbols=2, init=0.3, optimizer="adam", lr=0.01, init_seed=7)
    pop = SequencePopulation(seeds=1, cell="srn", hidden_units=2, num_symbols=2, init=0.3, optimizer="adam", lr=0.01, init_seed=7)
    assert all(torch.equal(a, b) for a, b in zip(single.net.state_dict().values(), pop.net_of(7).state_dict().values()))
    dm = GrammarDataModule(language="anb2n", batch_size=16, seed=7)
    population_batches = iter(GrammarDataModule(language="anb2n", batch_size=16, seed=7, seeds=1, population=True).train_dataloader())
    stream = iter(SequenceStream(dm.language, 5, 16, 7))
    opt = single.configure_optimizers()
    losses = []
    for _ in range(30):
        b, pb = next(stream), next(population_batches)
        loss = torch.nn.functional.cross_entropy(single(b["inputs"]).flatten(0, 1), b["targets"].flatten(), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        flat = pop.theta.clone().requires_grad_()
        logits = forward(pop.unflatten(flat), pb["inputs"], pb["inputs"].shape[2], lstm=False)
        pop_loss = torch.nn.functional.cross_entropy(logits.flatten(0, 2), pb["targets"].flatten(), ignore_index=-100)
        pop_loss.backward()
        pop._step(torch.tensor([0]), flat)
        losses.append((float(loss), float(pop_loss)))
    np.testing.assert_allclose([a for a, _ in losses], [b for _, b in losses], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_recurrent_seeds_end_to_end(tmp_path):
    run = tmp_path / "run"
    proc = run_train("experiment=srn_anb2n", "seeds=3", "trainer.max_steps=1500", "model.restart_after=1000", *quiet(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = load_results(run)
    assert r["population"] == 3 and [s["seed"] for s in r["seeds"]] == [42, 43, 44]
    failed = [s["seed"] for s in r["seeds"] if s["outcome"] == "failed"]
    assert failed and r["success"]["succeeded"] == 3 - len(failed)
    assert sum(r["max_n_generalised_counts"].values()) == 3 and r["analysed_seed"] not in failed and r["solved"]
    assert all(s["updates"] <= 1500 for s in r["seeds"]) and r["probe"]["phases"]  # the analysed seed's tables
    figures = {p.name for p in (run / "figures").iterdir()}
    assert {"hidden_states.png", "count_probe.png", "updates_to_success.png", f"seed{failed[0]}_hidden_states.png"} <= figures
    assert "Population of 3 seeds (42..44)" in proc.stdout and "max_n_generalised over the seeds" in proc.stdout
    # the reference schedule (SGD, one sequence per update, no early stop) as a population
    ref = tmp_path / "ref"
    proc = run_train("experiment=lstm_anb2nc3n_reference", "seeds=2", "trainer.max_steps=400", "trainer.val_check_interval=200", *quiet(ref))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = load_results(ref)
    assert [s["updates"] for s in r["seeds"]] == [400, 400] and all(s["stopped_early_at_update"] is None for s in r["seeds"])


@pytest.mark.slow
@pytest.mark.parametrize("experiment, extra", [("srn_anb2n", ["trainer.max_steps=1000"])])
def test_seeds_split_over_processes_end_as_in_one(experiment, extra, tmp_path):
    """trainer=ddp_sim: two processes train seeds 42, 44 and 43, 45 each, exchange them at the end,
    and rank 0 writes one results.json with the same seeds as one process gives."""
    runs = {}
    for name, trainer in (("one", []), ("two", ["trainer=ddp_sim"])):
        run = tmp_path / name
        proc = run_train(f"experiment={experiment}", "seeds=4", *extra, *trainer, *quiet(run))
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = load_results(run)
    one, two = runs["one"], runs["two"]
    assert two["world_size"] == 2 and one["world_size"] == 1
    keys = ("seed", "outcome", "updates", "attempts", "first_solved_update" if experiment != "check_sig" else "first_perfect_update")
    assert [{k: s[k] for k in keys} for s in two["seeds"]] == [{k: s[k] for k in keys} for s in one["seeds"]]
    assert two["success"] == one["success"] and two["analysed_seed"] == one["analysed_seed"]
    same = ("weights",) if experiment == "check_sig" else ("error", "det_acc", "max_n_generalised")
    assert all(two[k] == one[k] for k in same)


def test_a_grid_seed_moves_between_processes_whole():
    """What a process sends of a grid seed at the end of training under DDP (``_seed_state``) puts
    that seed, trained elsewhere, into another process's population exactly."""
    trained = _fit(GridPopulation(seeds=3, init_seed=0, max_updates=6000, restarts=1, restart_after=3000))
    other = GridPopulation(seeds=3, init_seed=0, max_updates=6000, restarts=1, restart_after=3000)
    for i in range(3):
        other._load_seed_state(i, trained._seed_state(i))
    for seed in (0, 1, 2):
        assert other.weights_of(seed) == trained.weights_of(seed)
    assert other.attempts[1].state_dict() == trained.attempts[1].state_dict() and (other.updates == trained.updates).all()
