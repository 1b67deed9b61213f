"""Train and test one experiment, e.g. ``python train.py experiment=kmnist_conv``.

Compose the config, seed, instantiate data module, model, callbacks, loggers and trainer, fit,
test, and leave in the run folder (``outputs/<experiment>/<date>_<time>/``): the resolved
``config.yaml``, TensorBoard logs, ``checkpoints/last.ckpt``, figures and ``results.json``.
Mistakes a user can make (a bad value, missing data, a bad checkpoint) end the run with one
``error:`` line and exit status 1.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from runner.config import preflight, register_resolvers
from runner.errors import UserError

log = logging.getLogger("train")
register_resolvers()

# Batches are slices of in-memory tensors: worker processes would only add overhead.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
# KMNIST makes 32 updates per Lightning step and logs nothing per step: Lightning's advice to lower
# log_every_n_steps below the number of steps per epoch does not apply.
warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval.*")
# pytorch_lightning's own use of a torch API deprecated in torch 2.10+; nothing a user can act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


def build(cfg: DictConfig):
    """Seed, then instantiate the data module, model, callbacks, loggers and trainer of ``cfg``.

    Returns ``(datamodule, model, callbacks, trainer)``; the last callback is the ``TrainTimer``.
    The benchmark (``benchmarks/speed.py``) times exactly what this builds.
    """
    import pytorch_lightning as pl

    from callbacks import TrainTimer
    from runner.config import instantiate_group

    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate_group(cfg.data, "data")
    model = instantiate_group(cfg.model, "model")
    # an entry set to null (e.g. callbacks.solved_stopping=null) is left out
    callbacks = [instantiate_group(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items() if c is not None]
    callbacks.append(TrainTimer())  # train_seconds in results.json: always there
    loggers = [instantiate_group(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items() if c is not None]
    trainer = instantiate_group(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)
    return datamodule, model, callbacks, trainer


def run(cfg: DictConfig) -> dict | None:
    """One training run; returns its results on global rank 0, None on other ranks."""
    from pytorch_lightning.utilities import rank_zero_only

    from runner.config import check_checkpoint, check_trainer
    from runner.launch import check_multirun_devices, share_machine
    from runner.results import collect_results, reference_report, write_json

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
    print("\n" + reference_report(results) + "\n")
    _log_hparams(trainer, cfg, results)
    write_json(out_dir / "results.json", results)
    log.info("results: %s", out_dir / "results.json")
    return results


def _log_hparams(trainer, cfg: DictConfig, results: dict) -> None:
    """Fill TensorBoard's HPARAMS tab: the settings that differ between runs, with the final test
    metrics (every module logs them as hp/* during trainer.test)."""
    from pytorch_lightning.loggers import TensorBoardLogger

    params = {f"model.{k}": v for k, v in results["hparams"].items() if k not in ("weights", "weights_file")}
    params |= {
        "experiment": cfg.name,
        "seed": cfg.seed,
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


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the test accuracy (det_acc for sequences), the metric a sweeper
    optimises. In a multirun a failed run is recorded in its folder (error.txt) and the sweep goes
    on; the sweep summary lists it and the multirun exits non-zero at the end."""
    from pytorch_lightning.utilities.exceptions import MisconfigurationException

    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        results = run(cfg)
    except (UserError, MisconfigurationException) as exc:  # Lightning's: a trainer setting it refuses
        if multirun:
            return _record_failure(exc, with_traceback=False)
        _fail(exc)
    except Exception as exc:  # noqa: BLE001 - a bug or a numerical failure in one run of a sweep
        if multirun:
            return _record_failure(exc, with_traceback=True)
        raise
    return None if results is None else results.get("test_acc", results.get("det_acc"))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _fail(exc: Exception) -> None:
    print("error: " + _one_line(exc), file=sys.stderr)
    sys.exit(1)


def _record_failure(exc: Exception, with_traceback: bool) -> float:
    import traceback

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = f"{type(exc).__name__}: {_one_line(exc)}\n"
    if with_traceback:
        text += "\n" + "".join(traceback.format_exception(exc))
        log.exception("run failed: %s", _one_line(exc))
    else:
        log.error("run failed: %s", _one_line(exc))
    (out_dir / "error.txt").write_text(text)
    return float("nan")


if __name__ == "__main__":
    try:
        preflight(sys.argv[1:])
    except UserError as exc:
        _fail(exc)
    main()
