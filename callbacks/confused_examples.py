"""Show the test images behind the largest confusions, so a user sees why they are confused."""

from __future__ import annotations

from pathlib import Path

import torch
from pytorch_lightning import Callback

from analysis.kmnist import top_confusions
from base.errors import check_int
from callbacks.figures import Figure, publish


@torch.inference_mode()
def class_probabilities(pl_module, images: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    """``(N, 1, 28, 28)`` normalised images -> ``(N, C)`` probabilities under the current weights."""
    was_training = pl_module.training
    pl_module.eval()
    try:
        out = [pl_module(images[i : i + chunk].to(pl_module.device)).exp().cpu() for i in range(0, len(images), chunk)]
    finally:
        pl_module.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def pick_examples(images, labels, probs, true: int, pred: int, n: int):
    """Three rows of at most ``n`` images each, most confident first:
    ``true`` read correctly, ``true`` read as ``pred``, ``pred`` read correctly.

    Returns ``[(row title, images (k, 1, H, W), probability shown under each image (k,))]``.
    """
    guess = probs.argmax(dim=1)
    rows = []
    for title, mask, col in (
        (f"typical {true}", (labels == true) & (guess == true), true),
        (f"{true} read as {pred}", (labels == true) & (guess == pred), pred),
        (f"typical {pred}", (labels == pred) & (guess == pred), pred),
    ):
        idx = mask.nonzero().flatten()
        idx = idx[probs[idx, col].argsort(descending=True)][:n]
        rows.append((title, images[idx], probs[idx, col]))
    return rows


def examples_figure(rows, names: list[str], true: int, pred: int, count: int, total_true: int, vrange, data: str | None = None) -> Figure:
    """``data``: the training data's name, shown under the title (``bundled sample, ...``)."""
    n = max(1, max(len(r[1]) for r in rows))
    fig = Figure(figsize=(1.2 * n + 1.6, 4.4 + (0.3 if data else 0)), layout="constrained")
    title = f"true {names[true]} ({true}) read as {names[pred]} ({pred}): {count} of {total_true} test images"
    fig.suptitle(title + (f"\ntraining data: {data}" if data else ""))
    axes = fig.subplots(3, n, squeeze=False)
    labels = [f"{names[true]}\nread as {names[true]}", f"{names[true]}\nread as {names[pred]}", f"{names[pred]}\nread as {names[pred]}"]
    shown = [names[true], names[pred], names[pred]]  # whose probability is printed under each row
    for r, ((_, imgs, p), label) in enumerate(zip(rows, labels)):
        for c in range(n):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(imgs):
                ax.imshow(imgs[c, 0].numpy(), cmap="gray_r", vmin=vrange[0], vmax=vrange[1])
                ax.set_xlabel(f"p({shown[r]})={float(p[c]):.2f}", fontsize=8)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, fontsize=9)
    return fig


class ConfusedExamplesCallback(Callback):
    """After each evaluation, for the ``pairs`` largest confusions (true a, predicted b): the a's
    most confidently read as b, between typical a's and typical b's.

    Reads the confusion matrix from ``pl_module.last_eval`` and the images from
    ``trainer.datamodule.test_set`` (a ``TensorBatches`` of images and labels). Rank 0 only; it
    re-runs the model on the two classes' test images (a few thousand images, outside the
    training step).

    TensorBoard tags ``confused/test_{k}`` every ``every_n_epochs`` epochs (0: never during
    training; the figure costs a few times a NetLin epoch on the bundled sample) and
    ``confused/final_test_{k}``; after ``trainer.test`` also ``<save_dir>/confused_{k}_{a}_as_{b}.png``.
    """

    def __init__(self, pairs: int = 1, examples: int = 8, save_dir: str | None = None, every_n_epochs: int = 1):
        check_int("every_n_epochs", every_n_epochs, 0)
        check_int("pairs", pairs, 1)
        check_int("examples", examples, 1)
        self.every_n_epochs = every_n_epochs
        self.pairs = pairs
        self.examples = examples
        self.save_dir = Path(save_dir) if save_dir else None

    def _show(self, trainer, pl_module, stage: str) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or stage not in pl_module.last_eval:
            return
        test_set = getattr(trainer.datamodule, "test_set", None)
        if test_set is None:
            return
        images, labels = (t.cpu() for t in test_set.tensors)  # on the GPU with data.on_device
        cm = pl_module.last_eval[stage]["confusion"]
        names = list(getattr(trainer.datamodule, "classes", None) or range(cm.shape[0]))
        names = [str(n) for n in names]
        vrange = (float(images.min()), float(images.max()))
        for k, top in enumerate(top_confusions(cm, self.pairs), start=1):
            a, b = top["true"], top["pred"]
            keep = (labels == a) | (labels == b)
            sub_images, sub_labels = images[keep], labels[keep]
            probs = class_probabilities(pl_module, sub_images)
            rows = pick_examples(sub_images, sub_labels, probs, a, b, self.examples)
            fig = examples_figure(rows, names, a, b, top["count"], int(cm[a].sum()), vrange, getattr(trainer.datamodule, "label", None))
            tag = f"confused/{'test' if stage == 'val' else 'final_test'}_{k}"
            png = self.save_dir / f"confused_{k}_{names[a]}_as_{names[b]}.png" if (self.save_dir and stage == "test") else None
            publish(trainer, fig, tag, png)

    def on_validation_end(self, trainer, pl_module):
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._show(trainer, pl_module, "val")

    def on_test_end(self, trainer, pl_module):
        self._show(trainer, pl_module, "test")
