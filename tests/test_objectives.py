"""The recurrent study's objectives and the LSTM's literature options, against independent
computations: the legal sets read off the symbols, torch's own losses, autograd through the
cell formulas written step by step (peepholes included), torch's ``clip_grad_norm_``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from base.errors import ConfigError
from datamodules.grammar import CountingLanguage, collate
from lightning_modules.objectives import Objective, legal_set
from lightning_modules.recurrent import SequencePredictor, clip_per_row
from lightning_modules.recurrent_nets import LSTM, ForwardJacobian, Layout, forward
from oracles import legal_targets, reference_logits, unpack

A, B, C = 0, 1, 2


def test_the_legal_next_symbols_of_a_short_sequence():
    """a a b b b b | a (n = 2 of a^n b^2n): after each a, a or b; after each b, the next symbol."""
    seq = CountingLanguage(2, 0, 4).sequence([2])
    assert seq["symbols"].tolist() == [A, A, B, B, B, B, A]
    batch = collate([seq], 2)
    legal = legal_set(batch["inputs"], batch["targets"])[0]
    assert legal.tolist() == [[1, 1], [1, 1], [0, 1], [0, 1], [0, 1], [1, 0]]
    abc = CountingLanguage(1, 1, 4).sequence([1, 2])  # a b c | a a b b c c | a
    batch = collate([abc], 3)
    assert legal_set(batch["inputs"], batch["targets"])[0].tolist() == legal_targets(abc, 3).tolist()
    assert legal_targets(abc, 3).tolist()[:4] == [[1, 1, 0], [0, 0, 1], [1, 0, 0], [1, 1, 0]]


def _batch(language, lengths, symbols):
    seqs = [language.sequence(n) for n in lengths]
    return seqs, collate(seqs, symbols)


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_the_legal_next_loss_is_torchs_loss_over_the_real_positions(loss):
    language = CountingLanguage(2, 3, 5)
    seqs, b = _batch(language, [[1, 3], [2], [5, 1, 1]], 3)
    logits = torch.randn(*b["targets"].shape, 3, generator=torch.Generator().manual_seed(0))
    legal = torch.from_numpy(np.concatenate([legal_targets(s, 3) for s in seqs]))
    real = b["valid"]
    theirs = F.mse_loss(torch.sigmoid(logits[real]), legal) if loss == "mse" else F.binary_cross_entropy_with_logits(logits[real], legal)
    ours = Objective.of("legal_next", loss).mean_loss(logits, b["targets"], b["inputs"])
    torch.testing.assert_close(ours, theirs)
    nll = Objective.of("next_symbol", None).mean_loss(logits, b["targets"], b["inputs"])
    torch.testing.assert_close(nll, F.cross_entropy(logits[real], b["targets"][real]))


def test_a_position_is_right_when_every_thresholded_output_is_the_legal_set():
    inputs = F.one_hot(torch.tensor([[A, A, B]]), 2).float()
    targets = torch.tensor([[A, B, A]])  # legal: {a, b}, {a, b}, {a}
    logits = torch.tensor([[[2.0, 0.1], [3.0, -0.1], [0.5, -4.0]]])
    assert Objective.of("legal_next", "mse").right(logits, targets, inputs).tolist() == [[True, False, True]]
    assert Objective.of("next_symbol", None).right(logits, targets, inputs).tolist() == [[True, False, True]]
    dist = Objective.of("legal_next", "bce").distribution(torch.tensor([[0.0, 0.0], [10.0, -10.0]]))
    torch.testing.assert_close(dist, torch.tensor([[0.5, 0.5], [1.0, 0.0]]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("cell, peepholes", [("srn", False), ("lstm", False), ("lstm", True), ("gru", False)])
@pytest.mark.parametrize("objective", [("next_symbol", None), ("legal_next", "mse"), ("legal_next", "bce")])
def test_the_training_loss_and_its_gradients_are_the_cell_formulas(cell, peepholes, objective):
    """Three networks on their own sequences: the step run over the seeds at once, the
    objective's loss and autograd's gradients with respect to the stacked weights, against
    autograd through the formulas written step by step (tests/oracles.py) and the loss computed
    from legal sets read off the symbols, one network at a time."""
    language, S, H = CountingLanguage(2, 3, 4), 3, 3
    layout = Layout(cell, S, H, peepholes)
    flat = torch.randn(3, layout.size, generator=torch.Generator().manual_seed(1)) * 0.7
    per_net = [_batch(language, lengths, S) for lengths in ([[1, 2], [3]], [[4, 4], [1]], [[2], [1, 1]])]
    T = max(b["targets"].shape[1] for _, b in per_net)
    padded = [collate(seqs, S, T) for seqs, _ in per_net]
    stacked = {k: torch.stack([b[k] for b in padded]) for k in ("inputs", "targets", "valid")}
    obj = Objective.of(*objective)
    stacked_flat = flat.clone().requires_grad_(True)
    loss = obj.mean_loss(forward(layout, stacked_flat, stacked["inputs"], stacked["valid"])["logits"], stacked["targets"], stacked["inputs"])
    (grads,) = torch.autograd.grad(loss.sum(), stacked_flat)
    loss = loss.detach()
    for r, (seqs, b) in enumerate(per_net):
        p = flat[r].clone().requires_grad_(True)
        logits = reference_logits(cell, unpack(cell, p, S, H, peepholes), b["inputs"])["logits"][b["valid"]]
        if obj.legal_next:
            legal = torch.from_numpy(np.concatenate([legal_targets(s, S) for s in seqs]))
            theirs = F.mse_loss(torch.sigmoid(logits), legal) if obj.loss == "mse" else F.binary_cross_entropy_with_logits(logits, legal)
        else:
            theirs = F.cross_entropy(logits, b["targets"][b["valid"]])
        (grad,) = torch.autograd.grad(theirs, p)
        torch.testing.assert_close(loss[r], theirs.detach(), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(grads[r], grad, atol=1e-6, rtol=1e-4)


def test_a_peephole_lstm_computes_the_formulas():
    language, S, H = CountingLanguage(1, 1, 4), 3, 2
    net = LSTM(S, H, peepholes=True)
    with torch.no_grad():
        net.peephole.copy_(torch.tensor([[0.5, -1.0], [2.0, 0.3], [-0.7, 1.5]]))
    _, b = _batch(language, [[2, 1], [3]], S)
    theirs = reference_logits("lstm", unpack("lstm", net.flat(), S, H, peepholes=True), b["inputs"])
    torch.testing.assert_close(net(b["inputs"]), theirs["logits"])
    torch.testing.assert_close(net.trace(b["inputs"])["cell"], theirs["cell"])
    plain = unpack("lstm", net.flat(), S, H)  # without the peepholes the outputs differ
    assert not torch.allclose(reference_logits("lstm", plain, b["inputs"])["logits"], theirs["logits"])
    assert Layout("lstm", S, H, True).size == Layout("lstm", S, H).size + 3 * H
    out = forward(Layout("lstm", S, H, True), net.flat()[None], b["inputs"][None])["logits"][0]
    torch.testing.assert_close(out, theirs["logits"])


def test_clipping_is_torchs_clip_grad_norm_per_seed():
    grads = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    theirs = []
    for row in grads:
        p = torch.nn.Parameter(torch.zeros(2))
        p.grad = row.clone()
        torch.nn.utils.clip_grad_norm_(p, 1.0)
        theirs.append(p.grad)
    torch.testing.assert_close(clip_per_row(grads, 1.0), torch.stack(theirs))
    assert clip_per_row(grads, 1.0)[0].tolist() == pytest.approx([0.6, 0.8], abs=1e-6)


def test_the_gate_biases_start_where_the_config_says():
    """Torch's gate order i, f, g, o: the first H biases are the input gate's, the next H the forget gate's."""
    model = SequencePredictor(cell="lstm", hidden_units=3, num_symbols=3, init="uniform", forget_bias=1.0, input_bias=-1.0, seeds=2)
    for w in model.seed_weights:
        bias = model.layout.views(w.detach())["bias"]
        assert bias[:3].tolist() == [-1.0] * 3 and bias[3:6].tolist() == [1.0] * 3
        assert bias[6:].abs().max() < 1 / 3 ** 0.5 and len(set(bias[6:].tolist())) == 6  # the others as drawn
    drawn = SequencePredictor(cell="lstm", hidden_units=3, num_symbols=3, init="uniform", seeds=2)
    assert torch.equal(model.layout.views(model.seed_weights[0].detach())["weight_ih"], drawn.layout.views(drawn.seed_weights[0].detach())["weight_ih"])


