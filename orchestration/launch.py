"""How a job uses the machine: devices under a multirun, threads and GPUs under the joblib launcher."""

from __future__ import annotations

import os

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig
from pytorch_lightning.strategies import DDPStrategy

from base.errors import ConfigError


def processes_per_job(trainer_cfg: DictConfig) -> int:
    """Processes Lightning starts for one run: devices x nodes, read as Lightning reads
    ``devices`` (n; "n"; "0,1" or [0, 1] = those devices; auto/-1 = every visible GPU when the
    accelerator may be a GPU, else one)."""
    devices = trainer_cfg.get("devices", 1)
    if isinstance(devices, (list, tuple, ListConfig)):
        count = len(devices)
    elif str(devices) in ("auto", "-1"):
        import torch

        may_be_gpu = trainer_cfg.get("accelerator", "auto") in ("auto", "gpu", "cuda")
        count = max(1, torch.cuda.device_count()) if may_be_gpu else 1
    elif isinstance(devices, str) and "," in devices:
        count = len([d for d in devices.split(",") if d.strip()])
    else:
        count = int(devices)
    return count * int(trainer_cfg.get("num_nodes", 1) or 1)


def check_multirun_devices(trainer_cfg: DictConfig, launcher_target: str) -> None:
    """Refuse several processes per job in a multirun, unless SLURM (submitit) starts them.

    Lightning starts the extra processes of a DDP run by re-running the script with its original
    command line; inside a Hydra multirun every one of them would run the whole sweep
    (Lightning issue 11300)."""
    n = processes_per_job(trainer_cfg)
    if n > 1 and "submitit" not in launcher_target:
        raise ConfigError(
            f"trainer.devices={trainer_cfg.get('devices')} trainer.num_nodes={trainer_cfg.get('num_nodes', 1)} ({n} processes per run) "
            "cannot run inside a Hydra multirun (-m): Lightning starts each extra process by re-running this command line, "
            "so every process would run the whole sweep (Lightning issue 11300). Sweep with one device per run "
            "(trainer=default or trainer=gpu, in parallel with hydra/launcher=joblib), or let SLURM start the processes "
            "(hydra/launcher=submitit_slurm), or run the DDP configuration without -m"
        )


def joblib_parallelism(n_jobs: int | None, cpus: int) -> int:
    """Jobs joblib runs at once: n_jobs > 0 as given; -1 all CPUs, -2 all but one, ... (joblib's rule)."""
    if not n_jobs:
        return 1
    return n_jobs if n_jobs > 0 else max(1, cpus + 1 + n_jobs)


def share_machine(hydra_cfg: DictConfig, trainer_cfg: DictConfig) -> dict:
    """For a job of the joblib launcher: limit torch to its share of the CPU cores (several
    processes with torch's default threads each oversubscribe the cores: measured on 2 cores,
    two 2-thread processes ran a tiny RNN 10x slower than one), and give it its own GPU.

    Returns what was set, for the log (empty for other launchers)."""
    if "joblib" not in str(hydra_cfg.launcher.get("_target_", "")):
        return {}
    import torch

    cpus = os.cpu_count() or 1
    parallel = joblib_parallelism(hydra_cfg.launcher.get("n_jobs"), cpus)
    threads = max(1, cpus // parallel)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    done = {"parallel_jobs": parallel, "torch_threads": threads}
    gpus = torch.cuda.device_count()
    if gpus > 1 and trainer_cfg.get("accelerator") in ("auto", "gpu", "cuda") and processes_per_job(trainer_cfg) == 1:
        device = int(hydra_cfg.job.num) % gpus  # jobs would all land on GPU 0 otherwise
        trainer_cfg.devices = [device]
        done["gpu"] = device
    return done


class SweepGuard(Callback):
    """Hydra callback: refuse a multirun whose runs would each start several processes, before
    the sweep folder or any run exists (``conf/hydra/default.yaml``). A device count that is
    itself swept is caught by each run instead (``orchestration.run``)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from orchestration.failures import fail

        try:
            check_multirun_devices(config.trainer, str(config.hydra.launcher.get("_target_", "")))
        except ConfigError as exc:
            # Hydra turns an exception from a callback into a warning; SystemExit ends the process
            fail(str(exc))


class PopulationStrategy(DDPStrategy):
    """Lightning's DDP processes for a population (``seeds=N`` with ``trainer=ddp``): every process
    trains its share of the seeds on its own (``lightning_modules.seed_share``), so the module is
    not wrapped in DistributedDataParallel: a population has no gradients to average (each seed's
    are its own) and keeps its weights as buffers, which DistributedDataParallel refuses."""

    def configure_ddp(self) -> None:
        pass  # Lightning's hook for wrapping the module: nothing to wrap
