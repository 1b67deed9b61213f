"""What every unit of the grid perceptron computes, drawn over the input plane."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import ListedColormap
from pytorch_lightning import Callback

from analysis.grid import dividing_line
from base.contracts import ShownNet
from base.errors import check_extent, check_int
from callbacks.figures import Figure, publish

REGION = ListedColormap(["#ffffff", "#ffd8a8"])  # off, on (activation >= 0.5)
TARGET_COLOURS = {0: "tab:blue", 1: "tab:red"}


def plane(extent: tuple[float, float], resolution: int) -> tuple[np.ndarray, torch.Tensor]:
    """Axis values ``(R,)`` and the grid of points ``(R*R, 2)`` over the square [lo, hi]^2
    (row-major with y outer, so ``field.reshape(R, R)`` puts y on the rows for ``imshow``)."""
    axis = np.linspace(extent[0], extent[1], resolution, dtype=np.float32)
    gx, gy = np.meshgrid(axis, axis)
    return axis, torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1))


@torch.no_grad()
def unit_fields(net, extent, resolution) -> tuple[np.ndarray, np.ndarray]:
    """Activations over the plane: hidden ``(H, R, R)`` and output ``(R, R)``."""
    _, pts = plane(extent, resolution)
    device = next(net.parameters()).device
    h, o = net.activations(pts.to(device))
    R = resolution
    return h.T.reshape(-1, R, R).cpu().numpy(), o.reshape(R, R).cpu().numpy()


def _points(ax, points: np.ndarray, targets: np.ndarray, legend: bool = False) -> None:
    for t, colour in TARGET_COLOURS.items():
        sel = targets == t
        ax.scatter(points[sel, 0], points[sel, 1], s=70, c=colour, edgecolors="black", zorder=3, label=f"target {t}")
    if legend:
        ax.legend(loc="upper right", fontsize=7, framealpha=0.9)


def _square(ax, extent) -> None:
    ax.set_xlim(*extent)
    ax.set_ylim(*extent)
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def _line(ax, w, b, extent, **style) -> None:
    """Draw w_x x + w_y y + b = 0 across the square (nothing when both weights are 0)."""
    wx, wy = float(w[0]), float(w[1])
    xs = np.array(extent, dtype=float)
    if abs(wy) > 1e-9 * max(abs(wx), 1.0):
        ax.plot(xs, (-b - wx * xs) / wy, **style)
    elif abs(wx) > 0:
        ax.plot([-b / wx] * 2, xs, **style)


def region_panel(ax, field, points, targets, extent, title, line=None) -> None:
    """Where ``field >= 0.5`` (shaded), the 9 points coloured by target, an optional line."""
    ax.imshow(field >= 0.5, extent=(*extent, *extent), origin="lower", cmap=REGION, vmin=0, vmax=1, interpolation="nearest")
    if line is not None:
        _line(ax, *line, extent, color="tab:orange", lw=1.5)
    _points(ax, points, targets)
    _square(ax, extent)
    ax.set_title(title, fontsize=9)


def region_figure(field, points, targets, extent, title, line=None) -> Figure:
    fig = Figure(figsize=(4.2, 4.2), layout="constrained")
    region_panel(fig.add_subplot(), field, points, targets, extent, title, line)
    return fig


def lines_figure(weights, points, targets, extent, title) -> Figure:
    """Every hidden unit's dividing line on one plot."""
    fig = Figure(figsize=(7.6, 4.4), layout="constrained")
    ax = fig.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(weights["hidden_bias"]))]
    for i, (w, b) in enumerate(zip(weights["hidden_weight"], weights["hidden_bias"])):
        d = dividing_line(w, b)
        label = f"h{i}: {d['equation']} (on {d['on']})" if d["equation"] else f"h{i}: no line (on {d['on']})"
        _line(ax, w, b, extent, color=colours[i], lw=2, label=label)
        if not d["equation"]:
            ax.plot([], [], color=colours[i], label=label)
    _points(ax, points, targets)
    _square(ax, extent)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    ax.set_title(title, fontsize=9)
    return fig


