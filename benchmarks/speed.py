"""Training speed of the project against a hand-written PyTorch loop and the reference's style.

    python benchmarks/speed.py                         # everything, on the default device
    python benchmarks/speed.py --only kmnist --epochs 5 --out outputs/benchmarks/speed.json
    python benchmarks/speed.py --only kmnist --nets conv --variants compile,bf16

In one process, for each workload, on identical data, model, batch size and number of updates:

- ``project``: what ``train.py`` runs. The config is composed by Hydra from ``conf/`` exactly as
  ``python train.py experiment=<name>`` composes it and built by ``orchestration.run.build`` (progress bar,
  checkpointing and logger included); only the in-fit evaluation is switched off
  (``trainer.limit_val_batches=0``) because the baselines do not evaluate. Time: the
  ``TrainTimer`` callback's training-epoch time.
- ``hand``: a plain loop over the same in-memory tensors (or the same sequence stream), with
  the same network object, memory layout and optimiser: the floor for Lightning's overhead.
- ``reference`` (KMNIST only): the reference study's style, a torchvision ``KMNIST`` dataset with
  a per-sample ``ToTensor`` + ``Normalize`` transform and a standard ``DataLoader``, batch 64,
  the network in PyTorch's default memory layout.

KMNIST runs ``--epochs`` epochs of each path, ``--repeats`` times in turn, and keeps each path's
fastest epoch after the first (warm-up) of a run: the machine's own noise (other processes,
clock changes) only ever slows a path down. The grid runs ``--grid-updates`` (200,000) updates in the project (stopping switched off) and ``--grid-hand-updates``
in the hand loop (autograd + ``torch.optim.Adam``; per-update time). SRN/LSTM run ``--updates``
updates of each path, ``--repeats`` times in turn, fastest run kept. The KMNIST data is ``--data-root`` when it holds the four files, else the
bundled sample (6,284 training images).
The population workloads time an update of ``seeds=--population-seeds`` (100) nets
trained together against that many times one net's update alone (``check_sig``, ``srn_anb2n``,
``lstm_anb2nc3n``, every stopping rule off): "project" is the population, "hand" what as many
separate runs pay for the same updates. The busy workloads (``--busy``) time a single SRN and
LSTM run, 100-seed populations of both and NetConv, alone and beside another process that keeps
one core busy, with the study's threads (``threads=auto``) and with the other choice (one
thread, or torch's default of one per core), the fastest of ``--repeats`` runs. Results are printed as tables and written to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

VARIANTS = {  # name -> overrides of the project run
    "compile": ["model.compile=true"],
    "bf16": ["trainer.precision=bf16-mixed"],
    "on_device": ["data.on_device=true"],
    "default_layout": ["model.channels_last=false"],
}


def compose(overrides: list[str], out_dir: Path):
    """The config ``python train.py <overrides>`` would run, with its outputs in ``out_dir``."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from orchestration.config import register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


def build(overrides: list[str], device: str, out_dir: Path):
    """What ``train.py`` builds for ``overrides``, with the threads it would use."""
    from orchestration.launch import set_threads
    from orchestration.run import build as build_run

    accelerator = "gpu" if device == "cuda" else "cpu"
    cfg = compose([*overrides, f"trainer.accelerator={accelerator}", "trainer.devices=1"], out_dir)
    set_threads(cfg)
    return cfg, build_run(cfg)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# ---- KMNIST ---------------------------------------------------------------------------------


def kmnist_root(data_root: Path | None, scratch: Path) -> tuple[Path, str]:
    """The KMNIST root to use and a line saying what it holds: ``data_root`` when it holds the
    four files (``./data`` after a download by ``train.py``), else the bundled sample written
    in torchvision's layout (the reference style reads it through ``torchvision.datasets``)."""
    from datamodules import kmnist_sample
    from datamodules.kmnist import RAW_FILES

    if data_root is not None and all((data_root / "KMNIST" / "raw" / n).is_file() for pair in RAW_FILES.values() for n in pair):
        root = data_root
    else:
        root = kmnist_sample.unpack(scratch / "kmnist_sample")
    images = ((root / "KMNIST" / "raw" / RAW_FILES["train"][0]).stat().st_size - 16) // (28 * 28)
    what = "the full training set" if images == 60_000 else "not the 60,000 of the full set"
    return root, f"{images:,} training images ({what}) in {root}"


