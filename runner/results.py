"""What a finished run reports: the parameter table, the reference-style printout, results.json."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime
from pathlib import Path

import numpy as np
from torch import nn

from callbacks.confusion import reference_test_line
from datamodules.kmnist import data_label


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


def recurrent_report(r: dict) -> str:
    """Per-step tables (as in the reference write-up), the gate table, the count probe and the
    metrics of a SequencePredictor run."""
    from callbacks.state_analysis import format_gate_table, format_probe, format_step_table

    out = []
    for n, rows in r.get("step_tables", {}).items():
        out += [format_step_table(rows, f"Block length n = {n}:"), ""]
    if r.get("gate_table"):
        out += [format_gate_table(r["gate_table"]), ""]
    if r.get("probe", {}).get("phases"):
        out += [format_probe(r["probe"]["phases"], r["probe"]["state"]), ""]
    gen = ""
    if "max_n_generalised" in r:
        gen = f"; every block length up to n = {r['max_n_generalised']} right (tested up to {r['tested_up_to']})"
    solved = "solved" if r["solved"] else "not solved"
    out.append(f"Test: error {r['error']:.4f}, det_acc {r['det_acc']:.4f} ({solved}){gen}")
    for a in r.get("attempts", []):
        first = f"first solved at update {a['first_solved_update']:,}" if a["first_solved_update"] is not None else "never solved"
        out.append(f"Attempt {a['attempt']} (seed {a['seed']}): {a['updates']:,} updates from update {a['start_update']:,}, {first}; {a['outcome']}")
    if r.get("first_solved_update") is not None:
        out.append(f"First solved after {r['first_solved_update']:,} updates ({r['first_solved_seconds']:.1f} s)")
    return "\n".join(out)


def reference_report(results: dict) -> str:
    """The reference's printout: for classifiers the confusion matrix and the ``Test set:``
    line, for the grid the weights and point table, for recurrent nets the per-step tables,
    gates and probe; then the parameter table."""
    parts = []
    if "confusion_matrix" in results:
        parts.append(np.array2string(np.array(results["confusion_matrix"]), max_line_width=200))
        parts.append("")
        parts.append(reference_test_line(results["test_loss"], results["test_correct"], results["test_total"]))
        if "data_source" in results:
            parts.append(f"Trained on: {data_label(results['data_source'], results['train_size'])}; tested on {results['test_size']:,} images")
        parts.append("")
    if "point_table" in results:
        parts += [grid_report(results), ""]
    if "det_acc" in results:
        parts += [recurrent_report(results), ""]
    parts.append(format_parameter_table(results["parameter_table"], results["model"]))
    return "\n".join(parts)


def device_name(trainer) -> str:
    root = trainer.strategy.root_device
    if root.type == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name(root)})"
    return f"{root.type} ({platform.processor() or platform.machine()})"


def collect_results(cfg, trainer, model, datamodule, callbacks, ckpt_path, out_dir: Path) -> dict:
    """results.json of a finished run: what every run reports, the module's ``test_summary()``,
    and what callbacks with a ``results()`` method measured (timing, gate tables...)."""
    from callbacks import TrainTimer, top_confusions

    timer = next(c for c in callbacks if isinstance(c, TrainTimer))
    rows = parameter_table(model)

    def size(name):
        data = getattr(datamodule, name, None)
        return len(data) if data is not None else None

    results = {
        "experiment": cfg.name,
        "model": type(getattr(model, "net", model)).__name__,
        "params": sum(r["params"] for r in rows),
        "seed": cfg.seed,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        **model.test_summary(),
        "train_seconds": round(timer.seconds, 3),
        "train_samples_per_second": round(timer.samples_per_second, 1),
        "hparams": dict(model.hparams),
        **({"data_source": datamodule.data_source} if hasattr(datamodule, "data_source") else {}),
        "train_size": size("train_set"),
        "test_size": size("test_set"),
        "device": device_name(trainer),
        "world_size": trainer.world_size,
        "precision": str(trainer.precision),
        "resumed_from": ckpt_path,
        "parameter_table": rows,
        "run_dir": str(out_dir),
        "finished_at": datetime.now().isoformat(timespec="seconds"),
    }
    for callback in callbacks:  # callbacks that measured something add it (e.g. the gate table)
        if callable(getattr(callback, "results", None)):
            results.update(callback.results())
    if results.get("updates") and timer.seconds > 0:
        results["updates_per_second"] = round(results["updates"] / timer.seconds, 1)
    if "confusion_matrix" in results:
        results["top_confusions"] = top_confusions(results["confusion_matrix"], 5, getattr(datamodule, "classes", None))
    return results


def write_json(path: Path, data: dict) -> None:
    """Write atomically (temporary file, then rename): a reader never sees half a results.json."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
