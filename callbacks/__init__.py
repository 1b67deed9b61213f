"""Callbacks that look inside a run: figures, tables, timing."""

from callbacks.confused_examples import ConfusedExamplesCallback
from callbacks.confusion import ConfusionMatrixCallback, top_confusions
from callbacks.decision_maps import DecisionMapCallback
from callbacks.timer import TrainTimer

__all__ = ["ConfusionMatrixCallback", "ConfusedExamplesCallback", "DecisionMapCallback", "TrainTimer", "top_confusions"]
