"""Errors a user can cause and fix: they end a run with one line, never a traceback.

Everything else (a bug in this project) keeps its full traceback.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Callable


class UserError(Exception):
    """Bad input from the user: a config value, a missing or corrupt file, a bad checkpoint."""


class ConfigError(UserError):
    """A config value outside what is allowed. The message starts with the key, so that the
    caller can prefix the config group (``hidden_units=0 ...`` -> ``model.hidden_units=0 ...``)."""


class DataError(UserError):
    """Data files missing, unreadable or corrupt."""


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite, or ended far above its start: the settings
    (most often the learning rate) are to blame, not the code."""


def check(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise ``ConfigError("key=value is invalid; allowed: ...")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid; allowed: {allowed}")


def check_int(key: str, value: Any, minimum: int) -> int:
    """An integer (not a bool, not a float) >= minimum."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    check(ok, key, value, f"an integer >= {minimum}")
    return value


def is_number(value: Any) -> bool:
    """A finite real number: an int or a float, not a bool, not NaN or infinite (a setting of
    ``nan`` or ``inf`` would train NaN weights and fail far from the key that caused it)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_positive(key: str, value: Any) -> float:
    """A finite real number > 0."""
    ok = is_number(value) and value > 0
    check(ok, key, value, "a finite number > 0")
    return float(value)


def check_range(key: str, value: Any, low: float, high: float | None = None) -> float:
    """A finite real number with ``low <= value``, and ``value < high`` when ``high`` is given."""
    ok = is_number(value) and value >= low and (high is None or value < high)
    check(ok, key, value, f"a finite number >= {low:g}" if high is None else f"a number in [{low:g}, {high:g})")
    return float(value)


def check_extent(extent: Any, key: str = "extent") -> tuple[float, float]:
    """``[lo, hi]``: two finite numbers with lo < hi (a plotted range of the input plane)."""
    ok = isinstance(extent, Sequence) and not isinstance(extent, str) and len(extent) == 2 and all(is_number(v) for v in extent) and extent[0] < extent[1]
    check(ok, key, extent, "[lo, hi]: two finite numbers with lo < hi")
    return float(extent[0]), float(extent[1])


def check_choice(key: str, value: Any, choices: list[str] | tuple[str, ...]) -> str:
    check(value in choices, key, value, "one of " + ", ".join(choices))
    return value


def with_prefix(prefix: str, build: Callable[[], Any]) -> Any:
    """Call ``build()``; re-raise a ConfigError from inside it with ``prefix.`` before the key.

    ``hydra.utils.instantiate`` wraps exceptions from constructors in an InstantiationException
    whose message holds the whole call; the ConfigError we raised is its ``__cause__``.
    """
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - we look for our own error in the chain
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ConfigError):
                raise ConfigError(f"{prefix}.{cause}") from None
            if isinstance(cause, UserError):
                raise type(cause)(str(cause)) from None
            cause = cause.__cause__
        raise
