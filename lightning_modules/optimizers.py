"""The optimiser a config gives as a ``_partial_`` torch optimiser, kept loadable.

Hydra turns ``model.optimizer: {_target_: torch.optim.Adam, _partial_: true, lr: 0.01}`` into
``functools.partial(torch.optim.Adam, lr=0.01)``. A partial in a checkpoint's hyperparameters
would make the checkpoint unloadable with ``torch.load(weights_only=True)`` (torch's default),
so a module keeps the plain description ``{"_target_": "torch.optim.adam.Adam", "lr": 0.01}`` in
its hyperparameters and accepts either form.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import torch

from base.errors import ConfigError, check


def _import(target: str) -> Callable:
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"optimizer._target_={target!r} is not an importable optimiser class; e.g. torch.optim.SGD, torch.optim.Adam") from None


def optimizer_factory(optimizer: Any) -> tuple[Callable[..., torch.optim.Optimizer], dict]:
    """``(factory, description)`` from a ``functools.partial`` of an optimiser class or its
    description (a mapping with ``_target_``). The factory is tried once on a dummy parameter, so
    a bad setting (``lr=-1``) is one ``ConfigError`` naming ``optimizer`` before any training."""
    if isinstance(optimizer, functools.partial):
        if optimizer.args:
            raise ConfigError(f"optimizer={optimizer!r} is invalid; allowed: a _partial_ optimiser config with keyword settings only")
        cls, kwargs = optimizer.func, dict(optimizer.keywords)
        target = f"{cls.__module__}.{cls.__qualname__}"
    elif isinstance(optimizer, Mapping) and "_target_" in optimizer:
        kwargs = {k: v for k, v in optimizer.items() if k not in ("_target_", "_partial_")}
        target = str(optimizer["_target_"])
        cls = _import(target)
    else:
        raise ConfigError(f"optimizer={optimizer!r} is invalid; allowed: a _partial_ optimiser config, e.g. model/optimizer=adam")
    for key, value in kwargs.items():  # torch's own checks let lr=nan and lr=inf through
        several = isinstance(value, Sequence) and not isinstance(value, str)  # betas=(0.9, 0.999), a list from Hydra
        finite = all(not isinstance(v, float) or math.isfinite(v) for v in (value if several else [value]))
        check(finite, f"optimizer.{key}", value, "finite numbers" if several else "a finite number")
    factory = functools.partial(cls, **kwargs)
    try:
        factory([torch.nn.Parameter(torch.zeros(1))])
    except ConfigError as exc:  # the optimiser's own check (the Kalman filter's): its key, under optimizer.
        raise ConfigError(f"optimizer.{exc}") from None
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"optimizer: {target.rsplit('.', 1)[-1]}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) is invalid: {exc}") from None
    return factory, {"_target_": target, **kwargs}

