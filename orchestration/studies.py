"""The three studies, each in one place: what a sweep maximises, when a run has succeeded, and
what the end of a run prints.

Every ``results.json`` names its study (``"study"``: ``kmnist``, ``grid`` or ``recurrent``, the
``study`` attribute of the LightningModule that made it); everything that treats runs by study
(``train.py``'s return value, the printout, the sweep summary) looks it up in ``STUDIES`` instead
of guessing from the keys a file happens to have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from analysis.kmnist import reference_test_line
from analysis.parameters import format_parameter_table
from analysis.recurrent import format_gate_table, format_probe, format_step_table
from base.errors import UserError
from base.kmnist import data_label


def kmnist_printout(r: dict) -> str:
    """The reference's output after the test pass: the confusion matrix (rows = true class), the
    ``Test set:`` line, and the data the network trained on."""
    out = [np.array2string(np.array(r["confusion_matrix"]), max_line_width=200), "",
           reference_test_line(r["test_loss"], r["test_correct"], r["test_total"])]
    if "data_source" in r:
        out.append(f"Trained on: {data_label(r['data_source'], r['train_size'])}; tested on {r['test_size']:,} images")
    return "\n".join(out)


def grid_printout(r: dict) -> str:
    """Weights, the table of every point's activations, the accuracy, the dividing lines and
    how training went, as the grid study's write-up shows them."""
    w = r["weights"]
    H = r["hidden_units"]
    scale = f", every weight x {r['weight_scale']:g}" if r["weight_scale"] != 1 else ""
    out = [f"Final weights ({H} {r['activation']} hidden units{scale}):"]
    for key in ("hidden_weight", "hidden_bias", "output_weight", "output_bias"):
        prefix = f"  {key:<13} = "
        out.append(prefix + np.array2string(np.array(w[key]), precision=3, suppress_small=True, separator=", ", prefix=prefix))
    hidden_head = " ".join(f"{'h' + str(i):>6}" for i in range(H))
    out += ["", f"  x  y  target | {hidden_head} |  output  pred", "  " + "-" * (22 + 7 * H + 14)]
    for row in r["point_table"]:
        hidden = " ".join(f"{v:6.3f}" for v in row["hidden"])
        mark = "" if row["correct"] else "  <- wrong"
        out.append(f"  {row['x']:.0f}  {row['y']:.0f}  {row['target']:>6} | {hidden} | {row['output']:7.4f}  {row['pred']:>4}{mark}")
    out += ["", f"Final accuracy: {r['test_correct']}/{r['test_total']} ({100 * r['test_acc']:.1f}%), loss {r['test_loss']:.4f}", ""]
    out.append("Dividing lines (where each hidden unit crosses 0.5; 'on' = the side where it is >= 0.5):")
    for line in r["dividing_lines"]:
        text = line["equation"] or "no line (both input weights 0)"
        out.append(f"  {line['unit']}: {text:<24} on {line['on']}")
    if r["attempts"]:
        out.append("")
        for a in r["attempts"]:
            first = f"100% first at update {a['first_perfect_update']:,}" if a["first_perfect_update"] else "never 100%"
            out.append(f"Attempt {a['attempt']} (seed {a['seed']}): {a['updates']:,} updates, {first}; {a['outcome']}")
    return "\n".join(out)


def recurrent_printout(r: dict) -> str:
    """Per-step tables (as in the reference write-up), the gate table, the count probe and the
    metrics of a SequencePredictor run."""
    out = []
    for n, rows in r.get("step_tables", {}).items():
        out += [format_step_table(rows, f"Block length n = {n}:"), ""]
    if r.get("sequence_table"):
        out += [format_step_table(r["sequence_table"], "A whole test sequence from the initial state (A' = the A that starts a new block):"), ""]
    if r.get("gate_table"):
        out += [format_gate_table(r["gate_table"]), ""]
    if r.get("probe", {}).get("phases"):
        out += [format_probe(r["probe"]["phases"], r["probe"]["state"]), ""]
    gen = ""
    if "max_n_generalised" in r:
        right = f", {len(r['lengths_right'])} of {r['tested_up_to']} lengths right" if "lengths_right" in r else ""
        gen = f"; every block length up to n = {r['max_n_generalised']} right (tested up to {r['tested_up_to']}{right})"
    solved = "solved" if r["solved"] else "not solved"
    exact = f", error_exact {r['error_exact']:.4f}" if "error_exact" in r else ""
    out.append(f"Test: error {r['error']:.4f} (the reference's measure){exact}, acc {r['acc']:.4f} ({solved}){gen}")
    for a in r.get("attempts", []):
        first = f"first solved at update {a['first_solved_update']:,}" if a["first_solved_update"] is not None else "never solved"
        out.append(f"Attempt {a['attempt']} (seed {a['seed']}): {a['updates']:,} updates from update {a['start_update']:,}, {first}; {a['outcome']}")
    if r.get("first_solved_update") is not None:
        out.append(f"First solved after {r['first_solved_update']:,} updates ({r['first_solved_seconds']:.1f} s)")
    sel = r.get("selection")
    if sel:
        lengths = sel["lengths"]
        where = f"n = {lengths[0]}..{lengths[-1]}" if lengths == list(range(lengths[0], lengths[-1] + 1)) else f"n in {lengths}"
        kept = f"the net of update {sel['update']:,}" if sel["update"] is not None else "no evaluation: the final net"
        score = f", {sel['selection_fraction_right']:.0%} of them right" if sel["selection_fraction_right"] is not None else ""
        out.append(f"Selected on one string per {where}: {kept}{score}; on the test: acc {sel['acc']:.4f}, "
                   f"every block length up to n = {sel['max_n_generalised']} right ({len(sel['lengths_right'])} of {sel['tested_up_to']} lengths right)")
    return "\n".join(out)


