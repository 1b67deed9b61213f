"""Stop training once a task is solved and has stayed solved."""

from __future__ import annotations

import torch
from pytorch_lightning import Callback

from analysis.stopping import after_evaluation, stop_due
from base.errors import check_int


class SolvedStopping(Callback):
    """Stop ``patience`` updates after ``monitor`` (default ``det_acc/val``) has been >=
    ``threshold`` on ``evaluations`` consecutive evaluations (``patience`` 0: at once; None: never,
    the run trains its full schedule: training on after solving is what can carry the counting
    to longer blocks).

    Lightning's ``EarlyStopping(stopping_threshold=...)`` stops at the first evaluation that
    reaches the threshold; a recurrent net can pass a check once by luck and lose it again, so
    this one asks for the result to hold. ``results()`` puts the update at which it stopped in
    results.json (when the task was first solved, the module measures in every run).
    """

    def __init__(self, monitor: str = "det_acc/val", threshold: float = 1.0, evaluations: int = 3, patience: int | None = 0):
        check_int("evaluations", evaluations, 1)
        if patience is not None:
            check_int("patience", patience, 0)
        self.monitor, self.threshold, self.evaluations, self.patience = monitor, threshold, evaluations, patience
        self.streak = 0
        self.held_at: int | None = None  # the update at which the streak first reached `evaluations`
        self.stopped_at_update: int | None = None

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        solved = value is not None and float(value) >= self.threshold
        # every rank sees the same reduced metric; agree anyway, as Lightning's EarlyStopping does
        solved = trainer.strategy.reduce_boolean_decision(torch.tensor(solved), all=True)
        self.streak, self.held_at = after_evaluation(self.streak, self.held_at, bool(solved), trainer.global_step, self.evaluations)
        self._stop_if_due(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._stop_if_due(trainer)

    def _stop_if_due(self, trainer) -> None:
        if stop_due(self.held_at, self.patience, trainer.global_step) and not trainer.should_stop:
            trainer.should_stop = True
            self.stopped_at_update = trainer.global_step

    def state_dict(self):
        return {"streak": self.streak, "held_at": self.held_at}

    def load_state_dict(self, state_dict):
        self.streak, self.held_at = state_dict["streak"], state_dict.get("held_at")

    def results(self) -> dict:
        return {"stopped_early_at_update": self.stopped_at_update}
