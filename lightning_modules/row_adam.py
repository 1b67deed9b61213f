"""``RowAdam``: torch's Adam for a population's stacked weights, one network per row.

A population of S grid nets is one parameter ``(S, P)``; each row must be updated exactly as
``torch.optim.Adam`` would update that network alone. Adam's arithmetic is element by element,
except for one number a plain ``Adam`` on the stacked parameter would share: the step count in
the bias corrections. Rows get out of step when a seed is re-initialised (a fresh Adam, step 0)
or stops while others go on. So the state here is Adam's own (``exp_avg``, ``exp_avg_sq`` shaped
like the parameter) with a step count per row, and an update is ``adam_rows``: the function
``torch.optim.Adam`` itself calls (``torch.optim.adam.adam``), on rows that share a step count.

The optimiser holds that state (Lightning checkpoints it with the module); the module takes the
rows it trains out (``rows``), updates them many times (its gradient and ``adam_rows`` in one
compiled function: the grid's update is ~20 small operations, whose Python and dispatch overhead
is the whole cost), and puts them back (``store``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.optim.adam import adam


def adam_rows(w: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step: torch.Tensor,
              lr: float, beta1: float, beta2: float, eps: float, weight_decay: float) -> None:
    """torch's Adam (L2 weight decay, no amsgrad) on rows ``w`` (R, P) with gradient ``g``,
    moments ``m``, ``v`` and one step count ``step`` (a 0-d float tensor), all in place."""
    adam([w], [g], [m], [v], [], [step], foreach=False, amsgrad=False, beta1=beta1, beta2=beta2, lr=lr,
         weight_decay=weight_decay, eps=eps, maximize=False)


@dataclass
class Rows:
    """Copies of some rows of the parameter and of their Adam state, to be updated together:
    ``index`` (R,) the rows, ``weights``, ``exp_avg``, ``exp_avg_sq`` (R, P), and ``step``, their
    common step count (a 0-d tensor of the weights' dtype)."""

    index: torch.Tensor
    weights: torch.Tensor
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    step: torch.Tensor


class RowAdam(torch.optim.Optimizer):
    """The Adam state of one parameter ``(S, P)`` whose rows are separate networks, each with its
    own step count, and torch's Adam settings (``lr``, ``betas``, ``eps``, ``weight_decay``)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})
        if sum(len(g["params"]) for g in self.param_groups) != 1:
            raise ValueError("RowAdam updates one parameter: the (rows, P) weights of a population")

    @property
    def weights(self) -> torch.Tensor:
        return self.param_groups[0]["params"][0]

    @property
    def settings(self) -> tuple[float, float, float, float, float]:
        """``adam_rows``'s ``lr, beta1, beta2, eps, weight_decay``."""
        group = self.param_groups[0]
        return (group["lr"], *group["betas"], group["eps"], group["weight_decay"])

    def _state(self) -> dict:
        p = self.weights
        state = self.state[p]
        if not state:  # what torch.optim.Adam creates at its first step, with a step count per row
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] = torch.zeros(p.shape[0], dtype=torch.float32, device=p.device)
        return state

    @torch.no_grad()
    def reset_rows(self, rows: list[int]) -> None:
        """A fresh Adam for rows ``rows`` (re-initialised networks): moments and step count 0."""
        state = self._state()
        for key in ("exp_avg", "exp_avg_sq", "step"):
            state[key][rows] = 0

    @torch.no_grad()
    def rows(self, index: list[int]) -> list[Rows]:
        """Copies of rows ``index`` and their state, one ``Rows`` per step count among them."""
        state, p = self._state(), self.weights
        steps = state["step"][index].tolist()
        out = []
        for count in sorted(set(steps)):
            mine = torch.as_tensor([i for i, s in zip(index, steps) if s == count], device=p.device)
            # the count in the parameter's dtype: compiled, Adam's bias corrections are computed in it
            out.append(Rows(mine, p[mine], state["exp_avg"][mine], state["exp_avg_sq"][mine], torch.tensor(count, dtype=p.dtype, device=p.device)))
        return out

    @torch.no_grad()
    def store(self, rows: Rows) -> None:
        """Rows updated by ``adam_rows``, and their state, back into the parameter and the state."""
        state, p = self._state(), self.weights
        p[rows.index], state["exp_avg"][rows.index], state["exp_avg_sq"][rows.index] = rows.weights, rows.exp_avg, rows.exp_avg_sq
        state["step"][rows.index] = rows.step.to(state["step"].dtype)

    def step(self, closure=None):
        """Not used: the module updates rows taken out with ``rows`` (see the module docstring)."""
        raise NotImplementedError("RowAdam's rows are updated through rows(), adam_rows and store()")
