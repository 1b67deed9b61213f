"""GridDataModule: the 9 points of the two-layer perceptron study."""

from __future__ import annotations

from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from base.errors import check_int
from datamodules.tensor_batches import TensorBatches


def grid_points() -> tuple[torch.Tensor, torch.Tensor]:
    """Points ``(9, 2)``: (x, y) with x, y in {0, 1, 2}, x-major; targets ``(9, 1)``:
    (x + y) mod 2, a checkerboard."""
    xy = torch.tensor([[x, y] for x in range(3) for y in range(3)], dtype=torch.float32)
    return xy, (xy.sum(dim=1) % 2).unsqueeze(1)


@dataclass
class RepeatedBatch:
    """``times`` copies of one full batch as one training item: ``len()`` is ``times`` and every
    index gives ``(points, targets)``. A step of ``times`` updates on the same 9 points needs no
    list of ``times`` references for the loader and Lightning's device transfer to walk through;
    being a dataclass, Lightning still moves its tensors to the device."""

    points: torch.Tensor
    targets: torch.Tensor
    times: int

    def __len__(self) -> int:
        return self.times

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -self.times <= index < self.times:
            raise IndexError(index)
        return self.points, self.targets


class RepeatBatch(IterableDataset):
    """The same full batch, ``times`` times (None: forever), as a ``RepeatedBatch`` of ``group``
    batches per item, or as the batch itself (``group=None``).

    Training repeats it forever: the module decides when to stop (100% held long enough, or the
    update budget spent). The test yields it once; being iterable, it is not split across devices
    by Lightning's distributed sampler, so under DDP every process evaluates all 9 points."""

    def __init__(self, *tensors: torch.Tensor, times: int | None = None, group: int | None = None):
        self.tensors = tensors
        self.times = times
        self.group = group

    def __iter__(self):
        item = self.tensors if self.group is None else RepeatedBatch(*self.tensors, times=self.group)
        n = 0
        while self.times is None or n < self.times:
            n += 1
            yield item


class GridDataModule(pl.LightningDataModule):
    """Training: ``batches_per_step`` full batches of the 9 points per Lightning step, and the
    module makes one update per batch (as KMNIST's ``batches_per_step``: Lightning's per-step
    machinery costs more than an update of this 21-parameter net). Test: the 9 points, once.
    ``max_steps`` and ``global_step`` count steps here; the module counts updates."""

    def __init__(self, batches_per_step: int = 1000):
        super().__init__()
        check_int("batches_per_step", batches_per_step, 1)
        self.save_hyperparameters()
        self.points, self.targets = grid_points()
        self.test_set = TensorBatches(self.points, self.targets)

    def train_dataloader(self):
        return DataLoader(RepeatBatch(self.points, self.targets, group=self.hparams.batches_per_step), batch_size=None)

    def test_dataloader(self):
        return DataLoader(RepeatBatch(self.points, self.targets, times=1), batch_size=None)
