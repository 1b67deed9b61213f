"""Many seeds in one run (``seeds=N``): one module per study trains S >= 1 networks, and each
seed's network ends exactly as it would alone.

The contract: seed s inside a population ends with the same outcome, the same update of first
success, the same number of updates and the same weights, bit for bit, as ``seed=s`` trained
alone, restarts and failures included; and what it ends with is what independent computations
give (torch's own optimisers on the reference's formulas, the plain generator, errors computed
directly)."""

from __future__ import annotations

import functools
import signal
import time

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from analysis.population import success_rate, updates_distribution
from conftest import error_line, load_results, quiet, run_train, start_train
from datamodules.grammar import CountingLanguage, GrammarDataModule
from datamodules.grid import GridDataModule
from lightning_modules.grid import GridPerceptron, compiled_update, rows_for_compiled, update_for
from lightning_modules.grid_nets import size
from lightning_modules.row_adam import RowAdam
from lightning_modules.recurrent import SequencePredictor
from lightning_modules.recurrent_nets import Layout
from oracles import grid_outputs, reference_errors, reference_training


def _points():
    x = np.array([[a, b] for a in range(3) for b in range(3)], np.float32)
    return x, (x.sum(1) % 2)[:, None].astype(np.float32)


# ---- the grid ----------------------------------------------------------------------------------


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_an_update_is_autograd_and_torch_adam_on_each_row_alone(compiled):
    """The oracle: three nets, each its own parameter, updated by autograd through the grid net's
    formulas written as matrix products (``oracles.grid_outputs``) and its own
    ``torch.optim.Adam`` with weight decay; the third is re-initialised after 10 updates (a fresh
    Adam, as a restart makes). Against them, the three rows stacked, held by ``RowAdam`` (whose
    step counts then differ: two groups) and updated by ``seed_update``, eagerly or compiled,
    for 30 updates in float64: the same weights, moments and step counts."""
    H, (x, y) = 5, (torch.from_numpy(a).double() for a in _points())
    g = torch.Generator().manual_seed(3)
    start, fresh = torch.randn(3, size(H), generator=g, dtype=torch.float64) * 0.5, torch.randn(size(H), generator=g, dtype=torch.float64) * 0.5
    lr, wd = 0.01, 1e-3
    theirs = [torch.nn.Parameter(row.clone()) for row in start]
    adams = [torch.optim.Adam([p], lr=lr, weight_decay=wd) for p in theirs]
    stacked = torch.nn.Parameter(start.clone())
    ours = RowAdam([stacked], lr=lr, weight_decay=wd)
    update = (compiled_update if compiled else update_for)(H, ours.settings)
    for t in range(30):
        if t == 10:
            with torch.no_grad():
                theirs[2].copy_(fresh)
                stacked[2] = fresh
            adams[2] = torch.optim.Adam([theirs[2]], lr=lr, weight_decay=wd)
            ours.reset_rows([2])
        for p, adam in zip(theirs, adams):
            o = grid_outputs(p[None], H, x)
            adam.zero_grad()
            torch.nn.functional.binary_cross_entropy(o, y.expand_as(o)).backward()
            adam.step()
        groups = ours.rows([0, 1, 2])
        assert [r.index.tolist() for r in groups] == ([[0, 1, 2]] if t < 10 else [[2], [0, 1]])
        for rows in groups:
            rows = rows_for_compiled(rows) if compiled else rows
            update(rows.weights, rows.exp_avg, rows.exp_avg_sq, rows.step, x, y)
            ours.store(rows)
    assert (stacked[:2] - start[:2]).abs().max() > 0.1  # the weights moved: a comparison, not two copies of the start
    for i, (p, adam) in enumerate(zip(theirs, adams)):
        torch.testing.assert_close(stacked[i].detach(), p.detach(), atol=1e-12, rtol=1e-10)
        state = ours.state[stacked]
        for moment in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(state[moment][i], adam.state[p][moment], atol=1e-14, rtol=1e-10)
        assert float(state["step"][i]) == float(adam.state[p]["step"]) == (30 if i < 2 else 20)


def _fit(model, batches_per_step=1000, max_steps=200_000, callbacks=()):
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, max_steps=max_steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=list(callbacks))
    trainer.fit(model, datamodule=GridDataModule(batches_per_step=batches_per_step))
    trainer.test(model, datamodule=GridDataModule(), verbose=False)
    return model


