"""The recurrent LightningModule's record in process, against independent oracles: each seed's
test figures and how far it counts against the reference's formulas on the data's own test
strings, what the test logs, a seed ended mid-run (frozen, its strings no longer drawn, its
update recorded), the checkpoint round trip and a seed moving between processes, and the nets the
figures draw (seconds; the training itself is checked in test_population.py and test_objectives.py)."""

from __future__ import annotations

import functools
import statistics

import pytest
import pytorch_lightning as pl
import torch

from base.errors import ConfigError
from datamodules.grammar import GrammarDataModule
from lightning_modules.recurrent import SequencePredictor
from conftest import REPO, Logged
from oracles import reference_errors, reference_logits, unpack

ADAM = functools.partial(torch.optim.Adam, lr=0.05)
PEEPHOLES = [0.3, -0.2, 0.5, 0.1, -0.4, 0.2]  # (3, H = 2): the input, forget and output gates' peephole weights


def _setup(seeds, init_seed=30, cell="lstm", model=(), **data):
    model = SequencePredictor(seeds=seeds, init_seed=init_seed, cell=cell, hidden_units=3 if cell == "lstm" else 2, num_symbols=3 if cell == "lstm" else 2,
                              init="uniform" if cell == "lstm" else 0.3, optimizer=ADAM, **dict(model))
    dm = GrammarDataModule(language="anb2nc3n" if cell == "lstm" else "anb2n", batch_size=4, eval_sequences=12, eval_max_n=6, seed=init_seed, seeds=seeds, **data)
    return model, dm


def _trainer(max_steps, val_every=1000, callbacks=(), logger=False):
    return pl.Trainer(accelerator="cpu", max_epochs=1, max_steps=max_steps, val_check_interval=val_every, check_val_every_n_epoch=None, logger=logger,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, callbacks=list(callbacks))


def _right(cell, flat, language, lengths, blocks=2):
    """Per n in ``lengths``: whether the net with weights ``flat`` gets every determined position of
    the string of ``blocks`` blocks of n right (the reference's formulas)."""
    symbols, hidden = (3, 3) if cell == "lstm" else (2, 2)
    return [reference_errors(cell, flat, symbols, hidden, [language.sequence([n] * blocks)])["acc"] == 1.0 for n in lengths]


def _generalisation(cell, flat, language, up_to):
    """What the record says of lengths n = 1..``up_to`` (two blocks each), worked out from
    ``_right``: the lengths right, their share, the longest run right from n = 1."""
    right = _right(cell, flat, language, range(1, up_to + 1))
    return {"lengths_right": [n for n in range(1, up_to + 1) if right[n - 1]], "fraction_lengths_right": pytest.approx(sum(right) / up_to),
            "max_n_generalised": next((n for n in range(up_to) if not right[n]), up_to)}