@pytest.mark.parametrize("kwargs, line", [
    ({"objective": "legal"}, "objective='legal' is invalid; allowed: one of next_symbol, legal_next"),
    ({"objective": "legal_next", "loss": "nll"}, "loss='nll' is invalid; allowed: null or one of mse, bce with objective=legal_next"),
    ({"loss": "mse"}, "loss='mse' is invalid; allowed: null or one of nll with objective=next_symbol"),
    ({"peepholes": True}, "peepholes=True is invalid; allowed: true or false (true only with cell=lstm)"),
    ({"cell": "lstm", "peepholes": 1}, "peepholes=1 is invalid; allowed: true or false (true only with cell=lstm)"),
    ({"forget_bias": 1.0}, "forget_bias=1.0 is invalid; allowed: null or a finite number (with cell=lstm)"),
    ({"cell": "lstm", "input_bias": "x"}, "input_bias='x' is invalid; allowed: null or a finite number (with cell=lstm)"),
    ({"clip_grad_norm": 0}, "clip_grad_norm=0 is invalid; allowed: null or a finite number > 0"),
])
def test_bad_literature_settings_are_one_line(kwargs, line):
    with pytest.raises(ConfigError) as caught:
        SequencePredictor(**kwargs)
    assert str(caught.value) == line


