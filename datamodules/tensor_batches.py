"""In-memory datasets whose batches are tensor slices, served through a standard DataLoader.

A standard ``DataLoader`` (not a custom iterator) keeps Lightning's machinery intact: under DDP
Lightning swaps in a ``DistributedSampler`` by itself, and ``set_epoch`` reaches our sampler.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, SequentialSampler


class TensorBatches(Dataset):
    """Equal-length tensors (e.g. images ``(N, 1, 28, 28)`` and labels ``(N,)``).

    ``__getitems__`` lets the DataLoader fetch a whole batch with one index operation per
    tensor instead of N single-sample lookups followed by ``torch.stack``.
    """

    def __init__(self, *tensors: torch.Tensor):
        if not tensors or any(t.shape[0] != tensors[0].shape[0] for t in tensors):
            raise ValueError("TensorBatches needs tensors with the same first dimension")
        self.tensors = tensors

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index: int):
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: Sequence[int]):
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.tensors[0].device)
        return tuple(t[idx] for t in self.tensors)

    @property
    def device(self) -> torch.device:
        return self.tensors[0].device

    def to(self, device: torch.device | str) -> "TensorBatches":
        """The same data on ``device`` (``self`` when it is already there)."""
        if self.device == torch.device(device):
            return self
        return TensorBatches(*(t.to(device) for t in self.tensors))


def keep_batch(batch):
    """collate_fn for ``TensorBatches``: the batch is already stacked."""
    return batch


class EpochShuffleSampler(RandomSampler):
    """A random permutation that depends only on ``(seed, epoch)``.

    Lightning calls ``set_epoch`` before every training epoch, so a run resumed from a
    checkpoint sees exactly the batches an uninterrupted run would have seen. It subclasses
    ``RandomSampler`` so that under DDP Lightning still recognises it as shuffling and replaces
    it with a (likewise epoch-seeded) ``DistributedSampler``.
    """

    def __init__(self, data_source: Dataset, seed: int = 0):
        super().__init__(data_source)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(len(self.data_source), generator=generator).tolist())


class EvalShardSampler(DistributedSampler):
    """Rank r of W gets the indices r, r + W, r + 2W, ...: every sample exactly once over all
    ranks. torch's ``DistributedSampler`` pads the ranks to equal counts with repeated samples,
    which would count some test images twice in a confusion matrix. Being a
    ``DistributedSampler``, it is left in place by Lightning under DDP."""

    def __init__(self, dataset, num_replicas: int, rank: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.shard = range(rank, len(dataset), num_replicas)

    def __iter__(self) -> Iterator[int]:
        return iter(self.shard)

    def __len__(self) -> int:
        return len(self.shard)


def batch_loader(
    dataset: TensorBatches,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    distributed: tuple[int, int] | None = None,
) -> DataLoader:
    """A DataLoader over ``dataset`` in batches of ``batch_size``.

    ``distributed=(world_size, rank)`` is for evaluation only: each rank gets a disjoint part and
    no sample is repeated (Lightning's default sampler pads with duplicates, which would count
    some test images twice in the confusion matrix).
    """
    if distributed is not None:
        world_size, rank = distributed
        sampler: torch.utils.data.Sampler = EvalShardSampler(dataset, num_replicas=world_size, rank=rank)
    elif shuffle:
        sampler = EpochShuffleSampler(dataset, seed)
    else:
        sampler = SequentialSampler(dataset)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=keep_batch, num_workers=0)


__all__ = ["TensorBatches", "EpochShuffleSampler", "EvalShardSampler", "batch_loader", "keep_batch"]
