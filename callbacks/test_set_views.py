"""TensorBoard's interactive views of a classifier on its test images: the embedding projector of
the last hidden layer, per-class precision-recall curves, and attribution maps of the confusions."""

from __future__ import annotations

from pathlib import Path

import torch
from pytorch_lightning import Callback

from analysis.attributions import integrated_gradients, saliency
from analysis.kmnist import top_confusions
from base.contracts import ImageTestSet
from base.errors import ConfigError, check, check_int
from callbacks.confused_examples import class_probabilities, pick_examples
from callbacks.figures import Figure, check_local_logdir, publish, tensorboard_writer, write_embedding

SPRITE_PX = 8192  # the projector's largest sprite side


def _test_images(trainer) -> tuple[torch.Tensor, torch.Tensor, ImageTestSet]:
    dm = trainer.datamodule
    if not isinstance(dm, ImageTestSet) or dm.test_set is None:
        raise ConfigError(f"the test-set views need labelled test images (data=kmnist), not {type(dm).__name__}")
    images, labels = (t.cpu() for t in dm.test_set.tensors)  # on the GPU with data.on_device
    return images, labels, dm


@torch.inference_mode()
def features_and_scores(net, images: torch.Tensor, device, chunk: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 1, 28, 28)`` normalised images -> the net's last hidden layer ``(N, F)`` and class
    scores ``(N, C)`` (before the softmax), in eval mode, on the CPU."""
    was_training = net.training
    net.eval()
    try:
        feats, scores = [], []
        for i in range(0, len(images), chunk):
            f = net.features(images[i : i + chunk].to(device))
            feats.append(f.cpu())
            scores.append(net.head(f).cpu())
    finally:
        net.train(was_training)
    return torch.cat(feats), torch.cat(scores)


class TestSetViews(Callback):
    """After ``trainer.test``, on rank 0 (which holds the whole test set: nothing to gather):

    - ``projector``: the embedding projector of ``net.features`` (NetConv's 128 units, NetFull's
      hidden units, NetLin's 10 scores) for the first ``max_points`` test images, tag
      ``<Net>_features``, with the glyphs as the sprite and the metadata columns ``true``,
      ``predicted``, ``correct``, ``true name``, ``predicted name``;
    - ``pr_curves``: one precision-recall curve per class (``pr_curve/<c>_<name>``), one class
      against the rest, over every test image, with ``pr_thresholds`` thresholds.

    TensorBoard only (nothing without a TensorBoardLogger)."""

    def __init__(self, projector: bool = True, pr_curves: bool = True, max_points: int = 10_000, pr_thresholds: int = 127):
        check(isinstance(projector, bool), "projector", projector, "true or false")
        check(isinstance(pr_curves, bool), "pr_curves", pr_curves, "true or false")
        check_int("max_points", max_points, 1)
        check_int("pr_thresholds", pr_thresholds, 2)
        self.projector, self.pr_curves, self.max_points, self.pr_thresholds = projector, pr_curves, max_points, pr_thresholds

    def setup(self, trainer, pl_module, stage):
        if self.projector:
            check_local_logdir(trainer)

    def on_test_end(self, trainer, pl_module):
        if not trainer.is_global_zero or not (self.projector or self.pr_curves):
            return
        writer = tensorboard_writer(trainer)
        if writer is None:
            return
        images, labels, dm = _test_images(trainer)
        side = images.shape[-1]
        limit = (SPRITE_PX // side) ** 2  # ceil(sqrt(N)) glyphs a side must fit in the sprite
        check(self.max_points <= limit, "max_points", self.max_points, f"at most {limit:,} (a sprite of {side}-pixel glyphs is at most {SPRITE_PX} pixels a side)")
        feats, scores = features_and_scores(pl_module.net, images, pl_module.device)
        preds = scores.argmax(1)
        names = [str(n) for n in dm.classes]
        if self.projector:
            k = min(self.max_points, len(images))
            columns = {
                "true": labels[:k].tolist(),
                "predicted": preds[:k].tolist(),
                "correct": (preds[:k] == labels[:k]).tolist(),
                "true name": [names[i] for i in labels[:k].tolist()],
                "predicted name": [names[i] for i in preds[:k].tolist()],
            }
            write_embedding(trainer, feats[:k], columns, f"{type(pl_module.net).__name__}_features", images=dm.pixels(images[:k]))
        if self.pr_curves:
            probs = scores.softmax(1)
            for c, name in enumerate(names):
                writer.add_pr_curve(f"pr_curve/{c}_{name}", labels == c, probs[:, c], global_step=trainer.global_step, num_thresholds=self.pr_thresholds)
            writer.flush()


def attribution_figure(pixels: torch.Tensor, maps: list[tuple[str, torch.Tensor]], title: str) -> Figure:
    """One column per image: the glyph, then one row per ``(row title, maps (k, 1, H, W))``,
    signed maps in red (for the class) and blue (against), each image on its own colour scale."""
    n = max(len(pixels), 1)
    fig = Figure(figsize=(1.25 * n + 1.8, 1.3 * (len(maps) + 1) + 0.6), layout="constrained")
    fig.suptitle(title, fontsize=10)
    axes = fig.subplots(len(maps) + 1, n, squeeze=False)
    for c in range(n):
        for ax in axes[:, c]:
            ax.set_xticks([])
            ax.set_yticks([])
        if c >= len(pixels):
            for ax in axes[:, c]:
                ax.axis("off")
            continue
        axes[0, c].imshow(pixels[c, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        for r, (_, m) in enumerate(maps, start=1):
            v = m[c, 0].numpy()
            lim = max(float(abs(v).max()), 1e-12)
            axes[r, c].imshow(v, cmap="bwr", vmin=-lim, vmax=lim)
    axes[0, 0].set_ylabel("glyph", fontsize=8)
    for r, (label, _) in enumerate(maps, start=1):
        axes[r, 0].set_ylabel(label, fontsize=8)
    return fig


class AttributionCallback(Callback):
    """Why a character is confused: for the ``pairs`` largest confusions (true a read as b), the
    ``examples`` test images of a read most confidently as b, with, per image,

    - integrated gradients of the score of b (the class it was read as), of a (its true class)
      and of their difference (the pixels that tip it to b), from the blank image (every pixel
      0) in ``steps`` steps,
    - the saliency (gradient) of the score of b.

    Red pixels raise the score, blue ones lower it. After ``trainer.test``, rank 0: TensorBoard
    ``attributions/final_test_<k>`` and ``<save_dir>/attributions_<k>_<a>_as_<b>.png``."""

    def __init__(self, pairs: int = 1, examples: int = 6, steps: int = 32, save_dir: str | None = None):
        check_int("pairs", pairs, 1)
        check_int("examples", examples, 1)
        check_int("steps", steps, 1)
        self.pairs, self.examples, self.steps = pairs, examples, steps
        self.save_dir = Path(save_dir) if save_dir else None

    def on_test_end(self, trainer, pl_module):
        if not trainer.is_global_zero or "test" not in pl_module.last_eval:
            return
        images, labels, dm = _test_images(trainer)
        names = [str(n) for n in dm.classes]
        net, device = pl_module.net, pl_module.device
        baseline = dm.from_pixels(torch.zeros_like(images[:1]))  # the blank image (every pixel 0), normalised
        cm = pl_module.last_eval["test"]["confusion"]
        was_training = net.training
        net.eval()
        try:
            for k, top in enumerate(top_confusions(cm, self.pairs), start=1):
                a, b = top["true"], top["pred"]
                of_a = labels == a
                probs = class_probabilities(pl_module, images[of_a])
                _, x, _ = pick_examples(images[of_a], labels[of_a], probs, a, b, self.examples)[1]  # a read as b, most confident first
                if len(x) == 0:
                    continue
                x = x.to(device)
                base = baseline.to(device)
                to_b = torch.full((len(x),), b, device=device)
                to_a = torch.full((len(x),), a, device=device)
                ig_b = integrated_gradients(net.scores, x, to_b, base, self.steps).cpu()
                ig_a = integrated_gradients(net.scores, x, to_a, base, self.steps).cpu()
                maps = [
                    (f"IG, score of {names[b]}", ig_b),
                    (f"IG, score of {names[a]}", ig_a),
                    (f"IG, {names[b]} minus {names[a]}", ig_b - ig_a),  # IG is linear in the score: this is IG of the difference
                    (f"gradient, score of {names[b]}", saliency(net.scores, x, to_b).cpu()),
                ]
                title = (f"{names[a]} ({a}) read as {names[b]} ({b}): {top['count']} test images; red raises the score, blue lowers it"
                         f"\nintegrated gradients from the blank image in {self.steps} steps")
                fig = attribution_figure(dm.pixels(x.cpu()), maps, title)
                png = self.save_dir / f"attributions_{k}_{names[a]}_as_{names[b]}.png" if self.save_dir else None
                publish(trainer, fig, f"attributions/final_test_{k}", png)
        finally:
            net.train(was_training)
