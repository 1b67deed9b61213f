"""GridPerceptron: the two-layer perceptron on the 9-point grid, trained or hand-designed."""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from analysis.grid import dividing_lines, point_table
from base.errors import ConfigError, check, check_choice, check_int, check_positive, check_range
from lightning_modules.attempts import Attempts
from lightning_modules.grid_fast import ChunkResult, adam_chunk
from lightning_modules.grid_nets import ACTIVATIONS, WEIGHT_KEYS, GridNet, load_weights

log = logging.getLogger(__name__)


def check_grid_settings(hidden_units, init_std, lr, weight_decay, max_updates, stop_after_perfect, restarts, restart_after, weight_scale) -> None:
    """The checks of the arguments a single net (``GridPerceptron``) and a population
    (``GridPopulation``) share: one ``ConfigError`` line naming the first bad one."""
    check_int("hidden_units", hidden_units, 1)
    check_positive("init_std", init_std)
    check_positive("lr", lr)
    check_range("weight_decay", weight_decay, 0)
    for key, value, minimum in (("max_updates", max_updates, 1), ("stop_after_perfect", stop_after_perfect, 1),
                                ("restarts", restarts, 0), ("restart_after", restart_after, 1)):
        check_int(key, value, minimum)
    check_positive("weight_scale", weight_scale)


