"""Callbacks that tests add to a ``train.py`` run with ``+callbacks.<name>._target_=probes.<Class>``
(the test puts ``tests/`` on PYTHONPATH)."""

from __future__ import annotations

from pathlib import Path

import torch
from pytorch_lightning import Callback


class WeightsPerRank(Callback):
    """Each process saves its initial and final parameters to ``out_dir/weights_rank<r>.pt``
    as ``{"initial": (P,), "final": (P,), "updates": int}`` (flat float tensors and its
    ``global_step``): in DDP the ranks train on
    different data and stay equal only if every update's gradients were all-reduced."""

    def __init__(self, out_dir: str):
        self.out_dir = Path(out_dir)
        self.initial: torch.Tensor | None = None

    @staticmethod
    def _flat(pl_module) -> torch.Tensor:
        return torch.cat([p.detach().flatten().cpu().clone() for p in pl_module.parameters()])

    def on_train_start(self, trainer, pl_module):
        self.initial = self._flat(pl_module)

    def on_train_end(self, trainer, pl_module):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        torch.save({"initial": self.initial, "final": self._flat(pl_module), "updates": trainer.global_step}, self.out_dir / f"weights_rank{trainer.global_rank}.pt")
