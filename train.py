"""Train and test one experiment, e.g. ``python train.py experiment=kmnist_conv``.

Compose the config (Hydra), then ``orchestration.run.run``: seed, build the data module, model,
callbacks, loggers and trainer, fit, test, print the study's numbers, and leave in the run folder
(``outputs/<experiment>/<date>_<time>/``) the resolved ``config.yaml``, TensorBoard logs,
``checkpoints/last.ckpt``, figures and ``results.json``. Mistakes a user can make end the run with
one ``error:`` line and exit status 1 (``orchestration.failures``).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from orchestration.config import check_extras, register_resolvers
from orchestration.failures import run_entry, run_job

register_resolvers()

# Batches are slices of in-memory tensors (or generated in the loader): worker processes would only
# add overhead, which Lightning's advice to use them does not know.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
# pytorch_lightning's own use of a torch API deprecated in torch 2.10+; nothing a user can act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the study's objective (test accuracy, or acc for the
    recurrent nets), the number a sweeper maximises."""
    from orchestration.run import run
    from orchestration.studies import study_of

    def job() -> float | None:
        results = run(cfg)
        return None if results is None else results[study_of(results).objective_of(results)]

    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    return run_job(job, multirun, lambda: Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    run_entry(main, before=lambda: check_extras([a for a in sys.argv[1:] if not a.startswith("-")]))
