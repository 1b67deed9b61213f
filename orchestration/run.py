"""One training run from a composed config: build the pieces, fit, test, report, write.

``train.py`` is the entry point (Hydra, the failure policy); the benchmark builds its runs with
``build`` from here, so it times exactly what ``train.py`` runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only

from base.errors import ConfigError, UserError, check_int
from callbacks.timer import TrainTimer
from orchestration.config import check_checkpoint, check_trainer, instantiate_group
from orchestration.launch import PopulationStrategy, check_multirun_devices, processes_per_job, share_machine
from orchestration.results import collect_results, write_json
from orchestration.studies import STUDIES, printout

log = logging.getLogger("train")


def build(cfg: DictConfig):
    """Seed, then instantiate the data module, model, callbacks, loggers and trainer of ``cfg``.

    Returns ``(datamodule, model, callbacks, trainer)``; the last callback is the ``TrainTimer``.
    The benchmark (``benchmarks/speed.py``) times exactly what this builds.
    """
    pl.seed_everything(cfg.seed, workers=True)
    model_args, data_args, replaced = population_arguments(cfg)
    datamodule = instantiate_group(cfg.data, "data", **data_args)
    model = instantiate_group(cfg.model, "model", **model_args)
    # an entry set to null (e.g. callbacks.solved_stopping=null) is left out, and one a population replaces
    callbacks = [instantiate_group(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items() if c is not None and k not in replaced]
    callbacks.append(TrainTimer())  # train_seconds in results.json: always there
    loggers = [instantiate_group(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items() if c is not None]
    # a population under several processes: each trains its share of the seeds, nothing to wrap in DDP
    strategy = {"strategy": PopulationStrategy()} if model_args and processes_per_job(cfg.trainer) > 1 else {}
    trainer = instantiate_group(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False, **strategy)
    return datamodule, model, callbacks, trainer


def population_arguments(cfg: DictConfig) -> tuple[dict, dict, list[str]]:
    """With ``seeds=N`` (N > 1), what turns the config into its study's population: the model's
    ``_target_``, ``seeds``, ``analyse_seed`` and the study's own settings, the data's, and the
    callbacks the population replaces; nothing for a single net."""
    seeds = cfg.get("seeds", 1)
    check_int("seeds", seeds, 1)
    if seeds == 1:
        return {}, {}, []
    from hydra.utils import get_class

    study = STUDIES[get_class(cfg.model._target_).study]
    if study.population is None:
        raise ConfigError(f"seeds={seeds} is invalid for the {study.name} study; allowed: 1 (populations train the grid and recurrent nets: "
                          + ", ".join(s.name for s in STUDIES.values() if s.population) + ")")
    model, data, replaced = study.population_settings(cfg) if study.population_settings else ({}, {}, [])
    return {"_target_": study.population, "seeds": seeds, "analyse_seed": cfg.get("analyse_seed"), **model}, data, replaced


def run(cfg: DictConfig) -> dict | None:
    """One training run; returns its results on global rank 0, None on other ranks."""
    hydra_cfg = HydraConfig.get()
    out_dir = Path(hydra_cfg.runtime.output_dir)
    if (out_dir / "results.json").exists():
        raise UserError(f"{out_dir} already holds a finished run (results.json); choose another hydra.run.dir")
    check_trainer(cfg.trainer)
    if hydra_cfg.mode == RunMode.MULTIRUN:
        check_multirun_devices(cfg.trainer, str(hydra_cfg.launcher.get("_target_", "")))
    shared = share_machine(hydra_cfg, cfg.trainer)
    if shared:
        log.info("joblib job %s: %s", hydra_cfg.job.num, shared)

    datamodule, model, callbacks, trainer = build(cfg)
    ckpt_path = check_checkpoint(cfg.get("ckpt_path"), model)

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


def log_hparams(trainer, cfg: DictConfig, results: dict) -> None:
    """Fill TensorBoard's HPARAMS tab: the settings that differ between runs, with the final test
    metrics (every module logs them as hp/* during trainer.test)."""
    params = {f"model.{k}": v for k, v in results["hparams"].items() if k not in ("weights", "weights_file")}
    params |= {
        "experiment": cfg.name,
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