def test_the_default_objective_is_the_references():
    model = SequencePredictor()
    assert model.objective == Objective("next_symbol", "nll") and model.hparams.objective == "next_symbol"
    assert SequencePredictor(objective="legal_next").objective.loss == "mse"
    assert not SequencePredictor(cell="lstm", peepholes=True).fused  # torch's fused LSTM has no peepholes


# ---- the decoupled extended Kalman filter -------------------------------------------------------


def test_the_kalman_update_of_a_linear_model_is_recursive_least_squares():
    """Measurements y_k = h_k . w + noise, one at a time, with Q = 0 and a fixed R: the filter
    is recursive least squares and ends at the regularised least-squares solution
    (I / p0 + H^T H / r)^-1 H^T y / r, whatever the order of the data."""
    from lightning_modules.dekf import DEKF

    g = torch.Generator().manual_seed(3)
    X = torch.randn(200, 5, generator=g, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -2.0, 0.5, 3.0, 0.0], dtype=torch.float64) + 0.1 * torch.randn(200, generator=g, dtype=torch.float64)
    p0, r = 10.0, 0.5
    w = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))
    dekf = DEKF([w], p0=p0, decoupling="none")
    for h, target in zip(X, y):
        dekf.update(w, h[None], (target - h @ w.detach())[None], r=r, q=0.0)
    theirs = torch.linalg.solve(torch.eye(5, dtype=torch.float64) / p0 + X.T @ X / r, X.T @ y / r)
    torch.testing.assert_close(w.detach(), theirs, atol=1e-9, rtol=1e-9)
    # two measurements at once are the same as one after the other
    w2 = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))
    batch = DEKF([w2], p0=p0, decoupling="none")
    for k in range(0, 200, 2):
        batch.update(w2, X[k : k + 2], y[k : k + 2] - X[k : k + 2] @ w2.detach(), r=r, q=0.0)
    torch.testing.assert_close(w2.detach(), theirs, atol=1e-9, rtol=1e-9)


def test_the_noise_is_annealed_log_linearly_and_the_settings_checked():
    from lightning_modules.dekf import DEKF

    dekf = DEKF([torch.nn.Parameter(torch.zeros(1))], r_start=100.0, r_end=1.0, q_start=1e-2, q_end=1e-6, anneal_strings=100)
    assert dekf.annealed(0) == pytest.approx((100.0, 1e-2))
    assert dekf.annealed(50) == pytest.approx((10.0, 1e-4))
    assert dekf.annealed(100) == pytest.approx((1.0, 1e-6)) and dekf.annealed(1000) == pytest.approx((1.0, 1e-6))
    assert DEKF([torch.nn.Parameter(torch.zeros(1))], q_end=0.0, anneal_strings=10).annealed(5)[1] == pytest.approx(0.005)
    for kwargs, line in [({"p0": 0}, "p0=0 is invalid; allowed: a finite number > 0"), ({"q_end": -1}, "q_end=-1 is invalid; allowed: a finite number >= 0"),
                         ({"anneal_strings": 0}, "anneal_strings=0 is invalid; allowed: an integer >= 1"),
                         ({"decoupling": "layers"}, "decoupling='layers' is invalid; allowed: one of units, none")]:
        with pytest.raises(ConfigError) as caught:
            DEKF([torch.nn.Parameter(torch.zeros(1))], **kwargs)
        assert str(caught.value) == line