def sgd_step(net, opt, x, y):
    opt.zero_grad(set_to_none=True)
    loss = F.nll_loss(net(x), y)
    loss.backward()
    opt.step()
    return loss


def hand_kmnist(net, x, y, batch, epochs, seed, device, lr, momentum, channels_last=False):
    """The floor: the same tensors on ``device``, the same epoch-seeded permutation, slices, and
    the same memory layout as the project's network."""
    x, y = x.to(device), y.to(device)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    times = []
    for epoch in range(epochs):
        sync(device)
        t0 = time.perf_counter()
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed + epoch)).to(device)
        for i in range(0, len(x), batch):
            idx = perm[i : i + batch]
            xb = x[idx].contiguous(memory_format=torch.channels_last) if channels_last else x[idx]
            sgd_step(net, opt, xb, y[idx])
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def reference_kmnist(net, root, batch, epochs, device, lr, momentum):
    """The reference's style: per-sample PIL -> ToTensor -> Normalize, DataLoader, batch 64."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    dataset = datasets.KMNIST(str(root), train=True, download=False, transform=transform)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    times = []
    for _ in range(epochs):
        sync(device)
        t0 = time.perf_counter()
        for x, y in loader:
            sgd_step(net, opt, x.to(device), y.to(device))
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def bench_kmnist(net: str, root: Path, epochs: int, repeats: int, device: str, variants: list[str], scratch: Path) -> list[dict]:
    """Each path ``repeats`` times, in turn (hand, project, reference, hand, ...), so that a slow
    spell of the machine does not land on one path only; each path's time is its fastest
    epoch after the warm-up epoch of each run."""
    base = [f"experiment=kmnist_{net}", f"data.root={root}", "data.source=files", f"trainer.max_epochs={epochs}", "trainer.limit_val_batches=0"]
    times: dict[str, list[float]] = {}
    for rep in range(repeats):
        cfg, (dm, model, callbacks, trainer) = build(base, device, scratch / f"kmnist_{net}_{rep}")
        dm.prepare_data()
        dm.setup("fit")
        x, y = dm.train_set.tensors
        hp, opt = cfg.model, cfg.model.optimizer
        initial = copy.deepcopy(model.net).to(device)  # the same initial weights for the baselines
        channels_last = bool(hp.get("channels_last", False))
        times.setdefault("hand", []).extend(hand_kmnist(copy.deepcopy(initial), x, y, cfg.data.batch_size, epochs, cfg.seed, device, opt.lr, opt.momentum, channels_last)[1:])
        trainer.fit(model, datamodule=dm)
        times.setdefault("project", []).extend(callbacks[-1].epoch_seconds[1:])
        reference_net = copy.deepcopy(initial).to(memory_format=torch.contiguous_format)  # as the reference wrote it
        times.setdefault("reference", []).extend(reference_kmnist(reference_net, root, cfg.data.batch_size, epochs, device, opt.lr, opt.momentum)[1:])
        for variant in variants:
            _, (dm_v, model_v, callbacks_v, trainer_v) = build([*base, *VARIANTS[variant]], device, scratch / f"kmnist_{net}_{variant}_{rep}")
            trainer_v.fit(model_v, datamodule=dm_v)
            times.setdefault(variant, []).extend(callbacks_v[-1].epoch_seconds[1:])
    batch, updates = cfg.data.batch_size, -(-len(x) // cfg.data.batch_size)
    hand, reference = min(times["hand"]), min(times["reference"])
    rows = [row(f"kmnist_{net}", "epoch", updates, batch, min(times["project"]), hand, reference)]
    rows += [row(f"kmnist_{net} {v}", "epoch", updates, batch, min(times[v]), hand, reference) for v in variants]
    print(f"kmnist_{net}: {len(x)} training images, {updates} updates of {batch} per epoch; epoch times: {json.dumps(times)}")
    return rows


# ---- the grid ------------------------------------------------------------------------------


def bench_grid(device: str, updates: int, hand_updates: int, scratch: Path) -> list[dict]:
    overrides = ["experiment=check_sig", f"trainer.max_steps={updates}", f"model.stop_after_perfect={updates + 1}"]
    cfg, (dm, model, callbacks, trainer) = build(overrides, device, scratch / "grid")
    net = copy.deepcopy(model.net).to(device)
    x, y = dm.points.to(device), dm.targets.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.model.lr, weight_decay=cfg.model.weight_decay)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(hand_updates):
        opt.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    sync(device)
    hand = (time.perf_counter() - t0) / hand_updates
    trainer.fit(model, datamodule=dm)
    assert model.updates_done() == updates, f"the grid run made {model.updates_done()} updates, not {updates}"
    project = callbacks[-1].seconds / updates
    r = row("check_sig (H=5)", "update", updates, 9, project, hand, None)
    r["project_total_seconds"] = callbacks[-1].seconds
    return [r]


# ---- SRN / LSTM ----------------------------------------------------------------------------


def bench_recurrent(experiment: str, updates: int, repeats: int, device: str, scratch: Path) -> list[dict]:
    """Hand loop and project in turn, ``repeats`` times; the faster run of each is kept. The hand
    loop trains the same single net (``nn.RNN`` / ``nn.LSTM``, the same initial weights) with
    the config's optimiser on the same sequences, one update per batch."""
    from hydra.utils import instantiate

    from datamodules.grammar import SequenceStream

    overrides = [f"experiment={experiment}", f"trainer.max_steps={updates}", "trainer.limit_val_batches=0", "callbacks.solved_stopping=null"]
    hand, project = [], []
    for rep in range(repeats):
        cfg, (dm, model, callbacks, trainer) = build(overrides, device, scratch / f"{experiment}_{rep}")
        net = model.net.to(device)  # the seed's initial weights in torch's own modules
        opt = instantiate(cfg.model.optimizer)(p for p in net.parameters() if p.requires_grad)
        stream = iter(SequenceStream(dm.language, cfg.data.blocks, cfg.data.batch_size, cfg.data.seed))
        sync(device)
        t0 = time.perf_counter()
        for _ in range(updates):
            batch = next(stream)
            inputs, targets = batch["inputs"].to(device), batch["targets"].to(device)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(inputs).flatten(0, 1), targets.flatten(), ignore_index=-100)  # the NLL of the next symbol, padding left out
            loss.backward()
            opt.step()
        sync(device)
        hand.append((time.perf_counter() - t0) / updates)
        trainer.fit(model, datamodule=dm)
        assert trainer.global_step == updates, f"{experiment} made {trainer.global_step} updates, not {updates}"
        project.append(callbacks[-1].seconds / updates)
    return [row(experiment, "update", updates, cfg.data.batch_size, min(project), min(hand), None)]


