"""The three KMNIST networks: shapes, log-probabilities and the exact parameter counts of the reference."""

import pytest
import torch

from lightning_modules import KMNISTClassifier, NetConv, NetFull, NetLin
from analysis.parameters import format_parameter_table, parameter_table


@pytest.mark.parametrize(
    "net, hidden, expected",
    [(NetLin, None, 7_850), (NetFull, 95, 75_535), (NetConv, None, 206_922)],
)
def test_exact_parameter_counts(net, hidden, expected):
    model = KMNISTClassifier(net=net() if hidden is None else net(hidden))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected
    rows = parameter_table(model)
    assert sum(r["params"] for r in rows) == expected
    assert format_parameter_table(rows, "x").splitlines()[-1].split()[-1] == f"{expected:,}"


@pytest.mark.parametrize("hidden", [1, 10, 160])
def test_netfull_size_follows_hidden_units(hidden):
    net = NetFull(hidden)
    assert net.fc1.out_features == hidden
    assert sum(p.numel() for p in net.parameters()) == 784 * hidden + hidden + hidden * 10 + 10


@pytest.mark.parametrize("net", [NetLin(), NetFull(95), NetConv()])
def test_forward_gives_log_probabilities(net):
    x = torch.randn(5, 1, 28, 28)
    out = net(x)
    assert out.shape == (5, 10)
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(5), atol=1e-5)


def test_netconv_layer_shapes():
    rows = {r["layer"]: r["shapes"] for r in parameter_table(NetConv())}
    assert rows == {
        "conv1": [[16, 1, 3, 3], [16]],
        "conv2": [[32, 16, 3, 3], [32]],
        "fc1": [[128, 1568], [128]],
        "fc2": [[10, 128], [10]],
    }