def population_printout(r: dict) -> str:
    """A population run (``seeds=N``): its success rate with the Wilson interval, the updates to
    first success, and which seed the tables above show."""
    s, u = r["success"], r["updates_to_success"]
    seeds = [e["seed"] for e in r["seeds"]]
    lo, hi = s["interval95"]
    out = [f"Population of {r['population']} seeds ({seeds[0]}..{seeds[-1]}): {s['succeeded']}/{s['of']} succeeded "
           f"({s['rate']:.0%}, 95% interval {lo:.0%}-{hi:.0%})"]
    if u["succeeded"]:
        out.append(f"Updates to first success: median {u['median']:,.0f} (quartiles {u['q1']:,.0f}-{u['q3']:,.0f}, range {u['min']:,}-{u['max']:,})"
                   + (f"; {u['censored']} never succeeded" if u["censored"] else ""))
    def spread(counts: dict) -> str:
        return ", ".join(f"{n}: {k}" for n, k in counts.items())

    if "max_n_generalised_counts" in r:
        out.append(f"max_n_generalised over the seeds (value: seeds): {spread(r['max_n_generalised_counts'])}")
    if "fraction_lengths_right_median" in r:
        out.append(f"Block lengths right of n = 1..{r['tested_up_to']}: median {r['fraction_lengths_right_median']:.0%} over the seeds, "
                   f"best seed {r['fraction_lengths_right_best']:.0%}")
    if "selected_max_n_generalised_counts" in r:
        out.append(f"max_n_generalised of the selected nets (value: seeds): {spread(r['selected_max_n_generalised_counts'])}; block lengths right: median "
                   f"{r['selected_fraction_lengths_right_median']:.0%}")
    failed = [e["seed"] for e in r["seeds"] if e["outcome"] != "succeeded"]
    if failed:
        out.append(f"Seeds that failed: {', '.join(map(str, failed[:20]))}" + (" ..." if len(failed) > 20 else ""))
    out.append(f"The tables above show seed {r['analysed_seed']} (analyse_seed=<seed> shows another).")
    return "\n".join(out)


@dataclass(frozen=True)
class Study:
    """What the project knows of a study's runs.

    ``objective``: the ``results.json`` key a sweep (and Optuna) maximises for a single net;
    a population (``seeds=N``) is judged by its ``success_rate``; ``success``: whether a run did
    what the study asks (None: the study has no such rule, e.g. KMNIST); ``first_success``: the key
    holding the update of first success; ``printout``: the study's part of the printed report;
    ``population``: its module trains ``seeds=N`` nets at once.
    """

    name: str
    objective: str
    success: Optional[Callable[[dict], bool]]
    first_success: Optional[str]
    printout: Callable[[dict], str]
    population: bool = False

    def objective_of(self, results: dict) -> str:
        return "success_rate" if results.get("population") else self.objective

    def print_results(self, results: dict) -> str:
        text = self.printout(results)
        return text + "\n\n" + population_printout(results) if results.get("population") else text


def study_of(results: dict) -> Study:
    """The study a ``results.json`` came from, by its ``study`` key."""
    name = results.get("study")
    if name not in STUDIES:
        where = results.get("run_dir", "a results.json")
        raise UserError(f"{where}: study={name!r} is not a known study; allowed: {', '.join(STUDIES)} (a results.json from an older version has none: run it again)")
    return STUDIES[name]


def printout(results: dict) -> str:
    """The end of a run: the study's numbers in the reference's format, then the exact per-layer
    parameter table."""
    return "\n".join([study_of(results).print_results(results), "", format_parameter_table(results["parameter_table"], results["model"])])


STUDIES = {
    "kmnist": Study("kmnist", "test_acc", None, None, kmnist_printout),
    "grid": Study("grid", "test_acc", lambda r: r["test_acc"] == 1.0, "first_perfect_update", grid_printout, population=True),
    "recurrent": Study("recurrent", "acc", lambda r: bool(r["solved"]), "first_solved_update", recurrent_printout, population=True),
}
