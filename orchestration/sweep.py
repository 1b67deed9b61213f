"""What a Hydra multirun found: one row per run, the swept values against the results.

``SweepSummary`` is a Hydra callback (``conf/hydra/default.yaml``): when a multirun ends it reads
every job folder of the sweep directory (so it works whatever launched the jobs: in this process,
joblib workers, or SLURM) and writes ``summary.csv``, ``summary.md`` and ``summary.png`` there.
Jobs that failed are listed with their error (``train.py`` writes ``error.txt`` and lets the
sweep go on); when any failed, the multirun exits with status 1 once the summary is written.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from analysis.population import spread, success_rate
from orchestration.studies import STUDIES

# results.json keys shown per run, when the runs have them
METRICS = (
    "population", "success_rate", "success_interval95",
    "test_acc", "test_loss", "acc", "error", "error_exact", "solved", "max_n_generalised", "fraction_lengths_right",
    "first_solved_update", "updates", "first_perfect_update", "attempts",
)


def _job_dirs(sweep_dir: Path) -> list[Path]:
    jobs = [p.parent.parent for p in sweep_dir.glob("*/.hydra/overrides.yaml")]
    return sorted(jobs, key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))


def _value(text: str) -> Any:
    """An override's value as a number when it is one (so that 10, 20, 160 sort and plot as numbers)."""
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text else number


def collect_sweep(sweep_dir: Path) -> dict:
    """Every run of the sweep: ``{"swept": [keys], "rows": [...]}``. A row has ``job``, the run's
    overrides that differ between runs (``swept``), ``status`` (``ok`` or ``failed``), the run's
    ``results`` (or None) and ``error`` (the first line of error.txt, or why there are no results)."""
    rows = []
    for job in _job_dirs(Path(sweep_dir)):
        overrides = {}
        for item in OmegaConf.load(job / ".hydra" / "overrides.yaml"):
            key, _, value = str(item).partition("=")
            overrides[key.lstrip("+~")] = value
        results_file, error_file = job / "results.json", job / "error.txt"
        row: dict[str, Any] = {"job": job.name, "dir": str(job), "overrides": overrides, "results": None, "error": None}
        if results_file.is_file():
            row["results"], row["status"] = json.loads(results_file.read_text()), "ok"
        else:
            row["status"] = "failed"
            row["error"] = error_file.read_text().strip().splitlines()[0] if error_file.is_file() else "no results.json (the run stopped before the end)"
        rows.append(row)
    keys = sorted({k for r in rows for k in r["overrides"]})
    swept = [k for k in keys if len({r["overrides"].get(k) for r in rows}) > 1] or keys
    for r in rows:
        r["swept"] = {k: _value(r["overrides"][k]) if k in r["overrides"] else None for k in swept}
    return {"swept": swept, "rows": rows}


def summarise(sweep: dict) -> dict:
    """Aggregates over the finished runs: the study's objective (its mean and spread), time, and
    for a study with a success rule (grid, recurrent) the success rate with its 95% interval and
    the updates to first success."""
    done = [r["results"] for r in sweep["rows"] if r["results"]]
    # one study's runs share an objective; runs of several studies (or results.json files written
    # before they named their study) get the table and times only
    names = {res.get("study") for res in done}
    study = STUDIES.get(names.pop()) if len(names) == 1 else None
    populations = bool(done) and all(res.get("population") for res in done)  # seeds=N runs: each row is a success rate
    main = (study.objective_of(done[0]) if populations else study.objective) if study else None
    out: dict[str, Any] = {"runs": len(sweep["rows"]), "finished": len(done), "failed": len(sweep["rows"]) - len(done), "main_metric": main}
    if main:
        out[main] = spread([float(res[main]) for res in done])
    if done:
        out["train_seconds"] = spread([float(res["train_seconds"]) for res in done])
    if study and study.success and not populations:
        out["success"] = success_rate([study.success(res) for res in done])
        when = [res.get(study.first_success) for res in done]
        when = [w for w in when if w is not None]
        if when:
            out["updates_to_success"] = spread([float(w) for w in when])
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return str(len(value))
    return str(value)


