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


def reference_report(results: dict, param_rows: list[dict]) -> str:
    """The reference's printout: the confusion matrix, the ``Test set:`` line, then the parameter table."""
    parts = []
    if "confusion_matrix" in results:
        parts.append(np.array2string(np.array(results["confusion_matrix"]), max_line_width=200))
        parts.append("")
        parts.append(reference_test_line(results["test_loss"], results["test_correct"], results["test_total"]))
        parts.append("")
    parts.append(format_parameter_table(param_rows, results["model"]))
    return "\n".join(parts)


def write_json(path: Path, data: dict) -> None:
    """Write atomically (temporary file, then rename): a reader never sees half a results.json."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