# ---- populations (seeds=N) -----------------------------------------------------------------

POPULATION_UPDATES = {"check_sig": 20_000, "srn_anb2n": 300, "lstm_anb2nc3n": 100}


def _no_stopping(experiment: str, updates: int) -> list[str]:
    if experiment == "check_sig":
        return [f"trainer.max_steps={updates}", f"model.stop_after_perfect={updates + 1}"]
    return [f"trainer.max_steps={updates}", f"trainer.val_check_interval={updates}", "callbacks.solved_stopping=null", f"model.restart_after={updates + 1}"]


def _seconds_per_update(overrides: list[str], device: str, out: Path, updates: int) -> float:
    _, (dm, model, callbacks, trainer) = build(overrides, device, out)
    trainer.fit(model, datamodule=dm)
    return callbacks[-1].seconds / updates


def bench_population(experiment: str, seeds: int, updates: int, device: str, scratch: Path) -> list[dict]:
    """``seeds`` nets trained together against one trained alone, ``updates`` updates each with
    every stopping rule switched off: the cost of an update of the whole population against
    ``seeds`` times the cost of one net's update (what ``seeds`` separate runs pay)."""
    times = {}
    for n in (seeds, 1):
        overrides = [f"experiment={experiment}", f"seeds={n}", *_no_stopping(experiment, updates)] + (["trainer.limit_val_batches=0"] if experiment != "check_sig" else [])
        times[n] = _seconds_per_update(overrides, device, scratch / f"{experiment}_pop{n}", updates)
    batch = 9 if experiment == "check_sig" else compose([f"experiment={experiment}"], scratch / "cfg").data.batch_size
    r = row(f"{experiment} seeds={seeds}", "update", 1, batch, times[seeds], seeds * times[1], None)
    r["population_seeds"] = seeds
    r["single_update_ms"] = 1000 * times[1]
    return [r]


# ---- a busy machine ----------------------------------------------------------------------------

# (experiment, seeds, updates: a share of --updates for the recurrent nets, epochs for KMNIST)
BUSY = [("srn_anb2n", 1, 1.0), ("lstm_anb2nc3n", 1, 1.0), ("srn_anb2n", 100, 0.1), ("lstm_anb2nc3n", 100, 0.05), ("kmnist_conv", 1, 2)]