def table_rows(sweep: dict) -> tuple[list[str], list[list[str]]]:
    """Columns and cells: job, swept values, status, params, the metrics the runs have, time, why it failed.

    The failure column is not called ``error``: the SRN reports a metric of that name."""
    done = [r["results"] for r in sweep["rows"] if r["results"]]
    metrics = [m for m in METRICS if any(_metric(res, m) is not None for res in done)]
    header = ["job", *sweep["swept"], "status", "params", *metrics, "train_seconds", "failure"]
    rows = []
    for r in sweep["rows"]:
        res = r["results"] or {}
        rows.append([r["job"], *(_cell(r["swept"][k]) for k in sweep["swept"]), r["status"], _cell(res.get("params")),
                     *(_cell(_metric(res, m)) for m in metrics), _cell(res.get("train_seconds")), r["error"] or ""])
    return header, rows


def _metric(results: dict, key: str):
    """A run's value for a summary column; a population's success interval reads ``lo-hi``."""
    if key == "success_interval95":
        interval = results.get("success", {}).get("interval95") if results.get("population") else None
        return f"{interval[0]:.3f}-{interval[1]:.3f}" if interval else None
    return results.get(key)


def summary_figure(sweep: dict, summary: dict):
    """The main metric against the swept value (a numeric key other than the seed, when there is
    one), as a matplotlib ``Figure``; None when no finished run has a main metric."""
    main = summary.get("main_metric")
    points = [(r["swept"], r["results"][main]) for r in sweep["rows"] if r["results"] and main]
    if not points:
        return None
    # population runs carry the 95% interval of their success rate: drawn as error bars
    intervals = {id(r["swept"]): r["results"]["success"]["interval95"] for r in sweep["rows"]
                 if r["results"] and main == "success_rate" and "success" in r["results"]}
    from matplotlib.figure import Figure  # no pyplot: renders headless

    numeric = [k for k in sweep["swept"] if all(isinstance(swept[k], (int, float)) for swept, _ in points)]
    key = next((k for k in numeric if k != "seed"), numeric[0] if numeric else None)
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    if key is not None:
        pts = sorted(((swept[key], y, intervals.get(id(swept))) for swept, y in points), key=lambda p: p[0])
        ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], "o-" if key != "seed" else "o")
        if intervals:
            lo = [y - iv[0] for _, y, iv in pts]
            hi = [iv[1] - y for _, y, iv in pts]
            ax.errorbar([x for x, _, _ in pts], [y for _, y, _ in pts], yerr=[lo, hi], fmt="none", capsize=4, color="tab:blue",
                        label="95% interval (Wilson)")
        ax.set_xlabel(key)
        values = [x for x, _, _ in pts]
        if key != "seed" and min(values) > 0 and max(values) / min(values) >= 10:
            ax.set_xscale("log")
    else:
        labels = [", ".join(f"{k}={v}" for k, v in swept.items()) for swept, _ in points]
        ax.plot(range(len(points)), [y for _, y in points], "o")
        ax.set_xticks(range(len(points)), labels, rotation=45, ha="right", fontsize=7)
    if not intervals:  # a mean of success rates at different settings means nothing
        ax.axhline(summary[main]["mean"], color="grey", ls=":", label=f"mean {summary[main]['mean']:.4g}")
    ax.set_ylabel(main)
    title = f"{summary['finished']} of {summary['runs']} runs finished"
    if "success" in summary:
        title += f"; {summary['success']['succeeded']}/{summary['success']['of']} succeeded"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def generalisation_rows(sweep: dict, kept: bool = False) -> list[dict]:
    """Every seed of every finished recurrent run (a population's seeds, or the run's one net),
    in job order: ``label`` (``seed <s>``), ``lengths_right``, ``tested_up_to``,
    ``max_n_generalised``; empty for other studies. ``kept``: the same of the nets the model
    selection kept (``data.select_lengths``; a population's ``selected`` per seed, a single run's
    ``selection``), for the seeds that have one."""
    rows = []
    for row in sweep["rows"]:
        res = row["results"]
        if not res or "lengths_right" not in res:
            continue
        for one in res.get("seeds") or [res]:
            net = (one.get("selected") if "seeds" in res else one.get("selection")) if kept else one
            if net and "lengths_right" in net:
                rows.append({"label": f"seed {one['seed']}", "lengths_right": net["lengths_right"], "tested_up_to": res["tested_up_to"],
                             "max_n_generalised": net["max_n_generalised"]})
    return rows


