"""The study report: REPORT.md answering the three studies' questions from the runs themselves.

Every section is built from a finished run's results.json (the latest of each experiment) and the
figures in its folder, which are copied beside the report; seed sweeps add success rates.
Experiments without a finished run are listed as missing, never filled in.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

from analysis.recurrent import format_step_table
from base.kmnist import OFFICIAL_SIZES, data_label
from orchestration.studies import population_printout
from orchestration.sweep import collect_sweep, summarise

KMNIST = ("kmnist_lin", "kmnist_full", "kmnist_conv")
GRID = ("check_sig", "check_step_manual", "check_sig_manual")
RECURRENT = ("srn_anb2n", "srn_anb2n_reference", "lstm_anb2nc3n", "lstm_anb2nc3n_reference")
OFFICIAL_TRAIN_SIZE = OFFICIAL_SIZES["train"]


def find_runs(root: Path) -> dict[str, dict]:
    """The latest finished run of each experiment under ``root`` (sweep jobs included):
    ``{experiment: results}`` with ``results["run_dir"]`` pointing at its folder."""
    latest: dict[str, dict] = {}
    for path in Path(root).rglob("results.json"):
        try:
            r = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a file being written, or not ours
        r["run_dir"] = str(path.parent)
        key = r.get("experiment")
        if key and (key not in latest or r.get("finished_at", "") > latest[key].get("finished_at", "")):
            latest[key] = r
    return latest


def find_seed_sweeps(root: Path) -> dict[str, list[dict]]:
    """Sweeps over ``seed`` alone, by experiment: their aggregates (success rate...)."""
    sweeps: dict[str, list[dict]] = {}
    for summary_file in Path(root).rglob("summary.json"):
        sweep = collect_sweep(summary_file.parent)
        experiments = {r["results"].get("experiment") for r in sweep["rows"] if r["results"]}
        if sweep["swept"] == ["seed"] and len(experiments) == 1:
            summary = summarise(sweep)
            summary["dir"] = str(summary_file.parent)
            sweeps.setdefault(experiments.pop(), []).append(summary)
    return sweeps


class Report:
    """Builds the markdown and copies the figures into ``out/figures/<experiment>/``."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.lines: list[str] = []
        self.missing: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def present(self, runs: dict, experiments: list[str], study: str) -> list[dict]:
        """The runs of ``experiments`` that exist, in that order; the others are noted as missing."""
        self.missing += [e for e in experiments if e not in runs]
        found = [runs[e] for e in experiments if e in runs]
        if not found:
            self.add(f"No finished {study} run was found.", "")
        return found

    def figure(self, run: dict, name: str, caption: str) -> None:
        src = Path(run["run_dir"]) / "figures" / name
        if not src.is_file():
            self.add(f"*(figure {name} not found in {run['run_dir']})*", "")
            return
        dst = self.out / "figures" / run["experiment"] / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        self.add(f"![{caption}](figures/{run['experiment']}/{name})", "", f"*{caption}*", "")

    def figures_matching(self, run: dict, pattern: str) -> list[str]:
        return sorted(p.name for p in (Path(run["run_dir"]) / "figures").glob(pattern))

    def table(self, header: list[str], rows: list[list]) -> None:
        self.add("| " + " | ".join(header) + " |", "|" + " --- |" * len(header))
        self.add(*("| " + " | ".join(str(c) for c in row) + " |" for row in rows))
        self.add("")


def _sweep_lines(sweeps: list[dict]) -> list[str]:
    out = []
    for s in sweeps:
        if "success" not in s:
            continue
        su = s["success"]
        lo, hi = su["interval95"]
        text = f"- seed sweep `{s['dir']}`: {su['succeeded']} of {su['of']} runs succeeded ({su['rate']:.0%}, 95% interval {lo:.0%}-{hi:.0%})"
        if "updates_to_success" in s:
            text += f"; updates to first success: mean {s['updates_to_success']['mean']:,.0f} (std {s['updates_to_success']['std']:,.0f})"
        out.append(text + ".")
    return out


# ---- study 1 -------------------------------------------------------------------------------------


def kmnist_paragraph(runs: list[dict]) -> str:
    """What the numbers say about the confusions, from the networks present."""
    parts = []
    errors = {r["model"]: r["test_total"] - r["test_correct"] for r in runs}
    for r in runs:
        top = r["top_confusions"][0]
        share = top["count"] / max(errors[r["model"]], 1)
        parts.append(
            f"{r['model']} gets {errors[r['model']]:,} of {r['test_total']:,} test characters wrong; its most frequent confusion is "
            f"{top['true_name']} read as {top['pred_name']} ({top['count']} images, {share:.0%} of its errors)."
        )
    if len(runs) >= 2:
        first, last = runs[0], runs[-1]
        e0, e1 = errors[first["model"]], errors[last["model"]]
        if e1 == e0:
            parts.append(f"{first['model']} and {last['model']} make the same number of errors ({e0:,}).")
        else:
            verb, word = ("fall", "fewer") if e1 < e0 else ("rise", "more")
            parts.append(f"From {first['model']} to {last['model']} the errors {verb} from {e0:,} to {e1:,} ({abs(e0 - e1):,} {word}, {abs(e0 - e1) / max(e0, 1):.0%}).")
        pairs = [{(t["true_name"], t["pred_name"]) for t in r["top_confusions"]} for r in runs]
        common = set.intersection(*pairs)
        if common:
            names = ", ".join(f"{a} read as {b}" for a, b in sorted(common))
            parts.append(f"Among the five largest confusions of every network: {names}; these pairs stay hard whatever the architecture.")
        else:
            parts.append("No pair is among the five largest confusions of every network: what confuses one architecture does not confuse the others.")
    return " ".join(parts)


