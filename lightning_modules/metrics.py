"""Per-seed sums as a torchmetrics ``Metric``, so that every seed of a population is measured the
same way as a single network and reduced over processes by torchmetrics.

torchmetrics' own metrics reduce a whole batch to one number (``MeanSquaredError(num_outputs=)``
shares one count among its outputs, but each seed has its own number of positions); a seed's
mean is its sum over its positions divided by its count, so the state kept is those sums.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


class PerSeedSums(Metric):
    """``sums`` (seeds, K): for each seed, K quantities added up over every batch and, under
    several processes, over the processes (each (seed, sequence) is evaluated by one process).
    Kept in float64: the sums run over thousands of positions."""

    full_state_update = False

    def __init__(self, seeds: int, names: tuple[str, ...]):
        super().__init__()
        self.names = tuple(names)
        self.add_state("sums", default=torch.zeros(seeds, len(self.names), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, rows: torch.Tensor, values: torch.Tensor) -> None:
        """Add ``values`` (R, K) to the seeds ``rows`` (R,)."""
        self.sums.index_add_(0, rows.to(self.sums.device), values.to(self.sums.dtype))

    def compute(self) -> dict[str, torch.Tensor]:
        return {name: self.sums[:, k] for k, name in enumerate(self.names)}

    def per_seed(self) -> dict[str, torch.Tensor]:
        """``compute()`` (reduced over processes) as ``name -> (seeds,)``: torchmetrics squeezes
        one-element results to scalars, which a population of one would otherwise get."""
        seeds = self.sums.shape[0]
        return {name: value.reshape(seeds) for name, value in self.compute().items()}