def write_summary(sweep_dir: Path) -> dict:
    """Write ``summary.csv``, ``summary.md`` and ``summary.png`` into ``sweep_dir`` (and for
    recurrent runs ``generalisation.png``, every seed of every job, and ``generalisation_kept.png``,
    the nets the model selection kept, where the runs selected); return the aggregates."""
    sweep_dir = Path(sweep_dir)
    sweep = collect_sweep(sweep_dir)
    summary = summarise(sweep)
    header, rows = table_rows(sweep)
    with open(sweep_dir / "summary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    lines = [f"# Sweep {sweep_dir}", "", f"{summary['finished']} of {summary['runs']} runs finished; {summary['failed']} failed.", ""]
    main = summary.get("main_metric")
    if main:
        m = summary[main]
        lines.append(f"- {main}: mean {m['mean']:.4f}, std {m['std']:.4f} over {m['n']} runs")
    if "train_seconds" in summary:
        t = summary["train_seconds"]
        lines.append(f"- training time: mean {t['mean']:.1f} s, std {t['std']:.1f} s")
    if "success" in summary:
        s = summary["success"]
        lo, hi = s["interval95"]
        lines.append(f"- success rate: {s['succeeded']}/{s['of']} = {s['rate']:.0%} (95% interval {lo:.0%}-{hi:.0%})")
    if "updates_to_success" in summary:
        u = summary["updates_to_success"]
        lines.append(f"- updates to first success: mean {u['mean']:,.0f}, std {u['std']:,.0f}")
    lines += ["", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
    fig = summary_figure(sweep, summary)
    if fig is not None:
        fig.savefig(sweep_dir / "summary.png", dpi=100)
        lines += ["", "![main metric against the swept value](summary.png)"]
    nets, kept = generalisation_rows(sweep), generalisation_rows(sweep, kept=True)
    if len(nets) > 1:  # the seeds of every job on one figure: which lengths each predicts without an error
        from callbacks.state_trajectories import generalisation_figure

        config = Path(sweep["rows"][0]["dir"]) / "config.yaml"  # the test strings' blocks, as the runs had them
        blocks = int(OmegaConf.select(OmegaConf.load(config), "data.eval_blocks", default=2)) if config.is_file() else 2
        for name, which, drawn in (("generalisation.png", "nets of the sweep", nets), ("generalisation_kept.png", "nets kept by the model selection", kept)):
            if len(drawn) > 1:
                counts = sorted(g["max_n_generalised"] for g in drawn)
                title = f"{len(drawn)} {which}: block lengths predicted without an error (dark)\nevery length right up to n = {counts[0]}..{counts[-1]}"
                generalisation_figure(drawn, title, blocks=blocks).savefig(sweep_dir / name, dpi=100)
                lines += ["", f"![which lengths the {which} get right]({name})"]
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n")
    (sweep_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


class SweepSummary(Callback):
    """Hydra callback: the summary of a multirun, written when it ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        summary = write_summary(sweep_dir)
        print(f"sweep summary: {sweep_dir / 'summary.md'}")
        if summary["failed"]:
            # Hydra turns an exception from a callback into a warning; SystemExit still ends the
            # process with a non-zero status, after every run and the summary are done
            print(f"error: {summary['failed']} of {summary['runs']} runs failed; see {sweep_dir / 'summary.md'}", file=sys.stderr)
            raise SystemExit(1)