def test_each_seeds_record_is_the_reference_formulas_on_its_test_strings():
    """Three LSTMs after 150 updates: per seed, the test figures on its own test strings, which of
    the strings of n = 1..6 it gets right, the longest run of right lengths from n = 1, the logged
    success rate and acc, and the summary's spread of max_n_generalised."""
    model, dm = _setup(3)
    trainer = _trainer(150)
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    outcomes = model.seed_outcomes()
    assert [r["seed"] for r in outcomes] == [30, 31, 32]
    max_ns = []
    for i, r in enumerate(outcomes):
        flat = model.seed_weights[i].detach()
        direct = reference_errors("lstm", flat, 3, 3, dm.test_sequences_of(r["seed"]))
        for key, ours in (("error", r["error"]), ("error_exact", r["error_exact"]), ("acc", r["acc"]), ("loss", r["test_loss"])):
            assert ours == pytest.approx(direct[key], rel=1e-5, abs=1e-7), (r["seed"], key)
        assert r["solved"] is (direct["acc"] == 1.0) and r["outcome"] == ("succeeded" if r["solved"] else "failed")
        expected = _generalisation("lstm", flat, dm.language, 6)
        assert {k: r[k] for k in expected} == expected
        max_ns.append(r["max_n_generalised"])
        assert (r["updates"], r["attempts"], r["stopped_early_at_update"]) == (150, 1, None)
        assert r["attempt_records"] == [{"attempt": 1, "seed": r["seed"], "start_update": 0, "first_solved_update": None, "updates": 150,
                                         "outcome": "not solved when training ended"}] or r["first_solved_update"] is not None
    solved = [r["solved"] for r in outcomes]
    assert trainer.callback_metrics["hp/success_rate"].item() == pytest.approx(sum(solved) / 3)
    assert trainer.callback_metrics["hp/acc_test"].item() == pytest.approx(statistics.fmean(r["acc"] for r in outcomes), rel=1e-6)
    assert "hp/loss_test" not in trainer.callback_metrics

    summary = model.test_summary()
    s = next((r["seed"] for r in outcomes if r["solved"]), 30)
    mine = outcomes[s - 30]
    assert summary["analysed_seed"] == s and summary["population"] == 3 and summary["updates"] == 150
    for key in ("test_loss", "error", "error_exact", "acc", "solved", "max_n_generalised", "lengths_right", "fraction_lengths_right", "first_solved_update"):
        assert summary[key] == mine[key], key
    assert summary["tested_up_to"] == 6 and summary["test_sequences"] == 12 and summary["attempts"] == mine["attempt_records"]
    assert summary["max_n_generalised_counts"] == {str(n): max_ns.count(n) for n in sorted(set(max_ns))}
    fractions = [r["fraction_lengths_right"] for r in outcomes]
    assert summary["fraction_lengths_right_median"] == statistics.median(fractions) and summary["fraction_lengths_right_best"] == max(fractions)
    assert [r["seed"] for r in summary["seeds"]] == [30, 31, 32] and all("attempt_records" not in r for r in summary["seeds"])
    assert "selection" not in summary and "selected_max_n_generalised_counts" not in summary

    assert [g["label"] for g in model.generalisation_by_net()] == ["seed 30", "seed 31", "seed 32"]
    assert [g["max_n_generalised"] for g in model.generalisation_by_net()] == max_ns
    # the figures: the analysed seed, then (in a population) the first that failed; net_of is the seed's formulas
    failed = next((r["seed"] for r in outcomes if not r["solved"] and r["seed"] != s), None)
    shown = model.nets_to_show()
    want = [(s, "", f"seed {s}")] + ([(failed, f"seed{failed}_", f"seed {failed} (not solved)")] if failed is not None else [])
    assert [(n.seed, n.prefix, n.label) for n in shown] == want
    x = dm.batch(dm.test_sequences_of(31))["inputs"]
    with torch.no_grad():
        torch.testing.assert_close(model.net_of(31)(x), reference_logits("lstm", unpack("lstm", model.seed_weights[1].detach(), 3, 3), x)["logits"], atol=1e-4, rtol=1e-3)


def test_a_single_run_logs_its_own_figures():
    model, dm = _setup(1, init_seed=5, cell="srn")
    trainer = _trainer(60, val_every=20)
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    r = model.seed_outcomes()[0]
    m = trainer.callback_metrics
    for name, key in (("hp/loss_test", "test_loss"), ("hp/error_test", "error"), ("hp/error_exact_test", "error_exact"), ("hp/acc_test", "acc"),
                      ("hp/max_n_generalised", "max_n_generalised")):
        assert m[name].item() == pytest.approx(r[key], rel=1e-6), name
    assert "hp/success_rate" not in m
    summary = model.test_summary()
    assert "population" not in summary and "analysed_seed" not in summary and "updates" not in summary
    assert summary["max_n_generalised"] == r["max_n_generalised"] and summary["first_solved_seconds"] is None
    assert model.generalisation_by_net() == [{"label": "this net", **{k: summary[k] for k in ("max_n_generalised", "lengths_right", "fraction_lengths_right", "tested_up_to")}}]
    assert [(n.seed, n.prefix, n.label) for n in model.nets_to_show()] == [(5, "", "")]
    assert model.val_metric("acc/val") == model.last_val["acc/val"]
    with pytest.raises(ConfigError) as info:
        model.val_metric("det_acc/val")  # the name before every position was scored
    assert str(info.value) == "callbacks.solved_stopping.monitor='det_acc/val' is invalid; allowed: one of loss/val, error/val, error_exact/val, acc/val"


class EndSeeds(pl.Callback):
    """Ends seed index 1 early after update 20, and every seed after update 35; notes the rows of
    every batch and seed 1's weights when it ended."""

    def __init__(self):
        self.rows, self.frozen = [], None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.rows.append((trainer.global_step, batch["rows"].tolist()))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == 20:
            module.end_seed(1, early=True)
            module.end_seed(1)  # a second call changes nothing
            self.frozen = module.seed_weights[1].detach().clone()
        if trainer.global_step == 35:
            for i in range(len(module.seed_list)):
                module.end_seed(i)