@pytest.mark.parametrize("cell, peepholes", [("srn", False), ("lstm", False), ("lstm", True), ("gru", False)])
def test_the_carried_forward_derivatives_are_autograds_jacobian_of_every_output(cell, peepholes):
    """For fixed weights, the outputs' derivatives that ``ForwardJacobian`` carries forward equal
    the Jacobian torch.func.jacfwd computes through the whole sequence at once (float64), and its
    ``head`` (a function of the logits and the weights) comes with its own Jacobian."""
    from torch.func import jacfwd

    layout = Layout(cell, 3, 3, peepholes)
    flat = torch.randn(2, layout.size, dtype=torch.float64, generator=torch.Generator().manual_seed(5)) * 0.5
    x = collate([CountingLanguage(1, 1, 5).sequence([2, 1])], 3)["inputs"][0].double()
    rtrl = ForwardJacobian(layout, flat)
    for r in range(2):
        J = jacfwd(lambda w: forward(layout, w[None], x[None, None])["logits"][0, 0])(flat[r])
        assert J.shape == (x.shape[0], 3, layout.size)
    jac = [jacfwd(lambda w: forward(layout, w[None], x[None, None])["logits"][0, 0])(flat[r]) for r in range(2)]
    logits_all = forward(layout, flat, x[None, None].expand(2, 1, -1, -1))["logits"][:, 0]
    for t in range(x.shape[0]):
        logits, dlogits, y, dy = rtrl.step(flat, x[t].expand(2, -1), head=lambda z, f: torch.cat([torch.sigmoid(z), (f**2).sum(1, keepdim=True)], 1))
        torch.testing.assert_close(logits, logits_all[:, t])
        torch.testing.assert_close(y[:, :3], torch.sigmoid(logits))
        for r in range(2):
            torch.testing.assert_close(dlogits[r], jac[r][t])
            torch.testing.assert_close(dy[r, :3], (torch.sigmoid(logits[r]) * (1 - torch.sigmoid(logits[r])))[:, None] * jac[r][t])
            torch.testing.assert_close(dy[r, 3], 2 * flat[r])


def test_the_groups_split_the_weights_by_unit():
    from lightning_modules.dekf import weight_groups

    layout = Layout("lstm", 3, 2, peepholes=True)
    groups = weight_groups(layout, "units")
    assert [len(g) for g in groups] == [4 * (3 + 2 + 1) + 3] * 2 + [2 + 1] * 3
    assert sorted(torch.cat(groups).tolist()) == list(range(layout.size))
    index = layout.views(torch.arange(layout.size))
    assert set(index["weight_hh"][[1, 3, 5, 7]].flatten().tolist()) <= set(groups[1].tolist())  # unit 1's rows of every gate
    assert [len(g) for g in weight_groups(Layout("srn", 2, 2), "units")] == [2 + 2 + 1 + 1] * 2 + [3] * 2
    assert [len(g) for g in weight_groups(layout, "none")] == [layout.size]


def test_a_kalman_run_learns_a_short_language_online(tmp_path):
    """A few hundred strings of a^n b^n c^n (n <= 3), one at a time: the filter moves every
    seed's weights, keeps a state per seed, and the loss falls."""
    import functools

    import pytorch_lightning as pl

    from datamodules.grammar import GrammarDataModule
    from lightning_modules.dekf import DEKF

    model = SequencePredictor(seeds=2, cell="lstm", hidden_units=3, num_symbols=3, init="uniform", objective="legal_next", peepholes=True,
                              optimizer=functools.partial(DEKF, anneal_strings=100))
    data = GrammarDataModule(language="anbncn", max_n=3, blocks=1, batch_size=1, eval_sequences=5, eval_max_n=6, seeds=2)
    before = [w.detach().clone() for w in model.seed_weights]
    trainer = pl.Trainer(max_steps=300, val_check_interval=100, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=1)
    trainer.fit(model, datamodule=data)
    dekf = trainer.optimizers[0]
    assert isinstance(dekf, DEKF) and all(dekf.strings_seen(w) == 300 for w in model.seed_weights)
    assert all(not torch.equal(a, w.detach()) for a, w in zip(before, model.seed_weights))
    trainer.test(model, datamodule=data, verbose=False)
    assert all(v is not None and v > 0.5 for v in model.last_test["acc"])
    with pytest.raises(ConfigError, match=r"^data.batch_size=2 is invalid with model/optimizer=dekf; allowed: 1"):
        pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False).fit(
            SequencePredictor(cell="lstm", num_symbols=3, optimizer=functools.partial(DEKF)), datamodule=GrammarDataModule(language="anbncn", batch_size=2))


