"""The SRN and LSTM of the recurrent study, with a step-by-step trace of their states.

Both keep their weights in ``nn.RNN`` / ``nn.LSTM`` so that training runs torch's fused
recurrence (an LSTM update is ~16x faster than a Python loop over time steps on a CPU, and
cuDNN on a GPU). The reference formulas have one bias per gate; torch's modules have two
(``bias_ih`` + ``bias_hh``), so ``bias_hh`` is held at zero and frozen and parameter counts
match the reference. ``trace`` runs the reference's formulas step by step on the same weights
and returns what the fused kernel does not: the cell state and the four gates at every step.

Shapes: inputs ``x`` (B, T, S) one-hot; logits (B, T, S); states (B, T, H).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _freeze_zero(p: nn.Parameter) -> None:
    with torch.no_grad():
        p.zero_()
    p.requires_grad_(False)


def initialise(module: nn.Module, init: str | float, generator: torch.Generator | None = None) -> None:
    """Every trainable parameter from N(0, init) when ``init`` is a number (the reference's SRN:
    0.001), or uniform in +-1/sqrt(H) when ``init`` is ``"uniform"`` (the reference's LSTM)."""
    H = module.hidden_units
    with torch.no_grad():
        for p in module.parameters():
            if not p.requires_grad:
                continue
            if init == "uniform":
                bound = 1.0 / math.sqrt(H)
                p.copy_(torch.rand(p.shape, generator=generator) * 2 * bound - bound)
            else:
                p.copy_(torch.randn(p.shape, generator=generator) * float(init))


class SRN(nn.Module):
    """Elman network: h_t = tanh(x_t W + h_{t-1} U + b), h_0 = tanh(H0) with H0 learnable,
    logits_t = h_t V + c."""

    def __init__(self, num_symbols: int, hidden_units: int):
        super().__init__()
        self.hidden_units = hidden_units
        self.rnn = nn.RNN(num_symbols, hidden_units, nonlinearity="tanh", batch_first=True)
        _freeze_zero(self.rnn.bias_hh_l0)
        self.H0 = nn.Parameter(torch.zeros(hidden_units))
        self.out = nn.Linear(hidden_units, num_symbols)

    def initial_state(self, batch: int) -> torch.Tensor:
        return torch.tanh(self.H0).expand(batch, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = self.initial_state(x.shape[0]).unsqueeze(0).contiguous()
        hidden, _ = self.rnn(x, h0)
        return self.out(hidden)

    def trace(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Step by step: ``hidden`` (B, T, H), ``logits`` (B, T, S), ``initial`` (B, H)."""
        W, U, b = self.rnn.weight_ih_l0.T, self.rnn.weight_hh_l0.T, self.rnn.bias_ih_l0 + self.rnn.bias_hh_l0
        h = h0 = self.initial_state(x.shape[0])
        hs = []
        for t in range(x.shape[1]):
            h = torch.tanh(x[:, t] @ W + h @ U + b)
            hs.append(h)
        hidden = torch.stack(hs, dim=1)
        return {"hidden": hidden, "logits": self.out(hidden), "initial": h0}


class LSTM(nn.Module):
    """LSTM with gates i, f, g, o: [i f g o] = [sig sig tanh sig](x_t W + h_{t-1} U + b),
    c_t = f * c_{t-1} + i * g, h_t = o * tanh(c_t), h_0 = c_0 = 0, logits_t = h_t V + c."""

    GATES = ("input", "forget", "cell_input", "output")

    def __init__(self, num_symbols: int, hidden_units: int):
        super().__init__()
        self.hidden_units = hidden_units
        self.lstm = nn.LSTM(num_symbols, hidden_units, batch_first=True)
        _freeze_zero(self.lstm.bias_hh_l0)
        self.out = nn.Linear(hidden_units, num_symbols)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(x)
        return self.out(hidden)

    def trace(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Step by step: ``hidden``, ``cell`` and the gates ``input``, ``forget``,
        ``cell_input`` (g), ``output``, each (B, T, H); ``logits`` (B, T, S); ``initial`` (B, H)."""
        H = self.hidden_units
        W, U, b = self.lstm.weight_ih_l0.T, self.lstm.weight_hh_l0.T, self.lstm.bias_ih_l0 + self.lstm.bias_hh_l0
        h = c = x.new_zeros(x.shape[0], H)
        initial = h
        rec = {k: [] for k in ("hidden", "cell", *self.GATES)}
        for t in range(x.shape[1]):
            z = x[:, t] @ W + h @ U + b
            i, f, g, o = torch.sigmoid(z[:, :H]), torch.sigmoid(z[:, H : 2 * H]), torch.tanh(z[:, 2 * H : 3 * H]), torch.sigmoid(z[:, 3 * H :])
            c = f * c + i * g
            h = o * torch.tanh(c)
            for key, value in zip(("hidden", "cell", *self.GATES), (h, c, i, f, g, o)):
                rec[key].append(value)
        out = {k: torch.stack(v, dim=1) for k, v in rec.items()}
        out["logits"] = self.out(out["hidden"])
        out["initial"] = initial
        return out


CELLS = {"srn": SRN, "lstm": LSTM}
