"""Time per update (KMNIST: per epoch; the grid: the whole command) of this checkout against an
earlier revision of the project, in one run, on the same machine.

    python benchmarks/engines.py                          # against the last revision with hand-written derivatives
    python benchmarks/engines.py --baseline HEAD~3 --only srn_anb2n,lstm_anb2nc3n --repeats 3

The baseline is checked out with ``git worktree`` into a temporary folder. Each workload runs in
a fresh process of each checkout, in turn (baseline, current, baseline, ...), ``--repeats``
times; the fastest run of each is kept (the machine's noise only ever slows a run down). A
workload is what ``python train.py <overrides>`` builds (``benchmarks/speed.py``'s ``build``, with
the threads ``train.py`` would set), trained for a fixed number of updates with every stopping
rule and the in-fit evaluation off; the time is the ``TrainTimer`` callback's (training only),
after 3 updates in the same process that are not timed (compiling, where the code compiles).
The grid's rows time the whole ``python train.py experiment=check_sig`` command, as a user runs it.
Results are printed as a table (``new / baseline``: under 1 is faster) and written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the last revision whose recurrent nets, Kalman filter and KMNIST module used hand-written
# derivatives and manual optimisation
DEFAULT_BASELINE = "819c75b"

_OFF = ["trainer.limit_val_batches=0", "callbacks.solved_stopping=null", "model.restart_after=1000000"]
# name -> (overrides, updates or epochs, unit); the literature's one-string-per-update workloads last
WORKLOADS = {
    "kmnist_lin": (["experiment=kmnist_lin", "data.source=bundled", "trainer.limit_val_batches=0"], 3, "epoch"),
    "kmnist_full": (["experiment=kmnist_full", "data.source=bundled", "trainer.limit_val_batches=0"], 3, "epoch"),
    "kmnist_conv": (["experiment=kmnist_conv", "data.source=bundled", "trainer.limit_val_batches=0"], 2, "epoch"),
    "srn_anb2n": (["experiment=srn_anb2n", *_OFF], 300, "update"),
    "srn_anb2n seeds=100": (["experiment=srn_anb2n", "seeds=100", *_OFF], 100, "update"),
    "lstm_anb2nc3n": (["experiment=lstm_anb2nc3n", *_OFF], 300, "update"),
    "lstm_anb2nc3n seeds=100": (["experiment=lstm_anb2nc3n", "seeds=100", *_OFF], 50, "update"),
    "suzgun_anbncn seeds=10": (["experiment=suzgun_anbncn", "seeds=10", *_OFF], 200, "update"),
    "dekf_anbncn seeds=10": (["experiment=dekf_anbncn", "seeds=10", *_OFF], 100, "update"),
    "check_sig": (["experiment=check_sig"], 0, "command"),
    "check_sig seeds=100": (["experiment=check_sig", "seeds=100"], 0, "command"),
}

_CHILD = """
import json, sys
from pathlib import Path
repo, overrides, amount, unit, out = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
sys.path[:0] = [repo, repo + "/benchmarks"]
import speed
limit = [f"trainer.max_epochs={amount}"] if unit == "epoch" else [f"trainer.max_steps={amount}", "trainer.max_epochs=1000000"]
if unit == "update":  # a few updates first, in the same process: what torch.compile compiles is not timed
    _, (dm, model, callbacks, trainer) = speed.build([*overrides, "trainer.max_steps=3", "trainer.max_epochs=1000000"], "cpu", Path(out + "_warm"))
    trainer.fit(model, datamodule=dm)
cfg, (dm, model, callbacks, trainer) = speed.build([*overrides, *limit], "cpu", Path(out))
trainer.fit(model, datamodule=dm)
print(json.dumps({"seconds": callbacks[-1].seconds, "updates": trainer.global_step, "epochs": trainer.current_epoch}))
"""


def run_once(repo: Path, name: str, scratch: Path) -> float:
    """Seconds per unit of workload ``name`` in checkout ``repo``, in a fresh process."""
    overrides, amount, unit = WORKLOADS[name]
    out = scratch / f"{repo.name}_{name.replace(' ', '_').replace('=', '-')}_{time.monotonic_ns()}"  # a path Hydra's override grammar reads
    env = {**os.environ, "PYTHONPATH": str(repo)}
    if unit == "command":
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "train.py", *overrides, f"hydra.run.dir={out}"], cwd=repo, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(f"{name} in {repo}: {proc.stderr[-2000:]}")
        return seconds
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(repo), json.dumps(overrides), str(amount), unit, str(out)], cwd=repo, env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{name} in {repo}: {proc.stderr[-2000:]}")
    done = json.loads(proc.stdout.strip().splitlines()[-1])
    return done["seconds"] / (amount if unit == "epoch" else done["updates"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare with")
    parser.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated workloads: " + ", ".join(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "engines.json")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    bad = [n for n in names if n not in WORKLOADS]
    if bad or args.repeats < 1:
        print(f"error: --only {','.join(bad)} is invalid; allowed: {', '.join(WORKLOADS)}" if bad else "error: --repeats must be 1 or more", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="engines-") as tmp:
        scratch, base = Path(tmp), Path(tmp) / "baseline"
        added = subprocess.run(["git", "worktree", "add", "--detach", str(base), args.baseline], cwd=REPO, capture_output=True, text=True)
        if added.returncode:
            print(f"error: --baseline {args.baseline} cannot be checked out: {(added.stderr.strip().splitlines() or ['git failed'])[-1]}", file=sys.stderr)
            return 2
        try:
            for name in names:
                times: dict[str, list[float]] = {"baseline": [], "new": []}
                for _ in range(args.repeats):
                    times["baseline"].append(run_once(base, name, scratch))
                    times["new"].append(run_once(REPO, name, scratch))
                b, n = min(times["baseline"]), min(times["new"])
                rows.append({"workload": name, "unit": WORKLOADS[name][2], "baseline_s": b, "new_s": n, "new_over_baseline": n / b,
                             "runs": {k: [round(v, 6) for v in vs] for k, vs in times.items()}})
                print(f"{name:28s} per {WORKLOADS[name][2]:7s} baseline {1000 * b:9.2f} ms  new {1000 * n:9.2f} ms  new/baseline {n / b:5.2f}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=REPO, capture_output=True)
    sys.path.insert(0, str(REPO / "benchmarks"))
    from speed import machine

    result = {"machine": machine("cpu"), "baseline": args.baseline, "repeats": args.repeats, "rows": rows,
              "geomean_new_over_baseline": statistics.geometric_mean(r["new_over_baseline"] for r in rows) if rows else None}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"machine: {result['machine']}\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