def test_an_ended_seed_is_frozen_its_strings_are_no_longer_drawn_and_the_run_stops_when_all_have_ended():
    model, dm = _setup(3, cell="srn")
    ends = EndSeeds()
    trainer = _trainer(100, callbacks=[ends])
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 35  # stopped when every seed had ended, not at max_steps
    assert model.ended == [True] * 3 and model.ended_at == [35, 20, 35] and model.stopped_early == [None, 20, None]
    assert torch.equal(model.seed_weights[1].detach(), ends.frozen)
    drawn_later = [rows for step, rows in ends.rows if step > 21]  # (one batch may have been drawn before the end)
    assert drawn_later and all(rows == [0, 2] for rows in drawn_later)
    assert all(rows == [0, 1, 2] for step, rows in ends.rows if step < 20)
    trainer.test(model, datamodule=dm, verbose=False)
    outcomes = model.seed_outcomes()
    assert [r["updates"] for r in outcomes] == [35, 20, 35] and [r["stopped_early_at_update"] for r in outcomes] == [None, 20, None]
    assert outcomes[1]["attempt_records"][0]["updates"] == 20


def test_a_checkpoint_and_a_move_between_processes_bring_back_every_seeds_record():
    """After training with model selection and a restart: ``on_save_checkpoint`` puts a fresh
    module's records back (which seeds ended and when, first solves, the kept nets, attempts);
    ``_seed_state`` moves a seed whole, its kept net's weights on the CPU."""
    model, dm = _setup(2, cell="srn", model={"restarts": 1, "restart_after": 20}, select_lengths=[5, 6])
    trainer = _trainer(40, val_every=10, callbacks=[EndSeeds()])
    trainer.fit(model, datamodule=dm)
    assert [len(a) for a in model.attempts] == [2, 1] and model.ended == [True, True] and model.selected[0] is not None  # seed 1 ended before its restart
    checkpoint: dict = {}
    model.on_save_checkpoint(checkpoint)
    fresh, _ = _setup(2, cell="srn", select_lengths=[5, 6])
    fresh.on_load_checkpoint(checkpoint)
    for key in SequencePredictor.STATE:
        mine, theirs = getattr(fresh, key), getattr(model, key)
        assert len(mine) == 2 and mine is not checkpoint["seeds"][key], key
        if key != "selected":
            assert mine == theirs, key
    assert [(s["update"], s["fraction_right"]) for s in fresh.selected] == [(s["update"], s["fraction_right"]) for s in model.selected]
    assert [a.state_dict() for a in fresh.attempts] == [a.state_dict() for a in model.attempts]
    untouched, _ = _setup(2, cell="srn")
    untouched.on_load_checkpoint({})
    assert untouched.ended == [False, False] and [len(a) for a in untouched.attempts] == [1, 1]

    other, _ = _setup(2, cell="srn", select_lengths=[5, 6])
    state = model._seed_state(1)
    assert state["selected"]["weights"].device.type == "cpu" and state["weights"].device.type == "cpu"
    other._load_seed_state(1, state)
    assert torch.equal(other.seed_weights[1].detach(), model.seed_weights[1].detach()) and other.ended == [False, True]
    assert other.attempts[1].state_dict() == model.attempts[1].state_dict()
    for key in SequencePredictor.STATE:
        if key not in ("ended", "selected"):
            assert getattr(other, key)[1] == getattr(model, key)[1], key
    assert torch.equal(other.selected[1]["weights"], model.selected[1]["weights"]) and other.selected[0] is None


def test_the_fused_kernel_takes_lstms_and_srns_without_peepholes_only():
    """``fused_logits`` is the reference's LSTM formulas through ``nn.LSTM``; a peephole LSTM or a
    GRU is refused, not run through a kernel that lacks their weights."""
    from lightning_modules.recurrent_nets import Layout, fused_logits

    layout = Layout("lstm", 3, 3)
    flat = layout.initial("uniform", torch.Generator().manual_seed(0))
    x = GrammarDataModule(language="anb2nc3n").batch_of_blocks([[2], [3, 1]])["inputs"]
    with torch.no_grad():
        torch.testing.assert_close(fused_logits(layout, flat[None], x[None])[0], reference_logits("lstm", unpack("lstm", flat, 3, 3), x)["logits"], atol=1e-5, rtol=1e-4)
    for other in (Layout("lstm", 3, 3, peepholes=True), Layout("gru", 3, 3)):
        with pytest.raises(ValueError, match="^torch's fused kernels train SRNs and LSTMs without peepholes; use the step"):
            fused_logits(other, other.initial("uniform", torch.Generator().manual_seed(0))[None], x[None])


