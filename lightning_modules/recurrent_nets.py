"""The SRN, LSTM (with or without peepholes) and GRU of the recurrent study, each defined once as
the forward computation of one time step (``step``), for R networks (seeds) at once.

Everything else is derived from that step:

- ``forward`` runs it over sequences (training, evaluation, the analysis traces); training takes
  its gradients from autograd (``losses(...).sum().backward()``);
- the Kalman filter's Jacobians (``ForwardJacobian``) carry forward-mode derivatives of the same
  step through time (``torch.func.jvp``: real-time recurrent learning, derived, not written out);
- ``RecurrentNet`` is one network as an ``nn.Module`` (its parameters named by the layout): what
  the analysis, the figures and ``load_from_checkpoint`` users hold;
- ``fused_logits``: one LSTM without peepholes through torch's fused ``nn.LSTM`` kernel (the same
  function, tested equal to the step; ~2x faster than the step for a single net on a CPU).

Networks of 2-3 units spend an update almost entirely in per-operation overhead, so R of them in
one computation cost little more than one: the step is written for stacked weights ``(R, ...)``
and states ``(R, H, B)`` (one column per sequence, as the products want them).

The flat layout (``Layout``) follows torch's parameter orientation and gate order (LSTM i, f, g,
o; GRU r, z, n): [``H0`` (H,), SRN], ``weight_ih`` (G, S), ``weight_hh`` (G, H), ``bias`` (G,),
[``bias_hn`` (H,), GRU], ``out_weight`` (S, H), ``out_bias`` (S,), [``peephole`` (3, H), LSTM],
G = H (SRN), 4H (LSTM) or 3H (GRU). The order is the order in which the initialisation draws the
weights, so a seed gets the weights it has always got. The reference's formulas have one bias per
gate; the GRU keeps torch's second bias of its candidate (``bias_hn``, inside the reset gate's
product), the one that is not redundant.

Shapes: R networks; B sequences each; T steps; S symbols; inputs ``(R, B, T, S)`` one-hot,
logits ``(R, B, T, S)``, states ``(R, B, T, H)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from base.errors import ConfigError, check
from lightning_modules.objectives import Objective

CELLS = ("srn", "lstm", "gru")
GATES = {"srn": 1, "lstm": 4, "gru": 3}  # rows of weight_ih per hidden unit
GATE_NAMES = {"srn": (), "lstm": ("input", "forget", "cell_input", "output"), "gru": ("reset", "update", "candidate")}


@dataclass(frozen=True)
class Layout:
    """Where each weight of one network sits in its flat vector."""

    cell: str
    num_symbols: int
    hidden_units: int
    peepholes: bool = False  # the LSTM's peephole weights (Gers & Schmidhuber 2001), last in the layout

    @property
    def lstm(self) -> bool:
        return self.cell == "lstm"

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        S, H = self.num_symbols, self.hidden_units
        G = GATES[self.cell] * H
        shapes = {"H0": (H,)} if self.cell == "srn" else {}
        shapes |= {"weight_ih": (G, S), "weight_hh": (G, H), "bias": (G,)}
        shapes |= {"bias_hn": (H,)} if self.cell == "gru" else {}
        shapes |= {"out_weight": (S, H), "out_bias": (S,)}
        # last, so that a seed's other weights are drawn as without peepholes
        return shapes | ({"peephole": (3, H)} if self.lstm and self.peepholes else {})

    @property
    def size(self) -> int:
        return sum(math.prod(s) for s in self.shapes.values())

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views ``{name: (..., *shape)}`` into flat vectors ``(..., P)``."""
        out, start, lead = {}, 0, flat.shape[:-1]
        for name, shape in self.shapes.items():
            n = math.prod(shape)
            out[name] = flat[..., start : start + n].view(*lead, *shape)
            start += n
        return out

    def flat_of(self, weights: dict) -> torch.Tensor:
        """One network's flat vector ``(P,)`` from weights given by name (``model.weights``: every
        name of ``shapes``, each a nested list of that shape); ``ConfigError`` naming the key
        otherwise."""
        if not isinstance(weights, dict) or set(weights) != set(self.shapes):
            got = sorted(weights) if isinstance(weights, dict) else type(weights).__name__
            raise ConfigError(f"weights={got} is invalid; allowed: exactly the keys {', '.join(self.shapes)} (cell={self.cell}, hidden_units={self.hidden_units})")
        parts = []
        for name, shape in self.shapes.items():
            try:
                value = torch.as_tensor(weights[name], dtype=torch.float32)
            except (TypeError, ValueError):
                value = None
            check(value is not None and tuple(value.shape) == shape and bool(value.isfinite().all()), f"weights.{name}",
                  weights[name] if value is None else f"an array of shape {list(value.shape)}", f"finite numbers of shape {list(shape)}")
            parts.append(value.flatten())
        return torch.cat(parts)

    def initial(self, init: str | float, generator: torch.Generator) -> torch.Tensor:
        """One network's initial flat vector: every weight from N(0, init) for a number (the
        reference's SRN: 0.001), or uniform in +-1/sqrt(H) for ``"uniform"`` (its LSTM); the
        weights are drawn one after the other in the layout's order."""
        parts = []
        for shape in self.shapes.values():
            if init == "uniform":
                bound = 1.0 / math.sqrt(self.hidden_units)
                parts.append(torch.rand(shape, generator=generator) * 2 * bound - bound)
            else:
                parts.append(torch.randn(shape, generator=generator) * float(init))
        return torch.cat([p.flatten() for p in parts])