class BusyCore:
    """Another process keeping one core busy (a Python loop), as any other job on the machine would."""

    def __enter__(self):
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def bench_busy(device: str, scratch: Path, kmnist: Path | None, workloads=BUSY, updates: int = 1000, repeats: int = 1) -> list[dict]:
    """Each workload alone and beside one busy process, with the study's threads (``threads=auto``)
    and with the other choices, one thread and torch's default of one per core: seconds per
    update (KMNIST: per epoch; the fastest of ``repeats`` runs) and the ratio busy / alone."""
    rows = []
    cores = os.cpu_count() or 1
    for experiment, seeds, share in workloads:
        if experiment.startswith("kmnist"):
            if kmnist is None:
                continue
            overrides = [f"experiment={experiment}", f"data.root={kmnist}", "data.source=files", f"trainer.max_epochs={share}", "trainer.limit_val_batches=0"]
        else:
            n = max(10, int(share * updates))
            overrides = [f"experiment={experiment}", f"seeds={seeds}", *_no_stopping(experiment, n), "trainer.limit_val_batches=0"]
        chosen = None
        for threads in ("auto", "1", str(cores)):
            if chosen is not None and threads == str(chosen):
                continue  # the study's own choice, measured already
            measured = {}
            for busy in (False, True):
                for repeat in range(repeats):
                    out = scratch / f"busy_{experiment}_{seeds}_{threads}_{busy}_{repeat}"
                    with (BusyCore() if busy else contextlib.nullcontext()):
                        _, (dm, model, callbacks, trainer) = build([*overrides, f"threads={threads}"], device, out)
                        used = torch.get_num_threads()
                        trainer.fit(model, datamodule=dm)
                        timer = callbacks[-1]
                        seconds = min(timer.epoch_seconds) if experiment.startswith("kmnist") else timer.seconds / n
                    measured[busy] = min(measured.get(busy, seconds), seconds)
            chosen = used if threads == "auto" else chosen
            rows.append({"workload": f"{experiment} seeds={seeds}", "threads": f"{threads} ({used})", "unit": "epoch" if experiment.startswith("kmnist") else "update",
                         "alone_s": measured[False], "busy_s": measured[True], "busy_over_alone": measured[True] / measured[False]})
    return rows


def busy_table(rows: list[dict]) -> str:
    lines = ["| workload | threads | alone, ms per unit | beside a busy process | busy / alone |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['workload']} ({r['unit']}) | {r['threads']} | {1000 * r['alone_s']:.2f} | {1000 * r['busy_s']:.2f} | {r['busy_over_alone']:.2f} |")
    return "\n".join(lines)


# ---- report --------------------------------------------------------------------------------


