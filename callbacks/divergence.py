"""Stop a run whose training loss diverges, with one line that says so."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from pytorch_lightning import Callback

from base.errors import TrainingDiverged, check, check_int, is_number


class DivergenceCheck(Callback):
    """Fail the run (``TrainingDiverged``: one ``error:`` line, exit status 1, no results.json)
    when the training loss becomes NaN or infinite, or rises more than ``rise`` times above the
    loss of the initial weights.

    Every study's ``training_step`` returns ``{"loss": ...}``: losses of the updates it made, in
    order, shaped ``()`` (one update), ``(updates,)`` or ``(updates, seeds)`` (a population); and,
    where Lightning's ``global_step`` does not count updates, ``"update"``, the number of the last
    one. The start is the mean of the first row of the first step (the initial nets' loss, kept
    across a resume); "now" is the mean of the last row over the last ``window`` steps (or as many
    as there were), so a single noisy batch does not count.

    The check costs no host synchronisation per step: the losses stay on the device and are looked
    at every ``check_every`` steps, before each evaluation during training, at the end of each
    epoch and when training ends. Weights that are NaN or infinite before the first update (a
    setting that draws them beyond float32, a diverged checkpoint) fail the run at its start. Whatever the run wrote before (logs,
    checkpoints) stays where it is, for inspection.
    """

    def __init__(self, rise: float | None = 10.0, window: int = 10, check_every: int = 10):
        check(rise is None or (is_number(rise) and rise > 1), "rise", rise, "null (no check of the rise) or a finite number > 1")
        check_int("window", window, 1)
        check_int("check_every", check_every, 1)
        self.rise, self.window, self.check_every = rise, window, check_every
        self.start: float | None = None
        self._reset()

    def _reset(self) -> None:
        self._steps, self._update = 0, 0
        self._recent: list[torch.Tensor] = []  # mean loss of the last update of each of the last `window` steps
        self._bad: torch.Tensor | None = None  # the first non-finite loss (NaN until there is one)
        self._bad_update: torch.Tensor | None = None  # ... and its update (-1 until there is one)

    def on_train_start(self, trainer, pl_module):
        self._reset()
        if isinstance(pl_module, torch.nn.Module):  # weights drawn or loaded non-finite: no update can fix them
            params = [p.detach() for p in pl_module.parameters()]
            bad = sum(int((~torch.isfinite(p)).sum()) for p in params)
            if trainer.strategy.reduce_boolean_decision(bad > 0, all=False):
                total = sum(p.numel() for p in params)
                raise TrainingDiverged(f"the weights hold NaN or infinite values before the first update ({bad:,} of {total:,}); "
                                       f"check what drew or set them: {self._weight_settings(trainer, pl_module)}")

    def on_validation_start(self, trainer, pl_module):
        """Before every evaluation during training, so that no view draws a diverged net: KMNIST
        evaluates after each epoch's last step, before the epoch-end check."""
        if not trainer.sanity_checking:
            self._check(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._steps += 1  # every step counts, so that every process checks at the same steps
        self._record(trainer, outputs)
        if self._steps % self.check_every == 0:
            self._check(trainer, pl_module)

    def _record(self, trainer, outputs) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor) or loss.numel() == 0:  # this process trained nothing (a population's seeds elsewhere)
            return
        rows = loss.detach().float().reshape(loss.shape[0] if loss.dim() else 1, -1)  # (updates, seeds)
        last = int(outputs.get("update", trainer.global_step)) if isinstance(outputs, dict) else trainer.global_step
        device = rows.device
        if self._bad is None:
            self._bad = torch.full((), float("nan"), device=device)
            self._bad_update = torch.full((), -1, dtype=torch.long, device=device)
        if self.start is None:  # the one host synchronisation outside the checks
            self.start = float(rows[0].mean())
        # the first non-finite loss and its update, found on the device
        # (no boolean-mask indexing or indexing by a tensor: either would synchronise on a GPU)
        finite = torch.isfinite(rows)
        row_finite = finite.all(dim=1)  # (updates,)
        first_row = torch.argmin(row_finite.to(torch.uint8))  # the first False (0 if all are True)
        new = (~row_finite.all()) & (self._bad_update < 0)
        bad_sums = torch.where(finite, torch.zeros_like(rows), rows).sum(dim=1)  # per update: NaN + ... = NaN, inf stays inf
        value = bad_sums.gather(0, first_row.view(1)).squeeze(0)
        self._bad = torch.where(new, value, self._bad)
        self._bad_update = torch.where(new, last - len(rows) + 1 + first_row, self._bad_update)
        self._recent = (self._recent + [rows[-1].mean()])[-self.window:]
        self._update = last

    def on_train_epoch_end(self, trainer, pl_module):
        self._check(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        self._check(trainer, pl_module)

    def _check(self, trainer, pl_module) -> None:
        """Every process takes part in both decisions, whether or not it trained anything."""
        seen = self._bad_update is not None
        bad = seen and int(self._bad_update) >= 0
        if trainer.strategy.reduce_boolean_decision(bad, all=False):
            where = f"at update {int(self._bad_update):,} the training loss became {float(self._bad)}" if bad else "a training loss on another process became NaN or infinite"
            raise TrainingDiverged(f"training diverged: {where}; {self._advice(pl_module)}")
        if self.rise is None:
            return
        rose, now = False, None
        if seen and self.start is not None:  # this process trained something: `_recent` has a loss
            now = float(torch.stack(self._recent).mean())
            rose = now > self.rise * max(self.start, 1e-3)  # a start near 0 (a perfect net) is no scale
        if trainer.strategy.reduce_boolean_decision(rose, all=False):
            what = (f"the training loss rose to {now:.4g} by update {self._update:,} (mean of the last {self.window} steps), "
                    f"more than {self.rise:g} times its start, {self.start:.4g}") if rose else "the training loss of another process rose far above its start"
            raise TrainingDiverged(f"training diverged: {what}; {self._advice(pl_module)}")

    @staticmethod
    def _weight_settings(trainer, pl_module) -> str:
        """The settings behind the initial weights, as the user would type them."""
        hp = getattr(pl_module, "hparams", {})
        keys = [f"model.{k}={hp[k]!r}" for k in ("init", "init_std", "weight_scale", "forget_bias", "input_bias", "weights", "weights_file") if hp.get(k) is not None]
        if getattr(trainer, "ckpt_path", None):
            keys.append(f"ckpt_path={trainer.ckpt_path!r}")
        return ", ".join(keys) or "the network's initialisation"

    @staticmethod
    def _advice(pl_module) -> str:
        key, lr = "model.lr", pl_module.hparams.get("lr")
        optimizer = pl_module.hparams.get("optimizer")
        if lr is None and isinstance(optimizer, Mapping):  # a module configured with a _partial_ optimiser
            key, lr = "model.optimizer.lr", optimizer.get("lr")
        now = f" (now {lr:g})" if isinstance(lr, (int, float)) and math.isfinite(lr) else ""
        return f"try a smaller {key}{now}; the logs and any checkpoints written so far stay in the run folder"

    def state_dict(self):
        return {"start": self.start}

    def load_state_dict(self, state_dict):
        self.start = state_dict.get("start")
