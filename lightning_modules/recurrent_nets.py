"""The SRN and LSTM of the recurrent study: each network's weights as one flat vector, and one
batched recurrence that runs R networks (seeds) at once, with its exact gradients.

Networks of 2-3 units spend an update almost entirely in per-operation overhead, so R of them in
one computation cost little more than one. The recurrence is written once, for R networks:

- ``forward`` runs it (evaluation, the analysis traces, and autograd when a test asks);
- ``loss_and_grads`` runs it and back-propagates through time by hand: the same gradients as
  autograd (tested against autograd on the reference's formulas), without autograd's
  bookkeeping, which costs more than the arithmetic for these sizes (an SRN update of 100 seeds:
  ~2x faster than through autograd, measured on a 2-core CPU).

``SRN`` and ``LSTM`` are the single networks as ``nn.Module``s around ``nn.RNN`` / ``nn.LSTM``:
what the analysis, the figures and ``load_from_checkpoint`` users hold, and, for one LSTM, the
fused kernel that trains it (``fused_logits``: torch's LSTM is ~8x faster than the batched
recurrence for a single network on a CPU; for the SRN the batched recurrence is faster than
``nn.RNN``, measured, so it trains SRNs of any number). The reference's formulas have one bias per
gate; torch's modules have two (``bias_ih`` + ``bias_hh``), so ``bias_hh`` is held at zero and
frozen and parameter counts match the reference.

The flat layout (``Layout``) follows torch's parameter orientation and its gate order i, f, g, o:
[``H0`` (H,), SRN], ``weight_ih`` (G, S), ``weight_hh`` (G, H), ``bias`` (G,), ``out_weight``
(S, H), ``out_bias`` (S,), G = H (SRN) or 4H (LSTM). The order is the order in which the
initialisation draws the weights (the modules' ``parameters()``), so a seed gets the weights it
has always got.

Shapes: R networks; B sequences each; T steps; S symbols; inputs ``(R, B, T, S)`` one-hot,
logits ``(R, B, T, S)``, states ``(R, B, T, H)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.objectives import NEXT_SYMBOL, Objective

CELLS = ("srn", "lstm")


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
        G = 4 * H if self.lstm else H
        shapes = {} if self.lstm else {"H0": (H,)}
        shapes |= {"weight_ih": (G, S), "weight_hh": (G, H), "bias": (G,), "out_weight": (S, H), "out_bias": (S,)}
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


# ---- the batched recurrence ------------------------------------------------------------------

# the LSTM's gate rows reordered i, f, o, g inside the recurrence, so that the three sigmoid
# gates form one block (one sigmoid per step); torch's order i, f, g, o everywhere else
def _gate_order(H: int) -> torch.Tensor:
    return torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H), torch.arange(2 * H, 3 * H)])


@dataclass
class Weights:
    """R networks' weights, laid out for the recurrence (column-major states: ``h`` is (R, H, B))."""

    Wx: torch.Tensor  # (R, G, S): input weights
    Wh: torch.Tensor  # (R, G, H): recurrent weights
    b: torch.Tensor  # (R, G)
    V: torch.Tensor  # (R, S, H): output weights
    c: torch.Tensor  # (R, S)
    H0: Optional[torch.Tensor]  # (R, H): the SRN's learnable initial state, before its tanh
    P: Optional[torch.Tensor] = None  # (R, 3, H, 1): the peephole weights of the input, forget and output gates

    @classmethod
    def of(cls, layout: Layout, flat: torch.Tensor) -> "Weights":
        """From flat vectors ``(R, P)`` (autograd flows back to them)."""
        v = layout.views(flat)
        Wx, Wh, b = v["weight_ih"], v["weight_hh"], v["bias"]
        if layout.lstm:
            order = _gate_order(layout.hidden_units).to(flat.device)
            Wx, Wh, b = Wx[:, order], Wh[:, order], b[:, order]
        peep = v.get("peephole")
        return cls(Wx, Wh, b, v["out_weight"], v["out_bias"], v.get("H0"), None if peep is None else peep[..., None])

    def flat_grads(self, layout: Layout) -> torch.Tensor:
        """These tensors read as gradients, back in the flat layout: ``(R, P)``."""
        Wx, Wh, b = self.Wx, self.Wh, self.b
        if layout.lstm:
            inverse = torch.argsort(_gate_order(layout.hidden_units)).to(Wx.device)
            Wx, Wh, b = Wx[:, inverse], Wh[:, inverse], b[:, inverse]
        parts = {"weight_ih": Wx, "weight_hh": Wh, "bias": b, "H0": self.H0, "out_weight": self.V, "out_bias": self.c,
                 "peephole": None if self.P is None else self.P[..., 0]}
        return torch.cat([parts[name].reshape(len(Wx), -1) for name in layout.shapes], dim=1)


