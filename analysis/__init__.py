"""The study's analysis: pure functions from arrays and tensors to numbers, tables and text.

No Lightning, no matplotlib, no files: each is testable on its own and usable from a notebook
(``docs/analysis.md``). Callbacks draw and log what these compute; the printed report and the
sweep summary format it.

- ``kmnist``: the largest confusions, the reference's ``Test set:`` line;
- ``grid``: dividing lines of hidden units, every point's activations;
- ``recurrent``: step-by-step traces, gate table by phase, linear count probe, per-step tables,
  generalisation over block lengths;
- ``population``: spread of a metric over runs, success rates with their Wilson interval;
- ``stopping``: when a recurrent net counts as held solved and when it stops (one net or a seed);
- ``parameters``: the exact per-layer parameter table.
"""