# ---- the one step ------------------------------------------------------------------------------

# Inside the recurrence the LSTM's gate rows are reordered i, f, o, g, so that its three sigmoid
# gates form one block (one sigmoid a step); torch's order i, f, g, o everywhere else.
def _gate_order(H: int) -> torch.Tensor:
    return torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])


@dataclass
class Weights:
    """R networks' weights as the step uses them (views of flat vectors ``(R, P)``, or for the
    LSTM's gate rows a reordered copy; autograd flows back to the flat vectors either way)."""

    Wx: torch.Tensor  # (R, G, S): input weights
    Wh: torch.Tensor  # (R, G, H): recurrent weights
    b: torch.Tensor  # (R, G)
    V: torch.Tensor  # (R, S, H): output weights
    c: torch.Tensor  # (R, S)
    H0: Optional[torch.Tensor] = None  # (R, H): the SRN's learnable initial state, before its tanh
    P: Optional[torch.Tensor] = None  # (R, 3, H, 1): the LSTM's peepholes (input, forget, output gates)
    bhn: Optional[torch.Tensor] = None  # (R, H, 1): the GRU candidate's bias inside the reset gate's product

    @classmethod
    def of(cls, layout: Layout, flat: torch.Tensor) -> "Weights":
        v = layout.views(flat)
        Wx, Wh, b = v["weight_ih"], v["weight_hh"], v["bias"]
        if layout.lstm:
            order = _gate_order(layout.hidden_units).to(flat.device)
            Wx, Wh, b = Wx[:, order], Wh[:, order], b[:, order]
        peep, bhn = v.get("peephole"), v.get("bias_hn")
        return cls(Wx, Wh, b, v["out_weight"], v["out_bias"], v.get("H0"), None if peep is None else peep[..., None], None if bhn is None else bhn[..., None])


State = tuple[torch.Tensor, ...]  # (h,) or (h, c), each (R, H, B): column-major, one column per sequence


def initial_state(layout: Layout, w: Weights, B: int) -> State:
    """The state before the first input, ``(R, H, B)`` each: the SRN's h_0 = tanh(H0) (H0
    learnable), zeros for the LSTM (h and c) and the GRU."""
    if layout.cell == "srn":
        return (torch.tanh(w.H0)[:, :, None].expand(-1, -1, B),)
    zero = w.b.new_zeros(w.b.shape[0], layout.hidden_units, B)
    return (zero, zero) if layout.lstm else (zero,)


def input_part(w: Weights, x: torch.Tensor) -> torch.Tensor:
    """W_ih x + b of one-hot input columns ``x`` ``(R, S, N)`` for every gate: ``(R, G, N)`` (one
    product for every step of a sequence, computed before the recurrence)."""
    return torch.baddbmm(w.b[:, :, None], w.Wx, x)


