"""The grid net's hidden layer in TensorBoard's embedding projector: where the hidden units send
the input plane, so a user sees how they fold it until one line (the output unit) separates the
classes."""

from __future__ import annotations

import numpy as np
import torch
from pytorch_lightning import Callback

from base.errors import check_extent, check_int
from callbacks.decision_maps import plane
from callbacks.figures import check_local_logdir, tensorboard_writer, write_embedding


def plane_points(net, points: np.ndarray, targets: np.ndarray, extent: tuple[float, float], resolution: int) -> tuple[np.ndarray, dict[str, list]]:
    """The hidden activations ``(R*R + 9, H)`` of a ``resolution`` x ``resolution`` grid over
    ``extent``^2 followed by the 9 training points, and the metadata columns ``x``, ``y``,
    ``output`` (rounded to 2 decimals), ``class`` (output >= 0.5) and ``point`` (the training
    point's target, ``-`` for the plane)."""
    _, pts = plane(extent, resolution)
    xy = np.vstack([pts.numpy(), points])
    with torch.no_grad():
        device = next(net.parameters()).device
        h, o = net.activations(torch.from_numpy(xy).float().to(device))
    h, o = h.cpu().numpy(), o.flatten().cpu().numpy()
    columns = {
        "x": [f"{v:.3f}" for v in xy[:, 0]],
        "y": [f"{v:.3f}" for v in xy[:, 1]],
        "output": [f"{v:.2f}" for v in o],
        "class": [int(v >= 0.5) for v in o],
        "point": ["-"] * (len(xy) - len(points)) + [int(t) for t in targets],
    }
    return h, columns


class GridProjector(Callback):
    """After ``trainer.test``, on rank 0: the analysed net's hidden activations over the input
    plane (``resolution``^2 points over ``extent``^2, and the 9 training points) in the
    projector, tag ``hidden_units``. TensorBoard only."""

    def __init__(self, resolution: int = 41, extent: tuple[float, float] = (-0.5, 2.5)):
        check_int("resolution", resolution, 2)
        self.resolution, self.extent = resolution, check_extent(extent)

    def setup(self, trainer, pl_module, stage):
        check_local_logdir(trainer)

    def on_test_end(self, trainer, pl_module):
        if not trainer.is_global_zero or tensorboard_writer(trainer) is None:
            return
        dm = trainer.datamodule
        net = pl_module.nets_to_show()[0].net
        h, columns = plane_points(net, dm.points.numpy(), dm.targets.flatten().long().numpy(), self.extent, self.resolution)
        write_embedding(trainer, h, columns, "hidden_units")
