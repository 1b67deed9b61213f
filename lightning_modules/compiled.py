"""One compiled function at a time, for the setting a run trains.

``torch.compile`` keeps compiled code per Python code object and compiles a code object at most
``recompile_limit`` (8) times; with ``fullgraph=True`` the next time is an error. The grid's update
and the Kalman filter's symbol are one function each, specialised per setting (hidden units,
optimiser settings, cell, groups): a Hydra multirun of ten settings in one process, or a test
session, would pass that limit. A run trains one setting, so this keeps the compiled function of
the last setting asked for and, when another is asked for, clears torch's compile caches
(``torch.compiler.reset``) before compiling it.
"""

from __future__ import annotations

from typing import Callable, Hashable

import torch

_current: dict = {}


def compiled_for(key: Hashable, make: Callable[[], Callable], **options) -> Callable:
    """``torch.compile(make(), **options)`` for setting ``key``, compiled once while ``key`` is the
    setting asked for."""
    if key not in _current:
        torch.compiler.reset()
        _current.clear()
        _current[key] = torch.compile(make(), **options)
    return _current[key]