def test_each_seed_of_a_population_ends_as_it_would_alone():
    """Seeds 0-5 at lr 0.01 with one restart allowed after 2,000 updates and a budget of 5,000:
    some succeed in their first attempt, some after a restart, some fail; a step of 700 updates
    puts every threshold inside a step of the population, where the single runs step by 1,000."""
    settings = dict(restarts=1, restart_after=2_000, stop_after_perfect=500, lr=0.01)
    population = _fit(GridPerceptron(seeds=6, init_seed=0, **settings), batches_per_step=700, max_steps=5_000)
    outcomes = {r["seed"]: r for r in population.seed_outcomes()}
    assert set(outcomes) == set(range(6))
    kinds = set()
    for seed in range(6):
        alone = _fit(GridPerceptron(init_seed=seed, **settings), batches_per_step=1000, max_steps=5_000).test_summary()
        mine = outcomes[seed]
        assert mine["updates"] == alone["updates"] and mine["first_perfect_update"] == alone["first_perfect_update"], seed
        assert mine["attempts"] == len(alone["attempts"]) and mine["attempt_records"] == alone["attempts"], seed
        assert population.weights_of(seed) == alone["weights"], seed  # bit for bit
        assert mine["test_acc"] == alone["test_acc"]
        kinds.add((mine["outcome"], mine["attempts"]))
    assert {("failed", 2), ("succeeded", 1), ("succeeded", 2)} <= kinds


def test_a_restart_starts_afresh_from_the_seed_the_rule_gives():
    """The oracle for restarts: seed s re-initialised after 3,000 updates continues as a fresh
    run of seed s + 1 would (N(0, 0.15) from that seed, a new Adam state): 2,000 updates after the
    restart its weights are those of ``init_seed=s + 1`` trained 2,000 updates alone."""
    population = _fit(GridPerceptron(seeds=3, init_seed=20, restarts=1, restart_after=3_000, stop_after_perfect=10**6), max_steps=5_000)
    for seed in (20, 21, 22):
        records = population.attempts[population.seed_list.index(seed)].state_dict()
        assert [r["seed"] for r in records] == [seed, seed + 1] and records[1]["start_update"] == 3_000
        fresh = _fit(GridPerceptron(init_seed=seed + 1, stop_after_perfect=10**6), max_steps=2_000)
        assert population.weights_of(seed) == fresh.weights_of(seed + 1), seed


def test_population_statistics():
    assert success_rate([True] * 95 + [False] * 5)["interval95"] == [0.888, 0.978]
    d = updates_distribution([100, None, 300, 200, None], [150, 5000, 350, 250, 4000])
    assert (d["succeeded"], d["censored"], d["censored_at"], d["median"], d["min"], d["max"]) == (3, 2, [4000, 5000], 200.0, 100, 300)
    assert updates_distribution([None], [10]) == {"succeeded": 0, "censored": 1, "censored_at": [10]}


def test_a_grid_seed_moves_between_processes_whole():
    """What a process sends of a grid seed at the end of training under DDP (``_seed_state``) puts
    that seed, trained elsewhere, into another process's population exactly."""
    trained = _fit(GridPerceptron(seeds=3, init_seed=0, restarts=1, restart_after=3000), max_steps=6000)
    other = GridPerceptron(seeds=3, init_seed=0, restarts=1, restart_after=3000)
    for i in range(3):
        other._load_seed_state(i, trained._seed_state(i))
    for seed in (0, 1, 2):
        assert other.weights_of(seed) == trained.weights_of(seed)
    assert other.attempts[1].state_dict() == trained.attempts[1].state_dict() and (other.updates == trained.updates).all()