def kmnist_section(rep: Report, runs: dict) -> None:
    rep.add("## 1. Character recognition on Kuzushiji-MNIST", "")
    present = rep.present(runs, KMNIST, "KMNIST")
    if not present:
        return
    rows = []
    for r in present:
        rows.append([r["experiment"], r["model"], f"{r['params']:,}", f"{100 * r['test_acc']:.2f}% ({r['test_correct']:,}/{r['test_total']:,})",
                     f"{r['test_loss']:.4f}", f"{r['train_seconds']:.1f}", r.get("epochs"), data_label(r.get("data_source"), r.get("train_size")), f"`{r['run_dir']}`"])
    rep.table(["experiment", "model", "parameters", "test accuracy", "test loss", "training s", "epochs", "training data", "run"], rows)
    small = [r for r in present if r.get("train_size") and r["train_size"] < OFFICIAL_TRAIN_SIZE]
    if small:
        names = ", ".join(f"{r['experiment']} ({data_label(r.get('data_source'), r['train_size'])})" for r in small)
        rep.add(f"Note: {names} trained on fewer than the {OFFICIAL_TRAIN_SIZE:,} training images of the benchmark; "
                "their figures are not comparable with the reference's.", "")
    rep.add(kmnist_paragraph(present), "")
    for r in present:
        rep.add(f"### {r['model']} ({r['experiment']})", "")
        rep.add("The five largest confusions (rows of the confusion matrix are the true class):", "")
        rep.table(["true", "read as", "images"], [[f"{t['true']} {t['true_name']}", f"{t['pred']} {t['pred_name']}", t["count"]] for t in r["top_confusions"]])
        rep.figure(r, "confusion_matrix.png", f"{r['model']}: test confusion matrix")
        for name in rep.figures_matching(r, "confused_*.png"):
            rep.figure(r, name, f"{r['model']}: the test images behind its largest confusion, between typical images of both classes")


# ---- study 2 -------------------------------------------------------------------------------------


def grid_section(rep: Report, runs: dict, sweeps: dict) -> None:
    rep.add("## 2. A two-layer perceptron on the 9-point grid", "")
    present = rep.present(runs, GRID, "grid")
    for r in present:
        scale = f", weights x {r['weight_scale']:g}" if r.get("weight_scale", 1) != 1 else ""
        rep.add(f"### {r['experiment']}: {r['hidden_units']} {r['activation']} hidden units{scale}", "")
        rep.add(f"Accuracy {r['test_correct']}/{r['test_total']} ({100 * r['test_acc']:.1f}%), loss {r['test_loss']:.4f}; run `{r['run_dir']}`.", "")
        if r.get("population"):
            rep.add(*population_printout(r).splitlines(), "")
            rep.figure(r, "updates_to_success.png", f"{r['experiment']}: updates to first 100% over {r['population']} seeds")
        for a in r.get("attempts", []):
            first = f"100% first at update {a['first_perfect_update']:,}" if a.get("first_perfect_update") else "never 100%"
            rep.add(f"- attempt {a['attempt']} (seed {a['seed']}): {a['updates']:,} updates, {first}; {a['outcome']}.")
        rep.add("", "Final weights:", "", "```")
        rep.add(*(f"{k:<13} = {json.dumps(v)}" for k, v in r["weights"].items()))
        rep.add("```", "")
        H = r["hidden_units"]
        rep.table(["x", "y", "target", *(f"h{i}" for i in range(H)), "output", "right"],
                  [[f"{p['x']:g}", f"{p['y']:g}", p["target"], *(f"{v:.3f}" for v in p["hidden"]), f"{p['output']:.4f}", "yes" if p["correct"] else "**no**"] for p in r["point_table"]])
        rep.add("Dividing lines (where each hidden unit crosses 0.5):", "")
        rep.add(*(f"- {d['unit']}: {d['equation'] or 'no line'} (on {d['on']})" for d in r["dividing_lines"]))
        rep.add("")
        for name in [f"hid_{H}_{i}.png" for i in range(H)] + [f"out_{H}.png", f"lines_{H}.png", f"surfaces_{H}.png"]:
            rep.figure(r, name, f"{r['experiment']}: {name[:-4]}")
    lines = _sweep_lines(sweeps.get("check_sig", []))
    if lines:
        rep.add("How reliably training reaches 100%:", "", *lines, "")


