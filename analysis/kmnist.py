"""KMNIST confusion summaries and the reference's test line: pure functions of a confusion matrix."""

from __future__ import annotations

import torch


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


def reference_test_line(loss: float, correct: int, total: int) -> str:
    """The reference study's line, e.g. ``Test set: Average loss: 0.5243, Accuracy: 8413/10000 (84%)``."""
    return f"Test set: Average loss: {loss:.4f}, Accuracy: {correct}/{total} ({100.0 * correct / total:.0f}%)"
