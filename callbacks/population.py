"""The figure of a population run (``seeds=N``): how many updates it takes to succeed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pytorch_lightning import Callback

from analysis.population import success_rate
from base.contracts import Population
from callbacks.figures import Figure, publish


def updates_to_success_figure(first_success: list, updates: list[int], title: str) -> Figure:
    """The empirical distribution of updates to first success: the fraction of seeds that had
    succeeded by each update count (a step curve up to the success rate), and the seeds that
    never did marked at the updates they made (censored)."""
    fig = Figure(figsize=(6.4, 4), layout="constrained")
    ax = fig.add_subplot()
    n = len(first_success)
    done = np.sort([v for v in first_success if v is not None])
    censored = [u for v, u in zip(first_success, updates) if v is None]
    if done.size:
        xs = np.concatenate([[0], done])
        ys = np.arange(done.size + 1) / n
        ax.step(xs, ys, where="post", label=f"succeeded: {done.size} of {n}")
    if censored:
        ax.plot(censored, np.full(len(censored), done.size / n), "x", color="tab:red", ms=8, label=f"never succeeded: {len(censored)} (at the updates they made)")
    rate = success_rate([v is not None for v in first_success])
    lo, hi = rate["interval95"]
    ax.axhspan(lo, hi, color="grey", alpha=0.15, label=f"95% interval of the success rate: {lo:.0%}-{hi:.0%}")
    ax.set_xlabel("updates to first success")
    ax.set_ylabel("fraction of seeds succeeded")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return fig


class PopulationCallback(Callback):
    """After ``trainer.test`` of a population (``seeds`` > 1): the distribution of updates to
    success as ``updates_to_success.png`` and in TensorBoard (``population/updates_to_success``).
    Does nothing for a single net. Rank 0 only."""

    def __init__(self, save_dir: str | None = None):
        self.save_dir = Path(save_dir) if save_dir else None

    def on_test_end(self, trainer, pl_module):
        if not trainer.is_global_zero or not isinstance(pl_module, Population) or len(pl_module.seed_list) == 1:
            return
        outcomes = pl_module.seed_outcomes()
        key = pl_module.first_success_key
        first = [r[key] if r["outcome"] == "succeeded" else None for r in outcomes]
        seeds = [r["seed"] for r in outcomes]
        fig = updates_to_success_figure(first, [r["updates"] for r in outcomes], f"{len(seeds)} seeds ({seeds[0]}..{seeds[-1]})")
        publish(trainer, fig, "population/updates_to_success", self.save_dir / "updates_to_success.png" if self.save_dir else None)
