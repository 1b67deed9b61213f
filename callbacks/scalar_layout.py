"""A custom-scalars layout: several logged curves on one chart (TensorBoard's CUSTOM SCALARS tab)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pytorch_lightning import Callback

from base.errors import check
from callbacks.figures import tensorboard_writer


class ScalarLayout(Callback):
    """Writes ``charts`` as the run's custom-scalars layout when training starts (rank 0):
    ``{category: {chart title: [tag, ...]}}``, each chart a multi-line chart of those tags (each
    tag is matched as a regular expression, so ``loss/.*`` takes every loss curve).

    The study configs put the training and evaluation loss of a run on one chart, and ``error``
    beside ``error_exact``: Lightning logs each metric as a curve of its own, and TensorBoard's
    SCALARS tab cannot overlay two tags of one run."""

    def __init__(self, charts: Mapping):
        check(isinstance(charts, Mapping) and len(charts) > 0 and all(isinstance(c, Mapping) and len(c) > 0 and all(
            isinstance(t, Sequence) and not isinstance(t, str) and len(t) > 0 and all(isinstance(x, str) for x in t) for t in c.values()) for c in charts.values()),
              "charts", charts, "a mapping {category: {chart title: [tag, ...]}} with at least one tag a chart")
        self.layout = {str(cat): {str(title): ["Multiline", [str(t) for t in tags]] for title, tags in chart.items()} for cat, chart in charts.items()}

    def on_fit_start(self, trainer, pl_module):
        writer = tensorboard_writer(trainer) if trainer.is_global_zero else None
        if writer is not None:
            writer.add_custom_scalars(self.layout)
            writer.flush()
