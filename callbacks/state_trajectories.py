"""Figures and tables of a recurrent net's hidden and cell states on counting sequences."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from pytorch_lightning import Callback
from pytorch_lightning.trainer.states import TrainerFn

from analysis.recurrent import (
    format_gate_table,
    format_probe,
    format_step_table,
    gate_table,
    linear_probe,
    step_table,
    trace_batch,
)
from base.errors import check_int
from base.languages import PHASES, SYMBOLS
from callbacks.figures import Figure, publish, tensorboard_writer

MARKERS = {0: "o", 1: "s", 2: "^"}  # by input symbol A, B, C
SYMBOL_COLOURS = {0: "#fde0c5", 1: "#c6dbef", 2: "#d9f0d3"}


def _scatter_symbols(ax, xs, count, symbol, cmap="viridis", vmax=None):
    sc = None
    for s, marker in MARKERS.items():
        sel = symbol == s
        if sel.any():
            pts = [x[sel] for x in xs]
            sc = ax.scatter(*pts, c=count[sel], cmap=cmap, vmin=1, vmax=vmax, marker=marker, s=18, edgecolors="none", label=SYMBOLS[s])
    return sc


def state_scatter_figure(states, count, symbol, initial, title) -> Figure:
    """2-D for two units; every pair of units (up to 4 units) plus a 3-D view for three or more.
    Colour: count state; marker: input symbol; star: the state before the first input."""
    H = states.shape[1]
    vmax = max(int(count.max()), 1)
    if H == 1:
        fig = Figure(figsize=(6, 4), layout="constrained")
        ax = fig.add_subplot()
        sc = _scatter_symbols(ax, [count, states[:, 0]], count, symbol, vmax=vmax)
        ax.axhline(initial[0], color="red", ls=":", label="initial")
        ax.set_xlabel("count state")
        ax.set_ylabel("unit 0")
    elif H == 2:
        fig = Figure(figsize=(6.2, 5), layout="constrained")
        ax = fig.add_subplot()
        sc = _scatter_symbols(ax, [states[:, 0], states[:, 1]], count, symbol, vmax=vmax)
        ax.scatter(*initial[:2], marker="*", s=250, c="red", edgecolors="black", label="initial", zorder=5)
        ax.set_xlabel("unit 0")
        ax.set_ylabel("unit 1")
    else:
        units = range(min(H, 4))
        pairs = list(itertools.combinations(units, 2))
        cols = min(len(pairs) + 1, 4)
        rows = -(-(len(pairs) + 1) // cols)
        fig = Figure(figsize=(4.6 * cols, 3.8 * rows), layout="constrained")
        fig.get_layout_engine().set(wspace=0.12)
        for k, (a, b) in enumerate(pairs):
            ax = fig.add_subplot(rows, cols, k + 1)
            sc = _scatter_symbols(ax, [states[:, a], states[:, b]], count, symbol, vmax=vmax)
            ax.scatter(initial[a], initial[b], marker="*", s=200, c="red", edgecolors="black", zorder=5)
            ax.set_xlabel(f"unit {a}")
            ax.set_ylabel(f"unit {b}")
        ax = fig.add_subplot(rows, cols, len(pairs) + 1, projection="3d")
        _scatter_symbols(ax, [states[:, 0], states[:, 1], states[:, 2]], count, symbol, vmax=vmax)
        ax.scatter(*initial[:3], marker="*", s=200, c="red", edgecolors="black", label="initial")
        ax.set_xlabel("unit 0")
        ax.set_ylabel("unit 1")
        ax.set_zlabel("unit 2")
    fig.colorbar(sc, ax=fig.axes, shrink=0.8, label="count state")
    fig.axes[0].legend(loc="best", fontsize=7, title="input", title_fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def trajectory_figure(paths: list[tuple[int, np.ndarray, np.ndarray]], initial, title) -> Figure:
    """One line per block length n through the states of a single block A^n B.. (C..) A:
    a 3-D view (three or more units) and every pair of units (up to 4)."""
    H = paths[0][1].shape[1]
    units = range(min(H, 4))
    pairs = list(itertools.combinations(units, 2)) or [(0, 0)]
    panels = len(pairs) + (1 if H >= 3 else 0)
    cols = min(panels, 4)
    rows = -(-panels // cols)
    fig = Figure(figsize=(4.6 * cols, 3.8 * rows + 0.3), layout="constrained")
    fig.get_layout_engine().set(wspace=0.12)  # room for the 3-D panel's z label
    colours = [f"C{i % 10}" for i in range(len(paths))]
    k = 0
    if H >= 3:
        ax = fig.add_subplot(rows, cols, 1, projection="3d")
        for (n, st, _), col in zip(paths, colours):
            line = np.vstack([initial, st])
            ax.plot(line[:, 0], line[:, 1], line[:, 2], "-o", ms=2.5, color=col, label=f"n={n}")
        ax.scatter(*initial[:3], marker="*", s=150, c="red", edgecolors="black")
        ax.set_xlabel("unit 0")
        ax.set_ylabel("unit 1")
        ax.set_zlabel("unit 2")
        ax.legend(fontsize=7)
        k = 1
    for a, b in pairs:
        k += 1
        ax = fig.add_subplot(rows, cols, k)
        for (n, st, _), col in zip(paths, colours):
            line = np.vstack([initial, st])
            ys = line[:, b] if H > 1 else np.arange(len(line))
            ax.plot(line[:, a], ys, "-o", ms=2.5, color=col, label=f"n={n}")
        ax.scatter(initial[a], initial[b] if H > 1 else 0, marker="*", s=150, c="red", edgecolors="black", zorder=5)
        ax.set_xlabel(f"unit {a}")
        ax.set_ylabel(f"unit {b}" if H > 1 else "step")
    if H < 3:
        fig.axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def time_figure(states: np.ndarray, symbols: np.ndarray, title: str) -> Figure:
    """Each unit against time for one sequence, the background coloured by the input symbol."""
    fig = Figure(figsize=(max(8, 0.12 * len(states)), 3.6), layout="constrained")
    ax = fig.add_subplot()
    for t, s in enumerate(symbols):
        ax.axvspan(t - 0.5, t + 0.5, color=SYMBOL_COLOURS[int(s)], lw=0)
    for j in range(states.shape[1]):
        ax.plot(np.arange(len(states)), states[:, j], "-o", ms=2.5, label=f"unit {j}")
    from matplotlib.patches import Patch

    handles = ax.get_legend_handles_labels()[0] + [Patch(color=SYMBOL_COLOURS[s], label=f"input {SYMBOLS[s]}") for s in sorted(set(int(v) for v in symbols))]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xlabel("time step")
    ax.set_ylabel("state")
    ax.set_xlim(-0.5, len(states) - 0.5)
    ax.set_title(title, fontsize=10)
    return fig


def gate_figure(rows: list[dict]) -> Figure:
    """Mean gate value per phase (rows) and gate/unit (columns)."""
    H = len(rows[0]["input"])
    data = np.array([[v for g in ("input", "forget", "output") for v in r[g]] for r in rows])
    fig = Figure(figsize=(1.0 + 0.55 * data.shape[1], 0.9 + 0.45 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(data, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(data):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), [r["phase"] for r in rows])
    ax.set_xticks(range(data.shape[1]), [f"{g[0]}{u}" for g in ("input", "forget", "output") for u in range(H)], fontsize=7)
    ax.set_title("mean gate value by phase (i = input, f = forget, o = output; per unit)", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def probe_figure(states, count, phase, probe: list[dict], state_name: str) -> Figure:
    """Per phase, the unit that holds the count best, against the count, with its straight line."""
    fig = Figure(figsize=(3.4 * max(len(probe), 1), 3.2), layout="constrained")
    for k, row in enumerate(probe):
        ax = fig.add_subplot(1, len(probe), k + 1)
        p = PHASES.index(row["phase"])
        sel = phase == p
        j = row["counter"]
        unit = row["units"][j]
        ax.scatter(count[sel], states[sel, j], s=10, alpha=0.5)
        xs = np.array([count[sel].min(), count[sel].max()])
        coef = np.polyfit(count[sel], states[sel, j], 1)
        ax.plot(xs, np.polyval(coef, xs), "r-")
        ax.set_xlabel("count state")
        ax.set_ylabel(f"{state_name} unit {j}")
        ax.set_title(f"{row['phase']}: {unit['per_symbol']:+.3f}/symbol, R^2 {unit['r2']:.2f}", fontsize=9)
    fig.suptitle(f"which {state_name} unit counts, by phase", fontsize=10)
    return fig


def generalisation_figure(nets: list[dict], title: str, blocks: int = 2) -> Figure:
    """Which block lengths each net predicts without an error: one row per net (``label``,
    ``lengths_right``, ``tested_up_to``, ``max_n_generalised``), block length n on x; right in
    dark, wrong in light, and a tick at each net's ``max_n_generalised``. ``blocks``: the test
    sequence's blocks of n (``data.eval_blocks``)."""
    tested = max(g["tested_up_to"] for g in nets)
    grid = np.zeros((len(nets), tested), dtype=float)
    for row, g in enumerate(nets):
        grid[row, [n - 1 for n in g["lengths_right"]]] = 1.0
    fig = Figure(figsize=(7.5, 1.6 + 0.16 * len(nets)), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(grid, aspect="auto", cmap="Greens", vmin=-0.25, vmax=1.0, interpolation="nearest",
              extent=(0.5, tested + 0.5, len(nets) - 0.5, -0.5))
    ax.plot([g["max_n_generalised"] + 0.5 for g in nets], range(len(nets)), "|", color="tab:red", ms=8)
    ax.set_yticks(range(len(nets)), [g["label"] for g in nets], fontsize=7 if len(nets) > 20 else 9)
    ax.set_xlabel("block length n of the test sequence (" + ("two blocks of n)" if blocks == 2 else "one block of n, from the initial state)"))
    ax.set_title(f"{title}\nred tick: max_n_generalised (every length up to it right)", fontsize=10)
    return fig


class StateTrajectoryCallback(Callback):
    """Looks inside a ``SequencePredictor``'s nets through their traces.

    The net is ``pl_module.net``, or each of ``pl_module.nets_to_show()`` after the test (a
    population: its analysed seed, then one failed seed with the file prefix ``seed<s>_``).
    On the datamodule's 100 test sequences: hidden (and cell) state scatter plots, the
    gate table by phase (LSTM), and a linear probe of the count; on one single-block sequence
    per block length n = 1..max_n: state trajectories and per-step tables; on one sequence with
    blocks 1..max_n: the states against time.

    During training, every ``every_n_evals`` evaluations, every figure goes to TensorBoard
    (step = update), so the dynamics can be seen forming. After ``trainer.test`` they are drawn
    again into TensorBoard (``states/``, ``gates/``, ``probe/``) and ``save_dir`` (PNG), the
    tables go to TensorBoard as text (``tables/``), and ``results()`` returns them for
    results.json. Rank 0 only.
    """

    def __init__(self, every_n_evals: int = 10, save_dir: str | None = None):
        check_int("every_n_evals", every_n_evals, 0)  # 0: only after the final test
        self.every_n_evals = every_n_evals
        self.save_dir = Path(save_dir) if save_dir else None
        self._evals = 0
        self._results: dict = {}

    # -- data ---------------------------------------------------------------------------
    def _traces(self, trainer, net, seed=None):
        dm = trainer.datamodule
        max_n = dm.language.max_n
        eval_tr = trace_batch(net, dm.batch(dm.test_sequences_of(seed) if seed is not None else dm.test_sequences))
        single_tr = trace_batch(net, dm.batch_of_blocks([[n] for n in range(1, max_n + 1)]))
        mixed_tr = trace_batch(net, dm.batch_of_blocks([list(range(1, max_n + 1))]))
        return eval_tr, single_tr, mixed_tr

    @staticmethod
    def _paths(single_tr, key):
        out = []
        for i in range(int(single_tr["sequence"].max()) + 1):
            sel = single_tr["sequence"] == i
            out.append((int(single_tr["n"][sel][0]), single_tr[key][sel], single_tr["symbol"][sel]))
        return out

    def _state_keys(self, tr):
        return [k for k in ("hidden", "cell") if k in tr]

    def _draw(self, trainer, net, final: bool, prefix: str = "", label: str = "", seed: int | None = None) -> dict:
        """Every figure of ``net``, to TensorBoard (and, when ``final``, to PNG files named
        ``<prefix><figure>.png``, tags ``<group>/<prefix>...``); returns the tables."""
        eval_tr, single_tr, mixed_tr = self._traces(trainer, net, seed)
        lang = trainer.datamodule.language
        counting = "cell" if "cell" in eval_tr else "hidden"
        when = "after the final test" if final else f"after {trainer.global_step:,} updates"
        when = f"{label}, {when}" if label else when
        tag_prefix = f"{prefix.rstrip('_')}/" if prefix else ""

        def show(fig, tag, name):
            group, _, rest = tag.partition("/")
            publish(trainer, fig, f"{group}/{tag_prefix}{rest}", self.save_dir / f"{prefix}{name}" if (final and self.save_dir) else None)

        for key in self._state_keys(eval_tr):
            start = eval_tr["initial"] if key == "hidden" else np.zeros_like(eval_tr["initial"])
            show(state_scatter_figure(eval_tr[key], eval_tr["count"], eval_tr["symbol"], start, f"{key} states on the test sequences, {when}"), f"states/{key}", f"{key}_states.png")
            show(trajectory_figure(self._paths(single_tr, key), start, f"{key} state trajectories, one line per block length n, {when}"), f"states/{key}_trajectories", f"{key}_trajectories.png")
        blocks = ", ".join(str(n) for n in range(1, lang.max_n + 1))
        show(time_figure(mixed_tr[counting], mixed_tr["symbol"], f"{counting} state over time, blocks of length {blocks}, {when}"), f"states/{counting}_vs_time", f"{counting}_vs_time.png")
        tables: dict = {}
        if "input" in eval_tr:  # LSTM gates
            tables["gate_table"] = gate_table(eval_tr)
            show(gate_figure(tables["gate_table"]), "gates/by_phase", "gates_by_phase.png")
        probe = linear_probe(eval_tr[counting], eval_tr["count"], eval_tr["phase"])
        tables["probe"] = {"state": counting, "phases": probe}
        if probe:
            show(probe_figure(eval_tr[counting], eval_tr["count"], eval_tr["phase"], probe, counting), "probe/count", "count_probe.png")
        names = trainer.datamodule.symbols  # with the end symbol: "ABCT"
        tables["step_tables"] = {str(i + 1): step_table(single_tr, i, names) for i in range(lang.max_n)}
        # a whole test sequence from the initial state: its reset steps (A') show how the count restarts
        tables["sequence_table"] = step_table(eval_tr, 0, names)
        return tables

    # -- during training ---------------------------------------------------------------------
    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or not trainer.is_global_zero:
            return
        self._evals += 1
        if self.every_n_evals and self._evals % self.every_n_evals == 0 and tensorboard_writer(trainer) is not None:
            self._draw(trainer, pl_module.net, final=False)

    # -- after the test ---------------------------------------------------------------------
    def on_test_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        # a population shows its analysed seed (whose tables go to results.json) and one failed seed
        shown = pl_module.nets_to_show()
        for k, one in enumerate(shown):
            tables = self._draw(trainer, one.net, final=True, prefix=one.prefix, label=one.label, seed=one.seed)
            self._results = tables if k == 0 else self._results
        nets = pl_module.generalisation_by_net()
        if nets:
            fig = generalisation_figure(nets, f"block lengths predicted without an error (dark) after training on n <= {trainer.datamodule.language.max_n}",
                                        blocks=trainer.datamodule.hparams.eval_blocks)
            publish(trainer, fig, "generalisation/lengths_right", self.save_dir / "generalisation.png" if self.save_dir else None)
        writer = tensorboard_writer(trainer)
        if writer is None:
            return

        def text(tag, body):  # indented: TensorBoard renders it as a fixed-width block
            writer.add_text(tag, "    " + body.replace("\n", "\n    "), trainer.global_step)

        text("tables/whole_sequence", format_step_table(self._results["sequence_table"], "a whole test sequence from the initial state (A' = reset)"))
        for n, rows in self._results["step_tables"].items():
            text(f"tables/steps_n{n}", format_step_table(rows, f"block length n = {n}"))
        if "gate_table" in self._results:
            text("tables/gates", format_gate_table(self._results["gate_table"]))
        text("tables/probe", format_probe(self._results["probe"]["phases"], self._results["probe"]["state"]))
        writer.flush()

    def results(self) -> dict:
        """The gate table, the count probe and the per-step tables of the last test, for results.json."""
        return self._results
