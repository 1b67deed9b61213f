"""How a job uses the machine: devices under a multirun, threads and GPUs under the joblib launcher."""

from __future__ import annotations

import os

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig
from pytorch_lightning.strategies import DDPStrategy, StrategyRegistry

from base.errors import ConfigError, check


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


# OMP_NUM_THREADS as the user started the process (this module never sets it)
USER_THREADS = os.environ.get("OMP_NUM_THREADS")


def set_threads(cfg: DictConfig, hydra_cfg: DictConfig | None = None) -> dict:
    """torch's intra-op threads for this process, and for a job of the joblib launcher its own GPU.

    ``threads`` (config): a number, or ``auto``: what ``OMP_NUM_THREADS`` says when the user set
    it, else the study's measured choice (``threads`` of its LightningModule: 1 for the grid and
    recurrent nets, whose 2-3-unit products gain nothing from more and run 3-6x slower with
    torch's default while another process keeps a core busy; torch's default for KMNIST). Either
    way no more than this process's share of the cores: cores / joblib jobs at once, or cores /
    processes of a DDP run on the CPU (measured on 2 cores: two 2-thread processes ran a tiny RNN
    10x slower than one, two 1-thread processes both at full speed).

    Returns what was set, for the log."""
    import torch
    from hydra.utils import get_class

    setting = cfg.get("threads", "auto")
    check(setting == "auto" or (isinstance(setting, int) and not isinstance(setting, bool) and setting >= 1), "threads", setting, "auto or an integer >= 1")
    cpus, done = os.cpu_count() or 1, {}
    share = cpus
    launcher = str(hydra_cfg.launcher.get("_target_", "")) if hydra_cfg is not None else ""
    if "joblib" in launcher:
        parallel = joblib_parallelism(hydra_cfg.launcher.get("n_jobs"), cpus)
        share, done["parallel_jobs"] = max(1, cpus // parallel), parallel
    local = processes_per_job(cfg.trainer) // int(cfg.trainer.get("num_nodes", 1) or 1)
    if local > 1 and (cfg.trainer.get("accelerator") == "cpu" or not torch.cuda.is_available()):
        share, done["processes"] = max(1, share // local), local
    if setting != "auto":
        threads = setting
    elif USER_THREADS and "parallel_jobs" not in done and "processes" not in done:
        # the user's choice, which torch read at start-up; set again, since an earlier run in this
        # process (the benchmark, a test) may have changed it
        threads = int(USER_THREADS) if USER_THREADS.strip().isdigit() and int(USER_THREADS) >= 1 else None
    else:
        threads = min(getattr(get_class(cfg.model._target_), "threads", None) or share, share)
    if threads:
        torch.set_num_threads(threads)
        done["torch_threads"] = threads
    if "joblib" in launcher:
        gpus = torch.cuda.device_count()
        if gpus > 1 and cfg.trainer.get("accelerator") in ("auto", "gpu", "cuda") and processes_per_job(cfg.trainer) == 1:
            device = int(hydra_cfg.job.num) % gpus  # jobs would all land on GPU 0 otherwise
            cfg.trainer.devices = [device]
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
    """Lightning's DDP processes for the grid and recurrent studies (``trainer=ddp``): every
    process trains its share of the seeds on its own (``lightning_modules.population``), so the
    module is not wrapped in DistributedDataParallel: its seeds have no gradients to average
    (each seed's are its own). Registered as ``strategy: ddp_population``, which
    ``conf/trainer/ddp.yaml`` picks for these studies (``ddp_strategy``)."""

    def configure_ddp(self) -> None:
        pass  # Lightning's hook for wrapping the module: nothing to wrap


if "ddp_population" not in StrategyRegistry:
    StrategyRegistry.register("ddp_population", PopulationStrategy, description="DDP processes that each train their share of a population's seeds")


def ddp_strategy(model_target: str) -> str:
    """The DDP strategy a study's module needs: ``ddp_population`` for a module that trains seeds
    (``ddp_strategy`` of its class), else Lightning's ``ddp``."""
    from hydra.utils import get_class

    return getattr(get_class(model_target), "ddp_strategy", "ddp")
