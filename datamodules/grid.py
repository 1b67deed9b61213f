"""GridDataModule: the 9 points of the two-layer perceptron study."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from datamodules.tensor_batches import TensorBatches


def grid_points() -> tuple[torch.Tensor, torch.Tensor]:
    """Points ``(9, 2)``: (x, y) with x, y in {0, 1, 2}, x-major; targets ``(9, 1)``:
    (x + y) mod 2, a checkerboard."""
    xy = torch.tensor([[x, y] for x in range(3) for y in range(3)], dtype=torch.float32)
    return xy, (xy.sum(dim=1) % 2).unsqueeze(1)


class RepeatBatch(IterableDataset):
    """The same full batch, ``times`` times (None: forever). Training repeats it forever: the
    module decides when to stop (100% held long enough, or the update budget spent). The test
    yields it once; being iterable, it is not split across devices by Lightning's distributed
    sampler, so under DDP every process evaluates all 9 points."""

    def __init__(self, *tensors: torch.Tensor, times: int | None = None):
        self.tensors = tensors
        self.times = times

    def __iter__(self):
        n = 0
        while self.times is None or n < self.times:
            n += 1
            yield self.tensors


class GridDataModule(pl.LightningDataModule):
    """Training: the full batch of 9 points at every step (the module runs many updates per
    step). Test: the same 9 points, once."""

    def __init__(self):
        super().__init__()
        self.points, self.targets = grid_points()
        self.test_set = TensorBatches(self.points, self.targets)

    def train_dataloader(self):
        return DataLoader(RepeatBatch(self.points, self.targets), batch_size=None)

    def test_dataloader(self):
        return DataLoader(RepeatBatch(self.points, self.targets, times=1), batch_size=None)
