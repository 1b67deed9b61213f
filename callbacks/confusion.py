"""Confusion matrices: the largest confusions, the drawn matrix, and the callback that shows them."""

from __future__ import annotations

from pathlib import Path

import torch
from pytorch_lightning import Callback
from torchmetrics.utilities.plot import plot_confusion_matrix

from callbacks.figures import Figure, publish


def top_confusions(confusion: torch.Tensor, k: int = 5, class_names: list[str] | None = None) -> list[dict]:
    """The ``k`` largest off-diagonal cells of ``confusion`` (rows = true, columns = predicted).

    Returns ``[{"true": i, "pred": j, "count": n, "true_name": ..., "pred_name": ...}]``, largest
    first; ties go to the smaller (true, pred). Empty cells are left out.
    """
    cm = torch.as_tensor(confusion).clone().long()
    cm.fill_diagonal_(-1)
    flat = cm.flatten()
    # stable sort on -count keeps row-major order among equal counts
    order = torch.sort(-flat, stable=True).indices[:k]
    n = cm.shape[1]
    out = []
    for idx in order.tolist():
        count = int(flat[idx])
        if count <= 0:
            break
        row = {"true": idx // n, "pred": idx % n, "count": count}
        if class_names is not None:
            row["true_name"], row["pred_name"] = class_names[idx // n], class_names[idx % n]
        out.append(row)
    return out


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


def reference_test_line(loss: float, correct: int, total: int) -> str:
    """The reference study's line, e.g. ``Test set: Average loss: 0.5243, Accuracy: 8413/10000 (84%)``."""
    return f"Test set: Average loss: {loss:.4f}, Accuracy: {correct}/{total} ({100.0 * correct / total:.0f}%)"


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
            print(f"\nepoch {trainer.current_epoch + 1}: {reference_test_line(ev['loss'], correct, total)}")
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