def step(layout: Layout, w: Weights, state: State, xz: torch.Tensor) -> tuple[State, dict[str, torch.Tensor]]:
    """One time step of R networks: the state after an input whose ``input_part`` is ``xz``
    ``(R, G, B)``, and the gates ``(R, H, B)`` by name.

    - SRN: h_t = tanh(W x_t + U h_{t-1} + b)
    - LSTM: [i f g o] = [sig sig tanh sig](W x_t + U h_{t-1} + b), c_t = f c_{t-1} + i g,
      h_t = o tanh(c_t); with peepholes the input and forget gates add p c_{t-1}, the output gate
      p c_t (Gers & Schmidhuber 2001)
    - GRU: [r z] = sig(W x_t + U h_{t-1} + b), n = tanh(W_n x_t + b_n + r (U_n h_{t-1} + b_hn)),
      h_t = (1 - z) n + z h_{t-1} (torch's ``nn.GRU``)
    """
    h = state[0]
    H = layout.hidden_units
    if layout.cell == "srn":
        return (torch.tanh(torch.baddbmm(xz, w.Wh, h)),), {}
    if layout.cell == "gru":
        hz = torch.bmm(w.Wh, h)  # (R, 3H, B)
        rz = torch.sigmoid(xz[:, : 2 * H] + hz[:, : 2 * H])
        r, z = rz[:, :H], rz[:, H:]
        n = torch.tanh(torch.addcmul(xz[:, 2 * H :], r, hz[:, 2 * H :] + w.bhn))
        return (n + z * (h - n),), {"reset": r, "update": z, "candidate": n}
    c = state[1]
    z = torch.baddbmm(xz, w.Wh, h).view(-1, 4, H, h.shape[-1])  # (R, 4, H, B): i, f, o, g
    if w.P is None:
        s = torch.sigmoid(z[:, :3])
        i, f, o = s.unbind(1)
        g = torch.tanh(z[:, 3])
        c = torch.addcmul(f * c, i, g)
    else:  # the input and forget gates see c_{t-1}, the output gate c_t
        peep = w.P.unbind(1)  # (R, H, 1) each
        i = torch.sigmoid(torch.addcmul(z[:, 0], peep[0], c))
        f = torch.sigmoid(torch.addcmul(z[:, 1], peep[1], c))
        g = torch.tanh(z[:, 3])
        c = torch.addcmul(f * c, i, g)
        o = torch.sigmoid(torch.addcmul(z[:, 2], peep[2], c))
    return (o * torch.tanh(c), c), {"input": i, "forget": f, "cell_input": g, "output": o}


def output(w: Weights, h: torch.Tensor) -> torch.Tensor:
    """Logits ``(R, S, N)`` of hidden-state columns ``(R, H, N)``: V h + c."""
    return torch.baddbmm(w.c[:, :, None], w.V, h)


# ---- over sequences ----------------------------------------------------------------------------


