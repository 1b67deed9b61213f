"""Training by the decoupled extended Kalman filter (DEKF; Puskorius & Feldkamp 1994), as Gers,
Pérez-Ortiz, Eck & Schmidhuber (2002) and Pérez-Ortiz et al. (2003) trained LSTMs on a^n b^n c^n.

The weights w are the state the filter estimates; every symbol of a string is a measurement: the
outputs y_t (S,) should be the targets d_t (the legal next symbols, or the next symbol one-hot),
linearised through H_t = dy_t/dw (S, P), the outputs' derivatives with respect to every weight
through the whole string so far. After each symbol (online, one string at a time):

    A   = (R I + sum_g H_g P_g H_g^T)^-1          (S, S)
    K_g = P_g H_g^T A                              (n_g, S)
    w_g += K_g (d_t - y_t)
    P_g  = P_g - K_g H_g P_g + Q I

with the weights split into groups g (``decoupling="units"``: one group per hidden unit, all the
weights into its gates, and one per output unit; ``"none"``: one group, the global EKF) so that P
is block-diagonal. R (measurement noise) and Q (process noise) are annealed log-linearly from
their start to their end over ``anneal_strings`` strings; P starts as ``p0 I``.

``recurrent_nets.ForwardJacobian`` gives H_t: forward-mode autodiff of the networks' one step,
carried through time (real-time recurrent learning, Williams & Zipser 1989), derived from the
step rather than written out. When the weights change after a symbol, the carried derivatives
are those of the old weights: the approximation every online RTRL/EKF method makes (the tests
check H_t against autograd's Jacobian for fixed weights, and the online step over two strings,
symbol by symbol, against the method written out with autograd's partial Jacobians of one step).
On a model linear in its weights the update is recursive least squares (tested: it reaches the
regularised least-squares solution).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from base.errors import check, check_choice, check_int, check_positive, check_range
from lightning_modules.recurrent_nets import GATES, Layout


class DEKF(torch.optim.Optimizer):
    """The filter's state per parameter (a seed's flat weights ``(P,)``): P per group, the strings
    seen. ``step()`` does nothing (there is no gradient to follow); ``update`` is the filter's
    measurement update. ``attach(layout)`` sets the groups (before the first update).
    ``compiled``: the module runs each symbol's Jacobians and update through ``torch.compile``
    (one call instead of a few hundred small operations; docs/speed.md)."""

    def __init__(self, params, p0: float = 100.0, r_start: float = 100.0, r_end: float = 3.0, q_start: float = 1e-2,
                 q_end: float = 1e-6, anneal_strings: int = 1000, decoupling: str = "units", compiled: bool = True):
        for key, value in (("p0", p0), ("r_start", r_start), ("r_end", r_end)):
            check_positive(key, value)
        for key, value in (("q_start", q_start), ("q_end", q_end)):
            check_range(key, value, 0)
        check_int("anneal_strings", anneal_strings, 1)
        check_choice("decoupling", decoupling, ("units", "none"))
        check(isinstance(compiled, bool), "compiled", compiled, "true or false")
        self.compiled = compiled
        super().__init__(params, dict(p0=p0, r_start=r_start, r_end=r_end, q_start=q_start, q_end=q_end, anneal_strings=anneal_strings, decoupling=decoupling))
        self.groups_of: Optional[list[torch.Tensor]] = None

    def attach(self, layout: Layout) -> None:
        self.groups_of = weight_groups(layout, self.defaults["decoupling"])

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            with torch.enable_grad():
                closure()
        return None

    def annealed(self, strings: int) -> tuple[float, float]:
        """R and Q after ``strings`` strings: log-linear from start to end, then constant (a zero end
        of Q is reached at the end of the annealing)."""
        d = self.defaults
        frac = min(strings / d["anneal_strings"], 1.0)

        def between(a, b):
            if a == 0 or b == 0:
                return a + (b - a) * frac
            return math.exp(math.log(a) + (math.log(b) - math.log(a)) * frac)

        return between(d["r_start"], d["r_end"]), between(d["q_start"], d["q_end"])

    def _groups(self, p: torch.Tensor) -> list[torch.Tensor]:
        """The index groups of ``p``'s weights (one group before ``attach``)."""
        return self.groups_of or [torch.arange(p.numel(), device=p.device)]

    def _blocks(self, p: torch.Tensor) -> list[torch.Tensor]:
        state = self.state[p]
        if "P" not in state:
            state["P"] = [torch.eye(len(g), dtype=p.dtype, device=p.device) * self.defaults["p0"] for g in self._groups(p)]
            state["strings"] = 0
        return state["P"]

    def strings_seen(self, p: torch.Tensor) -> int:
        self._blocks(p)
        return self.state[p]["strings"]

    def end_string(self, p: torch.Tensor) -> None:
        self._blocks(p)
        self.state[p]["strings"] += 1

    @torch.no_grad()
    def update(self, p: torch.Tensor, H: torch.Tensor, error: torch.Tensor, r: Optional[float] = None, q: Optional[float] = None) -> None:
        """One measurement update of parameter ``p`` (P,): Jacobian ``H`` (M, P) of the M outputs,
        ``error`` = targets - outputs (M,). ``r``/``q``: the noise (default: annealed by the strings seen)."""
        self.update_many([p], H[None], error[None], r, q)

    @torch.no_grad()
    def update_many(self, params: list[torch.Tensor], H: torch.Tensor, error: torch.Tensor, r: Optional[float] = None, q: Optional[float] = None) -> None:
        """The measurement update of R parameters (one seed's flat weights each, the same groups)
        at once, as batched matrix products: Jacobians ``H`` (R, M, P), ``error`` (R, M). Each
        parameter's noise is annealed by the strings it has seen unless ``r``/``q`` are given."""
        r_all, q_all = self.noise_of(params, H.dtype, H.device)
        if r is not None:
            r_all = torch.full_like(r_all, r)
        if q is not None:
            q_all = torch.full_like(q_all, q)
        flat, blocks = kalman_update(torch.stack([p.data for p in params]), H, error, self.blocks_of(params), tuple(self._groups(params[0])), r_all, q_all)
        self.store(params, flat, blocks)

    def blocks_of(self, params: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """P of each group for the parameters ``params``, stacked: ``(R, n_g, n_g)`` per group."""
        blocks = [self._blocks(p) for p in params]
        return tuple(torch.stack([b[k] for b in blocks]) for k in range(len(blocks[0])))

    def noise_of(self, params: list[torch.Tensor], dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        """R and Q of each parameter, annealed by the strings it has seen: ``(R, 1, 1)`` each."""
        for p in params:
            self._blocks(p)
        noise = [self.annealed(self.state[p]["strings"]) for p in params]
        return tuple(torch.tensor([n[k] for n in noise], dtype=dtype, device=device)[:, None, None] for k in range(2))

    @torch.no_grad()
    def store(self, params: list[torch.Tensor], flat: torch.Tensor, blocks: tuple[torch.Tensor, ...]) -> None:
        """Updated weights ``flat`` (R, P) and P blocks (``blocks_of``'s shapes) back into the
        parameters and the filter's state."""
        for i, p in enumerate(params):
            p.data.copy_(flat[i])
            self.state[p]["P"] = [b[i] for b in blocks]


def kalman_update(flat: torch.Tensor, H: torch.Tensor, error: torch.Tensor, blocks: tuple[torch.Tensor, ...], groups: tuple[torch.Tensor, ...],
                  r: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The filter's measurement update (the module docstring's equations) of R networks at once:
    weights ``flat`` (R, P), Jacobians ``H`` (R, M, P), ``error`` = targets - outputs (R, M), P of
    each group ``blocks`` (R, n_g, n_g) with the weight indices ``groups``, noise ``r``, ``q``
    (R, 1, 1). Returns the new weights and blocks. Every product is batched over the networks and
    acts on each alone."""
    Hg = [H[:, :, g] for g in groups]  # (R, M, n_g)
    PHt = [P @ h.transpose(1, 2) for P, h in zip(blocks, Hg)]  # (R, n_g, M)
    S = torch.eye(H.shape[1], dtype=H.dtype, device=H.device) * r
    for h, pht in zip(Hg, PHt):
        S = S + h @ pht
    A = torch.linalg.inv(S)
    flat = flat.clone()
    new = []
    for g, pht, P in zip(groups, PHt, blocks):
        K = pht @ A  # (R, n_g, M)
        flat[:, g] += (K @ error[:, :, None])[..., 0]
        P = P - K @ pht.transpose(1, 2)
        new.append(0.5 * (P + P.transpose(1, 2)) + q * torch.eye(len(g), dtype=P.dtype, device=P.device))  # kept symmetric against rounding
    return flat, tuple(new)


def weight_groups(layout: Layout, decoupling: str) -> list[torch.Tensor]:
    """Indices into the flat vector ``(P,)`` of each group: per hidden unit j every weight into
    its gates (rows j of each gate block of weight_ih, weight_hh and bias; its peepholes; the
    GRU's bias_hn[j]; the SRN's H0[j]), per output unit s its row of out_weight and its out_bias;
    or one group."""
    P = layout.size
    if decoupling == "none":
        return [torch.arange(P)]
    H, S = layout.hidden_units, layout.num_symbols
    index = torch.arange(P)
    views = layout.views(index)
    gates = GATES[layout.cell]
    groups = []
    for j in range(H):
        rows = [g * H + j for g in range(gates)]
        parts = [views["weight_ih"][rows].flatten(), views["weight_hh"][rows].flatten(), views["bias"][rows]]
        if "peephole" in views:
            parts.append(views["peephole"][:, j])
        for name in ("H0", "bias_hn"):
            if name in views:
                parts.append(views[name][j : j + 1])
        groups.append(torch.cat(parts))
    for s in range(S):
        groups.append(torch.cat([views["out_weight"][s], views["out_bias"][s : s + 1]]))
    assert sorted(torch.cat(groups).tolist()) == list(range(P))
    return groups
