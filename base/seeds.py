"""Which seeds of a population each process trains (``trainer=ddp`` with ``seeds=N``)."""

from __future__ import annotations


def seeds_of_rank(seeds: int, world: int, rank: int) -> list[int]:
    """The indices of the seeds process ``rank`` of ``world`` trains: i with i mod world = rank
    (so a single network trains on process 0, and N seeds spread evenly)."""
    return [i for i in range(seeds) if i % world == rank]