@pytest.mark.parametrize("cell", ["srn", "lstm"])
def test_the_fused_kernel_runs_a_population_as_one_block_diagonal_net_with_the_steps_logits_and_gradients(cell):
    """Four networks on their own sequences through one ``nn.RNN`` / ``nn.LSTM`` call with
    block-diagonal weights: the step's logits and autograd's gradients with respect to each
    network's own flat vector (float64), and a module trained by it follows the step for a few
    updates (float32)."""
    from lightning_modules.recurrent_nets import Layout, forward, fused_logits

    S, H, R = 3, 2, 4
    layout = Layout(cell, S, H)
    flat = torch.stack([layout.initial(0.7, torch.Generator().manual_seed(r)) for r in range(R)]).double()
    dm = GrammarDataModule(language="anb2nc3n")
    x = torch.stack([dm.batch_of_blocks([[1 + r % 2, 2 - r % 2], [3]])["inputs"] for r in range(R)]).double()  # the same length, other strings
    mine, theirs = flat.clone().requires_grad_(True), flat.clone().requires_grad_(True)
    fused, step = fused_logits(layout, mine, x), forward(layout, theirs, x)["logits"]
    torch.testing.assert_close(fused, step, rtol=1e-12, atol=1e-12)
    weights = torch.randn(step.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    (fused * weights).sum().backward()
    (step * weights).sum().backward()
    torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-10, atol=1e-12)

    def trained(engine):
        data = GrammarDataModule(language="anb2nc3n", batch_size=4, seed=3, seeds=3)
        model = SequencePredictor(seeds=3, cell=cell, hidden_units=H, num_symbols=S, init=0.3, init_seed=3, engine=engine,
                                  optimizer=functools.partial(torch.optim.Adam, lr=0.01))
        pl.Trainer(accelerator="cpu", max_steps=5, max_epochs=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False).fit(model, datamodule=data)
        return torch.stack([p.detach() for p in model.seed_weights]), model._initial(3)

    (fused_weights, start), (step_weights, _) = trained("fused"), trained("step")
    torch.testing.assert_close(fused_weights, step_weights, rtol=1e-5, atol=1e-6)
    assert (fused_weights[0] - start).abs().max() > 1e-3  # they trained


def test_a_batch_with_one_real_position_has_that_positions_loss():
    """``mean_loss`` divides by the real positions (targets >= 0), however few: one real position
    and one padded one give the cross-entropy of the real one."""
    from lightning_modules.objectives import Objective

    logits = torch.tensor([[[2.0, -1.0], [5.0, 5.0]]])
    targets = torch.tensor([[1, -100]])
    inputs = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    want = torch.nn.functional.cross_entropy(logits[0, :1], targets[0, :1]).item()
    assert Objective.of("next_symbol", None).mean_loss(logits, targets, inputs).item() == pytest.approx(want)


@pytest.mark.parametrize("model, data, line", [
    (dict(cell="srn", num_symbols=3), dict(language="anb2n"), "model.num_symbols=3 does not match the data: anb2n has 2 symbols"),
    (dict(cell="srn", seeds=2, init_seed=0), dict(language="anb2n", seed=5, seeds=2), "the data's seeds 5..6 are not the model's 0..1 (data.seed, data.seeds)"),
    (dict(cell="srn"), None, "the recurrent model needs the counting-language data (data=grammar), not GridDataModule"),
])
def test_a_model_and_data_that_do_not_fit_are_one_line_before_training(model, data, line):
    from datamodules.grid import GridDataModule

    dm = GridDataModule() if data is None else GrammarDataModule(eval_sequences=2, eval_max_n=2, **data)
    with pytest.raises(ConfigError) as info:
        _trainer(5).fit(SequencePredictor(optimizer=ADAM, **model), datamodule=dm)
    assert str(info.value) == line


@pytest.mark.parametrize("cell, peepholes", [("srn", False), ("lstm", False), ("lstm", True)])
def test_a_single_net_is_the_reference_formulas_and_trains_through_its_own_parameters(cell, peepholes):
    """``make_net`` loaded with a flat vector computes the reference's formulas (through the
    one-step cell), ``flat()`` gives that vector back detached, and ``flat(detach=False)``
    and ``forward`` let autograd reach every trainable parameter (the peepholes included)."""
    from lightning_modules.recurrent_nets import Layout, make_net

    S, H = 3, 2
    layout = Layout(cell, S, H, peepholes)
    flat = layout.initial(0.5, torch.Generator().manual_seed(1))
    if peepholes:
        flat[-3 * H :] = torch.tensor(PEEPHOLES)
    net = make_net(cell, S, H, peepholes).load_flat(flat)
    x = GrammarDataModule(language="anb2nc3n").batch_of_blocks([[2], [1, 3]])["inputs"]
    want = reference_logits(cell, unpack(cell, flat, S, H, peepholes), x)["logits"]
    torch.testing.assert_close(net(x).detach(), want, atol=1e-5, rtol=1e-4)
    assert torch.equal(net.flat(), flat) and not net.flat().requires_grad and net.flat(detach=False).requires_grad
    net(x).square().sum().backward()
    trainable = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in trainable), [n for n, p in trainable if p.grad is None]
    assert (peepholes and net.peephole.grad.abs().sum() > 0) or not peepholes


