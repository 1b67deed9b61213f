"""The exact per-layer parameter table of a network, and its fixed-width printout."""

from __future__ import annotations

from torch import nn


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
