"""GridDataModule: the 9 points of the two-layer perceptron study."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from datamodules.tensor_batches import TensorBatches, batch_loader


def grid_points() -> tuple[torch.Tensor, torch.Tensor]:
    """Points ``(9, 2)``: (x, y) with x, y in {0, 1, 2}, x-major; targets ``(9, 1)``:
    (x + y) mod 2, a checkerboard."""
    xy = torch.tensor([[x, y] for x in range(3) for y in range(3)], dtype=torch.float32)
    return xy, (xy.sum(dim=1) % 2).unsqueeze(1)


class RepeatBatch(IterableDataset):
    """The same full batch, forever. The module decides when training stops (100% held long
    enough, or the update budget spent), so an epoch has no fixed length."""

    def __init__(self, *tensors: torch.Tensor):
        self.tensors = tensors

    def __iter__(self):
        while True:
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
        return batch_loader(self.test_set, batch_size=len(self.test_set))
