"""Write the study report from finished runs: ``python report.py outputs/ --out report/``.

REPORT.md answers the three studies' questions from the latest finished run of each experiment
under the given folder (sweeps included), with the figures copied beside it; experiments without a
finished run are listed as missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="?", default=Path("outputs"), help="folder holding the runs (default: outputs)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="folder for REPORT.md and its figures (default: report)")
    args = parser.parse_args()
    if not args.runs.is_dir():
        print(f"error: {args.runs} is not a folder of runs (train.py writes them to outputs/ by default)", file=sys.stderr)
        sys.exit(1)
    from orchestration.report import write_report

    path = write_report(args.runs, args.out)
    print(f"report: {path}")


if __name__ == "__main__":
    main()
