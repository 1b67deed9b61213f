"""Where figures go: TensorBoard (when a TensorBoardLogger is attached) and PNG files.

Figures are ``matplotlib.figure.Figure`` objects built without pyplot: no global figure state
accumulates over a long run, no display is needed, and importing this package leaves the
matplotlib backend of a notebook alone (``savefig`` renders with Agg whatever the backend).
"""

from __future__ import annotations

from pathlib import Path

import torch

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


def write_embedding(trainer, points, columns: dict[str, list], tag: str, images=None) -> bool:
    """Put ``points`` (N, D) into TensorBoard's embedding projector under ``tag`` at the global
    step, with one metadata column per entry of ``columns`` (N values each, in that order) and,
    when given, ``images`` (N, C, H, W) in [0, 1] as the sprite. Returns False (writing nothing)
    without a TensorBoardLogger.

    Call once per tag and step: a second call with both the same writes the tensors again into the
    same folder and lists the embedding twice in ``projector_config.pbtxt``. The projector reads
    the tensors as text (``tensors.tsv``), so the values are rounded to 4 decimals: NetConv's
    10,000 points of 128 values take about 7 MB instead of 18."""
    writer = tensorboard_writer(trainer)
    if writer is None:
        return False
    header = list(columns)
    rows = [[str(v) for v in row] for row in zip(*columns.values())]
    points = torch.as_tensor(points).double().round(decimals=4)  # float64: str() of a float32 item prints 17 digits
    writer.add_embedding(points, metadata=rows, metadata_header=header, label_img=images, global_step=trainer.global_step, tag=tag)
    writer.flush()
    return True