# ---- model selection ------------------------------------------------------------------------------


def test_each_seed_keeps_its_best_net_on_the_selection_lengths_and_both_are_tested():
    """Two LSTMs trained 240 updates, evaluated every 40 on single-block strings of n = 5, 6, 7
    beyond the training bound 4: each seed's kept net gets as many selection lengths right as
    its weights say when the formulas are run on those strings directly, at least as many as
    the final net, and its test figures are those of the kept weights."""
    import pytorch_lightning as pl

    from datamodules.grammar import GrammarDataModule

    model = SequencePredictor(seeds=2, cell="lstm", hidden_units=3, num_symbols=3, init="uniform",
                              optimizer={"_target_": "torch.optim.Adam", "lr": 0.05})
    data = GrammarDataModule(language="anbncn", max_n=4, blocks=2, batch_size=4, eval_sequences=5, eval_max_n=8, seeds=2, select_lengths=[5, 6, 7])
    trainer = pl.Trainer(max_steps=240, val_check_interval=40, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data, verbose=False)
    language = data.language

    def lengths_right(flat, lengths, blocks=1):
        right = []
        for n in lengths:
            seq = language.sequence([n] * blocks)
            b = collate([seq], 3)
            logits = reference_logits("lstm", unpack("lstm", flat, 3, 3), b["inputs"])["logits"][0]
            det = torch.from_numpy(seq["determined"])
            right.append(bool((logits.argmax(-1)[det] == b["targets"][0][det]).all()))
        return right

    outcomes = model.seed_outcomes()
    for i, r in enumerate(outcomes):
        chosen = model.selected[i]
        assert chosen["update"] in range(40, 241, 40) and r["selected"]["update"] == chosen["update"]
        assert chosen["fraction_right"] == pytest.approx(sum(lengths_right(chosen["weights"], [5, 6, 7])) / 3)
        assert chosen["fraction_right"] >= sum(lengths_right(model.seed_weights[i].detach(), [5, 6, 7])) / 3
        tested = lengths_right(chosen["weights"], range(1, 9), blocks=2)  # the test's strings: two blocks per length
        assert r["selected"]["lengths_right"] == [n for n, ok in zip(range(1, 9), tested) if ok]
        assert r["lengths_right"] == [n for n, ok in zip(range(1, 9), lengths_right(model.seed_weights[i].detach(), range(1, 9), blocks=2)) if ok]
    summary = model.test_summary()
    assert summary["selection"]["lengths"] == [5, 6, 7] and summary["selection"]["sequences"] == "one block per length"
    assert "selected_max_n_generalised_counts" in summary and sum(summary["selected_max_n_generalised_counts"].values()) == 2
    assert GrammarDataModule(language="anbncn").selection_sequences == []
    with pytest.raises(ConfigError, match=r"^select_lengths=\[5, 5\] is invalid; allowed: null or a list of distinct integers >= 1$"):
        GrammarDataModule(select_lengths=[5, 5])


@pytest.mark.parametrize("experiment, optimizer", [("dekf_anbncn", "DEKF"), ("suzgun_anbncn", "RMSprop"), ("lstm_anb2nc3n_legal", "RMSprop")])
def test_the_literature_experiments_build_what_they_say(experiment, optimizer):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from conftest import REPO
    from orchestration.config import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}", "seeds=3"])
    model, data = instantiate(cfg.model), instantiate(cfg.data)
    assert model.objective == Objective("legal_next", "mse") and model.seed_list == [cfg.seed + i for i in range(3)]
    assert type(model.configure_optimizers()).__name__ == optimizer
    assert data.hparams.batch_size == 1 and data.hparams.blocks == 1 and data.hparams.eval_blocks == 1
    assert cfg.callbacks.solved_stopping is None
    if experiment == "lstm_anb2nc3n_legal":  # the study's language with the literature's cell, start and clipping
        assert data.hparams.language == "anb2nc3n" and data.hparams.max_n == 10 and list(data.hparams.select_lengths) == list(range(11, 51))
        assert model.layout.peepholes and not model.kalman and model.configure_optimizers().defaults["lr"] == 0.01
        assert (model.hparams.forget_bias, model.hparams.input_bias, model.hparams.clip_grad_norm) == (1.0, -1.0, 1.0)
        assert (model.hparams.restarts, model.hparams.restart_after, cfg.trainer.val_check_interval) == (4, 3000, 250)
        return
    assert data.hparams.language == "anbncn"
    if experiment == "dekf_anbncn":
        assert model.kalman and model.layout.peepholes and data.hparams.max_n == 10 and list(data.hparams.select_lengths) == list(range(11, 21))
        assert cfg.eval.max_n == 1000
    else:
        assert not model.kalman and not model.layout.peepholes and data.hparams.max_n == 50 and model.configure_optimizers().defaults["lr"] == 0.01


