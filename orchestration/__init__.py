"""Run orchestration, the top floor: everything between a command line and the Lightning pieces.

``config`` (resolvers, optional extras, instantiation with one-line errors, trainer and checkpoint
checks), ``run`` (build and run one experiment), ``failures`` (the failure policy of
``train.py``), ``results`` (``results.json``), ``studies`` (per study: objective, success rule,
printout), ``launch`` (devices in sweeps, joblib threads, the sweep guard), ``sweep`` (the sweep
summary) and ``report`` (the study report). It may import every floor below it; nothing below
imports it.
"""