def _padded(layout: Layout, flat: torch.Tensor, *per_row: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``flat`` (R, P) and tensors ``(R, B, ...)`` with rows added (no weights, no sequences:
    zeros, and -100 for long targets; padding that no result reads) up to a number of rows that
    makes every elementwise operation of the recurrence and the loss run over a multiple of 64
    numbers. torch's vectorised loops compute the last few elements of an odd-sized tensor with
    scalar code, whose tanh, sigmoid and exp round differently; with the padding a network's every
    number is computed the same way whatever the other networks are (bit for bit alone, in a
    population, or split over processes)."""
    R, B = flat.shape[0], per_row[0].shape[1]
    extra = -R % (64 // math.gcd(layout.hidden_units * B, 64))
    if not extra:
        return (flat, *per_row)
    return tuple(torch.cat([t, torch.full((extra, *t.shape[1:]), -100, dtype=t.dtype, device=t.device) if t.dtype == torch.long else t.new_zeros(extra, *t.shape[1:])])
                 for t in (flat, *per_row))


def real_steps(valid: torch.Tensor) -> int:
    """The longest real sequence in ``valid`` ``(R, B, T)``: the steps worth computing."""
    return int(valid.any(dim=1).any(dim=0).nonzero().max()) + 1 if valid.any() else 0


def _over_time(columns: list[torch.Tensor], zero: torch.Tensor, T: int) -> torch.Tensor:
    """Per-step ``(R, F, B)`` columns -> ``(R, F, T, B)``, ``zero`` for the steps after them."""
    return torch.stack(columns + [zero] * (T - len(columns)), dim=2)


def forward(layout: Layout, flat: torch.Tensor, inputs: torch.Tensor, valid: Optional[torch.Tensor] = None, trace: bool = False,
            steps: Optional[int] = None) -> dict:
    """R networks (flat vectors ``(R, P)``) on their own sequences ``inputs`` ``(R, B, T, S)``.

    Returns ``logits`` ``(R, B, T, S)``; with ``trace``, also ``hidden`` (the LSTM's ``cell``, and
    the gates by name, ``GATE_NAMES``), each ``(R, B, T, H)``, and ``initial`` ``(R, H)``, the
    state before the first input. Only the steps up to the longest real sequence (``valid``,
    ``(R, B, T)``, or ``steps`` when the caller knows it) are computed; later logits are the output
    bias. Differentiable: gradients flow back to ``flat``."""
    R, B, T, S = inputs.shape
    if steps is None:
        steps = T if valid is None else real_steps(valid)
    flat, inputs = _padded(layout, flat, inputs)
    Rp = flat.shape[0]
    w = Weights.of(layout, flat)
    # every product runs over all T steps' columns (zeros after the longest real sequence, whose
    # logits are then the output bias): the same sums in the same order whatever length the other
    # networks' sequences asked for
    x = inputs.permute(0, 3, 2, 1).reshape(Rp, S, T * B)  # time-major columns: t B + b
    xz = input_part(w, x).view(Rp, -1, T, B).unbind(2)
    state = initial_state(layout, w, B)
    kept: dict[str, list[torch.Tensor]] = {"hidden": []}
    for t in range(steps):
        state, gates = step(layout, w, state, xz[t])
        kept["hidden"].append(state[0])
        if trace:
            if layout.lstm:
                kept.setdefault("cell", []).append(state[1])
            for name, value in gates.items():
                kept.setdefault(name, []).append(value)
    H = layout.hidden_units
    zero = w.c.new_zeros(Rp, H, B)
    hidden = _over_time(kept["hidden"], zero, T).view(Rp, H, T * B)
    logits = output(w, hidden).view(Rp, S, T, B).permute(0, 3, 2, 1)  # (R, B, T, S)
    out = {"logits": logits}
    if trace:
        out["initial"] = initial_state(layout, w, 1)[0][:, :, 0]
        out |= {name: _over_time(values, zero, T).permute(0, 3, 2, 1) for name, values in kept.items()}  # (R, B, T, H)
    return {k: v[:R] for k, v in out.items()}


def losses(layout: Layout, flat: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, objective: Objective,
           steps: Optional[int] = None) -> torch.Tensor:
    """Each network's training loss ``(R,)``: ``objective``'s mean over its real positions
    (targets >= 0), on ``inputs`` (R, B, T, S) one-hot; differentiable with respect to ``flat``
    (R, P). ``steps``: the longest real sequence, when the caller knows it (else read from
    ``valid``). The loss is computed over the padding rows too (see ``_padded``), then left out."""
    R = flat.shape[0]
    flat, inputs, targets, valid = _padded(layout, flat, inputs, targets, valid)
    logits = forward(layout, flat, inputs, valid, steps=steps)["logits"]
    return objective.mean_loss(logits, targets, inputs)[:R]


def penalty(flat: torch.Tensor, l1: float) -> torch.Tensor:
    """The weight regulariser of each network ``(R,)``: ``l1`` times the sum of its weights' magnitudes."""
    return l1 * flat.abs().sum(dim=-1)


# ---- forward-mode derivatives through time (the Kalman filter's Jacobians) ---------------------


class ForwardJacobian:
    """For R networks on one sequence each, after each input: the logits ``(R, S)`` (and what a
    function ``head`` of them gives) with their derivatives with respect to each network's own
    flat weights, ``(R, S, P)``.

    Real-time recurrent learning (Williams & Zipser 1989) derived from ``step``: the state's
    derivatives ``d state / d w`` are carried from step to step as the tangents
    of ``torch.func.jvp`` of the step (one tangent per weight, batched by ``torch.func.vmap``): the
    tangent of weight p is the unit vector e_p in every network's row, so row r's derivative is
    network r's own (states ``(P, R, H, 1)``). When the weights change after a symbol, the carried
    derivatives are those of the old weights: the approximation every online RTRL/EKF method makes."""

    def __init__(self, layout: Layout, flat: torch.Tensor):
        self.layout = layout
        R, P = flat.shape
        self.tangents = torch.eye(P, dtype=flat.dtype, device=flat.device)[:, None, :].expand(P, R, P)

        def initial(f):
            return initial_state(layout, Weights.of(layout, f), 1)

        self.state = initial(flat)
        self.dstate = torch.func.vmap(lambda e: torch.func.jvp(initial, (flat,), (e,))[1])(self.tangents)

    def step(self, flat: torch.Tensor, x: torch.Tensor, head=None) -> tuple[torch.Tensor, ...]:
        """One input ``x`` (R, S) one-hot with the weights ``flat`` (R, P) as they are now: the
        logits ``(R, S)`` and their Jacobian ``(R, S, P)``; with ``head`` (a function of the logits
        and the weights giving ``(R, M)``, e.g. the filter's outputs), also its value and Jacobian
        ``(R, M, P)``."""
        (self.state, values), (self.dstate, derivatives) = advance(self.layout, head, flat, self.state, self.dstate, x, self.tangents)
        return tuple(v for pair in zip(values, derivatives) for v in (pair[0], pair[1].permute(1, 2, 0)))


def advance(layout: Layout, head, flat: torch.Tensor, state: State, dstate: State, x: torch.Tensor, tangents: torch.Tensor):
    """``ForwardJacobian.step`` as a function (what ``torch.compile`` takes): the state after input
    ``x`` (R, S) and the logits (and ``head``'s value), then their tangents ``(P, ...)``, one per
    weight: ``((state, values), (dstate, derivatives))``."""

    def one(f, st):
        w = Weights.of(layout, f)
        new, _ = step(layout, w, st, input_part(w, x[:, :, None]))
        logits = output(w, new[0])[:, :, 0]
        return new, (logits, head(logits, f)) if head is not None else (logits,)

    def tangent(e, ds):
        return torch.func.jvp(one, (flat, state), (e, ds))

    return torch.func.vmap(tangent, out_dims=(None, 0))(tangents, dstate)


# ---- one network as a module --------------------------------------------------------------------


class RecurrentNet(nn.Module):
    """One SRN, LSTM or GRU: a parameter per weight of the layout (``weight_ih`` (G, S), ...), its
    forward pass the step over the sequence with R = 1 (``trace`` also returns the states and
    gates). It starts uniform in +-1/sqrt(H), as torch's ``nn.LSTM`` does."""

    def __init__(self, cell: str, num_symbols: int, hidden_units: int, peepholes: bool = False):
        super().__init__()
        self.cell, self.hidden_units, self.num_symbols = cell, hidden_units, num_symbols
        self.layout = Layout(cell, num_symbols, hidden_units, peepholes)
        for name, shape in self.layout.shapes.items():
            self.register_parameter(name, nn.Parameter(torch.zeros(shape)))
        self.load_flat(self.layout.initial("uniform", torch.default_generator))  # as torch's recurrent modules start

    def flat(self, detach: bool = True) -> torch.Tensor:
        """The weights as one flat vector ``(P,)`` (the layout's order); ``detach=False``: autograd
        flows back to the parameters."""
        return torch.cat([(getattr(self, k).detach() if detach else getattr(self, k)).flatten() for k in self.layout.shapes])

    @torch.no_grad()
    def load_flat(self, flat: torch.Tensor) -> "RecurrentNet":
        for name, value in self.layout.views(flat.detach().to(self.weight_ih.device)).items():
            getattr(self, name).copy_(value)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One-hot inputs (B, T, S) -> logits (B, T, S) (differentiable)."""
        return forward(self.layout, self.flat(detach=False)[None], x[None])["logits"][0]

    def trace(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The recurrence on ``x`` (B, T, S): ``hidden``, for the LSTM ``cell``, the gates by name
        (``GATE_NAMES``), each (B, T, H); ``logits`` (B, T, S); ``initial`` (B, H), the state
        before the first input."""
        out = forward(self.layout, self.flat()[None], x[None], trace=True)
        out = {k: v[0] for k, v in out.items()}
        out["initial"] = out["initial"].expand(x.shape[0], -1)
        return out


class SRN(RecurrentNet):
    """Elman network: h_t = tanh(x_t W + h_{t-1} U + b), h_0 = tanh(H0) with H0 learnable."""

    def __init__(self, num_symbols: int, hidden_units: int):
        super().__init__("srn", num_symbols, hidden_units)


class LSTM(RecurrentNet):
    """LSTM, gates i, f, g, o (with peepholes: Gers & Schmidhuber 2001), h_0 = c_0 = 0."""

    def __init__(self, num_symbols: int, hidden_units: int, peepholes: bool = False):
        super().__init__("lstm", num_symbols, hidden_units, peepholes)


class GRU(RecurrentNet):
    """GRU (torch's ``nn.GRU`` formulas), gates r, z and the candidate n, h_0 = 0."""

    def __init__(self, num_symbols: int, hidden_units: int):
        super().__init__("gru", num_symbols, hidden_units)


def make_net(cell: str, num_symbols: int, hidden_units: int, peepholes: bool = False) -> RecurrentNet:
    """One SRN, LSTM (with peepholes, for an LSTM that has them) or GRU."""
    return LSTM(num_symbols, hidden_units, peepholes) if cell == "lstm" else {"srn": SRN, "gru": GRU}[cell](num_symbols, hidden_units)


FUSED_CELLS = ("srn", "lstm")  # the cells torch has a fused kernel for that computes the reference's formulas


class _Fused(nn.Module):
    """torch's ``nn.RNN`` (tanh) or ``nn.LSTM`` and the output layer: the template ``fused_logits``
    fills with block-diagonal weights."""

    def __init__(self, cell: str, inputs: int, hidden: int):
        super().__init__()
        self.rnn = (nn.LSTM if cell == "lstm" else nn.RNN)(inputs, hidden, batch_first=True)
        self.out = nn.Linear(hidden, inputs)

    def forward(self, x: torch.Tensor, h0: Optional[torch.Tensor]) -> torch.Tensor:
        return self.out(self.rnn(x)[0] if h0 is None else self.rnn(x, h0)[0])


_FUSED: dict[tuple, _Fused] = {}


def _blocks(weights: torch.Tensor, gates: int) -> torch.Tensor:
    """R networks' ``(R, gates * H, F)`` weights as one block-diagonal ``(gates * R H, R F)``
    matrix, gate by gate (torch's layout for one network of R H units)."""
    return torch.cat([torch.block_diag(*part.unbind(0)) for part in weights.chunk(gates, dim=1)])


def fused_logits(layout: Layout, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """R SRNs or LSTMs (without peepholes) through torch's fused ``nn.RNN`` / ``nn.LSTM`` kernel
    with the weights of the flat vectors ``flat`` (R, P), differentiable with respect to
    ``flat``: logits (R, B, T, S) of one-hot inputs ``x`` (R, B, T, S).

    The R networks run as one network of R H units whose weights are block-diagonal (network r's
    units see only its own inputs and units), so one kernel call computes them all:
    ``torch.func.functional_call`` puts those matrices in place of the template's parameters for
    this one call. torch's second bias (``bias_hh``) is held at zero: the reference's formulas
    have one bias per gate. The other networks' blocks are zeros, so each network computes its
    own formulas, but the kernel's sums then add zeros in other places than for a network alone:
    a seed follows its run alone to float rounding, not bit for bit (the step does that)."""
    if layout.cell not in FUSED_CELLS or layout.peepholes:
        raise ValueError("torch's fused kernels train SRNs and LSTMs without peepholes; use the step (forward)")
    R, B, T, S = x.shape
    H = layout.hidden_units
    gates = GATES[layout.cell]
    key = (layout.cell, R * S, R * H, flat.device, flat.dtype)
    if key not in _FUSED:
        _FUSED[key] = _Fused(layout.cell, R * S, R * H).to(device=flat.device, dtype=flat.dtype).requires_grad_(False)
    v = layout.views(flat)
    bias = v["bias"].view(R, gates, H).transpose(0, 1).reshape(-1)
    params = {"rnn.weight_ih_l0": _blocks(v["weight_ih"], gates), "rnn.weight_hh_l0": _blocks(v["weight_hh"], gates), "rnn.bias_ih_l0": bias,
              "rnn.bias_hh_l0": torch.zeros_like(bias), "out.weight": torch.block_diag(*v["out_weight"].unbind(0)), "out.bias": v["out_bias"].reshape(-1)}
    h0 = torch.tanh(v["H0"]).reshape(1, 1, R * H).expand(1, B, R * H).contiguous() if layout.cell == "srn" else None
    logits = torch.func.functional_call(_FUSED[key], params, (x.permute(1, 2, 0, 3).reshape(B, T, R * S), h0))
    return logits.view(B, T, R, S).permute(2, 0, 1, 3)