def test_the_filters_defaults_are_its_configs_and_each_bad_setting_is_named():
    from omegaconf import OmegaConf

    from lightning_modules.dekf import DEKF
    from tests.conftest import REPO

    conf = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "model" / "optimizer" / "dekf.yaml"))
    dekf = DEKF([torch.nn.Parameter(torch.zeros(1))])
    defaults = dekf.defaults | {"compiled": dekf.compiled}
    assert {k: defaults[k] for k in ("p0", "r_start", "r_end", "q_start", "q_end", "anneal_strings", "decoupling", "compiled")} == {
        k: v for k, v in conf.items() if not k.startswith("_")} == {
        "p0": 100.0, "r_start": 100.0, "r_end": 3.0, "q_start": 0.01, "q_end": 1e-6, "anneal_strings": 1000, "decoupling": "units", "compiled": True}
    for key, bad, allowed in (("r_start", 0, "a finite number > 0"), ("r_end", -1, "a finite number > 0"), ("q_start", -1, "a finite number >= 0"),
                              ("compiled", 2, "true or false")):
        with pytest.raises(ConfigError) as caught:
            DEKF([torch.nn.Parameter(torch.zeros(1))], **{key: bad})
        assert str(caught.value) == f"{key}={bad} is invalid; allowed: {allowed}"


def test_the_annealing_is_log_linear_from_a_start_of_one():
    from lightning_modules.dekf import DEKF

    dekf = DEKF([torch.nn.Parameter(torch.zeros(1))], r_start=1.0, r_end=100.0, q_start=1.0, q_end=1e-4, anneal_strings=10)
    assert dekf.annealed(5) == pytest.approx((10.0, 1e-2))


def test_attached_to_a_layout_the_filter_keeps_one_block_of_p_per_unit():
    """After attach, P is one p0 I block per hidden unit and per output unit (Pérez-Ortiz et al.'s
    decoupling); an update touches each block with its own rows of the Jacobian only."""
    from lightning_modules.dekf import DEKF, weight_groups

    layout = Layout("lstm", 3, 3)
    w = torch.nn.Parameter(torch.zeros(layout.size, dtype=torch.float64))
    dekf = DEKF([w], p0=2.0)
    dekf.attach(layout)
    groups = weight_groups(layout, "units")
    H = torch.randn(3, layout.size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    dekf.update(w, H, torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64), r=1.0, q=0.0)
    blocks = dekf.state[w]["P"]
    assert [b.shape[0] for b in blocks] == [len(g) for g in groups] == [4 * (3 + 3 + 1)] * 3 + [3 + 1] * 3
    # the decoupled update: S = R + sum_g H_g P_g H_g^T, K_g = P_g H_g^T S^-1, w_g += K_g e
    S = torch.eye(3, dtype=torch.float64) + sum(2.0 * H[:, g] @ H[:, g].T for g in groups)
    e = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64)
    for g in groups:
        torch.testing.assert_close(w.detach()[g], 2.0 * H[:, g].T @ torch.linalg.solve(S, e))


def test_each_hidden_units_group_holds_its_rows_of_every_gate():
    from lightning_modules.dekf import weight_groups

    layout = Layout("lstm", 2, 3)
    index = layout.views(torch.arange(layout.size))
    for j, group in enumerate(weight_groups(layout, "units")[:3]):
        rows = [g * 3 + j for g in range(4)]  # i, f, g, o of unit j
        assert set(group.tolist()) == set(index["weight_ih"][rows].flatten().tolist()) | set(index["weight_hh"][rows].flatten().tolist()) | set(index["bias"][rows].tolist())