@pytest.mark.slow
def test_seeds_run_end_to_end_and_in_a_sweep(tmp_path):
    run = tmp_path / "run"
    proc = run_train("experiment=check_sig", "seeds=6", "seed=2", "trainer.max_steps=20000", *quiet(run))
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
    # the saved config names the module that ran, with its seeds
    saved = (run / "config.yaml").read_text()
    assert "_target_: lightning_modules.grid.GridPerceptron" in saved and "  seeds: 6" in saved
    # the same seed alone: the same result
    alone = tmp_path / "alone"
    assert run_train("experiment=check_sig", "seed=3", "trainer.max_steps=20000", *quiet(alone)).returncode == 0
    a = load_results(alone)
    assert (a["updates"], a["first_perfect_update"], a["weights"]) == (r["seeds"][1]["updates"], r["seeds"][1]["first_perfect_update"],
                                                                      _weights_from_checkpoint(run, 3))

    sweep = tmp_path / "sweep"
    proc = run_train("-m", "experiment=check_sig", "model.hidden_units=2,5", "seeds=4", "trainer.max_steps=15000", f"hydra.sweep.dir={sweep}",
                     "callbacks.progress_bar.refresh_rate=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (sweep / "summary.md").read_text()
    assert "| success_rate | success_interval95 |" in md and "- success_rate: mean" in md
    assert (sweep / "summary.png").stat().st_size > 5000


def _weights_from_checkpoint(run, seed):
    """Seed ``seed``'s weights from a population run's checkpoint."""
    return GridPerceptron.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu").weights_of(seed)


@pytest.mark.slow
@pytest.mark.parametrize("overrides, expected", [
    (["experiment=kmnist_lin", "seeds=3"], "seeds=3 is invalid for the kmnist study; allowed: 1"),
    (["experiment=check_sig", "seeds=0"], "seeds=0 is invalid; allowed: an integer >= 1"),
    # the key as the user typed it, not the model's copy of it
    (["experiment=check_sig", "seeds=3", "analyse_seed=7"], "error: analyse_seed=7 is invalid; allowed: null (the first seed that succeeds) or one of the trained seeds, 42..44"),
    (["experiment=srn_anb2n", "seeds=3", "analyse_seed=50"], "error: analyse_seed=50 is invalid"),
    (["experiment=srn_anb2n", "eval.max_n=0"], "error: eval.max_n=0 is invalid; allowed: an integer >= 1"),
    (["experiment=check_step_manual", "seeds=3"], "error: seeds=3 is invalid; allowed: 1 with hand-set weights"),
])
def test_bad_population_settings_are_one_line(overrides, expected, tmp_path):
    never_download = ["data.source=files", f"data.root={tmp_path / 'none'}"] if "kmnist" in overrides[0] else []
    proc = run_train(*overrides, *never_download, *quiet(tmp_path / "run"))
    assert proc.returncode == 1
    assert expected in error_line(proc)


@pytest.mark.slow
def test_the_config_names_the_module_that_runs_with_its_seeds():
    proc = run_train("--cfg", "job", "--resolve", "experiment=srn_anb2n", "seeds=20")
    assert proc.returncode == 0, proc.stderr
    import yaml

    model = yaml.safe_load(proc.stdout)["model"]
    assert model["_target_"] == "lightning_modules.recurrent.SequencePredictor" and model["seeds"] == 20
    assert model["optimizer"]["_target_"] == "torch.optim.Adam" and "max_updates" not in proc.stdout


# ---- recurrent nets ----------------------------------------------------------------------------

ADAM = functools.partial(torch.optim.Adam, lr=0.01, fused=True)


def _fit_sequences(model, data, max_steps, val_every=100, callbacks=(), precision="32-true"):
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, max_steps=max_steps, val_check_interval=val_every, check_val_every_n_epoch=None, precision=precision,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=list(callbacks))
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data, verbose=False)
    return model, trainer


def _sequences(cell, seeds, init_seed, optimizer=ADAM, **kw):
    language = "anb2n" if cell == "srn" else "anb2nc3n"
    settings = dict(cell=cell, hidden_units=2 if cell == "srn" else 3, num_symbols=2 if cell == "srn" else 3, init=0.3 if cell == "srn" else "uniform", optimizer=optimizer) | kw
    data = GrammarDataModule(language=language, batch_size=8, eval_sequences=20, eval_max_n=8, seed=init_seed, seeds=seeds)
    return SequencePredictor(seeds=seeds, init_seed=init_seed, **settings), data


def _stopping(patience=0):
    from callbacks.solved_stopping import SolvedStopping

    return SolvedStopping(evaluations=3, patience=patience)


