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
from lightning_modules.recurrent_nets import LSTM, Layout, forward, loss_and_grads
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


@pytest.mark.parametrize("cell, peepholes", [("srn", False), ("lstm", False), ("lstm", True)])
@pytest.mark.parametrize("objective", [("next_symbol", None), ("legal_next", "mse"), ("legal_next", "bce")])
def test_the_hand_written_gradients_are_autograds_through_the_cell_formulas(cell, peepholes, objective):
    """Three networks on their own sequences: the batched recurrence's loss and hand gradients
    against autograd through the formulas written step by step (tests/oracles.py) and the loss
    computed from legal sets read off the symbols."""
    language, S, H = CountingLanguage(2, 3, 4), 3, 3
    layout = Layout(cell, S, H, peepholes)
    flat = torch.randn(3, layout.size, generator=torch.Generator().manual_seed(1)) * 0.7
    per_net = [_batch(language, lengths, S) for lengths in ([[1, 2], [3]], [[4, 4], [1]], [[2], [1, 1]])]
    T = max(b["targets"].shape[1] for _, b in per_net)
    padded = [collate(seqs, S, T) for seqs, _ in per_net]
    stacked = {k: torch.stack([b[k] for b in padded]) for k in ("inputs", "targets", "valid")}
    obj = Objective.of(*objective)
    loss, grads = loss_and_grads(layout, flat, stacked["inputs"], stacked["targets"], stacked["valid"], objective=obj)
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
    ({"forget_bias": 1.0}, "forget_bias=1.0 is invalid; allowed: null or a number (with cell=lstm)"),
    ({"cell": "lstm", "input_bias": "x"}, "input_bias='x' is invalid; allowed: null or a number (with cell=lstm)"),
    ({"clip_grad_norm": 0}, "clip_grad_norm=0 is invalid; allowed: null or a number > 0"),
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
