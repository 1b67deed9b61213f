"""Callbacks that look inside a run: figures, tables, timing."""

from callbacks.confused_examples import ConfusedExamplesCallback
from callbacks.confusion import ConfusionMatrixCallback
from callbacks.decision_maps import DecisionMapCallback
from callbacks.divergence import DivergenceCheck
from callbacks.solved_stopping import SolvedStopping
from callbacks.state_trajectories import StateTrajectoryCallback
from callbacks.timer import TrainTimer

__all__ = [
    "ConfusionMatrixCallback",
    "ConfusedExamplesCallback",
    "DecisionMapCallback",
    "DivergenceCheck",
    "SolvedStopping",
    "StateTrajectoryCallback",
    "TrainTimer",
]
