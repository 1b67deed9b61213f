"""How far a run's trained LSTMs count, predicted from their counting cell: ``python -m
orchestration.lstm_counting <run folder>``.

The hand-set counting LSTM (``conf/experiment/count_lstm_manual_*``) adds exactly +1 per a and
-1/k per b to its b-count, so the count is 0 exactly at the last b for every n. A trained net's
counting cell (the A phase's best linear probe, ``analysis.recurrent.linear_probe``, fitted on the
training lengths n = 1..data.max_n) moves by some alpha per a and beta per b: over a block it
drifts by n (alpha + k beta) from where the exact count would be. When that drift reaches half a
b-step, |beta| / 2, the net reads the wrong symbol: its predicted reach is |beta| / (2 |alpha +
k beta|). This prints, per seed, alpha, beta, the drift per n, the predicted reach and the
measured ``max_n_generalised``, and Spearman's rho between the two.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from analysis.recurrent import linear_probe, trace_batch
from base.languages import LANGUAGES
from datamodules.grammar import GrammarDataModule
from lightning_modules.recurrent_nets import make_net
from orchestration.srn_dynamics import spearman


def seed_rows(run: Path) -> list[dict]:
    """Per seed: seed, alpha, beta, drift, predicted reach and max_n_generalised (the final nets)."""
    from omegaconf import OmegaConf

    results = json.loads((run / "results.json").read_text())
    config = OmegaConf.load(run / "config.yaml")
    hp = results["hparams"]
    k = LANGUAGES[config.data.language][0]
    dm = GrammarDataModule(language=config.data.language, blocks=1, end_symbol=bool(config.data.get("end_symbol", False)))
    batch = dm.batch_of_blocks([[n] for n in range(1, int(config.data.max_n) + 1)])
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    rows = []
    for i, s in enumerate(results["seeds"]):
        net = make_net(hp["cell"], hp["num_symbols"], hp["hidden_units"], bool(hp.get("peepholes"))).load_flat(state[f"seed_weights.{i}"])
        tr = trace_batch(net, batch)
        probe = {p["phase"]: p for p in linear_probe(tr["cell"], tr["count"], tr["phase"])}
        if "A" not in probe or "B" not in probe:
            continue
        u = probe["A"]["counter"]
        alpha, beta = probe["A"]["units"][u]["per_symbol"], probe["B"]["units"][u]["per_symbol"]
        drift = alpha + k * beta
        reach = abs(beta) / (2 * abs(drift)) if drift else float("inf")
        rows.append({"seed": s["seed"], "unit": u, "alpha": alpha, "beta": beta, "drift": drift, "predicted": reach, "max_n_generalised": s["max_n_generalised"]})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="+", help="run folders (their seeds are pooled)")
    args = parser.parse_args(argv)
    rows = [r for run in args.run for r in seed_rows(run)]
    print("| seed | counting cell | per a | per b | drift per n | predicted reach | max_n_generalised |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['seed']} | c{r['unit']} | {r['alpha']:+.4f} | {r['beta']:+.4f} | {r['drift']:+.4f} | {r['predicted']:.1f} | {r['max_n_generalised']} |")
    if len(rows) >= 3:
        rho = spearman([r["predicted"] for r in rows], [float(r["max_n_generalised"]) for r in rows])
        print(f"\nSpearman's rho of the predicted reach and max_n_generalised over {len(rows)} seeds: {rho:.2f}")


if __name__ == "__main__":
    main()
