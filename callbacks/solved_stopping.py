"""Stop training once a task is solved and has stayed solved."""

from __future__ import annotations

import time

import torch
from pytorch_lightning import Callback


class SolvedStopping(Callback):
    """Stop once ``monitor`` (default ``det_acc/val``) has been >= ``threshold`` on
    ``evaluations`` consecutive evaluations.

    Lightning's ``EarlyStopping(stopping_threshold=...)`` stops at the first evaluation that
    reaches the threshold; a recurrent net can pass a check once by luck and lose it again, so
    this one asks for the result to hold. It records the first update (and the seconds since
    training started) at which the threshold was reached: ``results()`` puts them in results.json.
    """

    def __init__(self, monitor: str = "det_acc/val", threshold: float = 1.0, evaluations: int = 3):
        self.monitor, self.threshold, self.evaluations = monitor, threshold, evaluations
        self.streak = 0
        self.first_solved_update: int | None = None
        self.first_solved_seconds: float | None = None
        self.stopped_at_update: int | None = None
        self._t0 = time.perf_counter()

    def on_train_start(self, trainer, pl_module):
        self._t0 = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        solved = value is not None and float(value) >= self.threshold
        # every rank sees the same reduced metric; agree anyway, as Lightning's EarlyStopping does
        solved = trainer.strategy.reduce_boolean_decision(torch.tensor(solved), all=True)
        if solved and self.first_solved_update is None:
            self.first_solved_update = trainer.global_step
            self.first_solved_seconds = round(time.perf_counter() - self._t0, 2)
        self.streak = self.streak + 1 if solved else 0
        if self.streak >= self.evaluations:
            trainer.should_stop = True
            self.stopped_at_update = trainer.global_step

    def state_dict(self):
        return {"streak": self.streak, "first_solved_update": self.first_solved_update, "first_solved_seconds": self.first_solved_seconds}

    def load_state_dict(self, state_dict):
        self.streak = state_dict["streak"]
        self.first_solved_update = state_dict["first_solved_update"]
        self.first_solved_seconds = state_dict["first_solved_seconds"]

    def results(self) -> dict:
        return {
            "first_solved_update": self.first_solved_update,
            "first_solved_seconds": self.first_solved_seconds,
            "stopped_early_at_update": self.stopped_at_update,
        }