@pytest.mark.long
@pytest.mark.parametrize("cell, restart_after, max_steps, alone", [("srn", 500, 1500, [1]), ("lstm", 200, 400, [2])])
def test_each_recurrent_seed_of_a_population_ends_as_in_a_smaller_one(cell, restart_after, max_steps, alone):
    """Five seeds with Adam, restarts and the early stop, against the same seeds in populations
    of one (the SRN; one LSTM trains through the fused kernel instead, so LSTMs are compared in
    populations of two): the same outcome, first solve, updates, attempts and weights. In float64:
    in float32 the SRN's seed 10 drifted by one rounding after 390 updates on an AMD EPYC (a
    vectorised tanh or exp for five seeds' rows, the scalar one for one seed's), which training
    grew to 0.09 by update 800 and to a different stopping update; in float64 the same drift
    stays below 1e-9 (measured: none, bit for bit, to update 1,500 there)."""
    def run(model, data):  # a new stopping callback per run: it holds its seeds' streaks
        return _fit_sequences(model, data, max_steps, callbacks=[_stopping()], precision="64-true")[0]

    together = run(*_sequences(cell, 5, 10, restarts=2, restart_after=restart_after))
    outcomes = {r["seed"]: r for r in together.seed_outcomes()}
    kinds = set()
    size = alone[0]
    for first in range(10, 15, size):
        group = list(range(first, min(first + size, 15)))
        small = run(*_sequences(cell, len(group), first, restarts=2, restart_after=restart_after))
        for j, seed in enumerate(group):
            mine, other = outcomes[seed], small.seed_outcomes()[j]
            for key in ("outcome", "updates", "first_solved_update", "stopped_early_at_update", "attempts", "acc", "error", "max_n_generalised"):
                assert other[key] == mine[key], (seed, key)
            torch.testing.assert_close(small.seed_weights[j], together.seed_weights[seed - 10], atol=1e-9, rtol=0)
            kinds.add((mine["outcome"], mine["attempts"] > 1))
    assert len(kinds) >= 2, kinds  # not every seed the same story


def test_one_lstm_through_the_fused_kernel_follows_the_step():
    """The engine of a single LSTM (torch's fused nn.LSTM) against the one-step cell that trains
    it in a population: the same weights after 60 updates, to float rounding."""
    fused, _ = _fit_sequences(*_sequences("lstm", 1, 7), 60, val_every=1000)
    batched, _ = _fit_sequences(*_sequences("lstm", 2, 7), 60, val_every=1000)
    assert fused.fused and not batched.fused
    torch.testing.assert_close(fused.seed_weights[0].detach(), batched.seed_weights[0].detach(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell, optimizer", [
    ("srn", functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=1e-3)),
    ("lstm", functools.partial(torch.optim.Adam, lr=0.02, weight_decay=1e-3)),
])
def test_a_population_trains_each_seed_as_torch_trains_the_reference_formulas(cell, optimizer):
    """The oracle: three seeds trained 30 updates in one population (the one-step cell over the
    seeds and autograd, a fused optimiser, restarts at update 20) against each seed
    trained alone by a plain loop: torch's optimiser (not fused) on one flat parameter,
    autograd through the reference's formulas written step by step, sequences drawn one by one
    from the seed's generator, and at update 20 the weights of seed + 1 with a new optimiser."""
    model, data = _sequences(cell, 3, 30, optimizer=functools.partial(optimizer.func, **optimizer.keywords, fused=True), restarts=1, restart_after=20, init=0.001 if cell == "srn" else "uniform")
    _fit_sequences(model, data, 30, val_every=10)
    layout = model.layout
    for i, seed in enumerate(model.seed_list):
        records = model.attempts[i].state_dict()
        assert [r["seed"] for r in records] == [seed, seed + 1] and records[1]["start_update"] == 20  # never solved: restarted at 20
        initial = [layout.initial(model.hparams.init, torch.Generator().manual_seed(s)) for s in (seed, seed + 1)]
        theirs = reference_training(cell, layout.num_symbols, layout.hidden_units, initial, optimizer, data.language, 5, 8, seed, 30, restart_at={20: initial[1]})
        torch.testing.assert_close(model.seed_weights[i].detach(), theirs, atol=2e-5, rtol=1e-4)


def test_a_populations_errors_are_those_computed_directly():
    """``error``, ``error_exact``, ``acc`` and the test loss of each seed against the same
    measures computed from the reference's formulas on that seed's own test sequences, drawn
    alone from ``numpy.random.default_rng([seed, 2])``."""
    model, data = _sequences("lstm", 3, 50)
    _fit_sequences(model, data, 20, val_every=1000)
    language = CountingLanguage(2, 3, 4)
    for i, r in enumerate(model.seed_outcomes()):
        rng = np.random.default_rng([r["seed"], 2])
        sequences = [language.sequence(language.random_lengths(rng, 5)) for _ in range(20)]
        direct = reference_errors("lstm", model.seed_weights[i].detach(), 3, 3, sequences)
        for key, ours in (("error", r["error"]), ("error_exact", r["error_exact"]), ("acc", r["acc"]), ("loss", r["test_loss"])):
            assert ours == pytest.approx(direct[key], rel=1e-5, abs=1e-7), (r["seed"], key)
    assert len({round(r["error"], 6) for r in model.seed_outcomes()}) == 3  # three different nets