def surfaces_figure(hidden, output, points, targets, extent, title) -> Figure:
    """The smooth (un-thresholded) activation of every unit, with its 0.5 contour."""
    fields = [(f"h{i}", f) for i, f in enumerate(hidden)] + [("output", output)]
    cols = min(len(fields), 4)
    rows = -(-len(fields) // cols)
    fig = Figure(figsize=(3.3 * cols, 3.1 * rows + 0.4), layout="constrained")
    fig.suptitle(title, fontsize=10)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (name, f) in zip(axes, fields):
        im = ax.imshow(f, extent=(*extent, *extent), origin="lower", cmap="viridis", vmin=0, vmax=1)
        if f.min() < 0.5 <= f.max():
            ax.contour(f, levels=[0.5], extent=(*extent, *extent), colors="white", linewidths=1)
        _points(ax, points, targets)
        _square(ax, extent)
        ax.set_title(name, fontsize=9)
    for ax in axes[len(fields):]:
        ax.axis("off")
    fig.colorbar(im, ax=axes[: len(fields)].tolist(), shrink=0.8, label="activation")
    return fig


def overview_figure(hidden, output, points, targets, extent, title, per_row: int = 6) -> Figure:
    """All units' >= 0.5 regions as one mosaic on a single axes: the figure logged during
    training, so it must be cheap (~30 ms; six separate axes take ~250 ms to render)."""
    import matplotlib.patches as patches

    fields = [(f"h{i}", f) for i, f in enumerate(hidden)] + [("output", output)]
    lo, hi = extent
    side, gap = hi - lo, 0.15 * (hi - lo)
    cols = min(len(fields), per_row)
    rows = -(-len(fields) // cols)
    fig = Figure(figsize=(2.2 * cols, 2.3 * rows + 0.4))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98 - 0.4 / (2.3 * rows + 0.4)))
    fig.suptitle(title, fontsize=10)
    offsets = []
    for k, (name, f) in enumerate(fields):
        dx, dy = (k % cols) * (side + gap), -(k // cols) * (side + gap + 0.1 * side)
        ax.imshow(f >= 0.5, extent=(lo + dx, hi + dx, lo + dy, hi + dy), origin="lower", cmap=REGION, vmin=0, vmax=1, interpolation="nearest")
        ax.add_patch(patches.Rectangle((lo + dx, lo + dy), side, side, fill=False, lw=0.8))
        ax.text(lo + dx + side / 2, hi + dy + 0.02 * side, name, ha="center", va="bottom", fontsize=9)
        offsets.append((dx, dy))
    off = np.repeat(np.array(offsets), len(points), axis=0)
    colours = [TARGET_COLOURS[int(t)] for t in np.tile(targets, len(fields))]
    ax.scatter(np.tile(points[:, 0], len(fields)) + off[:, 0], np.tile(points[:, 1], len(fields)) + off[:, 1], c=colours, s=25, edgecolors="black", linewidths=0.5)
    ax.set_xlim(lo - 0.05, lo + cols * (side + gap) - gap + 0.05)
    ax.set_ylim(lo - (rows - 1) * (side + gap + 0.1 * side) - 0.05, hi + 0.15 * side)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


class DecisionMapCallback(Callback):
    """Maps of what every unit of a ``GridPerceptron``'s nets computes over x, y in ``extent``.

    During training, every ``every_updates`` updates (and at the start), one overview figure of
    all units' >= 0.5 regions goes to TensorBoard (``decision/all``, step = update), so the slider
    shows the regions forming. After ``trainer.test``: ``hid_{H}_{i}.png`` for each hidden unit
    i = 0..H-1 and ``out_{H}.png`` (the reference's names), ``lines_{H}.png`` (all dividing
    lines) and ``surfaces_{H}.png`` (smooth activations) in ``save_dir``, and the same images in
    TensorBoard under ``decision/`` and ``activation/``: for every net the module lists in
    ``nets_to_show()`` (a population: its analysed seed under those names, and one failed seed with
    the prefix ``seed<s>_``). The overview during training is drawn for a single net only
    (``training_view()`` returns None for a population). Rank 0 only.
    """

    def __init__(self, every_updates: int = 2_500, save_dir: str | None = None, resolution: int = 241, extent: tuple[float, float] = (-0.5, 2.5)):
        check_int("every_updates", every_updates, 1)
        check_int("resolution", resolution, 2)
        self.every_updates = every_updates
        self.save_dir = Path(save_dir) if save_dir else None
        self.resolution = resolution
        self.extent = check_extent(extent)
        self._next = 0

    def _data(self, trainer):
        dm = trainer.datamodule
        return dm.points.numpy(), dm.targets.flatten().long().numpy()

    def _overview(self, trainer, view) -> None:
        points, targets = self._data(trainer)
        hidden, output = unit_fields(view["net"], self.extent, self.resolution)
        title = f"after {view['updates']:,} updates (attempt {view['attempt']})"
        fig = overview_figure(hidden, output, points, targets, self.extent, title)
        publish(trainer, fig, "decision/all", step=view["updates"])

    def on_train_start(self, trainer, pl_module):
        view = pl_module.training_view()
        self._next = view["updates"] if view else 0
        self.on_train_batch_end(trainer, pl_module, None, None, 0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        view = pl_module.training_view()
        if not trainer.is_global_zero or view is None or view["updates"] < self._next:
            return
        self._overview(trainer, view)
        self._next = (view["updates"] // self.every_updates + 1) * self.every_updates

    def on_test_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        for shown in pl_module.nets_to_show():
            self._final_maps(trainer, shown)

    def _final_maps(self, trainer, shown: ShownNet) -> None:
        """The reference's maps of one net, into files ``<prefix>hid_{H}_{i}.png`` and the like."""
        net, weights, updates, prefix, label = shown.net, shown.weights, shown.updates, shown.prefix, shown.label
        points, targets = self._data(trainer)
        hidden, output = unit_fields(net, self.extent, self.resolution)
        H = len(hidden)
        act = "step" if net.act is not torch.sigmoid else "sigmoid"
        who = f"{label}: " if label else ""
        tag = f"{prefix.rstrip('_')}/" if prefix else ""

        def save(fig, name, file):
            publish(trainer, fig, f"{name.split('/')[0]}/{tag}{name.split('/')[1]}", self.save_dir / f"{prefix}{file}" if self.save_dir else None, step=updates)

        for i, field in enumerate(hidden):
            w, b = weights["hidden_weight"][i], weights["hidden_bias"][i]
            d = dividing_line(w, b)
            title = f"{who}hidden unit {i} ({act}): " + (f"{d['equation']}, on {d['on']}" if d["equation"] else f"no line, on {d['on']}")
            save(region_figure(field, points, targets, self.extent, title, line=(w, b)), f"decision/hid_{i}", f"hid_{H}_{i}.png")
        right = int(((output_at(net, points) >= 0.5) == targets).sum())
        save(region_figure(output, points, targets, self.extent, f"{who}output ({act}): {right}/{len(points)} points right"), "decision/out", f"out_{H}.png")
        save(lines_figure(weights, points, targets, self.extent, f"{who}dividing lines of the {H} hidden units"), "decision/lines", f"lines_{H}.png")
        save(surfaces_figure(hidden, output, points, targets, self.extent, f"{who}activations (not thresholded)"), "activation/surfaces", f"surfaces_{H}.png")


@torch.no_grad()
def output_at(net, points: np.ndarray) -> np.ndarray:
    device = next(net.parameters()).device
    return net(torch.from_numpy(points).to(device)).flatten().cpu().numpy()
