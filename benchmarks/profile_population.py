"""Where a population's update goes: ``torch.profiler`` around the training of one
``benchmarks/speed.py`` population workload (every stopping rule off, no evaluation).

    python benchmarks/profile_population.py                          # lstm_anb2nc3n, 100 seeds, 40 updates
    python benchmarks/profile_population.py --experiment srn_anb2n --seeds 20

Prints the ATen operations an update, their mean time, and torch's table of the operations that
take the most time. Runs offline, on the CPU, in a few seconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from speed import _no_stopping, build  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="lstm_anb2nc3n", choices=["lstm_anb2nc3n", "srn_anb2n"])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--rows", type=int, default=15, help="rows of torch's table")
    args = parser.parse_args(argv)
    overrides = [f"experiment={args.experiment}", f"seeds={args.seeds}", *_no_stopping(args.experiment, args.updates),
                 "trainer.limit_val_batches=0", "callbacks.progress_bar.refresh_rate=0"]
    with tempfile.TemporaryDirectory() as scratch:
        _, (dm, model, _callbacks, trainer) = build(overrides, "cpu", Path(scratch))
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            trainer.fit(model, datamodule=dm)
    events = prof.key_averages()
    aten = [e for e in events if e.key.startswith("aten::")]
    calls = sum(e.count for e in aten)
    total_ms = sum(e.self_cpu_time_total for e in events) / 1e3
    print(f"{args.experiment} seeds={args.seeds}, {args.updates} updates, {torch.get_num_threads()} thread(s): "
          f"{total_ms / args.updates:.1f} ms an update under the profiler, {calls / args.updates:,.0f} ATen operations an update, "
          f"{sum(e.self_cpu_time_total for e in aten) / max(calls, 1):.1f} us each on average")
    for group, names in (("batched products", ("aten::bmm", "aten::baddbmm")), ("gate arithmetic", ("aten::mul", "aten::mul_", "aten::addcmul", "aten::addcmul_", "aten::sigmoid", "aten::tanh", "aten::add", "aten::add_")),
                         ("stacking and copying states", ("aten::cat", "aten::copy_", "aten::clone", "aten::stack"))):
        share = sum(e.self_cpu_time_total for e in events if e.key in names) / 1e3 / total_ms
        print(f"  {group}: {100 * share:.0f}% of the time")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
