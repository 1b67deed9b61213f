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

``RTRL`` computes H_t by forward-mode differentiation through time (real-time recurrent
learning, Williams & Zipser 1989), by hand: the derivatives of the state with respect to the
weights (R, H, P) are carried from step to step, for R networks at once, through the same
formulas as ``recurrent_nets``. When the weights change after a symbol, the carried derivatives
are those of the old weights: the approximation every online RTRL/EKF method makes (the tests
check H_t against autograd's Jacobian for fixed weights, and the online step over two strings,
symbol by symbol, against the method written out with autograd's partial Jacobians of one step:
the next symbol's forward pass and Jacobian at the updated weights). On a model linear in its weights the
update is recursive least squares (tested: it reaches the regularised least-squares solution).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from base.errors import check_choice, check_int, check_positive, check_range
from lightning_modules.recurrent_nets import Layout


class DEKF(torch.optim.Optimizer):
    """The filter's state per parameter (a seed's flat weights ``(P,)``): P per group, the strings
    seen. ``step()`` does nothing (there is no gradient to follow); ``update`` is the filter's
    measurement update. ``attach(layout)`` sets the groups (before the first update)."""

    def __init__(self, params, p0: float = 100.0, r_start: float = 100.0, r_end: float = 3.0, q_start: float = 1e-2,
                 q_end: float = 1e-6, anneal_strings: int = 1000, decoupling: str = "units"):
        for key, value in (("p0", p0), ("r_start", r_start), ("r_end", r_end)):
            check_positive(key, value)
        for key, value in (("q_start", q_start), ("q_end", q_end)):
            check_range(key, value, 0)
        check_int("anneal_strings", anneal_strings, 1)
        check_choice("decoupling", decoupling, ("units", "none"))
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
        blocks = self._blocks(p)
        if r is None or q is None:
            r_now, q_now = self.annealed(self.state[p]["strings"])
            r, q = (r_now if r is None else r), (q_now if q is None else q)
        groups = self._groups(p)
        Hg = [H[:, g] for g in groups]
        PHt = [P @ h.T for P, h in zip(blocks, Hg)]  # (n_g, M)
        S = torch.eye(len(error), dtype=H.dtype, device=H.device) * r
        for h, pht in zip(Hg, PHt):
            S = S + h @ pht
        A = torch.linalg.inv(S)
        flat = p.data
        for k, (g, h, pht) in enumerate(zip(groups, Hg, PHt)):
            K = pht @ A  # (n_g, M)
            flat[g] += K @ error
            P = blocks[k] - K @ pht.T
            blocks[k] = 0.5 * (P + P.T) + q * torch.eye(len(g), dtype=P.dtype, device=P.device)  # kept symmetric against rounding


def weight_groups(layout: Layout, decoupling: str) -> list[torch.Tensor]:
    """Indices into the flat vector ``(P,)`` of each group: per hidden unit j every weight into
    its gates (rows j of each gate block of weight_ih, weight_hh and bias; its peepholes; the
    SRN's H0[j]), per output unit s its row of out_weight and its out_bias; or one group."""
    P = layout.size
    if decoupling == "none":
        return [torch.arange(P)]
    H, S = layout.hidden_units, layout.num_symbols
    index = torch.arange(P)
    views = layout.views(index)
    gates = 4 if layout.lstm else 1
    groups = []
    for j in range(H):
        rows = [g * H + j for g in range(gates)]
        parts = [views["weight_ih"][rows].flatten(), views["weight_hh"][rows].flatten(), views["bias"][rows]]
        if "peephole" in views:
            parts.append(views["peephole"][:, j])
        if "H0" in views:
            parts.append(views["H0"][j : j + 1])
        groups.append(torch.cat(parts))
    for s in range(S):
        groups.append(torch.cat([views["out_weight"][s], views["out_bias"][s : s + 1]]))
    assert sorted(torch.cat(groups).tolist()) == list(range(P))
    return groups


class RTRL:
    """Forward-mode derivatives through time for R networks on one sequence each: after each input,
    the logits ``(R, S)`` and their derivatives with respect to each network's flat weights
    ``(R, S, P)``. States start at the networks' initial states with zero derivatives."""

    def __init__(self, layout: Layout, flat: torch.Tensor):
        self.layout = layout
        R, P = flat.shape
        H = layout.hidden_units
        self._at = layout.views(torch.arange(P, device=flat.device))  # each weight's index in the flat vector
        v = layout.views(flat)
        if layout.lstm:
            self.h = flat.new_zeros(R, H)
            self.c = flat.new_zeros(R, H)
            self.dh = flat.new_zeros(R, H, P)
            self.dc = flat.new_zeros(R, H, P)
        else:  # h_0 = tanh(H0): dh_0/dH0 = 1 - h_0^2
            self.h = torch.tanh(v["H0"])
            self.c = None
            self.dh = flat.new_zeros(R, H, P)
            self.dh[:, torch.arange(H), self._at["H0"]] = 1 - self.h**2

    def _direct(self, name: str, cols: torch.Tensor, P: int) -> torch.Tensor:
        """d (M v)_i / d M[i', k] = delta_ii' v_k for a weight matrix ``name`` (rows, len(v)): (R, rows, P)
        with v placed at row i's weights."""
        idx = self._at[name]  # (rows, n)
        R, (rows, n) = cols.shape[0], idx.shape
        out = cols.new_zeros(R, rows, P)
        out.scatter_(2, idx.expand(R, rows, n), cols[:, None, :].expand(R, rows, n).contiguous())
        return out

    def step(self, flat: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One input ``x`` (R, S) one-hot with the weights ``flat`` (R, P) as they are now: the
        logits ``(R, S)`` and d logits / d w ``(R, S, P)``."""
        layout, R, P = self.layout, flat.shape[0], flat.shape[1]
        H, S = layout.hidden_units, layout.num_symbols
        v = layout.views(flat)
        Wx, Wh, b = v["weight_ih"], v["weight_hh"], v["bias"]
        G = Wh.shape[1]
        h, dh = self.h, self.dh
        z = torch.einsum("rgs,rs->rg", Wx, x) + torch.einsum("rgh,rh->rg", Wh, h) + b
        dz = self._direct("weight_ih", x, P) + self._direct("weight_hh", h, P) + torch.einsum("rgh,rhp->rgp", Wh, dh)
        dz[:, torch.arange(G), self._at["bias"]] += 1.0
        if layout.lstm:
            c, dc = self.c, self.dc
            zi, zf, zg, zo = z.view(R, 4, H).unbind(1)  # torch's order i, f, g, o
            dzi, dzf, dzg, dzo = dz.view(R, 4, H, P).unbind(1)
            if "peephole" in v:
                pe, at = v["peephole"], self._at["peephole"]  # (R, 3, H) and (3, H): input, forget, output
                zi, zf = zi + pe[:, 0] * c, zf + pe[:, 1] * c
                dzi = dzi + pe[:, 0, :, None] * dc
                dzf = dzf + pe[:, 1, :, None] * dc
                dzi[:, torch.arange(H), at[0]] += c
                dzf[:, torch.arange(H), at[1]] += c
            i, f, g = torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg)
            di = (i * (1 - i))[..., None] * dzi
            df = (f * (1 - f))[..., None] * dzf
            dg = (1 - g**2)[..., None] * dzg
            c_new = f * c + i * g
            dc_new = df * c[..., None] + f[..., None] * dc + di * g[..., None] + i[..., None] * dg
            if "peephole" in v:
                zo = zo + pe[:, 2] * c_new
                dzo = dzo + pe[:, 2, :, None] * dc_new
                dzo[:, torch.arange(H), at[2]] += c_new
            o = torch.sigmoid(zo)
            do = (o * (1 - o))[..., None] * dzo
            tc = torch.tanh(c_new)
            h_new = o * tc
            dh_new = do * tc[..., None] + o[..., None] * (1 - tc**2)[..., None] * dc_new
            self.c, self.dc = c_new, dc_new
        else:
            h_new = torch.tanh(z)
            dh_new = (1 - h_new**2)[..., None] * dz
        self.h, self.dh = h_new, dh_new
        V, cb = v["out_weight"], v["out_bias"]
        logits = torch.einsum("rsh,rh->rs", V, h_new) + cb
        dlogits = self._direct("out_weight", h_new, P) + torch.einsum("rsh,rhp->rsp", V, dh_new)
        dlogits[:, torch.arange(S), self._at["out_bias"]] += 1.0
        return logits, dlogits
