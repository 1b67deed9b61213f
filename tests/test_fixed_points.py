"""The SRN's fixed points and their eigenvalues (lightning_modules.fixed_points) on a net whose
answer is known by hand: U = diag(0.5, 2), no input weights, no bias, so both symbols' maps are
h -> (tanh(h1 / 2), tanh(2 h2)): fixed points (0, 0) (a saddle, eigenvalues 1/2 and 2) and
(0, +-h*) with tanh(2 h*) = h* (attracting, eigenvalues 1/2 and 2 (1 - h*^2))."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_modules.fixed_points import balance, fixed_points
from lightning_modules.recurrent_nets import Layout

LAYOUT = Layout("srn", 2, 2)


def known_net() -> torch.Tensor:
    flat = torch.zeros(LAYOUT.size, dtype=torch.float64)
    LAYOUT.views(flat)["weight_hh"].copy_(torch.tensor([[0.5, 0.0], [0.0, 2.0]]))
    return flat


def root() -> float:
    """tanh(2 h) = h, h > 0, by bisection: the oracle."""
    lo, hi = 0.5, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.tanh(2 * mid) > mid else (lo, mid)
    return lo


def test_the_fixed_points_and_eigenvalues_of_a_known_map():
    points = sorted(fixed_points(LAYOUT, known_net(), 0), key=lambda p: float(p.point[1]))
    h = root()
    assert [p.point.tolist() for p in points] == [pytest.approx([0.0, -h], abs=1e-10), pytest.approx([0.0, 0.0], abs=1e-10), pytest.approx([0.0, h], abs=1e-10)]
    assert [p.kind for p in points] == ["attracting", "saddle", "attracting"]
    assert sorted(points[1].eigenvalues.real.tolist()) == pytest.approx([0.5, 2.0], abs=1e-10)
    assert sorted(points[2].eigenvalues.real.tolist()) == pytest.approx(sorted([0.5, 2 * (1 - h * h)]), abs=1e-10)


def test_the_rates_cancel_for_one_b_per_a_and_not_for_two():
    """rate_a: the largest eigenvalue magnitude at the attracting points, max(1/2, 2 (1 - h*^2)) =
    1/2; rate_b: the saddle's, 2. ln(1/2) + k ln 2 is 0 for k = 1 and ln 2 for k = 2."""
    one, two = balance(LAYOUT, known_net(), 1), balance(LAYOUT, known_net(), 2)
    assert one.rate_a == pytest.approx(0.5) and one.rate_b == pytest.approx(2.0)
    assert one.balance == pytest.approx(0.0, abs=1e-12) and two.balance == pytest.approx(math.log(2.0))


def test_spearmans_rho_on_known_ranks():
    """rho = 1 - 6 sum d^2 / (n (n^2 - 1)) without ties: [1, 2, 3] against [1, 3, 2] is 0.5; ties
    take their mean rank (Pearson's r on the ranks: [0.5, 0.5, 2] against [0, 1, 2] is sqrt(3)/2)."""
    from orchestration.srn_dynamics import spearman

    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert spearman([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(math.sqrt(3) / 2)
