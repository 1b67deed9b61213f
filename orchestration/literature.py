"""A run's generalisation curve beside a paper's stored one: ``python -m orchestration.literature <run>``.

Suzgun, Belinkov & Shieber (2019) stored the first failing n of each of their 10 trials after every
epoch (``docs/data/suzgun2019_anbncn_first_failing_n.csv``, read from their repository). A run of
``experiment=suzgun_anbncn`` (``data.track_generalisation``) records each seed's
``max_n_generalised`` after every epoch of 1,000 strings (results.json, per seed
``generalisation_curve``); its first failing n is one more. This prints both distributions at
chosen epochs, per trial and seed, and draws them over the epochs in one figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STORED = REPO / "docs" / "data" / "suzgun2019_anbncn_first_failing_n.csv"


def stored_first_failing(path: Path = STORED) -> np.ndarray:
    """The paper's first failing n, ``(trials, epochs)`` (epoch e in column e - 1)."""
    rows = [line for line in path.read_text().splitlines() if line and not line.startswith("#")][1:]
    return np.array([[int(v) for v in row.split(",")[1:]] for row in rows]).T


def run_first_failing(results: dict, epoch_updates: int) -> tuple[np.ndarray, int]:
    """A run's first failing n per seed after each epoch ``(seeds, epochs)`` (``max_n_generalised
    + 1``; a seed right on every tested length gets ``tested_up_to + 1``, a lower bound), and the
    largest n tested. Every seed must have been tested after every epoch."""
    curves = [dict((u, v) for u, v in s["generalisation_curve"]) for s in results["seeds"]]
    epochs = min(max(c) for c in curves) // epoch_updates
    tested = int(results["tested_up_to"])
    return np.array([[c[e * epoch_updates] + 1 for e in range(1, epochs + 1)] for c in curves]), tested


def summary_rows(paper: np.ndarray, ours: np.ndarray, epochs: list[int], tested: int) -> list[str]:
    """Markdown rows: per epoch, each side's range, median and sorted values."""

    def cell(values: np.ndarray) -> str:
        v = sorted(int(x) for x in values)
        shown = ", ".join(f">{tested}" if x > tested else str(x) for x in v)
        return f"{v[0]}-{v[-1] if v[-1] <= tested else f'(>{tested})'}, median {statistics.median(v):g} ({shown})"

    rows = ["| epoch (strings) | the paper's 10 trials: range, median (each) | this run's seeds: range, median (each) |", "| --- | --- | --- |"]
    for e in epochs:
        if e <= ours.shape[1]:
            rows.append(f"| {e} ({e * 1000:,}) | {cell(paper[:, e - 1])} | {cell(ours[:, e - 1])} |")
    return rows


def draw(paper: np.ndarray, ours: np.ndarray, out: Path) -> None:
    """Both distributions over the epochs: each trial and seed as a thin line, the medians bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for values, colour, label in ((paper, "tab:grey", "Suzgun et al. (2019), stored"), (ours, "tab:blue", "this project")):
        x = np.arange(1, values.shape[1] + 1)
        for row in values:
            ax.plot(x, row, color=colour, alpha=0.25, lw=0.8)
        ax.plot(x, np.median(values, axis=0), color=colour, lw=2.5, label=f"{label}: median of {len(values)}")
    ax.set_xlabel("epoch (1,000 strings each)")
    ax.set_ylabel("first failing n")
    ax.set_title("LSTM-3 on a^n b^n c^n, n <= 50: the first failing n after each epoch")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder of experiment=suzgun_anbncn (its results.json)")
    parser.add_argument("--epochs", type=int, nargs="*", default=[15, 50, 150])
    parser.add_argument("--figure", type=Path, default=None, help="where to draw the figure (default: <run>/figures/suzgun_protocol.png)")
    args = parser.parse_args(argv)
    results = json.loads((args.run / "results.json").read_text())
    from omegaconf import OmegaConf

    config = OmegaConf.load(args.run / "config.yaml")
    epoch = int(config.data.train_strings) // int(config.data.batch_size)  # updates an epoch
    ours, tested = run_first_failing(results, epoch)
    paper = stored_first_failing()
    print("\n".join(summary_rows(paper, ours, args.epochs, tested)))
    figure = args.figure or args.run / "figures" / "suzgun_protocol.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    draw(paper[:, : max(ours.shape[1], 1)] if ours.shape[1] < paper.shape[1] else paper, ours, figure)
    print(f"figure: {figure}")


if __name__ == "__main__":
    main()
