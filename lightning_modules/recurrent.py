"""SequencePredictor: an SRN or LSTM predicting the next symbol of a counting language."""

from __future__ import annotations

import logging
import time
from typing import Union

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import CatMetric, MeanMetric, MeanSquaredError, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from analysis.recurrent import generalisation
from base.errors import ConfigError, check, check_choice, check_int, check_positive, check_range
from lightning_modules.attempts import Attempts
from lightning_modules.recurrent_nets import CELLS, initialise

log = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adam")


def check_sequence_settings(cell, hidden_units, num_symbols, init, optimizer, lr, momentum, weight_decay, restarts, restart_after) -> None:
    """The checks of the arguments a single net (``SequencePredictor``) and a population
    (``SequencePopulation``) share: one ``ConfigError`` line naming the first bad one."""
    check_choice("cell", cell, tuple(CELLS))
    check_int("hidden_units", hidden_units, 1)
    check(num_symbols in (2, 3), "num_symbols", num_symbols, "2 or 3")
    check(init == "uniform" or (isinstance(init, (int, float)) and not isinstance(init, bool) and init > 0), "init", init, "a number > 0 (std of a normal) or 'uniform'")
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_positive("lr", lr)
    check_range("momentum", momentum, 0, 1)
    check_range("weight_decay", weight_decay, 0)
    check_int("restarts", restarts, 0)
    check_int("restart_after", restart_after, 1)