class Gradients(pl.Callback):
    """The module's named gradients just before each update (what the histograms draw)."""

    def __init__(self):
        self.seen = []

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self.seen.append({k: v.clone() for k, v in module.named_gradients().items()})


@pytest.mark.parametrize("seeds, clip", [(3, None), (3, 0.01), (1, 0.01)])
def test_the_histograms_follow_the_watched_seeds_weights_gradients_and_gates(seeds, clip):
    """The watched seed (``analyse_seed=31`` of 30-32, or a single LSTM, which trains through
    torch's fused kernel): its weights by the layout's names, the gradient of its own update
    (autograd of its loss on its batch, through the reference's formulas; with
    ``clip_grad_norm``, scaled as ``clip_grad_norm_`` scales it), and its LSTM gates on its
    validation strings computed from the formulas; an SRN has no gates to show."""
    model, dm = _setup(seeds, init_seed=31 if seeds == 1 else 30, model={"analyse_seed": 31, "clip_grad_norm": clip})
    assert model.fused == (seeds == 1)
    watched = 0 if seeds == 1 else 1
    grads = Gradients()
    batches = []

    class Batches(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            batches.append({k: v.clone() if torch.is_tensor(v) else v for k, v in batch.items()})
            self.before = module.seed_weights[watched].detach().clone()

    keep = Batches()
    trainer = _trainer(1, callbacks=[keep, grads])
    trainer.fit(model, datamodule=dm)
    flat = keep.before.clone().requires_grad_(True)
    b = batches[0]
    row = b["rows"].tolist().index(watched)
    w = unpack("lstm", flat, 3, 3)
    logits = reference_logits("lstm", w, b["inputs"][row])["logits"]
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), b["targets"][row].flatten(), ignore_index=-100)
    (want,) = torch.autograd.grad(loss, flat)
    if clip is not None:
        assert want.norm() > 10 * clip  # the case clips
        want = want * clip / (want.norm() + 1e-6)
    got = grads.seen[0]
    assert set(got) == set(model.layout.views(flat.detach())) and len(grads.seen) == 1
    torch.testing.assert_close(torch.cat([got[k].flatten() for k in model.layout.shapes]), want, atol=1e-6, rtol=1e-4)

    named = model.named_weights()
    assert set(named) == set(model.layout.shapes)
    assert torch.equal(torch.cat([named[k].flatten() for k in model.layout.shapes]), model.seed_weights[watched].detach())

    gates = model.named_activations()
    batch = dm.batch(dm.val_sequences_of(31))
    with torch.no_grad():
        want_gates = reference_logits("lstm", unpack("lstm", model.seed_weights[watched].detach(), 3, 3), batch["inputs"])
    for name in ("input", "forget", "output"):
        torch.testing.assert_close(gates[name], want_gates[name][batch["valid"]], atol=1e-5, rtol=1e-4)
    srn, _ = _setup(2, cell="srn")
    assert srn.named_activations() == {} and srn.named_gradients() == {}


def test_gradients_are_clipped_per_seed_exactly_as_torch_clips_one_net():
    from lightning_modules.recurrent import clip_per_row

    grads = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]], dtype=torch.float64)  # norms 5, 0.5, 0
    clipped = clip_per_row(grads, 1.0)
    for g, c in zip(grads, clipped):
        p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
        p.grad = g.clone()
        torch.nn.utils.clip_grad_norm_(p, 1.0)
        assert torch.equal(c, p.grad)
    assert clipped[1].tolist() == [0.3, 0.4]


def test_the_kept_net_is_the_earliest_of_the_best():
    """After each evaluation a seed's net is kept when it gets more selection lengths right than
    its best so far: a tie keeps the earlier one."""
    from lightning_modules.metrics import PerSeedSums

    model, _ = _setup(2, cell="srn")
    model.selection_wrong = PerSeedSums(2, ("5", "6"))
    for step, wrong in ((10, [[1, 1], [0, 3]]), (20, [[0, 2], [0, 0]]), (30, [[2, 0], [0, 0]])):
        model.selection_wrong.update(torch.tensor([0, 1]), torch.tensor(wrong))
        with torch.no_grad():
            model.seed_weights[0] += 1.0
        model._select({0, 1}, step)
    assert [(s["update"], s["fraction_right"]) for s in model.selected] == [(20, 0.5), (20, 1.0)]
    torch.testing.assert_close(model.selected[0]["weights"], model.seed_weights[0].detach() - 1.0)  # as it was at update 20


