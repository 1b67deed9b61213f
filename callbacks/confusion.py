"""The drawn confusion matrix and the callback that shows it after every evaluation."""

from __future__ import annotations

from pathlib import Path

import torch
from pytorch_lightning import Callback
from torchmetrics.utilities.plot import plot_confusion_matrix

from analysis.kmnist import reference_test_line
from callbacks.figures import Figure, publish


def confusion_figure(confusion: torch.Tensor, class_names: list[str], title: str) -> Figure:
    """The matrix with counts in the cells and ``"i name"`` tick labels."""
    fig = Figure(figsize=(9, 8), layout="constrained")
    ax = fig.add_subplot()
    labels = [f"{i} {name}" for i, name in enumerate(class_names)]
    plot_confusion_matrix(confusion.cpu(), ax=ax, add_text=True, labels=labels, cmap="Blues")
    for text in ax.texts:
        text.set_fontsize(10)
        text.set_in_layout(False)  # inside the axes; measuring 100 cell texts slowed every draw by ~16%
    ax.set_title(title)
    return fig


class ConfusionMatrixCallback(Callback):
    """After each evaluation, draws the test confusion matrix the module exposes in
    ``pl_module.last_eval[stage]["confusion"]`` and prints the reference's test line.

    TensorBoard tags: ``confusion_matrix/test`` after every epoch (the slider shows it change) and
    ``confusion_matrix/final_test`` after ``trainer.test``; the final one is also saved as
    ``<save_dir>/confusion_matrix.png``. The matrix is reduced over devices by the module on every
    rank; only rank 0 draws.

    Args:
        class_names: tick labels; default: the datamodule's ``classes``.
        save_dir: folder for the PNG (none: TensorBoard only).
    """

    TAGS = {"val": "confusion_matrix/test", "test": "confusion_matrix/final_test"}

    def __init__(self, class_names: list[str] | None = None, save_dir: str | None = None):
        self.class_names = class_names
        self.save_dir = Path(save_dir) if save_dir else None

    def _names(self, trainer, n: int) -> list[str]:
        names = self.class_names or getattr(trainer.datamodule, "classes", None)
        return list(names) if names and len(names) == n else [str(i) for i in range(n)]

    def _show(self, trainer, pl_module, stage: str) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or stage not in pl_module.last_eval:
            return
        ev = pl_module.last_eval[stage]
        cm = ev["confusion"]
        correct, total = int(cm.trace()), int(cm.sum())
        if stage == "val":  # the final test is printed with the whole report by train.py
            # through the progress bar (a bare print would break its line)
            pl_module.print(f"\nepoch {trainer.current_epoch + 1}: {reference_test_line(ev['loss'], correct, total)}")
        where = f"epoch {trainer.current_epoch + 1}" if stage == "val" else "final test"
        title = f"{type(pl_module.net).__name__}, {where}: {correct:,}/{total:,} correct ({100 * correct / total:.1f}%)"
        label = getattr(trainer.datamodule, "label", None)  # which training data: bundled sample or full set
        if label:
            title += f"\ntraining data: {label}"
        fig = confusion_figure(cm, self._names(trainer, cm.shape[0]), title)
        png = self.save_dir / "confusion_matrix.png" if (self.save_dir and stage == "test") else None
        publish(trainer, fig, self.TAGS[stage], png)

    def on_validation_end(self, trainer, pl_module):
        self._show(trainer, pl_module, "val")

    def on_test_end(self, trainer, pl_module):
        self._show(trainer, pl_module, "test")
