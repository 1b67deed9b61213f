"""Where figures go: TensorBoard (when a TensorBoardLogger is attached) and PNG files.

Figures are ``matplotlib.figure.Figure`` objects built without pyplot: no global figure state
accumulates over a long run, no display is needed, and importing this package leaves the
matplotlib backend of a notebook alone (``savefig`` renders with Agg whatever the backend).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from pytorch_lightning.loggers import TensorBoardLogger


def tensorboard_writer(trainer):
    """The SummaryWriter of the first TensorBoardLogger among ``trainer.loggers``, or None."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def publish(trainer, fig: Figure, tag: str, png: Path | None = None, step: int | None = None) -> None:
    """Log ``fig`` to TensorBoard under ``tag`` at ``step`` (default: the global step), and
    save it as PNG."""
    writer = tensorboard_writer(trainer)
    if png is not None:
        png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png, dpi=100)
    if writer is not None:
        writer.add_figure(tag, fig, global_step=trainer.global_step if step is None else step, close=False)
        writer.flush()
