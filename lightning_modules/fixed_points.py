"""How an SRN counts, in numbers: each input symbol's map of the hidden state, its fixed points and
their eigenvalues (Rodriguez, Wiles & Elman 1999).

With one input held fixed, an SRN is a map h -> tanh(W x + U h + b) of its hidden state. In
Rodriguez et al.'s account of a^n b^n, the a-map has an attracting fixed point that the state
approaches by a factor |lambda_a| per a, and the b-map a saddle whose unstable direction the
state leaves by a factor |lambda_b| per b; the count is right for every n only when the two
cancel over a block: |lambda_a| |lambda_b|^k = 1 for a^n b^(k n). ``balance`` is the log of that
product; a net whose balance is off by beta loses the count after roughly tolerance / |beta|
symbols' worth of n, so 1 / |beta| should rank the nets by how far they count.

The map is the network's own step (``recurrent_nets.step``), its Jacobian from autograd
(``torch.func.jacrev``), in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lightning_modules.recurrent_nets import Layout, Weights, input_part, step


@dataclass(frozen=True)
class FixedPoint:
    """A fixed point ``point`` (H,) of one symbol's map, and its Jacobian's eigenvalues (H,)."""

    point: torch.Tensor
    eigenvalues: torch.Tensor

    @property
    def radius(self) -> float:
        """The largest eigenvalue magnitude: < 1 attracting, > 1 along some direction repelling."""
        return float(self.eigenvalues.abs().max())

    @property
    def kind(self) -> str:
        m = self.eigenvalues.abs()
        return "attracting" if bool((m < 1).all()) else ("repelling" if bool((m > 1).all()) else "saddle")


def symbol_map(layout: Layout, flat: torch.Tensor, symbol: int):
    """The hidden-state map of one SRN (``flat`` (P,)) with input ``symbol`` held: h (H,) -> h (H,)."""
    if layout.cell != "srn":
        raise ValueError("the fixed-point account is the SRN's: its state is its hidden units")
    w = Weights.of(layout, flat[None])
    x = torch.zeros(1, layout.num_symbols, 1, dtype=flat.dtype)
    x[0, symbol, 0] = 1.0
    xz = input_part(w, x)

    def f(h: torch.Tensor) -> torch.Tensor:
        return step(layout, w, (h[None, :, None],), xz)[0][0][0, :, 0]

    return f


def fixed_points(layout: Layout, flat: torch.Tensor, symbol: int, grid: int = 9, iterations: int = 60) -> list[FixedPoint]:
    """Every fixed point of ``symbol``'s map that Newton's method finds from a ``grid``^H lattice
    of starts in [-1, 1]^H (a tanh state lives there), deduplicated, with the eigenvalues of the
    map's Jacobian there; float64."""
    flat = flat.detach().double()
    f = symbol_map(layout, flat, symbol)
    jac = torch.func.jacrev(f)
    H = layout.hidden_units
    axes = [torch.linspace(-0.95, 0.95, grid, dtype=torch.float64)] * H
    starts = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, H)
    eye = torch.eye(H, dtype=torch.float64)
    found: list[FixedPoint] = []
    for h in starts:
        for _ in range(iterations):
            r = f(h) - h
            if float(r.abs().max()) < 1e-12:
                break
            try:
                h = h - torch.linalg.solve(jac(h) - eye, r)
            except RuntimeError:  # a singular step: give this start up
                break
            if not bool(h.isfinite().all()) or float(h.abs().max()) > 1.0:
                break
        else:
            continue
        if float((f(h) - h).abs().max()) >= 1e-10 or any(float((p.point - h).abs().max()) < 1e-7 for p in found):
            continue
        found.append(FixedPoint(h, torch.linalg.eigvals(jac(h))))
    return found


@dataclass(frozen=True)
class Balance:
    """Rodriguez et al.'s quantities for a^n b^(k n): ``rate_a``, the largest eigenvalue magnitude at
    the a-map's attracting fixed point; ``rate_b``, at the b-map's saddle (its unstable factor);
    either map's only fixed point when it is of another kind; ``balance`` = ln rate_a + k ln
    rate_b (0: they cancel). None when a map has no such point."""

    rate_a: float | None
    rate_b: float | None
    balance: float | None
    a_points: list[FixedPoint]
    b_points: list[FixedPoint]


def _rate(points: list[FixedPoint], kind: str) -> float | None:
    """The largest eigenvalue magnitude at the map's fixed point of the account's ``kind``, or at
    its only fixed point whatever its kind (a net that counts another way); None otherwise."""
    chosen = [p for p in points if p.kind == kind] or (points if len(points) == 1 else [])
    return max(p.radius for p in chosen) if chosen else None


def balance(layout: Layout, flat: torch.Tensor, k: int) -> Balance:
    """The a-map's and b-map's fixed points of one SRN and how far their rates cancel for a^n b^(k n)."""
    a_points, b_points = fixed_points(layout, flat, 0), fixed_points(layout, flat, 1)
    rate_a, rate_b = _rate(a_points, "attracting"), _rate(b_points, "saddle")
    value = math.log(rate_a) + k * math.log(rate_b) if rate_a and rate_b else None
    return Balance(rate_a, rate_b, value, a_points, b_points)


__all__ = ["FixedPoint", "Balance", "balance", "fixed_points", "symbol_map"]
