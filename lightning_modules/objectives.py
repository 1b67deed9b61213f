"""What the recurrent nets' outputs are trained to be: the next symbol, or the set of legal next symbols.

- ``next_symbol`` (the reference's): a softmax over the S symbols, the NLL of the actual next
  symbol. Inside an a-block the optimum is the hazard rate P(b | k a's), which depends on the
  training bound N (``data.max_n``): the net is taught N.
- ``legal_next`` (Gers & Schmidhuber 2001; Suzgun et al. 2019): one sigmoid per symbol, trained
  towards the multi-hot set of symbols that may come next: {a, b} after every a (whatever k; the
  language has no bound), then the one symbol the count determines. ``loss``: ``mse`` (mean
  squared error of the sigmoids, Suzgun et al.'s) or ``bce`` (binary cross-entropy). A position is
  right when every thresholded output (> 0.5) equals the legal set.

The legal set needs no extra data: a position is in an a-phase exactly when its input is an a
(``base.languages.A``), where a and b are legal; elsewhere the next symbol is the only legal one.

An objective is a loss on the outputs and nothing more: its gradients come from autograd, the
Kalman filter's Jacobians from forward-mode autodiff of the same step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from base.errors import check, check_choice
from base.languages import A, B

OBJECTIVES = ("next_symbol", "legal_next")
LOSSES = {"next_symbol": ("nll",), "legal_next": ("mse", "bce")}


def legal_set(inputs: torch.Tensor, targets: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The multi-hot legal next symbols ``(..., S)`` (along ``dim``) of one-hot ``inputs`` and
    ``targets`` (-100 at padding, where the set is that of symbol 0 and is never read)."""
    S = inputs.shape[dim]
    legal = F.one_hot(targets.clamp(min=0), S).to(inputs.dtype).movedim(-1, dim)
    in_a = inputs.select(dim, A).unsqueeze(dim) > 0.5  # after an a: a or b
    both = torch.zeros_like(legal)
    both.select(dim, A).fill_(1.0)
    both.select(dim, B).fill_(1.0)
    return torch.where(in_a, torch.maximum(legal, both), legal)


@dataclass(frozen=True)
class Objective:
    """``name`` (``next_symbol`` | ``legal_next``) with its ``loss`` (``nll`` | ``mse`` | ``bce``)."""

    name: str = "next_symbol"
    loss: str = "nll"

    @classmethod
    def of(cls, name: str, loss: str | None) -> "Objective":
        """From the config's ``objective`` and ``loss`` (None: ``nll`` for next_symbol, ``mse`` for legal_next)."""
        check_choice("objective", name, OBJECTIVES)
        allowed = LOSSES[name]
        loss = allowed[0] if loss is None else loss
        check(loss in allowed, "loss", loss, f"null or one of {', '.join(allowed)} with objective={name}")
        return cls(name, loss)

    @property
    def legal_next(self) -> bool:
        return self.name == "legal_next"

    def per_position(self, logits: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """The loss at every position of ``(..., S)`` logits (the mean over symbols for the
        sigmoid outputs), differentiable: ``(...)``."""
        if not self.legal_next:
            return -torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        legal = legal_set(inputs, targets)
        if self.loss == "mse":
            return ((torch.sigmoid(logits) - legal) ** 2).mean(-1)
        return F.binary_cross_entropy_with_logits(logits, legal, reduction="none").mean(-1)

    def mean_loss(self, logits: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """The training loss of ``(..., B, T, S)`` logits: per network ``(...)``, the mean over its
        real positions (targets >= 0)."""
        real = targets >= 0
        return (self.per_position(logits, targets, inputs) * real).sum((-2, -1)) / real.sum((-2, -1)).clamp(min=1)

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """What the Kalman filter measures of ``(..., S)`` logits: the sigmoids (legal_next) or the
        softmax (next_symbol). Their derivatives come from autodiff (``recurrent_nets.ForwardJacobian``)."""
        return torch.sigmoid(logits) if self.legal_next else torch.softmax(logits, dim=-1)

    def wanted(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """What ``outputs`` should be ``(..., S)``: the legal set, or the next symbol one-hot."""
        if self.legal_next:
            return legal_set(inputs, targets)
        return F.one_hot(targets.clamp(min=0), inputs.shape[-1]).to(inputs.dtype)

    def right(self, logits: torch.Tensor, targets: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Whether each position ``(..., T)`` of ``(..., T, S)`` logits is predicted right: the
        most likely symbol is the next one (next_symbol), or every thresholded output equals the
        legal set (legal_next)."""
        if not self.legal_next:
            return logits.argmax(-1) == targets
        return ((logits > 0) == (legal_set(inputs, targets) > 0.5)).all(-1)  # sigmoid > 0.5 exactly when the logit > 0

    def scored(self, determined: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The positions ``(..., T)`` that ``acc``, ``solved`` and the generalisation test score:
        under ``legal_next`` every real position (``valid``), the a-blocks included, as Suzgun et
        al. (2019) score a string: the legal set is defined everywhere, and a net that drops b
        inside an a-block is wrong there. Under ``next_symbol`` only the ``determined`` ones:
        inside an a-block the next symbol is a draw, which no prediction gets right for sure."""
        return valid & determined if not self.legal_next else valid

    def distribution(self, logits: torch.Tensor) -> torch.Tensor:
        """The outputs as a distribution over the next symbol ``(..., S)``, for ``error`` and
        ``error_exact``: the softmax (next_symbol), or the sigmoids scaled to sum to one
        (legal_next: {a, b} get equal weight in an a-block when both are on, so the error
        measures what the objective does not ask for, the hazard rate)."""
        if not self.legal_next:
            return torch.softmax(logits, dim=-1)
        p = torch.sigmoid(logits)
        return p / p.sum(-1, keepdim=True).clamp(min=1e-12)


NEXT_SYMBOL = Objective()