# ---- study 3 -------------------------------------------------------------------------------------


def recurrent_section(rep: Report, runs: dict, sweeps: dict) -> None:
    rep.add("## 3. Hidden-unit dynamics of recurrent nets", "")
    present = rep.present(runs, RECURRENT, "recurrent")
    rows = []
    for r in present:
        first = r.get("first_solved_update")
        exact = f"{r['error_exact']:.4f}" if "error_exact" in r else "-"
        rows.append([r["experiment"], r["model"], r["params"], f"{r['error']:.4f}", exact, f"{r['acc']:.4f}", "yes" if r["solved"] else "no",
                     r.get("max_n_generalised", "?"), f"{r['fraction_lengths_right']:.0%}" if "fraction_lengths_right" in r else "-",
                     f"{first:,}" if first is not None else "-", r.get("updates", r.get("global_step")), f"{r['train_seconds']:.1f}"])
    if rows:
        rep.table(["experiment", "model", "parameters", "error (reference's measure)", "error_exact", "acc", "solved", "max_n_generalised",
                   "lengths right", "first solved at update", "updates", "training s"], rows)
    for r in present:
        rep.add(f"### {r['experiment']} ({r['model']}, {r['hparams'].get('hidden_units')} hidden units)", "")
        if r.get("population"):
            rep.add(*population_printout(r).splitlines(), "")
            rep.figure(r, "updates_to_success.png", f"{r['experiment']}: updates to first solved over {r['population']} seeds")
        rep.figure(r, "generalisation.png", f"{r['experiment']}: the block lengths each net predicts without an error")
        gen = r.get("max_n_generalised")
        if gen is not None:
            beyond = [n for n in r.get("lengths_right", []) if n > gen]
            rep.add(f"Every block length up to n = {gen} is predicted without an error on the scored positions (tested up to {r.get('tested_up_to')})"
                    + (f"; also right at n = {', '.join(map(str, beyond))}." if beyond else "."), "")
        rep.add(*_sweep_lines(sweeps.get(r["experiment"], [])), "")
        if r.get("gate_table"):
            H = len(r["gate_table"][0]["input"])
            rep.add("Mean gate values by phase (reset = the first A of a new block):", "")
            rep.table(["phase", "positions", *(f"{g} {j}" for g in ("input", "forget", "output") for j in range(H))],
                      [[g["phase"], g["positions"], *(f"{v:.3f}" for key in ("input", "forget", "output") for v in g[key])] for g in r["gate_table"]])
        probe = r.get("probe", {})
        if probe.get("phases"):
            state = probe["state"]
            rep.add(f"How linearly the {state} state holds the count (R^2 of the count from all units; per unit: change per symbol and R^2):", "")
            rep.table(["phase", "R^2 (all units)", "counting unit", *(f"{state[0]}{u['unit']}" for u in probe["phases"][0]["units"])],
                      [[p["phase"], f"{p['r2']:.3f}", f"{state[0]}{p['counter']}", *(f"{u['per_symbol']:+.3f}/symbol (R^2 {u['r2']:.2f})" for u in p["units"])] for p in probe["phases"]])
        for n, table in r.get("step_tables", {}).items():
            rep.add("```", format_step_table(table, f"Block length n = {n}: input -> next symbol, states, predicted probabilities"), "```", "")
        if r.get("sequence_table"):
            rep.add("```", format_step_table(r["sequence_table"], "A whole test sequence from the initial state (A' = the A that starts a new block)"), "```", "")
        for name in ("hidden_states.png", "cell_states.png", "hidden_trajectories.png", "cell_trajectories.png", "hidden_vs_time.png",
                     "cell_vs_time.png", "gates_by_phase.png", "count_probe.png"):
            if (Path(r["run_dir"]) / "figures" / name).is_file():
                rep.figure(r, name, f"{r['experiment']}: {name[:-4].replace('_', ' ')}")


def write_report(root: Path, out: Path) -> Path:
    """Write ``out/REPORT.md`` (and its figures) from the runs under ``root``; return its path."""
    root, out = Path(root), Path(out)
    runs, sweeps = find_runs(root), find_seed_sweeps(root)
    if (out / "figures").exists():
        shutil.rmtree(out / "figures")  # figures of an earlier report would look like today's
    rep = Report(out)
    rep.add("# Study report", "",
            f"Generated {datetime.now().isoformat(timespec='seconds')} by `python report.py {root} --out {out}` from {len(runs)} "
            f"experiments found under `{root}`: each section uses the latest finished run of an experiment (its folder is named).", "")
    kmnist_section(rep, runs)
    grid_section(rep, runs, sweeps)
    recurrent_section(rep, runs, sweeps)
    rep.add("## Missing experiments", "")
    if rep.missing:
        rep.add("No finished run was found for these; run them and make the report again:", "")
        rep.add(*(f"- {e}: `python train.py experiment={e}`" for e in rep.missing))
    else:
        rep.add("None: every experiment of the three studies has a finished run.")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "REPORT.md"
    path.write_text("\n".join(rep.lines) + "\n")
    return path
