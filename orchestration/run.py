"""One training run from a composed config: build the pieces, fit, test, report, write.

``train.py`` is the entry point (Hydra, the failure policy); the benchmark builds its runs with
``build`` from here, so it times exactly what ``train.py`` runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from base.errors import ConfigError, UserError, check_int
from base.files import write_json
from callbacks.timer import TrainTimer
from orchestration.config import check_checkpoint, check_trainer, instantiate_group
from orchestration.config_tree import command_line_keys, config_tree, experiment_keys
from orchestration.launch import check_multirun_devices, set_threads
from orchestration.results import collect_results
from orchestration.studies import STUDIES, printout

log = logging.getLogger("train")
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def build(cfg: DictConfig):
    """Seed, then instantiate the data module, model, callbacks, loggers and trainer of ``cfg``,
    exactly as it says.

    Returns ``(datamodule, model, callbacks, trainer)``; the last callback is the ``TrainTimer``.
    The benchmark (``benchmarks/speed.py``) times exactly what this builds.
    """
    check_seeds(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate_group(cfg.data, "data")
    model = instantiate_group(cfg.model, "model")
    # an entry set to null (e.g. callbacks.solved_stopping=null) is left out
    callbacks = [instantiate_group(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items() if c is not None]
    callbacks.append(TrainTimer())  # train_seconds in results.json: always there
    loggers = [instantiate_group(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items() if c is not None]
    trainer = instantiate_group(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)
    return datamodule, model, callbacks, trainer


def check_seeds(cfg: DictConfig) -> None:
    """``seeds=N`` is a setting of the studies whose module trains several networks."""
    seeds = cfg.get("seeds", 1)
    check_int("seeds", seeds, 1)
    if seeds > 1 and "seeds" not in cfg.model:
        study = STUDIES[get_class(cfg.model._target_).study]
        raise ConfigError(f"seeds={seeds} is invalid for the {study.name} study; allowed: 1 (populations train the grid and recurrent nets: "
                          + ", ".join(s.name for s in STUDIES.values() if s.population) + ")")


def run(cfg: DictConfig) -> dict | None:
    """One training run; returns its results on global rank 0, None on other ranks."""
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    if (out_dir / "results.json").exists():
        raise UserError(f"{out_dir} already holds a finished run (results.json); choose another hydra.run.dir")
    check_trainer(cfg.trainer)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        check_multirun_devices(cfg.trainer, str(hydra_cfg.launcher.get("_target_", "")))
    threads = set_threads(cfg, hydra_cfg)
    if threads:
        log.info("machine: %s", threads)

    datamodule, model, callbacks, trainer = build(cfg)
    ckpt_path = check_checkpoint(cfg.get("ckpt_path"), model)
    if cfg.get("print_config", True) and rank_zero_only.rank == 0:  # after the checks: a bad value is one error line, not a traceback
        print_config(cfg, hydra_cfg)

    if rank_zero_only.rank == 0:  # DDP children re-run this script in the same folder
        OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)

    if cfg.get("fit", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        trainer.test(model, datamodule=datamodule, verbose=False)
    else:  # evaluate the configured weights, or those of ckpt_path
        trainer.test(model, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    if not trainer.is_global_zero:
        return None

    results = collect_results(cfg, trainer, model, datamodule, callbacks, ckpt_path, out_dir)
    print("\n" + printout(results) + "\n")
    log_hparams(trainer, cfg, results)
    write_json(out_dir / "results.json", results)
    log.info("results: %s", out_dir / "results.json")
    return results


def print_config(cfg: DictConfig, hydra_cfg) -> None:
    """The config tree (``orchestration.config_tree``), the experiment's and the command line's keys marked."""
    experiment = hydra_cfg.runtime.choices.get("experiment")
    marked = experiment_keys(CONF_DIR, experiment if experiment not in (None, "null") else None)
    command = command_line_keys(list(hydra_cfg.overrides.task))
    title = f"config of this run (experiment={experiment}); keys marked as set by the experiment file or the command line; print_config=false hides it"
    print(f"{title}\n{config_tree(cfg, marked, command)}\n", flush=True)


def log_hparams(trainer, cfg: DictConfig, results: dict) -> None:
    """Fill TensorBoard's HPARAMS tab: the settings that differ between runs, with the final test
    metrics (every module logs them as hp/* during trainer.test)."""
    params = {f"model.{k}": v for k, v in results["hparams"].items() if k not in ("weights", "weights_file")}
    params |= {
        "experiment": cfg.name,
        "engine": results["engine"],
        "seed": cfg.seed,
        "seeds": results.get("population"),  # a population's size (absent for one net)
        "data.source": results.get("data_source"),
        "data.batch_size": cfg.data.get("batch_size"),
        "data.shuffle": cfg.data.get("shuffle"),
        "data.language": cfg.data.get("language"),
        "trainer.max_epochs": cfg.trainer.get("max_epochs"),
        "trainer.max_steps": cfg.trainer.get("max_steps"),
        "trainer.precision": str(cfg.trainer.get("precision")),
        "world_size": results["world_size"],
        "params": results["params"],
    }
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("hp/")}
    params = {k: v for k, v in params.items() if v is not None}
    data = getattr(trainer.datamodule, "label", None)  # KMNIST: bundled sample or full set
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, metrics)
            if data:
                logger.experiment.add_text("data", f"Training data: {data}; {results['test_size']:,} test images")
            logger.save()
