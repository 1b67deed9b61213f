"""Populations under several processes (``trainer=ddp`` with ``seeds=N``): each process trains its
share of the seeds (seed index i goes to process i mod world size), on its own, and the
processes exchange their seeds when training ends, so that every process holds every trained
seed for the test and rank 0 writes one ``results.json``.

The seeds need no gradient averaging (each seed's gradients are its own), so the processes are
started by Lightning's DDP machinery without DistributedDataParallel around the module
(``orchestration.launch.PopulationStrategy``); they meet only at Lightning's own barriers and in
``gather_seeds``.
"""

from __future__ import annotations

from typing import Any


class SeedShare:
    """Mixin for a population module. The module provides ``seed_list``, ``_leave(i)`` (seed i
    stops training here), ``_seed_state(i) -> dict`` and ``_load_seed_state(i, dict)``."""

    def share(self) -> list[int]:
        """The seed indices this process trains."""
        trainer = self._trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        return [i for i in range(len(self.seed_list)) if i % world == rank]

    def take_share(self) -> None:
        """Before training: leave every seed another process trains."""
        mine = set(self.share())
        for i in range(len(self.seed_list)):
            if i not in mine:
                self._leave(i)

    def gather_seeds(self) -> None:
        """After training: every process sends the seeds it trained and takes the others'."""
        trainer = self._trainer
        if trainer is None or trainer.world_size == 1:
            return
        import torch.distributed as dist

        mine: dict[int, Any] = {i: self._seed_state(i) for i in self.share()}
        everyone: list[dict[int, Any] | None] = [None] * trainer.world_size
        dist.all_gather_object(everyone, mine)
        for states in everyone:
            for i, state in (states or {}).items():
                self._load_seed_state(int(i), state)