class GridPerceptron(pl.LightningModule):
    """The 2-H-1 perceptron of the grid study: model, BCE loss, Adam, accuracy.

    A training item is a list of full batches (``GridDataModule(batches_per_step=...)``, 1,000)
    and the step makes one update per batch (manual optimisation): Lightning's per-step machinery
    costs more than an update of this tiny net. With ``fast`` (default) the updates run in
    ``grid_fast.adam_chunk`` (exact gradients, torch's Adam rule, ~40 us each; the same function
    trains a population of nets in ``GridPopulation``, row for row); with
    ``fast: false`` through autograd and ``torch.optim.Adam`` (~300 us each). Both read and write
    the same ``torch.optim.Adam`` state.

    Training stops once every point has been right for ``stop_after_perfect`` consecutive
    updates (accuracy is measured on the forward pass before each update, as in the
    reference), or after ``max_updates`` updates of an attempt. With ``restarts: N``, an attempt
    that has not reached 100% after ``restart_after`` updates is re-initialised from seed
    ``init_seed + k`` (attempt k = 0, 1, ...), at most N times (``attempts.Attempts``); its
    ``first_perfect_update`` counts from the start of the attempt.

    Args:
        hidden_units: H >= 1.
        activation: ``sigmoid`` (trainable) or ``step`` (Heaviside, step(0) = 1; evaluation only).
        init_std: weights and biases drawn from N(0, init_std) (reference 0.15).
        lr, weight_decay: Adam (reference 0.001, 1e-5).
        weights / weights_file: start from these weights instead (keys ``hidden_weight``
            [H, 2], ``hidden_bias`` [H], ``output_weight`` [1, H], ``output_bias`` [1]).
        weight_scale: every weight and bias is multiplied by this after it is set.
        init_seed: seed of the initial weights of attempt 0.
    """

    study = "grid"  # results.json's family (orchestration.studies)

    def __init__(
        self,
        hidden_units: int = 5,
        activation: str = "sigmoid",
        init_std: float = 0.15,
        lr: float = 0.001,
        weight_decay: float = 1e-5,
        max_updates: int = 200_000,
        stop_after_perfect: int = 2000,
        restarts: int = 0,
        restart_after: int = 50_000,
        weights: Optional[dict] = None,
        weights_file: Optional[str] = None,
        weight_scale: float = 1.0,
        init_seed: int = 0,
        fast: bool = True,
    ):
        super().__init__()
        check_grid_settings(hidden_units, init_std, lr, weight_decay, max_updates, stop_after_perfect, restarts, restart_after, weight_scale)
        check_choice("activation", activation, ACTIVATIONS)
        check(isinstance(fast, bool), "fast", fast, "true or false")
        given = load_weights(weights, weights_file, hidden_units)
        self.save_hyperparameters()
        self.automatic_optimization = False

        self.net = GridNet(hidden_units, activation)
        self._given_weights = given
        self.attempts = Attempts(init_seed, restarts, restart_after, first_key="first_perfect_update")
        self.updates = 0  # over all attempts
        self._streak = 0  # updates in a row with every point right
        self._reset_weights(self.attempts.start(0))
        self.last_test: dict[str, Any] = {}

    # -- weights -------------------------------------------------------------------------
    def _params(self) -> list[nn.Parameter]:
        n = self.net
        return [n.hidden.weight, n.hidden.bias, n.output.weight, n.output.bias]

    @torch.no_grad()
    def _reset_weights(self, seed: int) -> None:
        """Set the weights of a new attempt (given ones, or N(0, init_std) from ``seed``)."""
        hp = self.hparams
        if self._given_weights is not None:
            values = [self._given_weights[k] for k in WEIGHT_KEYS]
        else:
            generator = torch.Generator().manual_seed(int(seed))
            values = [torch.randn(p.shape, generator=generator) * hp.init_std for p in self._params()]
        for p, v in zip(self._params(), values):
            p.copy_(v * hp.weight_scale)
        self._streak = 0

    def weights_dict(self) -> dict[str, list]:
        return {k: p.detach().cpu().tolist() for k, p in zip(WEIGHT_KEYS, self._params())}

    # -- what the decision-map figures show ---------------------------------------------------------
    def training_view(self) -> dict:
        """The net as it trains: ``net``, ``updates`` so far, and the attempt number."""
        return {"net": self.net, "updates": self.updates, "attempt": len(self.attempts)}

    def nets_to_show(self) -> list[dict]:
        """The nets whose maps are drawn after the test: this one."""
        return [{"net": self.net, "weights": self.weights_dict(), "updates": self.updates}]

    # -- training --------------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        return torch.optim.Adam(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)

    def on_fit_start(self):
        if self.hparams.activation == "step":
            raise ConfigError("activation='step' cannot be trained (its gradient is zero everywhere); use fit=false, or activation=sigmoid")

    def _chunk_fast(self, x: torch.Tensor, y: torch.Tensor, n: int, adam: torch.optim.Adam) -> ChunkResult:
        return adam_chunk(self._params(), adam, x, y, n, self.hparams.hidden_units, self.hparams.stop_after_perfect, self._streak)

    def _chunk_torch(self, x: torch.Tensor, y: torch.Tensor, n: int, adam: torch.optim.Adam) -> ChunkResult:
        """The same updates through autograd and ``torch.optim.Adam`` itself (``fast: false``)."""
        streak, first, k, first_loss = self._streak, -1, 0, None
        while k < n and streak < self.hparams.stop_after_perfect:
            o = self.net(x)
            loss = F.binary_cross_entropy(o, y)
            first_loss = float(loss.detach()) if first_loss is None else first_loss
            if bool(((o >= 0.5) == (y >= 0.5)).all()):
                first = k if first < 0 else first
                streak += 1
            else:
                streak = 0
            adam.zero_grad()
            loss.backward()
            adam.step()
            k += 1
        adam.zero_grad()  # grads None again: the bookkeeping step below must not move anything
        return ChunkResult(np.array([k]), np.array([first]), np.array([streak]), np.array([float(loss.detach())]), o.detach().cpu().numpy()[None],
                           np.array([first_loss]))

    def training_step(self, batches, batch_idx):
        """One full-batch update per ``(points, targets)`` in ``batches`` (the same 9 points each
        time), never past the update budget or a restart decision."""
        hp, attempts = self.hparams, self.attempts
        x, y = batches[0]
        lightning_opt = self.optimizers()
        adam = lightning_opt.optimizer
        in_attempt = self.updates - attempts.current["start_update"]
        limit = hp.max_updates - in_attempt
        until_restart = attempts.updates_until_restart(self.updates)
        if until_restart is not None:
            limit = min(limit, until_restart)
        n = min(len(batches), limit)
        chunk = self._chunk_fast if hp.fast else self._chunk_torch
        result = chunk(x, y, n, adam)
        # Lightning counts optimizer steps through its own wrapper; with every .grad None this
        # step moves no weight (torch.optim skips such parameters) and only advances the count
        # that checkpointing relies on. The real updates happened above.
        lightning_opt.step()

        done, first = int(result.done[0]), int(result.first_correct[0])
        if first >= 0:
            attempts.succeeded(in_attempt + first + 1)  # counted within the attempt
        self._streak = int(result.streak[0])
        self.updates += done
        loss, output = float(result.last_loss[0]), torch.from_numpy(result.last_output[0])
        acc = float(((output >= 0.5) == (y.cpu() >= 0.5)).float().mean())
        self.log_dict({"loss/train": loss, "acc/train": acc, "step": float(self.updates)}, on_step=True, on_epoch=False)

        if self._streak >= hp.stop_after_perfect:
            attempts.end(self.updates, f"100% held for {hp.stop_after_perfect:,} updates")
            self.trainer.should_stop = True
        elif self.updates - attempts.current["start_update"] >= hp.max_updates:
            attempts.end(self.updates, f"update budget of {hp.max_updates:,} spent")
            self.trainer.should_stop = True
        elif attempts.restart_due(self.updates):
            seed = attempts.restart(self.updates, f"no 100% after {hp.restart_after:,} updates: re-initialised")
            log.info("attempt %d reached no 100%% in %d updates; re-initialising with seed %d", len(attempts) - 1, hp.restart_after, seed)
            self._reset_weights(seed)
            adam.state.clear()
        # the chunk's first and last losses, for the divergence check (callbacks.divergence)
        return {"loss": torch.tensor([float(result.first_loss[0]), loss]), "update": self.updates, "samples": done * len(x)}

    # -- checkpoints keep the training record --------------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        checkpoint[Attempts.CHECKPOINT_KEY] = self.attempts.state_dict()
        checkpoint["grid_progress"] = {"updates": self.updates, "streak": self._streak}

    def on_load_checkpoint(self, checkpoint):
        if Attempts.CHECKPOINT_KEY in checkpoint:
            self.attempts.load_state_dict(checkpoint[Attempts.CHECKPOINT_KEY])
        progress = checkpoint.get("grid_progress")
        if progress:
            self.updates, self._streak = progress["updates"], progress["streak"]

    # -- evaluation -------------------------------------------------------------------------
    def test_step(self, batch, batch_idx):
        x, y = batch
        h, o = self.net.activations(x)
        loss = F.binary_cross_entropy(o, y)
        acc = ((o >= 0.5) == (y >= 0.5)).float().mean()
        self.log_dict({"hp/loss_test": loss, "hp/acc_test": acc}, on_step=False, on_epoch=True)
        self.last_test = {"points": x.cpu(), "targets": y.cpu(), "hidden": h.detach().cpu(), "output": o.detach().cpu(), "loss": float(loss)}

    def test_summary(self) -> dict:
        """Final figures for results.json: accuracy, weights, the point table, dividing lines, training record."""
        t = self.last_test
        table = point_table(t["points"], t["targets"], t["hidden"], t["output"])
        right = sum(row["correct"] for row in table)
        weights = self.weights_dict()
        attempts = self.attempts.summary(self.updates, "stopped after reaching 100%", "stopped before reaching 100%") if self.updates else []
        return {
            "test_loss": t["loss"],
            "test_acc": right / len(table),
            "test_correct": right,
            "test_total": len(table),
            "activation": self.hparams.activation,
            "hidden_units": self.hparams.hidden_units,
            "weight_scale": self.hparams.weight_scale,
            "weights": weights,
            "point_table": table,
            "dividing_lines": dividing_lines(weights["hidden_weight"], weights["hidden_bias"]),
            "updates": self.updates,
            "attempts": attempts,
            "first_perfect_update": attempts[-1]["first_perfect_update"] if attempts else None,
        }