def test_a_run_that_was_not_trained_reports_no_attempts_and_one_update_is_one():
    model, dm = _setup(2, cell="srn")
    assert model.generalisation_by_net() == []  # nothing tested yet
    single, single_dm = _setup(1, cell="srn")
    assert single.generalisation_by_net() == []
    trainer = _trainer(1)
    trainer.test(model, datamodule=dm, verbose=False)
    assert [(r["attempts"], r["attempt_records"], r["updates"]) for r in model.seed_outcomes()] == [(0, [], 0), (0, [], 0)]
    trainer = _trainer(1)
    trainer.fit(single, datamodule=single_dm)
    single.attempts[0].succeeded(1)  # (as an evaluation that found it solved would note)
    trainer.test(single, datamodule=single_dm, verbose=False)
    r = single.seed_outcomes()[0]
    assert (r["attempts"], r["updates"], r["attempt_records"][0]["outcome"], r["attempt_records"][0]["updates"]) == (1, 1, "solved", 1)


def test_a_population_with_model_selection_reports_its_kept_nets():
    """Two SRNs with selection lengths 5 and 6: every seed's kept net tested beside its final one,
    the summary's spread of both, the analysed seed's selection, where each seed stopped."""
    model, dm = _setup(2, cell="srn", select_lengths=[5, 6])
    trainer = _trainer(30, val_every=10, callbacks=[EndSeeds()])
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    outcomes = model.seed_outcomes()
    summary = model.test_summary()
    kept = [r["selected"] for r in outcomes]
    assert all(k["update"] in (10, 20, 30) for k in kept)
    assert summary["selected_fraction_lengths_right_median"] == statistics.median(k["fraction_lengths_right"] for k in kept)
    counts = [k["max_n_generalised"] for k in kept]
    assert summary["selected_max_n_generalised_counts"] == {str(n): counts.count(n) for n in sorted(set(counts))}
    s = summary["analysed_seed"]
    assert summary["selection"] == {"lengths": [5, 6], "sequences": "one block per length", **kept[s - 30]}
    assert summary["stopped_early_at_update"] == outcomes[s - 30]["stopped_early_at_update"] and [r["stopped_early_at_update"] for r in outcomes] == [None, 20]
    moved = model._seed_state(1)
    assert set(moved) == {"weights", "attempts", *SequencePredictor.STATE} and set(moved["selected"]) == {"update", "fraction_right", "weights"}
    plain, _ = _setup(2, cell="srn")
    assert plain._seed_state(0)["selected"] is None
    shown = model.nets_to_show()
    x = dm.batch(dm.test_sequences_of(s))["inputs"]
    with torch.no_grad():
        assert torch.equal(shown[0].net(x), model.net_of(s)(x))


def test_each_kept_nets_record_is_the_formulas_on_its_weights():
    """Four SRNs that solve n = 1 within 20 updates, selection lengths 2 and 3: each kept net's
    figures, lengths right (n = 1..4), max_n_generalised and selection score against the
    reference's formulas on the kept weights, not the final ones (measured: two seeds keep their
    net of update 10, solved, and two their unsolved net of update 10 while the final nets solve)."""
    model, _ = _solving()
    dm = GrammarDataModule(language="anb2n", max_n=1, blocks=3, batch_size=4, eval_sequences=5, eval_max_n=4, seed=40, seeds=4, select_lengths=[2, 3])
    trainer = _trainer(30, val_every=10)
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    outcomes = model.seed_outcomes()
    assert {r["selected"]["solved"] for r in outcomes} == {True, False} and all(r["solved"] for r in outcomes)
    for i, r in enumerate(outcomes):
        kept, weights = r["selected"], model.selected[i]["weights"]
        direct = reference_errors("srn", weights, 2, 2, dm.test_sequences_of(r["seed"]))
        assert kept["test_loss"] == pytest.approx(direct["loss"], rel=1e-5) and kept["acc"] == pytest.approx(direct["acc"])
        assert kept["solved"] is (direct["acc"] == 1.0) and kept["update"] == model.selected[i]["update"] == 10
        expected = _generalisation("srn", weights, dm.language, 4)
        assert {k: kept[k] for k in expected} == expected and kept["tested_up_to"] == 4
        assert kept["selection_fraction_right"] == model.selected[i]["fraction_right"] == sum(_right("srn", weights, dm.language, (2, 3), blocks=1)) / 2


