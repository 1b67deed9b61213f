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
and states ``(R, B, H)``.

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

State = tuple[torch.Tensor, ...]  # (h,) or (h, c), each (R, B, H)


def initial_state(layout: Layout, w: dict[str, torch.Tensor], B: int) -> State:
    """The state before the first input, ``(R, B, H)`` each: the SRN's h_0 = tanh(H0) (H0
    learnable), zeros for the LSTM (h and c) and the GRU."""
    if layout.cell == "srn":
        return (torch.tanh(w["H0"])[:, None, :].expand(-1, B, -1),)
    R, H = w["bias"].shape[0], layout.hidden_units
    zero = w["bias"].new_zeros(R, B, H)
    return (zero, zero) if layout.lstm else (zero,)


def input_part(w: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """x W_ih^T + b of inputs ``x`` ``(R, N, S)`` for every gate: ``(R, N, G)`` (one product for
    every step of a sequence, computed before the recurrence)."""
    return torch.baddbmm(w["bias"][:, None, :], x, w["weight_ih"].transpose(1, 2))


def step(layout: Layout, w: dict[str, torch.Tensor], state: State, xz: torch.Tensor) -> tuple[State, dict[str, torch.Tensor]]:
    """One time step of R networks: the state after an input whose ``input_part`` is ``xz``
    ``(R, B, G)``, and the gates ``(R, B, H)`` by name.

    - SRN: h_t = tanh(x_t W + h_{t-1} U + b)
    - LSTM: [i f g o] = [sig sig tanh sig](x_t W + h_{t-1} U + b), c_t = f c_{t-1} + i g,
      h_t = o tanh(c_t); with peepholes the input and forget gates add p c_{t-1}, the output gate
      p c_t (Gers & Schmidhuber 2001)
    - GRU: [r z] = sig(x_t W + h_{t-1} U + b), n = tanh(x_t W_n + b_n + r (h_{t-1} U_n + b_hn)),
      h_t = (1 - z) n + z h_{t-1} (torch's ``nn.GRU``)
    """
    h = state[0]
    hz = torch.bmm(h, w["weight_hh"].transpose(1, 2))  # (R, B, G)
    if layout.cell == "srn":
        return (torch.tanh(xz + hz),), {}
    if layout.cell == "gru":
        H = layout.hidden_units
        rz = torch.sigmoid(xz[..., : 2 * H] + hz[..., : 2 * H])
        r, z = rz[..., :H], rz[..., H:]
        n = torch.tanh(xz[..., 2 * H :] + r * (hz[..., 2 * H :] + w["bias_hn"][:, None, :]))
        return (n + z * (h - n),), {"reset": r, "update": z, "candidate": n}
    c = state[1]
    zi, zf, zg, zo = (xz + hz).chunk(4, dim=-1)
    peep = w.get("peephole")
    if peep is not None:  # (R, 3, H): input, forget, output
        zi = zi + peep[:, None, 0] * c
        zf = zf + peep[:, None, 1] * c
    i, f, g = torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(zg)
    c = f * c + i * g
    if peep is not None:
        zo = zo + peep[:, None, 2] * c
    o = torch.sigmoid(zo)
    return (o * torch.tanh(c), c), {"input": i, "forget": f, "cell_input": g, "output": o}


def output(w: dict[str, torch.Tensor], h: torch.Tensor) -> torch.Tensor:
    """Logits ``(R, N, S)`` of hidden states ``(R, N, H)``: h V^T + c."""
    return torch.baddbmm(w["out_bias"][:, None, :], h, w["out_weight"].transpose(1, 2))


# ---- over sequences ----------------------------------------------------------------------------


def _padded(layout: Layout, flat: torch.Tensor, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``flat`` (R, P) and ``inputs`` (R, ...) with rows of zeros added (no weights, no sequences:
    padding that no result reads) up to a number of rows that makes every elementwise operation
    of the recurrence run over a multiple of 64 numbers. torch's vectorised loops compute the last
    few elements of an odd-sized tensor with scalar code, whose tanh and sigmoid round
    differently; with the padding a network's every number is computed the same way whatever the
    other networks are (bit for bit alone, in a population, or split over processes)."""
    R, B = flat.shape[0], inputs.shape[1]
    extra = -R % (64 // math.gcd(layout.hidden_units * B, 64))
    if not extra:
        return flat, inputs
    return (torch.cat([flat, flat.new_zeros(extra, *flat.shape[1:])]), torch.cat([inputs, inputs.new_zeros(extra, *inputs.shape[1:])]))


def real_steps(valid: torch.Tensor) -> int:
    """The longest real sequence in ``valid`` ``(R, B, T)``: the steps worth computing."""
    return int(valid.any(dim=1).any(dim=0).nonzero().max()) + 1 if valid.any() else 0


def forward(layout: Layout, flat: torch.Tensor, inputs: torch.Tensor, valid: Optional[torch.Tensor] = None, trace: bool = False) -> dict:
    """R networks (flat vectors ``(R, P)``) on their own sequences ``inputs`` ``(R, B, T, S)``.

    Returns ``logits`` ``(R, B, T, S)``; with ``trace``, also ``hidden`` (the LSTM's ``cell``, and
    the gates by name, ``GATE_NAMES``), each ``(R, B, T, H)``, and ``initial`` ``(R, H)``, the
    state before the first input. Only the steps up to the longest real sequence (``valid``,
    ``(R, B, T)``) are computed; later logits are the output bias. Differentiable: gradients flow
    back to ``flat``."""
    R, B, T, S = inputs.shape
    steps = T if valid is None else real_steps(valid)
    flat, inputs = _padded(layout, flat, inputs)
    Rp = flat.shape[0]
    w = layout.views(flat)
    xz = input_part(w, inputs[:, :, :steps].transpose(1, 2).reshape(Rp, steps * B, S)).view(Rp, steps, B, -1)  # time-major
    state = initial_state(layout, w, B)
    kept: dict[str, list[torch.Tensor]] = {"hidden": [], **({"cell": []} if layout.lstm and trace else {})}
    for t in range(steps):
        state, gates = step(layout, w, state, xz[:, t])
        kept["hidden"].append(state[0])
        if trace:
            if layout.lstm:
                kept["cell"].append(state[1])
            for name, value in gates.items():
                kept.setdefault(name, []).append(value)
    H = layout.hidden_units

    def by_sequence(values: list[torch.Tensor], width: int) -> torch.Tensor:
        """Per-step (R, B, F) tensors -> (R, B, T, F), zeros after the real steps."""
        out = torch.stack(values, dim=2) if values else flat.new_zeros(Rp, B, 0, width)
        return torch.cat([out, out.new_zeros(Rp, B, T - steps, width)], dim=2) if steps < T else out

    hidden = by_sequence(kept["hidden"], H)
    logits = output(w, hidden.reshape(Rp, B * T, H)).view(Rp, B, T, S)
    if steps < T:  # padding positions carry the output bias, as a network run over zeros would not
        logits = torch.cat([logits[:, :, :steps], w["out_bias"][:, None, None, :].expand(Rp, B, T - steps, S)], dim=2)
    out = {"logits": logits}
    if trace:
        out["initial"] = initial_state(layout, w, 1)[0][:, 0]
        out |= {name: by_sequence(values, H) for name, values in kept.items()}
    return {k: v[:R] for k, v in out.items()}


def penalty(flat: torch.Tensor, l1: float) -> torch.Tensor:
    """The weight regulariser of each network ``(R,)``: ``l1`` times the sum of its weights' magnitudes."""
    return l1 * flat.abs().sum(dim=-1)


# ---- forward-mode derivatives through time (the Kalman filter's Jacobians) ---------------------


class ForwardJacobian:
    """For R networks on one sequence each, after each input: the logits ``(R, S)`` (and what a
    function ``head`` of them gives) with their derivatives with respect to each network's own
    flat weights, ``(R, S, P)``.

    Real-time recurrent learning (Williams & Zipser 1989) derived from ``step``: the state's
    derivatives ``d state / d w`` ``(P, R, 1, H)`` are carried from step to step as the tangents
    of ``torch.func.jvp`` of the step (one tangent per weight, batched by ``torch.func.vmap``): the
    tangent of weight p is the unit vector e_p in every network's row, so row r's derivative is
    network r's own. When the weights change after a symbol, the carried derivatives are those of
    the old weights: the approximation every online RTRL/EKF method makes."""

    def __init__(self, layout: Layout, flat: torch.Tensor):
        self.layout = layout
        R, P = flat.shape
        self.tangents = torch.eye(P, dtype=flat.dtype, device=flat.device)[:, None, :].expand(P, R, P)

        def initial(f):
            return initial_state(layout, layout.views(f), 1)

        self.state = initial(flat)
        self.dstate = torch.func.vmap(lambda e: torch.func.jvp(initial, (flat,), (e,))[1])(self.tangents)

    def step(self, flat: torch.Tensor, x: torch.Tensor, head=None) -> tuple[torch.Tensor, ...]:
        """One input ``x`` (R, S) one-hot with the weights ``flat`` (R, P) as they are now: the
        logits ``(R, S)`` and their Jacobian ``(R, S, P)``; with ``head`` (a function of the logits
        and the weights giving ``(R, M)``, e.g. the filter's outputs), also its value and Jacobian
        ``(R, M, P)``."""
        layout = self.layout

        def one(f, state):
            w = layout.views(f)
            new, _ = step(layout, w, state, input_part(w, x[:, None, :]))
            logits = output(w, new[0])[:, 0]
            return new, (logits, head(logits, f)) if head is not None else (logits,)

        def tangent(e, ds):
            return torch.func.jvp(one, (flat, self.state), (e, ds))

        primal, tangents = torch.func.vmap(tangent, out_dims=(None, 0))(self.tangents, self.dstate)
        self.state, values = primal
        self.dstate, derivatives = tangents
        return tuple(v for pair in zip(values, derivatives) for v in (pair[0], pair[1].permute(1, 2, 0)))


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


class _FusedLSTM(nn.Module):
    """torch's ``nn.LSTM`` and the output layer: the template ``fused_logits`` fills with a flat vector."""

    def __init__(self, num_symbols: int, hidden_units: int):
        super().__init__()
        self.lstm = nn.LSTM(num_symbols, hidden_units, batch_first=True)
        self.out = nn.Linear(hidden_units, num_symbols)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.lstm(x)[0])


_FUSED: dict[tuple, _FusedLSTM] = {}


def fused_logits(layout: Layout, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One LSTM's forward pass through torch's fused ``nn.LSTM`` kernel with the weights of the
    flat vector ``flat`` (P,), differentiable with respect to ``flat``: logits (B, T, S) of
    one-hot inputs ``x`` (B, T, S). ``torch.func.functional_call`` puts views of ``flat`` in place
    of the template's parameters for this one call. Only an LSTM without peepholes (``nn.LSTM``
    has none); its second bias is held at zero (the reference's formulas have one bias per gate)."""
    if layout.cell != "lstm" or layout.peepholes:
        raise ValueError("torch's fused kernel trains an LSTM without peepholes; use the step (forward)")
    key = (layout.num_symbols, layout.hidden_units, flat.device, flat.dtype)
    if key not in _FUSED:
        _FUSED[key] = _FusedLSTM(layout.num_symbols, layout.hidden_units).to(device=flat.device, dtype=flat.dtype).requires_grad_(False)
    v = layout.views(flat)
    params = {"lstm.weight_ih_l0": v["weight_ih"], "lstm.weight_hh_l0": v["weight_hh"], "lstm.bias_ih_l0": v["bias"],
              "lstm.bias_hh_l0": torch.zeros_like(v["bias"]), "out.weight": v["out_weight"], "out.bias": v["out_bias"]}
    return torch.func.functional_call(_FUSED[key], params, (x,))
