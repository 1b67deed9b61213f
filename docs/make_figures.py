"""Regenerate the README's pictures in ``docs/figures/`` from runs of the project itself.

    python docs/make_figures.py                      # about 20 minutes on a 2-core CPU, offline

Runs each experiment the README shows with its defaults (KMNIST on the bundled sample, so that it
runs anywhere and the same everywhere) into ``--work`` (default ``outputs/docs_figures``), then
copies the figures those runs drew, shrunk to ``--width`` pixels and a 128-colour palette so the
README's pictures stay a few hundred KB in all. Nothing is drawn here: every picture is a file a
run of ``train.py`` wrote.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (run name, train.py arguments, [(figure the run wrote, name in docs/figures[, width])]); "*" picks
# the one file the pattern matches (the confused pair depends on the run); a wide figure of four
# panels keeps more pixels
RUNS = [
    ("kmnist_conv", ["experiment=kmnist_conv", "data.source=bundled"],
     [("figures/confusion_matrix.png", "kmnist_confusion_matrix.png"), ("figures/confused_1_*.png", "kmnist_confused_examples.png")]),
    ("check_sig", ["experiment=check_sig"],
     [("figures/lines_5.png", "grid_dividing_lines.png"), ("figures/out_5.png", "grid_output_region.png")]),
    ("srn_anb2n", ["experiment=srn_anb2n"], [("figures/hidden_states.png", "srn_hidden_states.png")]),
    ("lstm_anb2nc3n", ["experiment=lstm_anb2nc3n"],
     [("figures/cell_trajectories.png", "lstm_cell_trajectories.png", 1280), ("figures/gates_by_phase.png", "lstm_gates_by_phase.png")]),
]
SWEEPS = [
    ("kmnist_full_sweep", ["-m", "experiment=kmnist_full", "model.hidden_units=10,20,40,80,160", "data.source=bundled"],
     [("summary.png", "sweep_summary.png")]),
    # 100 seeds per hidden-unit count, each a population: the success rate against H, with intervals
    ("check_sig_population_sweep", ["-m", "experiment=check_sig", "model.hidden_units=2,3,4,5,8", "seeds=100", "seed=0"],
     [("summary.png", "grid_success_rate_by_hidden_units.png"), ("3/figures/updates_to_success.png", "grid_updates_to_success.png")]),
    # how far the counting generalises (the README's study; 14 of the 20 minutes): job 1 is the
    # LSTM trained on n <= 10 without training on
    ("generalisation_study", ["-m", "experiment=lstm_anb2nc3n,srn_anb2n", "data.max_n=10,4", "callbacks.solved_stopping.patience=5000,0",
                              "seeds=20", "seed=0", "eval.max_n=200", "trainer.max_steps=10000", "hydra/launcher=joblib"],
     [("1/figures/generalisation.png", "lstm_generalisation.png")]),
]


def run(args: list[str], folder: Path) -> None:
    where = "hydra.sweep.dir" if args[0] == "-m" else "hydra.run.dir"
    cmd = [sys.executable, "train.py", *args, f"{where}={folder}", "callbacks.progress_bar.refresh_rate=0"]
    print("$ " + " ".join(cmd[1:]), flush=True)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[1:])} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")


def shrink(src: Path, dst: Path, width: int) -> None:
    from PIL import Image

    image = Image.open(src).convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=REPO / "outputs" / "docs_figures", help="where the runs go")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "figures")
    parser.add_argument("--width", type=int, default=640)
    args = parser.parse_args()
    if args.work.exists():
        shutil.rmtree(args.work)  # a run folder that holds results.json is never reused
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, train_args, figures in [*RUNS, *SWEEPS]:
        folder = args.work / name
        run(train_args, folder)
        for pattern, target, *width in figures:
            found = sorted(folder.glob(pattern))
            if len(found) != 1:
                sys.exit(f"error: expected one {pattern} in {folder}, found {len(found)}")
            shrink(found[0], args.out / target, width[0] if width else args.width)
            size = (args.out / target).stat().st_size
            total += size
            print(f"  {target}: {size / 1024:.0f} KB")
    print(f"{total / 1024:.0f} KB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
