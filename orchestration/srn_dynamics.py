"""How a run's SRNs count: ``python -m orchestration.srn_dynamics <run folder>``.

For every seed of a run of the SRN study (its ``checkpoints/last.ckpt`` and ``results.json``): the
a-map's attracting fixed point and the b-map's saddle with their eigenvalue magnitudes, the
balance ln rate_a + k ln rate_b of a^n b^(k n) (Rodriguez, Wiles & Elman 1999: 0 when the rates
cancel; ``lightning_modules.fixed_points``), and the measured ``max_n_generalised``; then how well
1 / |balance| ranks the seeds by how far they count (Spearman's rho over the seeds that have both
fixed points).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from base.languages import LANGUAGES
from lightning_modules.fixed_points import balance
from lightning_modules.recurrent_nets import Layout


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):  # ties share their mean rank
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2
        i = j + 1
    return ranks


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (Pearson's on the ranks, ties given their mean rank)."""
    rx, ry = _ranks(x), _ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var if var else float("nan")


def seed_rows(run: Path) -> list[dict]:
    """Per seed: seed, rate_a, rate_b, balance, max_n_generalised, solved."""
    results = json.loads((run / "results.json").read_text())
    from omegaconf import OmegaConf

    config = OmegaConf.load(run / "config.yaml")
    hp = results["hparams"]
    layout = Layout(hp["cell"], hp["num_symbols"], hp["hidden_units"])
    k = LANGUAGES[config.data.language][0]
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    rows = []
    for i, s in enumerate(results["seeds"]):
        b = balance(layout, state[f"seed_weights.{i}"], k)
        rows.append({"seed": s["seed"], "rate_a": b.rate_a, "rate_b": b.rate_b, "balance": b.balance, "max_n_generalised": s["max_n_generalised"], "solved": s["solved"]})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    args = parser.parse_args(argv)
    rows = seed_rows(args.run)
    print("| seed | solved | rate_a (a-map, attracting) | rate_b (b-map, saddle) | balance | max_n_generalised |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        fmt = [f"{r[k]:.4f}" if r[k] is not None else "none" for k in ("rate_a", "rate_b", "balance")]
        print(f"| {r['seed']} | {'yes' if r['solved'] else 'no'} | {' | '.join(fmt)} | {r['max_n_generalised']} |")
    both = [r for r in rows if r["balance"] is not None]
    if len(both) >= 3:
        rho = spearman([1 / max(abs(r["balance"]), 1e-12) for r in both], [float(r["max_n_generalised"]) for r in both])
        print(f"\nSpearman's rho of 1/|balance| and max_n_generalised over the {len(both)} seeds with both fixed points: {rho:.2f}")


if __name__ == "__main__":
    main()
