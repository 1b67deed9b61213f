"""The ground floor: what every other layer may use and that uses nothing of the project.

- ``base.errors``: the one-line user errors (``UserError``, ``ConfigError``, ``DataError``) and the
  ``check_*`` helpers that raise them;
- ``base.languages``: the counting languages' symbols, phases and shapes;
- ``base.kmnist``: KMNIST's classes, official split sizes, and how a run names its training data;
- ``base.files``: files written whole or not at all (``replaced_atomically``, ``write_json``).

Floors, bottom up: ``base`` < ``analysis`` < ``datamodules`` | ``lightning_modules`` | ``callbacks``
< ``orchestration`` (with ``train.py``, ``report.py``, ``benchmarks/``, ``docs/``); every import
points down (``tests/test_layers.py`` runs the contract in ``pyproject.toml``).
"""