def _online_reference(cell: str, flat: torch.Tensor, strings: list[dict], symbols: int, hidden: int, objective: str,
                      p0: float, r: float, q: float, frozen: bool = False, l1: float = 0.0) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The global EKF trained online, written out step by step in float64 from the reference's
    one-step formulas (``oracles.reference_step``) and autograd's partial Jacobians of that step:
    per symbol, the forward pass from the carried state at the weights w_t as they are now; the
    carried sensitivity ds_t/dw = df/dw(w_t, s_{t-1}) + df/ds(w_t, s_{t-1}) ds_{t-1}/dw (real-time
    recurrent learning, the state's past derivatives those of the weights at their time); the
    outputs y (softmax, or a sigmoid per symbol) and their Jacobian H = dy/dlogits dlogits/dw; then
    K = P H^T (r I + H P H^T)^-1, w += K (d - y), P = P - K H P + q I, before the next symbol. A
    string starts from the initial state with zero sensitivities; P carries over. ``frozen``: the
    same with the string's first weights for every forward pass (what the test must tell apart).
    ``l1``: one more output, sqrt(l1 sum |w|), that should be 0. Returns the weights after each
    string and the final P."""
    from torch.autograd.functional import jacobian

    from oracles import reference_initial, reference_step

    w = flat.clone()
    P = torch.eye(len(w), dtype=torch.float64) * p0
    after = []
    for seq in strings:
        x = collate([seq], symbols)["inputs"][0].double()
        legal = torch.from_numpy(legal_targets(seq, symbols)).double()
        h, c = reference_initial(cell, unpack(cell, w, symbols, hidden), 1, w)
        ds = torch.zeros(2 * hidden, len(w), dtype=torch.float64)  # d(h, c)/dw, carried
        w_forward = w.clone()
        for t in range(x.shape[0]):
            at = w_forward if frozen else w

            def step(weights, state):
                out = reference_step(cell, unpack(cell, weights, symbols, hidden), x[t][None], state[None, :hidden], state[None, hidden:])
                return torch.cat([out["hidden"][0], out.get("cell", state[None, hidden:])[0]]), out["logits"][0]

            s = torch.cat([h[0], c[0]])
            (dnew_dw, dnew_ds), (dlog_dw, dlog_ds) = jacobian(step, (at, s))
            if cell == "srn" and t == 0:  # h_0 = tanh(H0) depends on the weights too
                ds[:hidden] = jacobian(lambda weights: reference_initial(cell, unpack(cell, weights, symbols, hidden), 1, weights)[0][0], at)
            new_state, logits = step(at, s)
            dlogits = dlog_dw + dlog_ds @ ds
            ds = dnew_dw + dnew_ds @ ds
            h, c = new_state[None, :hidden], new_state[None, hidden:]
            squash = (lambda z: torch.softmax(z, -1)) if objective == "next_symbol" else torch.sigmoid
            y = squash(logits)
            Hm = jacobian(squash, logits) @ dlogits
            d = F.one_hot(torch.tensor(seq["targets"][t]), symbols).double() if objective == "next_symbol" else legal[t]
            if l1:
                def root(weights):
                    return torch.sqrt(l1 * weights.abs().sum())[None]

                y, d, Hm = torch.cat([y, root(w)]), torch.cat([d, d.new_zeros(1)]), torch.cat([Hm, jacobian(root, w)])
            K = P @ Hm.T @ torch.linalg.inv(r * torch.eye(len(y), dtype=torch.float64) + Hm @ P @ Hm.T)
            w = w + K @ (d - y)
            P = P - K @ Hm @ P
            P = 0.5 * (P + P.T) + q * torch.eye(len(w), dtype=torch.float64)
        after.append(w.clone())
    return after, P


@pytest.mark.parametrize("cell, language, objective, l1", [("srn", (2, 0), "next_symbol", 0.0), ("lstm", (1, 1), "legal_next", 0.0),
                                                        ("gru", (1, 1), "legal_next", 0.0), ("gru", (2, 0), "next_symbol", 0.01)])
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_the_filters_online_step_is_the_method_written_out_symbol_by_symbol(cell, language, objective, l1, compiled):
    """Two short strings (n = 1, then n = 2), one seed, the global filter (decoupling none) in
    float64 with R and Q held constant: after each symbol the weights are updated, and the next
    symbol's forward pass and Jacobian use the updated weights. The module's weights after each
    string and its P equal the reference's to 1e-9; a filter that kept the string's first weights
    for its forward passes ends measurably elsewhere. The GRU and the L1 penalty (one more
    measurement, sqrt(l1 sum |w|), that should be 0) need no code of their own in the filter.
    Eagerly and through ``torch.compile`` (the default)."""
    import functools

    from lightning_modules.dekf import DEKF

    symbols, hidden = (2 if language[1] == 0 else 3), 2
    lang = CountingLanguage(*language, 4)
    strings = [lang.sequence([1]), lang.sequence([2])]
    p0, r, q = 10.0, 2.0, 1e-3
    make = functools.partial(DEKF, p0=p0, r_start=r, r_end=r, q_start=q, q_end=q, decoupling="none", compiled=compiled)
    model = SequencePredictor(cell=cell, hidden_units=hidden, num_symbols=symbols, init=0.5, optimizer=make, objective=objective, l1=l1).double()
    start = model.seed_weights[0].detach().clone()
    dekf = model.configure_optimizers()
    want, want_P = _online_reference(cell, start, strings, symbols, hidden, objective, p0, r, q, l1=l1)
    frozen, _ = _online_reference(cell, start, strings, symbols, hidden, objective, p0, r, q, frozen=True, l1=l1)
    if l1:  # the penalty's measurement changes where the filter goes
        assert (want[-1] - _online_reference(cell, start, strings, symbols, hidden, objective, p0, r, q)[0][-1]).abs().max() > 1e-4
    for k, seq in enumerate(strings):
        batch = {key: v[None] for key, v in collate([seq], symbols).items()}
        batch = {key: (v.double() if v.is_floating_point() else v) for key, v in batch.items()} | {"rows": torch.tensor([0])}
        model._kalman_step(batch, [0], [0], dekf)
        torch.testing.assert_close(model.seed_weights[0].detach(), want[k], rtol=1e-9, atol=1e-9)
    (P,) = dekf.state[model.seed_weights[0]]["P"]
    torch.testing.assert_close(P, want_P, rtol=1e-9, atol=1e-9)
    assert dekf.strings_seen(model.seed_weights[0]) == 2
    assert (want[-1] - start).abs().max() > 1e-2  # the filter moved the weights
    assert (want[-1] - frozen[-1]).abs().max() > 1e-4  # and where the forward passes are taken matters


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_seeds_filtered_together_end_as_each_filtered_alone(compiled):
    """Two seeds of an LSTM with peepholes (the filter's groups decoupled by unit) filtered in one
    step on strings of different lengths (n = 1 and n = 3): the seed whose string ends first keeps
    its weights and P while the other goes on, and each ends as it does filtered alone on its own
    string (float64; eager and compiled). Two seeds, not one: compiled code for one row is another
    kernel, so the comparison is to rounding, 1e-12."""
    import functools

    from lightning_modules.dekf import DEKF

    lang = CountingLanguage(1, 1, 4)
    strings = [lang.sequence([1]), lang.sequence([3])]
    make = functools.partial(DEKF, p0=10.0, r_start=2.0, r_end=2.0, q_start=1e-3, q_end=1e-3, compiled=compiled)

    def model_of(seeds):
        m = SequencePredictor(cell="lstm", hidden_units=2, num_symbols=3, peepholes=True, seeds=seeds, init=0.5, optimizer=make, objective="legal_next").double()
        return m, m.configure_optimizers()

    def batch_of(seqs):
        b = collate(seqs, 3)
        return {k: (v.double() if v.is_floating_point() else v)[:, None] for k, v in b.items()}

    both, dekf = model_of(2)
    start = [both.seed_weights[i].detach().clone() for i in range(2)]
    both._kalman_step(batch_of(strings), [0, 1], [0, 1], dekf)
    for i in range(2):
        alone, alone_dekf = model_of(1)
        with torch.no_grad():
            alone.seed_weights[0].copy_(start[i])
        alone._kalman_step(batch_of([strings[i]]), [0], [0], alone_dekf)
        torch.testing.assert_close(both.seed_weights[i].detach(), alone.seed_weights[0].detach(), rtol=1e-12, atol=1e-12)
        for mine, theirs in zip(dekf.state[both.seed_weights[i]]["P"], alone_dekf.state[alone.seed_weights[0]]["P"]):
            torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)
        assert (both.seed_weights[i].detach() - start[i]).abs().max() > 1e-3  # each moved