@pytest.mark.long
def test_patience_between_evaluations_stops_each_seed_at_its_own_update():
    """Evaluations every 100 updates, held solved after 3 in a row, then 130 updates more: each
    seed stops exactly 130 updates after it was held (not at an evaluation); patience 0 stops
    at the evaluation itself, and a seed that is never held trains its whole budget."""
    stop, never = _stopping(patience=130), _stopping(patience=None)
    patient, _ = _fit_sequences(*_sequences("srn", 4, 10, restarts=2, restart_after=1000), 3000, callbacks=[stop])
    full, _ = _fit_sequences(*_sequences("srn", 4, 10, restarts=2, restart_after=1000), 3000, callbacks=[never])
    held = [h for h in stop.held_at if h is not None]
    assert held and all(h % 100 == 0 for h in held)
    for i, r in enumerate(patient.seed_outcomes()):
        if stop.held_at[i] is None:
            assert r["updates"] == 3000 and r["stopped_early_at_update"] is None
        else:
            assert r["stopped_early_at_update"] == r["updates"] == stop.held_at[i] + 130
    assert all(r["updates"] == 3000 and r["stopped_early_at_update"] is None for r in full.seed_outcomes())
    assert never.held_at == stop.held_at  # held at the same evaluations: identical until then


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
@pytest.mark.parametrize("experiment, extra", [("srn_anb2n", ["trainer.max_steps=1000"]), ("check_sig", ["trainer.max_steps=20000"])])
def test_seeds_split_over_processes_end_as_in_one(experiment, extra, tmp_path):
    """trainer=ddp_sim: two processes train seeds 42, 44 and 43, 45 each, exchange them at the end,
    and rank 0 writes one results.json with the same seeds, bit for bit, as one process gives."""
    runs = {}
    for name, trainer in (("one", []), ("two", ["trainer=ddp_sim"])):
        run = tmp_path / name
        proc = run_train(f"experiment={experiment}", "seeds=4", *extra, *trainer, *quiet(run))
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = load_results(run)
    one, two = runs["one"], runs["two"]
    assert two["world_size"] == 2 and one["world_size"] == 1
    keys = ("seed", "outcome", "updates", "attempts", "test_loss", "first_solved_update" if experiment != "check_sig" else "first_perfect_update")
    assert [{k: s[k] for k in keys} for s in two["seeds"]] == [{k: s[k] for k in keys} for s in one["seeds"]]
    assert two["success"] == one["success"] and two["analysed_seed"] == one["analysed_seed"]
    same = ("weights",) if experiment == "check_sig" else ("error", "acc", "max_n_generalised")
    assert all(two[k] == one[k] for k in same)


# ---- a long run survives a kill ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [
    ["experiment=check_sig", "seeds=8", "seed=0", "trainer.max_steps=60000", "callbacks.periodic_checkpoint.every_updates=5000", "model.restarts=1", "model.restart_after=30000"],
    ["experiment=srn_anb2n", "seeds=4", "trainer.max_steps=3000", "model.restart_after=1000", "callbacks.periodic_checkpoint.every_updates=500"],
], ids=["grid", "srn"])
def test_a_run_killed_midway_resumes_to_the_same_seeds(overrides, tmp_path):
    """``kill -9`` once the first periodic checkpoint is on disk, then ``ckpt_path=<it>``: seed by
    seed the same outcomes, updates, first successes and weights as the run left alone."""
    full = start_train(*overrides, run_dir=tmp_path / "full")
    killed = start_train(*overrides, run_dir=tmp_path / "killed")
    checkpoint = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not checkpoint.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert killed.poll() is None, "the run ended before its first checkpoint: nothing was killed midway"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert full.wait(timeout=600) == 0, full.stderr.read()[-3000:]
    assert not (tmp_path / "killed" / "results.json").exists()
    resumed = start_train(*overrides, f"ckpt_path={checkpoint}", run_dir=tmp_path / "resumed")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()[-3000:]
    a, b = load_results(tmp_path / "full"), load_results(tmp_path / "resumed")
    keys = ("seed", "outcome", "updates", "attempts", "test_loss", "first_perfect_update" if "check_sig" in overrides[0] else "first_solved_update")
    assert [{k: s[k] for k in keys} for s in b["seeds"]] == [{k: s[k] for k in keys} for s in a["seeds"]]
    assert b["resumed_from"] == str(checkpoint)
    if "check_sig" in overrides[0]:
        assert b["weights"] == a["weights"]
    else:
        assert (b["error"], b["acc"]) == (a["error"], a["acc"])
