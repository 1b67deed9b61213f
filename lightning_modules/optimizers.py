"""What a config injects into a module (the net, a ``_partial_`` optimiser, an LR scheduler),
kept loadable.

Hydra turns ``model.optimizer: {_target_: torch.optim.Adam, _partial_: true, lr: 0.01}`` into
``functools.partial(torch.optim.Adam, lr=0.01)``. A partial (or an ``nn.Module``) in a
checkpoint's hyperparameters would make the checkpoint unloadable with
``torch.load(weights_only=True)`` (torch's default), so a module keeps the plain description
``{"_target_": "torch.optim.adam.Adam", "lr": 0.01}`` in its hyperparameters and accepts either
form: ``load_from_checkpoint`` rebuilds the same objects from the descriptions.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import torch
from torch import nn

from base.errors import ConfigError, check


def _import(key: str, target: str, what: str, example: str) -> Callable:
    module, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"{key}._target_={target!r} is not an importable {what} class; e.g. {example}") from None


# what each injected object is called in an error, an example class, and the config group that gives one
KINDS = {"optimizer": ("optimiser", "torch.optim.SGD, torch.optim.Adam", "model/optimizer=adam"),
         "scheduler": ("LR scheduler", "torch.optim.lr_scheduler.StepLR", "model/scheduler=step"),
         "net": ("net", "lightning_modules.kmnist_nets.NetConv", "model=net_conv")}


def _spec(spec: Any, key: str, kind: str) -> tuple[Callable, dict, str]:
    """``(class, keyword settings, dotted name)`` of a ``functools.partial`` or a ``_target_`` mapping;
    NaN or inf in any setting is refused under ``key.<setting>``."""
    what, example, group = KINDS[kind]
    if isinstance(spec, functools.partial):
        if spec.args:
            raise ConfigError(f"{key}={spec!r} is invalid; allowed: a _partial_ {what} config with keyword settings only")
        cls, kwargs = spec.func, dict(spec.keywords)
        target = f"{cls.__module__}.{cls.__qualname__}"
    elif isinstance(spec, Mapping) and "_target_" in spec:
        kwargs = {k: v for k, v in spec.items() if k not in ("_target_", "_partial_", "_recursive_", "_convert_")}
        target = str(spec["_target_"])
        cls = _import(key, target, what, example)
    else:
        raise ConfigError(f"{key}={spec!r} is invalid; allowed: a _partial_ {what} config, e.g. {group}")
    for name, value in kwargs.items():  # torch's own checks let lr=nan and lr=inf through
        several = isinstance(value, Sequence) and not isinstance(value, str)  # betas=(0.9, 0.999), a list from Hydra
        finite = all(not isinstance(v, float) or math.isfinite(v) for v in (value if several else [value]))
        check(finite, f"{key}.{name}", value, "finite numbers" if several else "a finite number")
    return cls, kwargs, target


def _probed(factory: Callable, key: str, target: str, kwargs: dict, probe: Callable[[Callable], Any]) -> Any:
    """``probe(factory)``, tried before any training: a bad setting (``lr=-1``) is one
    ``ConfigError`` naming ``key``."""
    try:
        return probe(factory)
    except ConfigError as exc:  # the class's own check (the Kalman filter's): its key, under key.
        raise ConfigError(f"{key}.{exc}") from None
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise ConfigError(f"{key}: {target.rsplit('.', 1)[-1]}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) is invalid: {exc}") from None


def _dummy_optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)


def optimizer_factory(optimizer: Any, key: str = "optimizer") -> tuple[Callable[..., torch.optim.Optimizer], dict]:
    """``(factory, description)`` from a ``functools.partial`` of an optimiser class or its
    description (a mapping with ``_target_``)."""
    cls, kwargs, target = _spec(optimizer, key, "optimizer")
    factory = functools.partial(cls, **kwargs)
    _probed(factory, key, target, kwargs, lambda f: f([nn.Parameter(torch.zeros(1))]))
    return factory, {"_target_": target, **kwargs}


def scheduler_factory(scheduler: Any, key: str = "scheduler") -> tuple[Callable | None, dict | None]:
    """``(factory, description)`` of a ``_partial_`` LR scheduler (``torch.optim.lr_scheduler.StepLR``
    and the like; the factory takes the optimiser), or ``(None, None)`` for none."""
    if scheduler is None:
        return None, None
    cls, kwargs, target = _spec(scheduler, key, "scheduler")
    factory = functools.partial(cls, **kwargs)
    _probed(factory, key, target, kwargs, lambda f: f(_dummy_optimizer()))
    return factory, {"_target_": target, **kwargs}


def module_of(net: Any, key: str, base: type[nn.Module]) -> tuple[nn.Module, dict]:
    """``(module, description)`` of an injected network: an instance of ``base`` (Hydra built it,
    or a Python user did; its ``settings`` are its constructor's arguments) or its description,
    built here (a checkpoint's hyperparameters; a bad setting names ``key.<setting>``)."""
    if isinstance(net, base):
        cls = type(net)
        return net, {"_target_": f"{cls.__module__}.{cls.__qualname__}", **net.settings}
    if not (isinstance(net, Mapping) and "_target_" in net):
        raise ConfigError(f"{key}={net!r} is invalid; allowed: a {base.__name__} or its config with a _target_")
    cls, kwargs, target = _spec(net, key, "net")
    check(isinstance(cls, type) and issubclass(cls, base), f"{key}._target_", target, f"a subclass of {base.__name__}")
    return _probed(functools.partial(cls, **kwargs), key, target, kwargs, lambda make: make()), {"_target_": target, **kwargs}
