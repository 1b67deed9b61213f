"""Stop training once a task is solved and has stayed solved."""

from __future__ import annotations

import torch
from pytorch_lightning import Callback


class SolvedStopping(Callback):
    """Stop once ``monitor`` (default ``det_acc/val``) has been >= ``threshold`` on
    ``evaluations`` consecutive evaluations.

    Lightning's ``EarlyStopping(stopping_threshold=...)`` stops at the first evaluation that
    reaches the threshold; a recurrent net can pass a check once by luck and lose it again, so
    this one asks for the result to hold. ``results()`` puts the update at which it stopped in
    results.json (when the task was first solved, the module measures in every run).
    """

    def __init__(self, monitor: str = "det_acc/val", threshold: float = 1.0, evaluations: int = 3):
        self.monitor, self.threshold, self.evaluations = monitor, threshold, evaluations
        self.streak = 0
        self.stopped_at_update: int | None = None

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        solved = value is not None and float(value) >= self.threshold
        # every rank sees the same reduced metric; agree anyway, as Lightning's EarlyStopping does
        solved = trainer.strategy.reduce_boolean_decision(torch.tensor(solved), all=True)
        self.streak = self.streak + 1 if solved else 0
        if self.streak >= self.evaluations:
            trainer.should_stop = True
            self.stopped_at_update = trainer.global_step

    def state_dict(self):
        return {"streak": self.streak}

    def load_state_dict(self, state_dict):
        self.streak = state_dict["streak"]

    def results(self) -> dict:
        return {"stopped_early_at_update": self.stopped_at_update}