def _columns(inputs: torch.Tensor, steps: int) -> torch.Tensor:
    """One-hot ``(R, B, T, S)`` -> ``(R, S, steps * B)``, time-major columns: column t B + b is
    sequence b at step t, so a network's columns never depend on the other networks' lengths."""
    R, B, _, S = inputs.shape
    return inputs[:, :, :steps].permute(0, 3, 2, 1).reshape(R, S, steps * B)


def _padded(layout: Layout, flat: torch.Tensor, *per_row: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``flat`` (R, P) and tensors ``(R, ...)`` with rows of zeros added (no weights, no sequences:
    padding that no result reads) up to a number of rows that makes every elementwise operation
    of the recurrence run over a multiple of 64 numbers. torch's vectorised loops compute the last
    few elements of an odd-sized tensor with scalar code, whose tanh and sigmoid round
    differently; with the padding a network's every number is computed the same way whatever the
    other networks are (bit for bit alone, in a population, or split over processes)."""
    R, B = flat.shape[0], per_row[0].shape[1]
    multiple = 64 // math.gcd(layout.hidden_units * B, 64)
    extra = -R % multiple
    if not extra:
        return (flat, *per_row)
    return tuple(torch.cat([t, t.new_zeros(extra, *t.shape[1:]) if t.dtype != torch.long else torch.full((extra, *t.shape[1:]), -100, dtype=t.dtype, device=t.device)])
                 for t in (flat, *per_row))


def real_steps(valid: torch.Tensor) -> int:
    """The longest real sequence in ``valid`` ``(R, B, T)``: the steps worth computing."""
    return int(valid.any(dim=1).any(dim=0).nonzero().max()) + 1 if valid.any() else 0


def _run(w: Weights, x: torch.Tensor, B: int, lstm: bool, keep: bool) -> dict:
    """The recurrence over the columns ``x`` ``(R, S, T B)``: hidden states (and, with ``keep``,
    what back-propagation needs), all column-major ``(R, H, B)`` per step."""
    R, G, H = w.Wh.shape
    T = x.shape[2] // B
    X = torch.baddbmm(w.b[:, :, None], w.Wx, x).view(R, G, T, B).unbind(2)  # x_t W + b, per step (views)
    if lstm:
        h = cell = x.new_zeros(R, H, B)
        hs, cells, kept = [h], [cell], []
        peep = None if w.P is None else w.P.unbind(1)  # (R, H, 1) each: input, forget, output
        for t in range(T):
            z = torch.bmm(w.Wh, h).add_(X[t]).view(R, 4, H, B).transpose(0, 1).contiguous()  # (4, R, H, B): i, f, o, g
            if peep is None:
                s, g = torch.sigmoid(z[:3]), torch.tanh(z[3])
                i, f, o = s.unbind(0)
                cell = torch.addcmul(f * cell, i, g)  # c_t = f c_{t-1} + i g
            else:  # the input and forget gates see c_{t-1}, the output gate c_t
                z[0].addcmul_(peep[0], cell)
                z[1].addcmul_(peep[1], cell)
                i, f, g = torch.sigmoid(z[0]), torch.sigmoid(z[1]), torch.tanh(z[3])
                cell = torch.addcmul(f * cell, i, g)
                o = torch.sigmoid(z[2].addcmul_(peep[2], cell))
                s = torch.stack([i, f, o])
            tc = torch.tanh(cell)
            h = o * tc  # h_t = o tanh(c_t)
            hs.append(h)
            cells.append(cell)
            # the gates, and what their derivatives need: s (1 - s), 1 - g^2, 1 - tanh(c)^2
            kept.append((s, g, tc, torch.addcmul(s, s, s, value=-1), torch.addcmul(torch.ones_like(g), g, g, value=-1),
                         torch.addcmul(torch.ones_like(tc), tc, tc, value=-1)) if keep else (s, g))
        return {"hidden": hs, "cell": cells, "gates": kept}
    h = torch.tanh(w.H0)[:, :, None].expand(R, H, B)  # h_0 = tanh(H0)
    hs = [h]
    for t in range(T):
        h = torch.tanh(torch.bmm(w.Wh, h).add_(X[t]))  # h_t = tanh(x_t W + h_{t-1} U + b)
        hs.append(h)
    return {"hidden": hs}


def _logits(w: Weights, hidden: list[torch.Tensor], B: int) -> torch.Tensor:
    """Logits ``(R, S, T B)`` of the hidden states after each input (``hidden[1:]``)."""
    R, H, _ = hidden[0].shape
    states = torch.stack(hidden[1:], dim=2).view(R, H, -1)
    return torch.baddbmm(w.c[:, :, None], w.V, states)


def _unstack(columns: torch.Tensor, B: int, T: int) -> torch.Tensor:
    """``(R, F, T B)`` columns -> ``(R, B, T, F)``."""
    R, Fd, steps_b = columns.shape
    out = columns.view(R, Fd, steps_b // B, B).permute(0, 3, 2, 1)
    if out.shape[2] < T:  # the steps after the longest real sequence
        out = torch.cat([out, out.new_zeros(R, B, T - out.shape[2], Fd)], dim=2)
    return out


def forward(layout: Layout, flat: torch.Tensor, inputs: torch.Tensor, valid: Optional[torch.Tensor] = None, trace: bool = False) -> dict:
    """R networks (flat vectors ``(R, P)``) on their own sequences ``inputs`` ``(R, B, T, S)``.

    Returns ``logits`` ``(R, B, T, S)``; with ``trace``, also ``hidden`` (and for the LSTM
    ``cell``, ``input``, ``forget``, ``cell_input``, ``output``), each ``(R, B, T, H)``, and
    ``initial`` ``(R, H)``, the state before the first input. Only the steps up to the longest
    real sequence (``valid``, ``(R, B, T)``) are computed; later logits are the output bias.
    Differentiable: gradients flow back to ``flat``."""
    R, B, T, _ = inputs.shape
    steps = T if valid is None else real_steps(valid)
    flat, inputs = _padded(layout, flat, inputs)
    w = Weights.of(layout, flat)
    run = _run(w, _columns(inputs, steps), B, layout.lstm, keep=False)
    logits = _unstack(_logits(w, run["hidden"], B), B, T)
    if steps < T:  # padding positions carry the output bias, as a network run over zeros would not
        logits[:, :, steps:] = w.c[:, None, None, :]
    out = {"logits": logits[:R]}
    if trace:
        hid = run["hidden"]
        out["initial"] = hid[0][:, :, 0]
        out["hidden"] = _unstack(torch.stack(hid[1:], 2).flatten(2), B, T)
        if layout.lstm:
            out["cell"] = _unstack(torch.stack(run["cell"][1:], 2).flatten(2), B, T)
            for k, name in enumerate(("input", "forget", "output")):
                out[name] = _unstack(torch.stack([s[k] for s, _ in run["gates"]], 2).flatten(2), B, T)
            out["cell_input"] = _unstack(torch.stack([g for _, g in run["gates"]], 2).flatten(2), B, T)
    return {k: v[:R] for k, v in out.items()}


@torch.no_grad()
def loss_and_grads(layout: Layout, flat: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor,
                   steps: Optional[int] = None, objective: Optional[Objective] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each network's loss over its real positions (``objective``; default the reference's, the
    mean NLL of the actual next symbol) and its exact gradient with respect to its flat vector.

    ``flat`` (R, P); ``inputs`` (R, B, T, S); ``targets`` (R, B, T), -100 at padding; ``valid``
    (R, B, T); ``steps``: the longest real sequence, when the caller knows it (else it is
    read from ``valid``). Returns ``loss`` (R,) and ``grads`` (R, P)."""
    objective = objective or NEXT_SYMBOL
    rows, B, T, S = inputs.shape
    steps = real_steps(valid) if steps is None else steps
    flat, inputs, targets, valid = _padded(layout, flat, inputs, targets, valid)
    R = flat.shape[0]
    w = Weights.of(layout, flat)
    x_all = _columns(inputs, T)
    x = x_all[:, :, : steps * B]  # the recurrence runs to the longest real sequence only...
    run = _run(w, x, B, layout.lstm, keep=True)
    hidden = run["hidden"]
    logits = _logits(w, hidden, B)  # (R, S, steps B)
    tgt = targets[:, :, :steps].transpose(1, 2).reshape(R, steps * B)
    real = tgt >= 0
    count = real.sum(dim=1).clamp(min=1)
    # ...and the sums over positions run over all T of the batch (zeros after `steps`): the same
    # sums in the same order whatever length the other networks' sequences asked for
    pad = (0, (T - steps) * B)

    def full(steps_list: list[torch.Tensor]) -> torch.Tensor:
        """Per-step (R, F, B) tensors stacked to (R, F, T B) time-major columns, zeros after them."""
        zero = steps_list[0].new_zeros(steps_list[0].shape)
        return torch.stack(steps_list + [zero] * (T - len(steps_list)), dim=2).view(R, -1, T * B)

    per_position, d_logits = objective.loss_and_grad(logits, tgt, x)  # (R, steps B), (R, S, steps B): at every column
    loss = F.pad(per_position * real, pad).sum(dim=1) / count
    d_logits *= (real / count[:, None]).unsqueeze(1)  # the mean over real positions

    states = full(hidden[1:])
    d_all = F.pad(d_logits, pad)
    dV, dc = torch.bmm(d_all, states.transpose(1, 2)), d_all.sum(dim=2)
    dH = torch.bmm(w.V.transpose(1, 2), d_logits).view(R, -1, steps, B).unbind(2)  # d loss / d h_t from the outputs
    WhT = w.Wh.transpose(1, 2).contiguous()
    R_, G, H = w.Wh.shape
    dz_steps: list[torch.Tensor] = [None] * steps  # type: ignore[list-item]
    dh = torch.zeros_like(hidden[0])
    dP = None
    if layout.lstm:
        cells, kept = run["cell"], run["gates"]
        dcell = torch.zeros_like(dh)
        dz4 = x.new_empty(steps, 4, R, H, B)
        peep = None if w.P is None else w.P.unbind(1)
        if peep is not None:
            dP = torch.zeros_like(w.P[..., 0])  # (R, 3, H)
        for t in range(steps - 1, -1, -1):
            dh = dh + dH[t]
            s, g, tc, s_d, g_d, tc_d = kept[t]
            i, f, o = s.unbind(0)
            d = dz4[t]
            torch.mul(dh, tc, out=d[2])  # d o
            d[2].mul_(s_d[2])  # d z_o
            dcell = dcell.addcmul_(dh * o, tc_d)
            if peep is not None:  # c_t reaches the output gate: z_o += p_o c_t
                dcell.addcmul_(d[2], peep[2])
            torch.mul(dcell, g, out=d[0])  # d i
            torch.mul(dcell, cells[t], out=d[1])  # d f
            torch.mul(dcell, i, out=d[3])  # d g
            d[:2].mul_(s_d[:2])
            d[3].mul_(g_d)
            dcell = dcell * f
            if peep is not None:  # c_{t-1} reaches the input and forget gates
                dcell.addcmul_(d[0], peep[0]).addcmul_(d[1], peep[1])
                dP[:, 0] += (d[0] * cells[t]).sum(dim=2)
                dP[:, 1] += (d[1] * cells[t]).sum(dim=2)
                dP[:, 2] += (d[2] * cells[t + 1]).sum(dim=2)
            dz = d.transpose(0, 1).reshape(R, G, B)
            dz_steps[t] = dz
            dh = torch.bmm(WhT, dz)
    else:
        for t in range(steps - 1, -1, -1):
            dh = dh + dH[t]
            h = hidden[t + 1]
            dz = dh * torch.addcmul(torch.ones_like(h), h, h, value=-1)  # tanh' = 1 - h^2
            dz_steps[t] = dz
            dh = torch.bmm(WhT, dz)
    dZ = full(dz_steps)
    before = full(hidden[:-1])
    grads = Weights(torch.bmm(dZ, x_all.transpose(1, 2)), torch.bmm(dZ, before.transpose(1, 2)), dZ.sum(dim=2), dV, dc,
                    None if layout.lstm else (dh.sum(dim=2) * (1 - torch.tanh(w.H0) ** 2)),  # h_0 = tanh(H0), shared by the B sequences
                    None if dP is None else dP[..., None])
    return loss[:rows], grads.flat_grads(layout)[:rows]


# ---- the single networks ---------------------------------------------------------------------


def _freeze_zero(p: nn.Parameter) -> None:
    with torch.no_grad():
        p.zero_()
    p.requires_grad_(False)


class _Net(nn.Module):
    """What the SRN and the LSTM share: the flat layout, and the trace through the recurrence."""

    cell: str

    def __init__(self, num_symbols: int, hidden_units: int, peepholes: bool = False):
        super().__init__()
        self.hidden_units, self.num_symbols = hidden_units, num_symbols
        self.layout = Layout(self.cell, num_symbols, hidden_units, peepholes)

    def _named(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def flat(self, detach: bool = True) -> torch.Tensor:
        """The weights as one flat vector ``(P,)`` (the layout's order); ``detach=False``: autograd
        flows back to the parameters."""
        named = self._named()
        return torch.cat([(named[k].detach() if detach else named[k]).flatten() for k in self.layout.shapes])

    @torch.no_grad()
    def load_flat(self, flat: torch.Tensor) -> "_Net":
        named = self._named()
        for name, value in self.layout.views(flat.detach().to(next(self.parameters()).device)).items():
            named[name].copy_(value)
        return self

    def trace(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The batched recurrence on ``x`` (B, T, S): ``hidden``, and for the LSTM ``cell`` and
        the gates ``input``, ``forget``, ``cell_input`` (g), ``output``, each (B, T, H);
        ``logits`` (B, T, S); ``initial`` (B, H), the state before the first input."""
        out = forward(self.layout, self.flat()[None], x[None], trace=True)
        out = {k: v[0] for k, v in out.items()}
        out["initial"] = out["initial"].expand(x.shape[0], -1)
        return out


class SRN(_Net):
    """Elman network: h_t = tanh(x_t W + h_{t-1} U + b), h_0 = tanh(H0) with H0 learnable,
    logits_t = h_t V + c."""

    cell = "srn"

    def __init__(self, num_symbols: int, hidden_units: int):
        super().__init__(num_symbols, hidden_units)
        self.rnn = nn.RNN(num_symbols, hidden_units, nonlinearity="tanh", batch_first=True)
        _freeze_zero(self.rnn.bias_hh_l0)
        self.H0 = nn.Parameter(torch.zeros(hidden_units))
        self.out = nn.Linear(hidden_units, num_symbols)

    def _named(self):
        r = self.rnn
        return {"weight_ih": r.weight_ih_l0, "weight_hh": r.weight_hh_l0, "bias": r.bias_ih_l0, "H0": self.H0,
                "out_weight": self.out.weight, "out_bias": self.out.bias}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One-hot inputs (B, T, S) -> logits (B, T, S), through torch's fused ``nn.RNN``."""
        h0 = torch.tanh(self.H0).expand(x.shape[0], -1).unsqueeze(0).contiguous()
        hidden, _ = self.rnn(x, h0)
        return self.out(hidden)


class LSTM(_Net):
    """LSTM with gates i, f, g, o: [i f g o] = [sig sig tanh sig](x_t W + h_{t-1} U + b),
    c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t), h_0 = c_0 = 0, logits_t = h_t V + c."""

    cell = "lstm"
    GATES = ("input", "forget", "cell_input", "output")

    def __init__(self, num_symbols: int, hidden_units: int, peepholes: bool = False):
        super().__init__(num_symbols, hidden_units, peepholes)
        self.lstm = nn.LSTM(num_symbols, hidden_units, batch_first=True)
        _freeze_zero(self.lstm.bias_hh_l0)
        self.out = nn.Linear(hidden_units, num_symbols)
        # nn.LSTM has no peepholes: with them, the batched recurrence computes the net
        self.peephole = nn.Parameter(torch.zeros(3, hidden_units)) if peepholes else None

    def _named(self):
        r = self.lstm
        named = {"weight_ih": r.weight_ih_l0, "weight_hh": r.weight_hh_l0, "bias": r.bias_ih_l0,
                 "out_weight": self.out.weight, "out_bias": self.out.bias}
        return named | ({"peephole": self.peephole} if self.peephole is not None else {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One-hot inputs (B, T, S) -> logits (B, T, S), through torch's fused ``nn.LSTM``
        (through the batched recurrence with peepholes; differentiable either way)."""
        if self.peephole is not None:
            return forward(self.layout, self.flat(detach=False)[None], x[None])["logits"][0]
        hidden, _ = self.lstm(x)
        return self.out(hidden)


NETS = {"srn": SRN, "lstm": LSTM}


def make_net(cell: str, num_symbols: int, hidden_units: int, peepholes: bool = False) -> _Net:
    """An ``SRN`` or ``LSTM`` (with peepholes, for an LSTM that has them)."""
    return LSTM(num_symbols, hidden_units, peepholes) if peepholes else NETS[cell](num_symbols, hidden_units)


def fused_logits(net: _Net, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One LSTM's fused forward pass (``nn.LSTM``) with the weights of the flat vector ``flat``
    (P,) instead of its own, differentiable with respect to ``flat``: logits (B, T, S) of one-hot
    inputs ``x`` (B, T, S). ``torch.func.functional_call`` puts views of ``flat`` in place of the
    module's parameters for this one call. Only a single LSTM without peepholes trains this way:
    an SRN gains nothing from ``nn.RNN`` (the batched recurrence is as fast, measured)."""
    if net.cell != "lstm" or net.layout.peepholes:
        raise ValueError("torch's fused kernel trains one LSTM without peepholes; use the batched recurrence (forward)")
    v = net.layout.views(flat)
    params = {"lstm.weight_ih_l0": v["weight_ih"], "lstm.weight_hh_l0": v["weight_hh"], "lstm.bias_ih_l0": v["bias"],
              "lstm.bias_hh_l0": torch.zeros_like(v["bias"]), "out.weight": v["out_weight"], "out.bias": v["out_bias"]}
    return torch.func.functional_call(net, params, (x,))
