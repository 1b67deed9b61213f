"""Summaries of a population of runs: the spread of a metric, and a success rate with its interval."""

from __future__ import annotations

import math
import statistics

import numpy as np


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


def updates_distribution(first_success: list, budgets: list[int]) -> dict:
    """Updates to first success over a population, from each seed's first success (None: it never
    succeeded, so it is censored at ``budgets[i]``, the updates it made): how many succeeded and how
    many are censored, and the median, quartiles, minimum and maximum over those that succeeded."""
    done = sorted(int(v) for v in first_success if v is not None)
    out = {"succeeded": len(done), "censored": len(first_success) - len(done),
           "censored_at": sorted(int(b) for v, b in zip(first_success, budgets) if v is None)}
    if done:
        q1, median, q3 = (float(np.percentile(done, q)) for q in (25, 50, 75))
        out |= {"median": median, "q1": q1, "q3": q3, "min": done[0], "max": done[-1]}
    return out
