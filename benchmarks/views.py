"""What TensorBoard's interactive views cost a run: the projector, PR curves, attributions,
histograms and the custom-scalars layout, per study.

    python benchmarks/views.py                       # the main job, the LSTM and the grid, on the CPU
    python benchmarks/views.py --only kmnist_conv --repeats 3

For each experiment, in one process: the run as ``train.py`` builds it (``orchestration.run.build``),
fit and test, with every view on, and the same run with every view off
(``callbacks.<view>=null``), ``--repeats`` times in turn, the fastest kept. In the runs with the
views, each view callback's hooks are timed, so every view's own seconds are printed beside the
run's, and the TensorBoard folder's size with and without them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.speed import build  # noqa: E402  (the path above first)

VIEWS = {
    "kmnist_conv": ["test_set_views", "attributions", "histograms", "scalar_layout"],
    "lstm_anb2nc3n": ["state_projector", "histograms", "scalar_layout"],
    "check_sig": ["grid_projector", "histograms", "scalar_layout"],
}
HOOKS = ("on_fit_start", "on_before_optimizer_step", "on_test_end")


def _timed(callback, seconds: dict, name: str) -> None:
    """Wrap ``callback``'s hooks so that their wall time adds up in ``seconds[name]``."""
    for hook in HOOKS:
        original = getattr(type(callback), hook, None)
        if original is None:
            continue

        def wrapper(*args, _original=getattr(callback, hook), **kwargs):
            t0 = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - t0

        setattr(callback, hook, wrapper)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run_once(experiment: str, views_on: bool, out: Path, extra: list[str]) -> dict:
    views = VIEWS[experiment]
    overrides = [f"experiment={experiment}", "print_config=false", "callbacks.progress_bar.refresh_rate=0", *extra]
    if not views_on:
        overrides += [f"callbacks.{v}=null" for v in views]
    cfg, (dm, model, callbacks, trainer) = build(overrides, "cpu", out)
    seconds = {v: 0.0 for v in views}
    if views_on:
        for name in views:
            target = cfg.callbacks[name]._target_.rsplit(".", 1)[1]
            for cb in callbacks:
                if type(cb).__name__ == target:
                    _timed(cb, seconds, name)
    t0 = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    total = time.perf_counter() - t0
    return {"seconds": total, "views": seconds, "tensorboard_bytes": _size(out / "tensorboard")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(VIEWS), help="experiments, comma-separated")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    extra = {"lstm_anb2nc3n": ["callbacks.solved_stopping=null", "trainer.max_steps=2000"], "check_sig": ["trainer.max_steps=20000"]}
    report = {}
    with tempfile.TemporaryDirectory() as scratch:
        for experiment in args.only.split(","):
            best = {}
            for rep in range(args.repeats):
                for on in (True, False):
                    r = run_once(experiment, on, Path(scratch) / f"{experiment}_{on}_{rep}", extra.get(experiment, []))
                    if on not in best or r["seconds"] < best[on]["seconds"]:
                        best[on] = r
            report[experiment] = {"with_views": best[True], "without_views": best[False]}
            on, off = best[True], best[False]
            print(f"\n{experiment}: {on['seconds']:.1f} s with the views, {off['seconds']:.1f} s without ({on['seconds'] / off['seconds']:.3f}x); "
                  f"TensorBoard folder {on['tensorboard_bytes'] / 1e6:.1f} MB with, {off['tensorboard_bytes'] / 1e6:.1f} MB without")
            for view, s in on["views"].items():
                print(f"  {view:16s} {s:6.2f} s  ({100 * s / on['seconds']:.1f} % of the run)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
