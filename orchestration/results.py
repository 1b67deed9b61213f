"""What a finished run leaves in ``results.json``: what every run reports, the module's test
summary, and what the callbacks measured."""

from __future__ import annotations

import platform
from datetime import datetime
from pathlib import Path

import torch

from analysis.parameters import parameter_table


def device_name(trainer) -> str:
    root = trainer.strategy.root_device
    if root.type == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name(root)})"
    return f"{root.type} ({platform.processor() or platform.machine()})"


def collect_results(cfg, trainer, model, datamodule, callbacks, ckpt_path, out_dir: Path) -> dict:
    """results.json of a finished run: what every run reports, the module's ``test_summary()``,
    and what callbacks with a ``results()`` method measured (timing, gate tables...)."""
    from callbacks.timer import TrainTimer

    timer = next(c for c in callbacks if isinstance(c, TrainTimer))
    # every study's module holds its network as `net` (a population: the analysed seed's; every
    # seed has the same architecture)
    rows = parameter_table(torch.nn.ModuleDict({"net": model.net}))

    def size(name):
        data = getattr(datamodule, name, None)
        return len(data) if data is not None else None

    results = {
        "experiment": cfg.name,
        "study": model.study,
        "model": type(model.net).__name__,
        "engine": model.engine,
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
    return results

