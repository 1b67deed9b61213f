"""What a finished run reports: the parameter table, the reference-style printout, results.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from torch import nn

from callbacks.confusion import reference_test_line


def parameter_table(model: nn.Module) -> list[dict]:
    """One row per module that owns parameters directly: name, type, parameter shapes, count."""
    rows = []
    for name, module in model.named_modules():
        params = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if params:
            rows.append(
                {
                    "layer": name,
                    "type": type(module).__name__,
                    "shapes": [list(p.shape) for p in params],
                    "params": sum(p.numel() for p in params),
                }
            )
    return rows


def format_parameter_table(rows: list[dict], title: str) -> str:
    """Fixed-width table ending with the exact total, e.g. ``Total  206,922``."""
    cells = [(r["layer"], r["type"], " + ".join("x".join(map(str, s)) for s in r["shapes"]), f"{r['params']:,}") for r in rows]
    total = f"{sum(r['params'] for r in rows):,}"
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(("layer", "type", "shapes", total))]
    widths[3] = max(widths[3], len("params"))

    def line(c):
        return f"{c[0]:<{widths[0]}}  {c[1]:<{widths[1]}}  {c[2]:<{widths[2]}}  {c[3]:>{widths[3]}}"

    rule = "-" * len(line(("", "", "", "")))
    out = [f"{title}: trainable parameters", line(("layer", "type", "shapes", "params")), rule]
    out += [line(c) for c in cells]
    out += [rule, line(("Total", "", "", total))]
    return "\n".join(out)


def grid_report(r: dict) -> str:
    """Weights, the table of every point's activations, the accuracy, the dividing lines and
    how training went, as the grid study's write-up shows them."""
    w = r["weights"]
    H = r["hidden_units"]
    scale = f", every weight x {r['weight_scale']:g}" if r["weight_scale"] != 1 else ""
    out = [f"Final weights ({H} {r['activation']} hidden units{scale}):"]
    for key in ("hidden_weight", "hidden_bias", "output_weight", "output_bias"):
        prefix = f"  {key:<13} = "
        out.append(prefix + np.array2string(np.array(w[key]), precision=3, suppress_small=True, separator=", ", prefix=prefix))
    hidden_head = " ".join(f"{'h' + str(i):>6}" for i in range(H))
    out += ["", f"  x  y  target | {hidden_head} |  output  pred", "  " + "-" * (22 + 7 * H + 14)]
    for row in r["point_table"]:
        hidden = " ".join(f"{v:6.3f}" for v in row["hidden"])
        mark = "" if row["correct"] else "  <- wrong"
        out.append(f"  {row['x']:.0f}  {row['y']:.0f}  {row['target']:>6} | {hidden} | {row['output']:7.4f}  {row['pred']:>4}{mark}")
    out += ["", f"Final accuracy: {r['test_correct']}/{r['test_total']} ({100 * r['test_acc']:.1f}%), loss {r['test_loss']:.4f}", ""]
    out.append("Dividing lines (where each hidden unit crosses 0.5; 'on' = the side where it is >= 0.5):")
    for line in r["dividing_lines"]:
        text = line["equation"] or "no line (both input weights 0)"
        out.append(f"  {line['unit']}: {text:<24} on {line['on']}")
    if r["attempts"]:
        out.append("")
        for a in r["attempts"]:
            first = f"100% first at update {a['first_perfect_update']:,}" if a["first_perfect_update"] else "never 100%"
            out.append(f"Attempt {a['attempt']} (seed {a['seed']}): {a['updates']:,} updates, {first}; {a['outcome']}")
    return "\n".join(out)


def reference_report(results: dict, param_rows: list[dict]) -> str:
    """The reference's printout: for classifiers the confusion matrix and the ``Test set:``
    line, for the grid the weights and point table; then the parameter table."""
    parts = []
    if "confusion_matrix" in results:
        parts.append(np.array2string(np.array(results["confusion_matrix"]), max_line_width=200))
        parts.append("")
        parts.append(reference_test_line(results["test_loss"], results["test_correct"], results["test_total"]))
        parts.append("")
    if "point_table" in results:
        parts += [grid_report(results), ""]
    parts.append(format_parameter_table(param_rows, results["model"]))
    return "\n".join(parts)


def write_json(path: Path, data: dict) -> None:
    """Write atomically (temporary file, then rename): a reader never sees half a results.json."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