def test_a_seed_with_no_kept_net_yet_is_tested_with_its_net_as_it_is():
    """Model selection on, tested before any evaluation: nothing was kept, so the "kept" record is
    the net as it is, update None."""
    model, dm = _setup(2, cell="srn", select_lengths=[5, 6])
    _trainer(1).test(model, datamodule=dm, verbose=False)
    for r in model.seed_outcomes():
        assert r["selected"]["update"] is None and r["selected"]["selection_fraction_right"] is None
        assert (r["selected"]["acc"], r["selected"]["test_loss"], r["selected"]["lengths_right"]) == (r["acc"], r["test_loss"], r["lengths_right"])


def test_a_peephole_lstms_net_keeps_its_peepholes():
    model = SequencePredictor(cell="lstm", hidden_units=2, num_symbols=3, peepholes=True, init="uniform", optimizer=ADAM)
    with torch.no_grad():
        model.seed_weights[0][-6:] = torch.tensor(PEEPHOLES)
    net = model.net_of(0)
    assert torch.equal(net.peephole.detach().flatten(), torch.tensor(PEEPHOLES)) and torch.equal(net.flat(), model.seed_weights[0].detach())


class Evaluations(pl.Callback):
    """Each evaluation's weights (as the validation sees them) and what the module recorded of it."""

    def __init__(self):
        self.weights, self.last_val = {}, {}

    def on_validation_start(self, trainer, module):
        self.weights[trainer.global_step] = torch.stack([p.detach().clone() for p in module.seed_weights])

    def on_validation_end(self, trainer, module):  # (after the module's on_validation_epoch_end)
        self.last_val[trainer.global_step] = {k: list(v) for k, v in module.last_val.items()}


def _solving(seeds=4, **model):
    """SRNs on a^n b^2n with n = 1 only: Adam at lr 0.1 solves some seeds within 10 updates."""
    net = SequencePredictor(seeds=seeds, init_seed=40, cell="srn", hidden_units=2, num_symbols=2, init=0.3,
                            **{"optimizer": functools.partial(torch.optim.Adam, lr=0.1)} | model)
    dm = GrammarDataModule(language="anb2n", max_n=1, blocks=3, batch_size=4, eval_sequences=5, eval_max_n=3, seed=40, seeds=seeds)
    return net, dm


def test_each_evaluation_is_the_formulas_on_the_seeds_own_strings_and_decides_first_solves_and_restarts(caplog):
    """Evaluations every 10 updates, one restart after 10: per seed and evaluation, acc and the
    loss against the reference's formulas on its own validation strings with the weights of that
    moment; the first solve is the first evaluation the formulas call solved (in any attempt); a
    seed not solved at update 10 restarts as seed + 1, in its record and in the log."""
    model, dm = _solving(restarts=1, restart_after=10)
    ev = Evaluations()
    with caplog.at_level("INFO", logger="lightning_modules.recurrent"):
        trainer = _trainer(30, val_every=10, callbacks=[ev])
        trainer.fit(model, datamodule=dm)
    assert sorted(ev.weights) == sorted(ev.last_val) == [10, 20, 30]
    solved_at: dict[int, list[int]] = {i: [] for i in range(4)}
    for step, measured in ev.last_val.items():
        for i, seed in enumerate(model.seed_list):
            direct = reference_errors("srn", ev.weights[step][i], 2, 2, dm.val_sequences_of(seed))
            assert measured["acc/val"][i] == pytest.approx(direct["acc"]) and measured["loss/val"][i] == pytest.approx(direct["loss"], rel=1e-5)
            if direct["acc"] == 1.0:
                solved_at[i].append(step)
    restarted = [i for i in range(4) if 10 not in solved_at[i]]
    assert 0 < len(restarted) < 4, "the case needs seeds solved and not at update 10"
    for i, seed in enumerate(model.seed_list):
        records = model.attempts[i].state_dict()
        if i in restarted:
            assert (records[0]["outcome"], records[0]["updates"], records[1]["seed"], records[1]["start_update"]) == ("not solved after 10 updates: re-initialised", 10, seed + 1, 10)
            assert f"seed {seed}: attempt 1 not solved after 10 updates; re-initialising with seed {seed + 1}" in caplog.messages
        else:
            assert len(records) == 1 and records[0]["first_solved_update"] == 10
        if solved_at[i]:
            assert model.first_solved[i] == solved_at[i][0]
            seconds = model.first_solved_seconds[i]
            assert isinstance(seconds, float) and 0 < seconds < 60 and seconds == round(seconds, 2)
        else:
            assert model.first_solved[i] is None and model.first_solved_seconds[i] is None


