"""Summaries of a population of runs: the spread of a metric, and a success rate with its interval."""

from __future__ import annotations

import math
import statistics


def spread(values: list[float]) -> dict:
    """``{"mean", "std" (sample; 0 for one value), "n"}`` of ``values``."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a success rate k/n (sensible for small n and rates near 0 or 1)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def success_rate(outcomes: list[bool]) -> dict:
    """``{"succeeded": k, "of": n, "rate": k / n, "interval95": [lo, hi]}`` (Wilson, 3 decimals)."""
    k, n = sum(bool(o) for o in outcomes), len(outcomes)
    lo, hi = wilson(k, n)
    return {"succeeded": k, "of": n, "rate": k / n if n else 0.0, "interval95": [round(lo, 3), round(hi, 3)]}
