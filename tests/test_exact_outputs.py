"""Known inputs in, known outputs out, for the studies' core code: the analysis functions, the
nets, the data readers and the population statistics. Each expected value is worked out by hand
from the input (the comments say how). These are the tests that kill mutants (docs/mutation.md):
a changed constant, key, comparison or rounding here changes an output below."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch

from analysis.grid import dividing_line, dividing_lines, point_table
from analysis.kmnist import top_confusions
from analysis.parameters import format_parameter_table, parameter_table
from analysis.population import spread, success_rate, updates_distribution, wilson
from analysis.recurrent import _fit, format_gate_table, format_probe, format_step_table, gate_table, linear_probe, step_table
from base.errors import ConfigError, DataError
from base.languages import num_symbols
from datamodules.idx import IMAGES_MAGIC, LABELS_MAGIC, gunzip, read_idx, read_images_and_labels
from lightning_modules.grid_nets import GridNet, load_weights
from lightning_modules.kmnist_nets import NetConv, NetFull, NetLin
from lightning_modules.recurrent_nets import LSTM, SRN

# ---- population statistics ---------------------------------------------------------------------


def test_spread_of_one_and_of_two_values():
    assert spread([3.0]) == {"mean": 3.0, "std": 0.0, "n": 1}
    assert spread([1.0, 3.0]) == {"mean": 2.0, "std": math.sqrt(2.0), "n": 2}  # sample std: sqrt(((1-2)^2 + (3-2)^2) / 1)


def test_wilson_interval_at_p_one_half_and_at_the_edges():
    # k = 10 of n = 20, z = 1.96: centre (0.5 + 1.9208/20) / (1 + 3.8416/20) = 0.5; half-width
    # 1.96 sqrt(0.25/20 + 3.8416/1600) / 1.19208 = 0.2008 -> [0.2993, 0.7007]
    lo, hi = wilson(10, 20)
    assert lo == pytest.approx(0.29930, abs=1e-5) and hi == pytest.approx(0.70070, abs=1e-5)
    assert wilson(0, 0) == (0.0, 1.0)
    # n = 1: centre (1 + 1.9208) / 4.8416 = 0.6033, half 1.96 sqrt(0 + 0.9604) / 4.8416 = 0.3967
    lo, hi = wilson(1, 1)
    assert lo == pytest.approx(0.2065, abs=1e-4) and hi == 1.0
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] <= 1.0


def test_success_rate_rounds_the_interval_and_handles_no_runs():
    assert success_rate([True] * 10 + [False] * 10) == {"succeeded": 10, "of": 20, "rate": 0.5, "interval95": [0.299, 0.701]}
    assert success_rate([]) == {"succeeded": 0, "of": 0, "rate": 0.0, "interval95": [0.0, 1.0]}


def test_updates_distribution_quartiles_by_hand():
    # 1..9 succeeded: numpy's linear percentiles are 3, 5, 7; two seeds censored at their budgets
    out = updates_distribution(list(range(1, 10)) + [None, None], [0] * 9 + [500, 400])
    assert out == {"succeeded": 9, "censored": 2, "censored_at": [400, 500], "median": 5.0, "q1": 3.0, "q3": 7.0, "min": 1, "max": 9}
    # four values 0, 10, 20, 30: q1 = 7.5, q3 = 22.5 (a quartile of 26 or 76 would move them)
    out = updates_distribution([0, 10, 20, 30], [0] * 4)
    assert (out["q1"], out["median"], out["q3"]) == (7.5, 15.0, 22.5)


# ---- the grid study's analysis ------------------------------------------------------------------


@pytest.mark.parametrize("w, b, expected", [
    ((1.0, -1.0), 0.5, {"equation": "y = 1.00 x + 0.50", "on": "below"}),  # x - y + 0.5 = 0; w_y < 0: on below
    ((1.0, 1.0), 0.0, {"equation": "y = -1.00 x + 0.00", "on": "above"}),  # intercept exactly 0 reads "+ 0.00"
    ((1.0, 2.0), 1.0, {"equation": "y = -0.50 x - 0.50", "on": "above"}),
    ((1e-9, 0.5), 0.0, {"equation": "y = 0.00", "on": "above"}),  # |w_x| at the tolerance counts as 0
    ((1.5e-9, 1.0), 0.0, {"equation": "y = -0.00 x + 0.00", "on": "above"}),  # just above it does not
    ((2e9, 1.0), 0.0, {"equation": "x = 0.00", "on": "right"}),  # the tolerance scales with the largest weight
    ((1.0, 2e9), 0.0, {"equation": "y = 0.00", "on": "above"}),
    ((0.5, 0.0), -1.0, {"equation": "x = 2.00", "on": "right"}),  # w_x = 0.5 < 1 still points right
    ((-2.0, 0.0), 1.0, {"equation": "x = 0.50", "on": "left"}),
    ((0.0, 1e-9), 0.0, {"equation": None, "on": "everywhere"}),  # |w_y| at the tolerance: no line; b = 0 is on
    ((1e-9, 0.0), 0.0, {"equation": None, "on": "everywhere"}),  # |w_x| at the tolerance: no line either
    ((1.0, 1.0), 4e9, {"equation": None, "on": "everywhere"}),  # weights negligible against the bias
    ((0.0, 0.0), -1.0, {"equation": None, "on": "nowhere"}),
])
def test_dividing_line_by_hand(w, b, expected):
    assert dividing_line(w, b) == expected


def test_dividing_lines_name_every_unit():
    assert dividing_lines([[1.0, 0.0], [0.0, -1.0]], [-1.0, 2.0]) == [
        {"unit": "h0", "equation": "x = 1.00", "on": "right"}, {"unit": "h1", "equation": "y = 2.00", "on": "below"}]


def test_point_table_rounds_to_four_decimals_and_counts_0_5_as_one():
    points = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    targets = torch.tensor([[1.0], [0.0]])
    hidden = torch.tensor([[0.123456, 0.5], [0.99995, 0.0]])
    output = torch.tensor([[0.5], [0.499949]])
    assert point_table(points, targets, hidden, output) == [
        {"x": 0.0, "y": 1.0, "target": 1, "hidden": [0.1235, 0.5], "output": 0.5, "pred": 1, "correct": True},
        {"x": 2.0, "y": -1.0, "target": 0, "hidden": [0.9999, 0.0], "output": 0.4999, "pred": 0, "correct": True},
    ]


# ---- KMNIST -------------------------------------------------------------------------------------


def test_top_confusions_default_five_largest_with_ties_in_row_major_order():
    cm = torch.zeros(4, 4, dtype=torch.long)
    cm.fill_diagonal_(50)
    for (i, j), n in {(0, 1): 3, (1, 0): 3, (2, 3): 7, (3, 2): 1, (1, 2): 3, (3, 0): 2, (0, 3): 1}.items():
        cm[i, j] = n
    got = [(r["true"], r["pred"], r["count"]) for r in top_confusions(cm)]
    assert got == [(2, 3, 7), (0, 1, 3), (1, 0, 3), (1, 2, 3), (3, 0, 2)]
    named = top_confusions(cm, k=1, class_names=["o", "ki", "su", "tsu"])
    assert named == [{"true": 2, "pred": 3, "count": 7, "true_name": "su", "pred_name": "tsu"}]


def test_the_kmnist_nets_defaults_shapes_and_outputs():
    torch.manual_seed(0)
    x = torch.randn(3, 1, 28, 28)
    for net, params in ((NetLin(), 7_850), (NetFull(), 75_535), (NetConv(), 206_922)):
        out = net(x)
        assert out.shape == (3, 10) and sum(p.numel() for p in net.parameters()) == params
        torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(3))  # log-probabilities per image
    lin = NetLin()
    torch.testing.assert_close(lin(x), torch.log_softmax(x.flatten(1) @ lin.fc.weight.T + lin.fc.bias, dim=1))
    full = NetFull()
    hidden = torch.tanh(x.flatten(1) @ full.fc1.weight.T + full.fc1.bias)  # tanh, as the reference
    torch.testing.assert_close(full(x), torch.log_softmax(hidden @ full.fc2.weight.T + full.fc2.bias, dim=1))
    conv = NetConv()
    h = torch.max_pool2d(torch.relu(torch.conv2d(x, conv.conv1.weight, conv.conv1.bias, padding=1)), 2)
    h = torch.max_pool2d(torch.relu(torch.conv2d(h, conv.conv2.weight, conv.conv2.bias, padding=1)), 2)
    h = torch.relu(h.flatten(1) @ conv.fc1.weight.T + conv.fc1.bias)
    torch.testing.assert_close(conv(x), torch.log_softmax(h @ conv.fc2.weight.T + conv.fc2.bias, dim=1))


def test_parameter_table_and_its_printout():
    net = NetFull(hidden_units=3)
    rows = parameter_table(net)
    assert rows == [{"layer": "fc1", "type": "Linear", "shapes": [[3, 784], [3]], "params": 2355},
                    {"layer": "fc2", "type": "Linear", "shapes": [[10, 3], [10]], "params": 40}]
    assert format_parameter_table(rows, "NetFull") == "\n".join([
        "NetFull: trainable parameters",
        # columns as wide as their widest cell or heading: 5, 6, 9 and 6 ("params" > "2,395")
        "layer  type    shapes     params",
        "--------------------------------",
        "fc1    Linear  3x784 + 3   2,355",
        "fc2    Linear  10x3 + 10      40",
        "--------------------------------",
        "Total                      2,395",
    ])


# ---- the grid nets ------------------------------------------------------------------------------


def test_grid_net_default_is_sigmoid_and_weights_are_checked_with_one_line():
    net = GridNet(2)
    with torch.no_grad():
        net.hidden.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        net.hidden.bias.zero_()
        net.output.weight.copy_(torch.tensor([[1.0, 1.0]]))
        net.output.bias.fill_(-1.0)
    h, o = net.activations(torch.tensor([[0.0, 0.0]]))
    torch.testing.assert_close(h, torch.tensor([[0.5, 0.5]]))  # sigmoid(0), not a step (1) or tanh (0)
    torch.testing.assert_close(o, torch.tensor([[0.5]]))
    good = {"hidden_weight": [[1, 1]], "hidden_bias": [0], "output_weight": [2], "output_bias": 3}
    out = load_weights(good, None, 1)
    assert {k: v.tolist() for k, v in out.items()} == {"hidden_weight": [[1.0, 1.0]], "hidden_bias": [0.0], "output_weight": [[2.0]], "output_bias": [3.0]}
    assert all(v.dtype == torch.float32 for v in out.values())  # integers in the config become floats
    assert load_weights(None, None, 1) is None
    shapes = "Expected shapes: hidden_weight [1, 2], hidden_bias [1], output_weight [1, 1], output_bias [1] (hidden_units=1)"
    cases = [
        ((good, "w.yaml"), "weights and weights_file are both set; give one of them"),
        (({"hidden_weight": [[1, 1]]}, None), f"weights must have exactly the keys hidden_weight, hidden_bias, output_weight, output_bias; got ['hidden_weight']. {shapes}"),
        (([1, 2], None), f"weights must have exactly the keys hidden_weight, hidden_bias, output_weight, output_bias; got list. {shapes}"),
        (({**good, "hidden_bias": ["a"]}, None), f"weights.hidden_bias=['a'] is not a numeric array. {shapes}"),
        (({**good, "hidden_weight": [[1, 1, 1]]}, None), f"weights.hidden_weight has shape [1, 3]; expected shapes: {shapes[len('Expected shapes: '):]}"),
        # only the output bias may be a bare number
        (({**good, "hidden_bias": 0}, None), f"weights.hidden_bias has shape []; expected shapes: {shapes[len('Expected shapes: '):]}"),
    ]
    for (weights, file), message in cases:
        with pytest.raises(ConfigError) as err:
            load_weights(weights, file, 1)
        assert str(err.value) == message


def test_grid_weights_from_a_file(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text("weights:\n  hidden_weight: [[1, -1]]\n  hidden_bias: [0.5]\n  output_weight: [[1]]\n  output_bias: [0]\n")
    assert load_weights(None, str(path), 1)["hidden_bias"].tolist() == [0.5]
    with pytest.raises(ConfigError, match=r"^weights_file='.*nope.yaml': no such file$"):
        load_weights(None, str(tmp_path / "nope.yaml"), 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1\n")
    from omegaconf import OmegaConf

    try:
        OmegaConf.load(bad)
    except Exception as exc:  # noqa: BLE001 - the parser's own first line is what the message quotes
        first_line = str(exc).splitlines()[0]
    with pytest.raises(ConfigError) as err:
        load_weights(None, str(bad), 1)
    assert str(err.value) == f"weights_file={str(bad)!r} is not YAML or JSON: {first_line}"


# ---- the recurrent nets and their analysis ------------------------------------------------------


def test_srn_and_lstm_traces_match_their_forward_passes():
    torch.manual_seed(1)
    x = torch.nn.functional.one_hot(torch.tensor([[0, 0, 1, 1], [0, 1, 0, 1]]), 3).float()
    for net in (SRN(3, 2), LSTM(3, 2)):
        with torch.no_grad():
            for p in net.parameters():
                if p.requires_grad:
                    p.uniform_(-1, 1)
        tr = net.trace(x)
        torch.testing.assert_close(tr["logits"], net(x))
        assert tr["hidden"].shape == (2, 4, 2) and tr["initial"].shape == (2, 2)
    lstm_tr = LSTM(3, 2).trace(x)
    assert torch.equal(lstm_tr["initial"], torch.zeros(2, 2))
    assert set(lstm_tr) == {"hidden", "cell", "input", "forget", "cell_input", "output", "logits", "initial"}


def test_initialisations_use_the_nets_hidden_units_and_draw_in_parameter_order():
    """Uniform in +-1/sqrt(H); normal with the given std; and the draws follow the modules'
    ``parameters()`` order (the SRN's H0 first), one tensor after the other, so a seed gets the
    weights the torch modules would draw."""
    from lightning_modules.recurrent_nets import Layout

    for cls in (SRN, LSTM):
        layout = cls(2, 4).layout
        values = layout.initial("uniform", torch.Generator().manual_seed(0))
        assert values.shape == (layout.size,) and values.abs().max() <= 0.5 and values.abs().max() > 0.45  # +-1/sqrt(4)
        assert 0.2 < layout.initial(0.3, torch.Generator().manual_seed(1)).std() < 0.4
        net, generator = cls(2, 4), torch.Generator().manual_seed(2)
        with torch.no_grad():
            for p in net.parameters():
                if p.requires_grad:
                    p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
        assert torch.equal(net.flat(), layout.initial(0.3, torch.Generator().manual_seed(2)))
    assert Layout("srn", 2, 2).size == 2 + 4 + 4 + 2 + 4 + 2 and Layout("lstm", 3, 3).size == 96


def test_the_stopping_rule_by_hand():
    from analysis.stopping import after_evaluation, stop_due

    state, history = (0, None), []
    for update, solved in [(100, True), (200, False), (300, True), (400, True), (500, True), (600, False)]:
        state = after_evaluation(*state, solved, update, 2)
        history.append(state)
    assert history == [(1, None), (0, None), (1, None), (2, 400), (3, 400), (0, 400)]  # held once, for good
    assert after_evaluation(5, None, True, 100, None) == (6, None)  # no early stop: never held
    assert [stop_due(400, 300, u) for u in (699, 700)] == [False, True]
    assert not stop_due(400, None, 10**9) and not stop_due(None, 0, 10**9) and stop_due(400, 0, 400)


def test_num_symbols_of_every_language():
    assert {lang: num_symbols(lang) for lang in ("anbn", "anb2n", "anbncn", "anb2nc3n")} == {"anbn": 2, "anb2n": 2, "anbncn": 3, "anb2nc3n": 3}
    with pytest.raises(KeyError):
        num_symbols("anbm")


def _trace():
    """A hand-made trace of two sequences: A A B B (count 1 2 1 0) and a reset A; 2 hidden units,
    unit 0 = 0.25 x count exactly, unit 1 constant."""
    count = np.array([1, 2, 1, 0, 1, 1, 2, 3])
    phase = np.array([0, 0, 1, 1, 3, 0, 0, 0])  # A A B B reset A A A
    hidden = np.stack([0.25 * count, np.full(8, 0.3)], axis=1)
    return {
        "sequence": np.array([0, 0, 0, 0, 0, 1, 1, 1]), "symbol": np.array([0, 0, 1, 1, 0, 0, 0, 0]),
        "targets": np.array([0, 1, 1, 0, 1, 0, 0, 1]), "phase": phase, "count": count, "hidden": hidden,
        "probs": np.array([[0.8, 0.2], [0.333, 0.667], [0.004, 0.996], [0.9, 0.1]] + [[0.5, 0.5]] * 4),
        "determined": np.array([False, False, True, False, False, False, False, False]),
        "input": np.tile([0.12344, 0.5], (8, 1)), "forget": np.tile([0.98766, 0.1], (8, 1)), "output": np.tile([0.5, 0.55555], (8, 1)),
    }


def test_step_table_and_its_printout_by_hand():
    tr = _trace()
    rows = step_table(tr, 0, "AB")
    assert rows[:2] == [
        {"input": "A", "next": "A", "reset": False, "hidden": [0.25, 0.3], "probs": [0.8, 0.2], "determined": False},
        {"input": "A", "next": "B", "reset": False, "hidden": [0.5, 0.3], "probs": [0.33, 0.67], "determined": False},
    ]
    assert [r["reset"] for r in rows] == [False, False, False, False, True] and len(rows) == 5
    assert rows[2]["determined"] and rows[2]["probs"] == [0.0, 1.0]
    with_cell = step_table({**tr, "cell": -tr["hidden"]}, 1)
    assert with_cell[0]["cell"] == [-0.25, -0.3] and len(with_cell) == 3
    fine = {**tr, "hidden": tr["hidden"] + 0.0012, "cell": tr["hidden"] - 0.0012}
    assert step_table(fine, 0)[0]["hidden"] == [0.25, 0.3] and step_table(fine, 0)[0]["cell"] == [0.25, 0.3]  # 2 decimals
    rows[3]["determined"] = True  # a determined step predicted wrong is marked
    assert format_step_table(rows, "title") == "\n".join([
        "title",
        "  A  -> A  hidden [ 0.25  0.30]  probs [ 0.80  0.20]",
        "  A  -> B  hidden [ 0.50  0.30]  probs [ 0.33  0.67]",
        "  B  -> B  hidden [ 0.25  0.30]  probs [ 0.00  1.00]",
        "  B  -> A  hidden [ 0.00  0.30]  probs [ 0.90  0.10]",
        "  A' -> B  hidden [ 0.25  0.30]  probs [ 0.50  0.50]",
    ])
    rows[3]["probs"] = [0.1, 0.9]
    assert format_step_table(rows[3:4], "t").endswith("probs [ 0.10  0.90]  <- wrong")
    assert format_step_table(with_cell[:1], "t") == "t\n  A  -> A  hidden [ 0.25  0.30]  cell [-0.25 -0.30]  probs [ 0.50  0.50]"


def test_gate_table_and_its_printout_by_hand():
    rows = gate_table(_trace())
    assert rows == [
        {"phase": "A", "positions": 5, "input": [0.1234, 0.5], "forget": [0.9877, 0.1], "output": [0.5, 0.5556]},
        {"phase": "B", "positions": 2, "input": [0.1234, 0.5], "forget": [0.9877, 0.1], "output": [0.5, 0.5556]},
        {"phase": "reset", "positions": 1, "input": [0.1234, 0.5], "forget": [0.9877, 0.1], "output": [0.5, 0.5556]},
    ]
    assert format_gate_table(rows[:1]) == "\n".join([
        "Mean gate values by phase (per unit):",
        "  phase   n    input gate      forget gate     output gate   ",
        "  A         5     0.123  0.500   0.988  0.100   0.500  0.556",
    ])
    assert format_gate_table([]) == ""


def test_linear_probe_and_its_printout_by_hand():
    tr = _trace()
    rows = linear_probe(tr["hidden"], tr["count"], tr["phase"])
    # A phase: 5 positions, counts 1 2 1 2 3; unit 0 = 0.25 count (slope 0.25, R^2 1), unit 1
    # constant (slope 0, R^2 0: no variance to explain). B (2 positions) and reset (1) are too few.
    assert rows == [{"phase": "A", "positions": 5, "r2": 1.0, "counter": 0, "units": [
        {"unit": 0, "slope": 0.25, "per_symbol": 0.25, "r2": 1.0}, {"unit": 1, "slope": 0.0, "per_symbol": 0.0, "r2": 0.0}]}]
    three_b = {"hidden": np.array([[0.0], [-0.5], [-1.0]]), "count": np.array([2, 1, 0]), "phase": np.array([1, 1, 1])}
    b_rows = linear_probe(three_b["hidden"], three_b["count"], three_b["phase"])
    assert b_rows[0]["units"] == [{"unit": 0, "slope": 0.5, "per_symbol": -0.5, "r2": 1.0}]  # B counts down: -slope per symbol
    # a reset phase counts up (+slope per symbol); 4 and 5 decimals differ: slope 1/3, R^2 0.75
    # (unit 0 = count / 3 exactly; unit 1 = 0, 1, 0, 1 against counts 0..3: slope 0.2, R^2 0.2)
    reset = linear_probe(np.array([[0.0, 0.0], [1 / 3, 1.0], [2 / 3, 0.0], [1.0, 1.0]]), np.array([0, 1, 2, 3]), np.array([3, 3, 3, 3]))
    assert reset == [{"phase": "reset", "positions": 4, "r2": 1.0, "counter": 0, "units": [
        {"unit": 0, "slope": 0.3333, "per_symbol": 0.3333, "r2": 1.0}, {"unit": 1, "slope": 0.2, "per_symbol": 0.2, "r2": 0.2}]}]
    noisy = linear_probe(np.array([[0.0], [1.0], [0.0], [1.0]]), np.array([0, 1, 2, 3]), np.array([1, 1, 1, 1]))
    # one unit that does not hold the count well: R^2 0.2 from it alone, and for the phase
    assert noisy[0]["r2"] == 0.2 and noisy[0]["units"][0] == {"unit": 0, "slope": 0.2, "per_symbol": -0.2, "r2": 0.2}
    third = linear_probe(np.array([[0.0], [0.5], [0.0], [2.0]]), np.array([0, 1, 2, 3]), np.array([0, 0, 0, 0]))
    # by hand: Sxx 5, Sxy 2.75 -> slope 0.55; total 2.6875, explained 0.55 x 2.75 = 1.5125 -> R^2
    # 0.56279 (5 decimals), 0.5628 (the 4 kept)
    assert third[0]["units"][0] == {"unit": 0, "slope": 0.55, "per_symbol": 0.55, "r2": 0.5628} and third[0]["r2"] == 0.5628
    flat = linear_probe(np.zeros((3, 1)), np.array([1, 1, 1]), np.array([0, 0, 0]))
    assert flat == []  # the count does not vary
    assert format_probe(rows, "hidden") == (
        "Linear probe of the count in the hidden state (R^2 of count from all units; per unit: change per symbol, R^2):\n"
        "  A      R^2 1.000; counter h0; h0: +0.250/symbol (R^2 1.00), h1: +0.000/symbol (R^2 0.00)")


def test_least_squares_fit_by_hand():
    w, r2 = _fit(np.array([[0.0], [1.0], [2.0]]), np.array([1.0, 3.0, 5.0]))  # y = 2 x + 1
    assert w.tolist() == pytest.approx([2.0]) and r2 == pytest.approx(1.0)
    w, r2 = _fit(np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0.0, 2.0, 0.0, 2.0]))
    # best line y = 0.4 x + 0.4; residuals -0.4 1.2 -1.2 0.4: SSE 3.2 of total 4 -> R^2 0.2
    assert w.tolist() == pytest.approx([0.4]) and r2 == pytest.approx(0.2)
    assert _fit(np.array([[0.0], [1.0]]), np.array([5.0, 5.0]))[1] == 0.0
    w, r2 = _fit(np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [2.0, 3.0]]), np.array([2.0, 1.0, 3.0, 8.0]))  # y = x0 + 2 x1
    assert w.tolist() == pytest.approx([1.0, 2.0]) and r2 == pytest.approx(1.0)
    assert _fit(np.array([[0.0], [1.0], [2.0]]), np.array([0.0, 0.5, 1.0]))[1] == pytest.approx(1.0)  # total 0.5 < 1


# ---- the data readers ---------------------------------------------------------------------------


def _idx(magic: int, dims: tuple, payload: bytes) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + payload


def test_read_idx_reads_what_the_header_promises(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(_idx(LABELS_MAGIC, (3,), bytes([7, 0, 9])))
    assert read_idx(path, LABELS_MAGIC).tolist() == [7, 0, 9]
    gz = tmp_path / "images-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(_idx(IMAGES_MAGIC, (1, 2, 3), bytes(range(6)))))
    assert read_idx(gz, IMAGES_MAGIC).tolist() == [[[0, 1, 2], [3, 4, 5]]]


@pytest.mark.parametrize("content, magic, message", [
    (b"\x00\x00", LABELS_MAGIC, "{p} is corrupt: 2 bytes, too short for an IDX header"),
    (struct.pack(">I", LABELS_MAGIC), LABELS_MAGIC, "{p} is truncated: 4 bytes, the header alone needs 8"),  # the magic alone
    (b"\x80\x00\x08\x03" + bytes(12), IMAGES_MAGIC, "{p} is corrupt or not an IDX images file: magic number 0x80000803, expected 0x00000803"),
    (_idx(IMAGES_MAGIC, (1,), b""), LABELS_MAGIC, "{p} is corrupt or not an IDX labels file: magic number 0x00000803, expected 0x00000801"),
    (_idx(LABELS_MAGIC, (1,), b""), IMAGES_MAGIC, "{p} is corrupt or not an IDX images file: magic number 0x00000801, expected 0x00000803"),
    (struct.pack(">I", IMAGES_MAGIC) + b"\x00" * 8, IMAGES_MAGIC, "{p} is truncated: 12 bytes, the header alone needs 16"),
    (_idx(IMAGES_MAGIC, (2, 2, 2), bytes(7)), IMAGES_MAGIC, "{p} is truncated: its header promises 2x2x2 bytes of data (24 in all), the file has 23"),
    (_idx(LABELS_MAGIC, (2,), bytes(3)), LABELS_MAGIC, "{p} is corrupt (trailing bytes): its header promises 2 bytes of data (10 in all), the file has 11"),
    (_idx(LABELS_MAGIC, (1,), bytes(1)) + b"", LABELS_MAGIC, None),
])
def test_read_idx_names_what_is_wrong(content, magic, message, tmp_path):
    path = tmp_path / "f-idx-ubyte"
    path.write_bytes(content)
    if message is None:
        assert read_idx(path, magic).shape == (1,)
        return
    with pytest.raises(DataError) as err:
        read_idx(path, magic)
    assert str(err.value) == message.format(p=path)


def test_read_idx_unreadable_and_undecompressable(tmp_path):
    bad = tmp_path / "x.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"x\.gz is corrupt: cannot decompress it \("):
        read_idx(bad, LABELS_MAGIC)
    with pytest.raises(DataError, match=r"^cannot read .*missing: No such file or directory$"):
        read_idx(tmp_path / "missing", LABELS_MAGIC)


def test_images_and_labels_are_checked_against_each_other(tmp_path):
    def write(name, magic, dims, payload):
        (tmp_path / name).write_bytes(_idx(magic, dims, payload))
        return tmp_path / name

    imgs = write("i", IMAGES_MAGIC, (2, 2, 2), bytes(8))
    labels = write("l", LABELS_MAGIC, (2,), bytes([1, 2]))
    images, got = read_images_and_labels(imgs, labels, image_size=2, num_classes=3)
    assert images.shape == (2, 2, 2) and got.tolist() == [1, 2]
    wide = write("w", IMAGES_MAGIC, (2, 2, 3), bytes(12))
    ten = write("l10", LABELS_MAGIC, (2,), bytes([10, 0]))
    with pytest.raises(DataError, match=r"label 10 found; labels must be 0\.\.9$"):  # 10 classes by default
        read_images_and_labels(write("i28", IMAGES_MAGIC, (2, 28, 28), bytes(2 * 784)), ten)
    cases = [
        ((imgs, labels, 3, 3), f"{imgs} holds 2x2 images; expected 3x3"),
        ((wide, labels, 2, 3), f"{wide} holds 2x3 images; expected 2x2"),
        ((write("e", IMAGES_MAGIC, (0, 2, 2), b""), labels, 2, 3), f"{tmp_path / 'e'} holds no images"),
        ((imgs, write("l3", LABELS_MAGIC, (3,), bytes(3)), 2, 3), f"{imgs} holds 2 images but {tmp_path / 'l3'} holds 3 labels"),
        ((imgs, labels, 2, 2), f"{labels} is corrupt: label 2 found; labels must be 0..1"),
    ]
    for (i, l, size, classes), message in cases:
        with pytest.raises(DataError) as err:
            read_images_and_labels(i, l, image_size=size, num_classes=classes)
        assert str(err.value) == message


def test_gunzip_writes_the_whole_file_or_nothing(tmp_path):
    src, dst = tmp_path / "a.gz", tmp_path / "a"
    src.write_bytes(gzip.compress(b"hello" * 1000))
    gunzip(src, dst)
    assert dst.read_bytes() == b"hello" * 1000 and not (tmp_path / "a.part").exists()
    src.write_bytes(gzip.compress(b"hello" * 1000)[:-20])  # truncated
    dst.unlink()
    with pytest.raises(DataError, match=r"a\.gz is corrupt: cannot decompress it \("):
        gunzip(src, dst)
    assert not dst.exists() and not (tmp_path / "a.part").exists()
    with pytest.raises(DataError, match=r"missing\.gz is corrupt: cannot decompress it \("):  # nothing written yet
        gunzip(tmp_path / "missing.gz", dst)