def test_a_restart_under_an_optimizer_that_holds_no_state():
    """The reference's SGD (no momentum) keeps no per-parameter state: a restart has none to drop."""
    model, dm = _solving(seeds=2, optimizer=None, restarts=1, restart_after=10)
    _trainer(20, val_every=10).fit(model, datamodule=dm)
    assert not model.optimizers().optimizer.state
    assert [[r["seed"] for r in a.state_dict()] for a in model.attempts] == [[40, 41], [41, 42]]


def test_a_run_whose_seeds_are_all_held_solved_stops_at_that_evaluation():
    """``callbacks.solved_stopping`` with one evaluation and no patience ends each seed at its
    first solve; once all have ended, the run stops at that evaluation, not a step later; the
    validation metrics reach the logger under their names, a population's seeds training summed."""
    from callbacks.solved_stopping import SolvedStopping

    model, dm = _solving()
    logger, ev = Logged(), Evaluations()
    trainer = _trainer(200, val_every=10, callbacks=[SolvedStopping(evaluations=1, patience=0), ev], logger=logger)
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 20 and model.ended_at == model.stopped_early == [10, 10, 20, 20]
    assert ev.last_val[20]["acc/val"] == [None, None, 1.0, 1.0]  # the seeds that had ended are not evaluated
    val = [m for m, step in logger.calls if "acc/val" in m]
    assert {"loss/val", "error/val", "error_exact/val", "acc/val", "loss/train", "population/training"} <= set(val[0])
    assert [m["population/training"] for m in val] == [4.0, 2.0]  # (counted before the stop ends the solved seeds)


def test_the_defaults_are_the_srn_config_and_a_seed_mismatch_names_both_ranges():
    """A module built in Python is ``model=srn``'s: the constructor's defaults against
    conf/model/srn.yaml, key by key; data seeds 5..7 beside model seeds 30..32 are one line."""
    from omegaconf import OmegaConf

    conf = OmegaConf.to_container(OmegaConf.load(REPO / "conf/model/srn.yaml"))
    hp = SequencePredictor().hparams
    keys = ["cell", "hidden_units", "init", "restarts", "restart_after", "objective", "loss", "clip_grad_norm"]
    assert {k: hp[k] for k in keys} == {k: conf[k] for k in keys}
    model, _ = _setup(3, cell="srn")
    wrong = GrammarDataModule(language="anb2n", batch_size=4, eval_sequences=12, eval_max_n=6, seed=5, seeds=3)
    with pytest.raises(ConfigError, match=r"^the data's seeds 5\.\.7 are not the model's 30\.\.32 \(data\.seed, data\.seeds\)$"):
        _trainer(1).fit(model, datamodule=wrong)


def test_a_generalisation_test_longer_than_one_chunk_is_scored_string_by_string_as_the_formulas_say():
    """n = 1..300, one block each (EVAL_CHUNK strings at a time, each chunk cut to its own longest
    string): per seed and length, the wrong determined positions, and the sums over every string,
    against the reference's formulas run on the whole batch at once."""
    from datamodules.grammar import collate
    from lightning_modules.recurrent import EVAL_CHUNK

    model, _ = _setup(2, cell="srn")
    dm = GrammarDataModule(language="anb2n", eval_max_n=300, eval_blocks=1)
    assert len(dm.generalisation_sequences) > 2 * EVAL_CHUNK
    batch = {k: v[None] for k, v in dm.batch(dm.generalisation_sequences).items()}
    with torch.no_grad():
        out = model._evaluate(batch, [0, 1])
    b = collate(dm.generalisation_sequences, 2)
    det, valid = b["determined"], b["valid"]
    for i in range(2):
        with torch.no_grad():
            logits = reference_logits("srn", unpack("srn", model.seed_weights[i].detach(), 2, 2), b["inputs"])["logits"]
        wrong = ((logits.argmax(-1) != b["targets"]) & det).sum(-1)
        assert torch.equal(out["wrong"][i], wrong)
        nll = torch.nn.functional.cross_entropy(logits[valid], b["targets"][valid], reduction="sum")
        sums = dict(zip(("nll", "positions", "determined_right", "determined"), out["sums"][i, [0, 1, 4, 5]].tolist()))
        assert sums["positions"] == valid.sum() and sums["determined"] == det.sum() and sums["determined_right"] == det.sum() - wrong.sum()
        assert sums["nll"] == pytest.approx(float(nll), rel=1e-5)
    assert len(set(out["wrong"].flatten().tolist())) > 50  # the counts differ from length to length: a misplaced chunk would show