def row(name, unit, updates, batch, project, hand, reference) -> dict:
    """Times are seconds per ``unit`` (an epoch of ``updates`` optimizer updates, or one update).
    An update, not a Lightning step: a grid step makes up to ``data.batches_per_step`` updates."""
    per_unit = updates if unit == "epoch" else 1
    samples = updates * batch if unit == "epoch" else batch
    return {
        "workload": name, "unit": unit, "updates_per_unit": per_unit, "batch": batch,
        "project_s": project, "hand_s": hand, "reference_s": reference,
        "project_update_ms": 1000 * project / per_unit, "hand_update_ms": 1000 * hand / per_unit,
        "project_samples_per_s": samples / project,
        "project_over_hand": project / hand,
        "reference_over_project": reference / project if reference is not None else None,
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str) -> dict:
    info = {
        "platform": platform.platform(), "processor": cpu_model(),
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "python": platform.python_version(), "device": device,
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def table(rows: list[dict]) -> str:
    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = [
        "| workload | unit | project s | hand loop s | reference style s | project ms/update | samples/s | project / hand | reference / project |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['unit']} ({r['updates_per_unit']} updates of {r['batch']}) | {f(r['project_s'], '.4g')} | {f(r['hand_s'], '.4g')} | "
            f"{f(r['reference_s'], '.4g')} | {f(r['project_update_ms'], '.3f')} | {f(r['project_samples_per_s'], ',.0f')} | "
            f"{f(r['project_over_hand'], '.2f')} | {f(r['reference_over_project'], '.1f')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="kmnist,grid,recurrent,population,busy", help="comma-separated: kmnist, grid, recurrent, population, busy")
    parser.add_argument("--population-seeds", type=int, default=100, help="seeds of the population workloads (seeds=N against one net alone)")
    parser.add_argument("--nets", default="lin,full,conv", help="comma-separated KMNIST nets")
    parser.add_argument("--epochs", type=int, default=4, help="KMNIST epochs per path (the first is warm-up)")
    parser.add_argument("--updates", type=int, default=1000, help="SRN/LSTM updates per path")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each KMNIST and SRN/LSTM path, in turn; the fastest counts")
    parser.add_argument("--grid-updates", type=int, default=200_000, help="project updates of the grid (the target: 200,000 in under 20 s)")
    parser.add_argument("--grid-hand-updates", type=int, default=20_000, help="hand-loop updates for the grid (per-update time)")
    parser.add_argument("--data-root", type=Path, default=REPO / "data", help="KMNIST root with KMNIST/raw/ (else the bundled sample of 6,284 training images)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--variants", default="", help=f"extra KMNIST project runs: comma-separated of {', '.join(VARIANTS)}")
    parser.add_argument("--busy", default="srn_anb2n,lstm_anb2nc3n,kmnist_conv", help="workloads of --only busy: comma-separated experiments")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "speed.json")
    args = parser.parse_args(argv)

    from base.errors import UserError

    only = [s for s in args.only.split(",") if s]
    variants = [s for s in args.variants.split(",") if s]
    for name, values, allowed in (("--only", only, ("kmnist", "grid", "recurrent", "population", "busy")), ("--nets", args.nets.split(","), ("lin", "full", "conv")), ("--variants", variants, tuple(VARIANTS))):
        bad = [v for v in values if v not in allowed]
        if bad:
            print(f"error: {name} {','.join(bad)} is invalid; allowed: {', '.join(allowed)}", file=sys.stderr)
            return 2
    bad = [w for w in args.busy.split(",") if w not in {e for e, _, _ in BUSY}]
    if bad:
        print(f"error: --busy {','.join(bad)} is invalid; allowed: {', '.join(sorted({e for e, _, _ in BUSY}))}", file=sys.stderr)
        return 2
    for name, value, minimum in (("--epochs", args.epochs, 2), ("--repeats", args.repeats, 1), ("--updates", args.updates, 1), ("--grid-updates", args.grid_updates, 1), ("--grid-hand-updates", args.grid_hand_updates, 1)):
        if value < minimum:
            print(f"error: {name} {value} is invalid; allowed: {minimum} or more" + (" (the first epoch is warm-up)" if name == "--epochs" else ""), file=sys.stderr)
            return 2
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2

    rows: list[dict] = []
    busy: list[dict] = []
    data_note = None
    try:
        with tempfile.TemporaryDirectory(prefix="speed-") as tmp:
            scratch = Path(tmp)
            if "kmnist" in only:
                root, data_note = kmnist_root(args.data_root, scratch)
                for net in args.nets.split(","):
                    rows += bench_kmnist(net, root, args.epochs, args.repeats, device, variants, scratch)
            if "grid" in only:
                rows += bench_grid(device, args.grid_updates, args.grid_hand_updates, scratch)
            if "recurrent" in only:
                for experiment in ("srn_anb2n", "lstm_anb2nc3n", "srn_anb2n_reference"):
                    rows += bench_recurrent(experiment, args.updates, args.repeats, device, scratch)
            if "population" in only:
                for experiment, updates in POPULATION_UPDATES.items():
                    rows += bench_population(experiment, args.population_seeds, updates, device, scratch)
            if "busy" in only:
                root = kmnist_root(args.data_root, scratch)[0] if "kmnist_conv" in args.busy else None
                workloads = [w for w in BUSY if w[0] in args.busy.split(",")]
                workloads = [(e, args.population_seeds if s > 1 else 1, u) for e, s, u in workloads]
                busy = bench_busy(device, scratch, root, workloads, args.updates, args.repeats)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    result = {"machine": machine(device), "kmnist_data": data_note, "epochs": args.epochs, "updates": args.updates, "repeats": args.repeats, "rows": rows, "busy": busy}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print()
    print(f"machine: {result['machine']}")
    if data_note:
        print(f"KMNIST data: {data_note}")
    if rows:
        print(table(rows))
    if busy:
        print("\nbeside one busy process (one core kept busy by another process):")
        print(busy_table(busy))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
