"""What the hidden (and cell) states of a recurrent net do on counting sequences: traces, the
gate table by phase, a linear probe of the count, per-step tables, and how far the counting
generalises. Pure functions of arrays (``trace_batch`` runs a plain ``nn.Module``), used by
``StateTrajectoryCallback``, the module's test summary and the printed report, and usable on
their own (see ``docs/analysis.md``)."""

from __future__ import annotations

import numpy as np
import torch

from base.languages import END_NAME, PHASES, SYMBOLS

STATE_KEYS = ("hidden", "cell")
GATE_KEYS = ("input", "forget", "output")


@torch.no_grad()
def trace_batch(net, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Run ``net.trace`` on a collated batch and keep the real positions, flattened in order:
    states and gates (N, H), ``probs`` (N, S) predicted, and per position ``symbol`` (the input), ``targets``,
    ``phase``, ``count``, ``step``, ``n``, ``determined``, ``sequence`` (index in the batch),
    ``time``; ``initial`` (H,) is the state before the first input."""
    was_training = net.training
    net.eval()
    try:
        weight = next(net.parameters())
        # the net's dtype: under trainer.precision=64-true its weights are float64, the batches float32
        tr = net.trace(batch["inputs"].to(device=weight.device, dtype=weight.dtype))
    finally:
        net.train(was_training)
    device = weight.device
    valid = batch["valid"]
    out = {k: tr[k][valid.to(device)].cpu().numpy() for k in ("hidden", "cell", "input", "forget", "cell_input", "output") if k in tr}
    out["probs"] = tr["logits"].softmax(-1)[valid.to(device)].cpu().numpy()
    out["symbol"] = batch["inputs"].argmax(-1)[valid].numpy()
    for key in ("targets", "phase", "count", "step", "n", "determined"):
        out[key] = batch[key][valid].numpy()
    seq, time = torch.nonzero(valid, as_tuple=True)
    out["sequence"], out["time"] = seq.numpy(), time.numpy()
    out["initial"] = tr["initial"][0].cpu().numpy()
    return out


def gate_table(tr: dict[str, np.ndarray]) -> list[dict]:
    """Mean input, forget and output gate per phase (A, B, C, reset) and unit:
    ``[{"phase": "A", "positions": 123, "input": [..H], "forget": [..], "output": [..]}]``."""
    rows = []
    for p, name in enumerate(PHASES):
        sel = tr["phase"] == p
        if not sel.any():
            continue
        rows.append({"phase": name, "positions": int(sel.sum()), **{g: tr[g][sel].mean(axis=0).round(4).tolist() for g in GATE_KEYS}})
    return rows


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares y ~ x w + b; returns (w, R^2)."""
    X = np.column_stack([x, np.ones(len(x))])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    total = ((y - y.mean()) ** 2).sum()
    r2 = 1.0 - (resid**2).sum() / total if total > 0 else 0.0
    return coef[:-1], float(r2)


def linear_probe(states: np.ndarray, count: np.ndarray, phase: np.ndarray) -> list[dict]:
    """How linearly each phase's count is held in the states ``(N, H)``.

    Per phase: ``r2`` of the best straight line predicting the count from all units together,
    and per unit j the fit ``unit_j = a + slope * count`` with its ``r2`` and ``per_symbol``,
    the change of the unit for each symbol read (``slope`` in A phases, where the count goes up
    by one per A, and ``-slope`` in B and C phases, where it goes down by one). The unit with the
    highest ``r2`` is named ``counter``. Phases where the count does not vary are left out.
    """
    rows = []
    for p, name in enumerate(PHASES):
        sel = phase == p
        if sel.sum() < 3 or np.ptp(count[sel]) == 0:
            continue
        y = count[sel].astype(float)
        _, r2_all = _fit(states[sel], y)
        direction = 1.0 if name in ("A", "reset") else -1.0
        units = []
        for j in range(states.shape[1]):
            slope, r2 = _fit(y[:, None], states[sel, j])
            units.append({"unit": j, "slope": round(float(slope[0]), 4), "per_symbol": round(direction * float(slope[0]), 4), "r2": round(r2, 4)})
        best = max(units, key=lambda u: u["r2"])
        rows.append({"phase": name, "positions": int(sel.sum()), "r2": round(r2_all, 4), "counter": best["unit"], "units": units})
    return rows


def step_table(tr: dict[str, np.ndarray], sequence: int, symbols: str = SYMBOLS) -> list[dict]:
    """One row per step of one sequence: input and next symbol, whether the input is the A that
    starts a new block (``reset``), hidden (and cell) state, the predicted next-symbol
    probabilities, and whether the step is determined."""
    sel = tr["sequence"] == sequence
    rows = []
    for i in np.flatnonzero(sel):
        row = {"input": symbols[tr["symbol"][i]], "next": symbols[tr["targets"][i]], "reset": bool(tr["phase"][i] == PHASES.index("reset")),
               "hidden": tr["hidden"][i].round(2).tolist()}
        if "cell" in tr:
            row["cell"] = tr["cell"][i].round(2).tolist()
        row["probs"] = tr["probs"][i].round(2).tolist()
        row["determined"] = bool(tr["determined"][i])
        rows.append(row)
    return rows


def format_step_table(rows: list[dict], title: str) -> str:
    """``A -> A  hidden [ 0.62 -0.80]  probs [0.83 0.17]``, the reference's layout, per step; the A
    that starts a new block (the reset step) reads ``A'``."""

    def vec(v):
        return "[" + " ".join(f"{x:5.2f}" for x in v) + "]"

    lines = [title]
    for r in rows:
        cell = f"  cell {vec(r['cell'])}" if "cell" in r else ""
        target = len(r["probs"]) - 1 if r["next"] == END_NAME else SYMBOLS.index(r["next"])  # T: the last output
        mark = "" if not r["determined"] else ("" if np.argmax(r["probs"]) == target else "  <- wrong")
        symbol = r["input"] + ("'" if r.get("reset") else " ")
        lines.append(f"  {symbol} -> {r['next']}  hidden {vec(r['hidden'])}{cell}  probs {vec(r['probs'])}{mark}")
    return "\n".join(lines)


def format_gate_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    H = len(rows[0]["input"])
    head = "  phase   n    " + "  ".join(f"{g + ' gate':<{7 * H}}" for g in GATE_KEYS)
    lines = ["Mean gate values by phase (per unit):", head]
    for r in rows:
        cols = "  ".join(" ".join(f"{v:6.3f}" for v in r[g]) for g in GATE_KEYS)
        lines.append(f"  {r['phase']:<6} {r['positions']:>4}    {cols}")
    return "\n".join(lines)


def format_probe(rows: list[dict], state: str) -> str:
    lines = [f"Linear probe of the count in the {state} state (R^2 of count from all units; per unit: change per symbol, R^2):"]
    for r in rows:
        units = ", ".join(f"{state[0]}{u['unit']}: {u['per_symbol']:+.3f}/symbol (R^2 {u['r2']:.2f})" for u in r["units"])
        lines.append(f"  {r['phase']:<6} R^2 {r['r2']:.3f}; counter {state[0]}{r['counter']}; {units}")
    return "\n".join(lines)


def generalisation(ns: list[int], all_right: list[bool]) -> dict:
    """From one test sequence per block length n and whether every scored position of it was
    right: ``max_n_generalised``, the largest N with every length 1..N right (0 if n = 1 fails);
    ``lengths_right``, every length that was right; ``fraction_lengths_right``, their share of the
    lengths tested; ``tested_up_to``."""
    right = dict(sorted(zip(ns, all_right)))
    max_n = 0
    for n in range(1, max(right) + 1):
        if not right.get(n, False):  # untested counts as wrong
            break
        max_n = n
    lengths_right = [n for n, ok in right.items() if ok]
    return {"max_n_generalised": max_n, "lengths_right": lengths_right, "fraction_lengths_right": len(lengths_right) / len(right), "tested_up_to": max(right)}