class SequencePredictor(pl.LightningModule):
    """Model, loss (NLL of the actual next symbol, as the reference), optimiser and metrics of
    the recurrent study.

    Metrics on an evaluation set (``val`` during training, ``test`` at the end):

    - ``error``: the reference's measure, the mean squared difference between the predicted
      next-symbol distribution and the reference's target (the exact one, except [0.8, 0.2] at
      every position whose input is an A), over all positions and symbols: its ~0.01-0.03, of which
      even a perfect predictor keeps about 0.029 (a^n b^2n) or 0.0097 (a^n b^2n c^3n);
    - ``error_exact``: the same against the exact distribution of the generator (0 is perfect);
    - ``det_acc``: fraction of determined positions (after the first B of a block) where the most
      likely predicted symbol is the true next one; ``solved`` = det_acc is 1.0.

    The second test set (one sequence per block length n = 1..N) gives ``max_n_generalised``: the
    largest N such that every block length 1..N is predicted without a single error on
    determined positions.

    Args:
        cell: ``srn`` or ``lstm``.
        hidden_units: H.
        num_symbols: 2 (A, B) or 3 (A, B, C); set from the data's language.
        init: weights from N(0, init) for a number, or ``uniform`` (+-1/sqrt(H)).
        optimizer: ``sgd`` (reference: lr 0.005, weight decay 1e-4) or ``adam``.
        init_seed: seed of the initial weights.
        restarts, restart_after: an attempt not solved (``det_acc`` 1.0 on the validation
            sequences) ``restart_after`` updates after it began is re-initialised from seed
            ``init_seed + k`` (attempt k = 0, 1, ...), at most ``restarts`` times; the reference
            left that to the user.
    """

    study = "recurrent"  # results.json's family (orchestration.studies)

    def __init__(
        self,
        cell: str = "srn",
        hidden_units: int = 2,
        num_symbols: int = 2,
        init: Union[str, float] = 0.001,
        optimizer: str = "sgd",
        lr: float = 0.005,
        momentum: float = 0.0,
        weight_decay: float = 1e-4,
        init_seed: int = 0,
        restarts: int = 0,
        restart_after: int = 20_000,
    ):
        super().__init__()
        check_sequence_settings(cell, hidden_units, num_symbols, init, optimizer, lr, momentum, weight_decay, restarts, restart_after)
        self.save_hyperparameters()
        self.net: nn.Module = CELLS[cell](num_symbols, hidden_units)
        self.attempts = Attempts(init_seed, restarts, restart_after, first_key="first_solved_update")
        self.first_solved_seconds: float | None = None  # seconds of training to the first solve
        self._t0 = time.perf_counter()
        self._initialise(self.attempts.start(0))

        self.train_loss = MeanMetric(nan_strategy="disable")  # since the last evaluation
        self.eval_metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict(
                    {
                        "loss": MeanMetric(nan_strategy="disable"),
                        "error": MeanSquaredError(),
                        "error_exact": MeanSquaredError(),
                        "det_acc": MulticlassAccuracy(num_classes=num_symbols, average="micro"),
                        "sequences": SumMetric(nan_strategy="disable"),
                    }
                )
                for stage in ("val", "test")
            }
        )
        # generalisation: block length of each test sequence, and whether it was all right
        self.gen_n = CatMetric(nan_strategy="disable")
        self.gen_ok = CatMetric(nan_strategy="disable")
        self.last_eval: dict[str, dict] = {}

    def _initialise(self, seed: int) -> None:
        initialise(self.net, self.hparams.init, torch.Generator().manual_seed(seed))

    def on_train_start(self):
        self._t0 = time.perf_counter()

    def _maybe_restart(self, solved: bool) -> None:
        """After an evaluation: note when this attempt was first solved; re-initialise it (seed
        ``init_seed + k``) when it is still unsolved ``restart_after`` updates after its start."""
        attempts, step = self.attempts, self.trainer.global_step
        if solved:
            attempts.succeeded(step)
            if self.first_solved_seconds is None:  # the first solve of the run, whatever stops it
                self.first_solved_seconds = round(time.perf_counter() - self._t0, 2)
        if attempts.restart_due(step):
            restart_after = self.hparams.restart_after
            seed = attempts.restart(step, f"not solved after {restart_after:,} updates: re-initialised")
            log.info("attempt %d not solved after %d updates; re-initialising with seed %d", len(attempts) - 1, restart_after, seed)
            self._initialise(seed)
            self.optimizers().optimizer.state.clear()  # fresh Adam moments / momentum for the new weights

    def on_save_checkpoint(self, checkpoint):
        checkpoint[Attempts.CHECKPOINT_KEY] = self.attempts.state_dict()
        checkpoint["first_solved_seconds"] = self.first_solved_seconds

    def on_load_checkpoint(self, checkpoint):
        if Attempts.CHECKPOINT_KEY in checkpoint:
            self.attempts.load_state_dict(checkpoint[Attempts.CHECKPOINT_KEY])
        self.first_solved_seconds = checkpoint.get("first_solved_seconds")

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        language = getattr(dm, "language", None)
        if language is not None and language.num_symbols != self.hparams.num_symbols:
            raise ConfigError(f"model.num_symbols={self.hparams.num_symbols} does not match the data: {dm.hparams.language} has {language.num_symbols} symbols")

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """One-hot inputs (B, T, S) -> logits (B, T, S)."""
        return self.net(inputs)

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean NLL of the actual next symbol over real (non-padding) positions."""
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)

    def training_step(self, batch, batch_idx):
        loss = self._loss(self(batch["inputs"]), batch["targets"])
        self.train_loss.update(loss.detach())
        return loss

    def _evaluate(self, batch, stage: str) -> torch.Tensor:
        logits = self(batch["inputs"])
        valid, det = batch["valid"], batch["determined"]
        m = self.eval_metrics[stage]
        m["loss"].update(F.cross_entropy(logits[valid], batch["targets"][valid], reduction="none"))
        probs = logits.softmax(-1)[valid].flatten()
        m["error"].update(probs, batch["ref_probs"][valid].flatten())
        m["error_exact"].update(probs, batch["probs"][valid].flatten())
        pred = logits.argmax(-1)
        m["det_acc"].update(pred[det], batch["targets"][det])
        m["sequences"].update(float(valid.shape[0]))
        return pred

    def _eval_epoch_end(self, stage: str, names: dict[str, str]) -> None:
        m = self.eval_metrics[stage]
        values = {k: m[k].compute() for k in ("loss", "error", "error_exact", "det_acc")}
        sequences = int(m["sequences"].compute())  # all devices together: each sequence once
        for metric in m.values():
            metric.reset()
        # already reduced over devices by compute(); sync_dist only averages equal numbers
        self.log_dict({names[k]: v for k, v in values.items()}, sync_dist=True)
        self.last_eval[stage] = {**{k: float(v) for k, v in values.items()}, "sequences": sequences}

    def validation_step(self, batch, batch_idx):
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self):
        if self.train_loss.update_count:
            self.log("loss/train", self.train_loss.compute(), sync_dist=True)
            self.train_loss.reset()
        self._eval_epoch_end("val", {"loss": "loss/val", "error": "error/val", "error_exact": "error_exact/val", "det_acc": "det_acc/val"})
        if not self.trainer.sanity_checking:
            self._maybe_restart(self.last_eval["val"]["det_acc"] == 1.0)

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        if dataloader_idx == 0:
            self._evaluate(batch, "test")
            return
        pred = self(batch["inputs"]).argmax(-1)
        det = batch["determined"]
        wrong = ((pred != batch["targets"]) & det).sum(dim=1)
        self.gen_n.update(batch["n"][:, 0].float())
        self.gen_ok.update((wrong == 0).float())

    def on_test_epoch_end(self):
        self._eval_epoch_end("test", {"loss": "hp/loss_test", "error": "hp/error_test", "error_exact": "hp/error_exact_test", "det_acc": "hp/det_acc_test"})
        if self.gen_n.update_count:
            gen = generalisation(self.gen_n.compute().long().tolist(), self.gen_ok.compute().bool().tolist())
            self.gen_n.reset()
            self.gen_ok.reset()
            self.last_eval["generalisation"] = gen
            self.log("hp/max_n_generalised", float(gen["max_n_generalised"]), sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        if hp.optimizer == "adam":
            return torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay)
        return torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)

    def generalisation_by_net(self) -> list[dict]:
        """The last test's generalisation (``analysis.recurrent.generalisation``) of this net, labelled."""
        gen = self.last_eval.get("generalisation")
        return [{"label": "this net", **gen}] if gen else []

    def test_summary(self) -> dict:
        ev = self.last_eval["test"]
        gen = self.last_eval.get("generalisation", {})
        trained = self._trainer is not None and self.trainer.global_step
        attempts = self.attempts.summary(self.trainer.global_step, "solved", "not solved when training ended") if trained else []
        return {
            "test_loss": ev["loss"],
            "error": ev["error"],
            "error_exact": ev["error_exact"],
            "det_acc": ev["det_acc"],
            "solved": ev["det_acc"] == 1.0,
            "test_sequences": ev["sequences"],
            **gen,
            "attempts": attempts,
            # the first evaluation solved, in any attempt and whatever stops the run
            "first_solved_update": min((a["first_solved_update"] for a in attempts if a["first_solved_update"] is not None), default=None),
            "first_solved_seconds": self.first_solved_seconds,
        }
