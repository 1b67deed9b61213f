"""Time spent training, excluding evaluation, for ``train_seconds`` and throughput."""

from __future__ import annotations

import time

import torch
from pytorch_lightning import Callback
from pytorch_lightning.trainer.states import TrainerFn


class TrainTimer(Callback):
    """Wall time inside training epochs, with the in-fit evaluation passes left out, and the
    number of training samples seen (all devices together).

    CUDA work is asynchronous, so the clock stops only after a ``synchronize`` at epoch and
    evaluation boundaries; nothing is synchronised per step.
    """

    def __init__(self):
        self.seconds = 0.0
        self.samples = 0
        self.epoch_seconds: list[float] = []  # training time of each epoch (the benchmark's unit)
        self._start: float | None = None
        self._seconds_at_epoch_start = 0.0

    @staticmethod
    def _sync(pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def _resume(self, pl_module) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()

    def _pause(self, pl_module) -> None:
        if self._start is not None:
            self._sync(pl_module)
            self.seconds += time.perf_counter() - self._start
            self._start = None

    def on_train_epoch_start(self, trainer, pl_module):
        self._seconds_at_epoch_start = self.seconds
        self._resume(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # a step that makes several updates says how many samples it went through
        n = outputs.get("samples") if isinstance(outputs, dict) else None
        if n is None:  # else: the batch's first tensor, (images, labels) or {"inputs": ...}
            first = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
            n = len(first)
        self.samples += int(n) * trainer.world_size

    # Validation inside fit pauses the clock; stand-alone `trainer.validate` never started it.
    def on_validation_start(self, trainer, pl_module):
        if trainer.state.fn == TrainerFn.FITTING:
            self._pause(pl_module)

    def on_validation_end(self, trainer, pl_module):
        if trainer.state.fn == TrainerFn.FITTING:
            self._resume(pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        self._pause(pl_module)
        self.epoch_seconds.append(self.seconds - self._seconds_at_epoch_start)

    def on_train_end(self, trainer, pl_module):
        self._pause(pl_module)

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else 0.0
