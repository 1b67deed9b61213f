"""The failure policy of ``train.py``, in one place.

- A mistake a user can fix (``UserError``: a bad value, missing or corrupt data, a bad checkpoint;
  a trainer setting Lightning refuses; a config Hydra cannot compose or an override it cannot
  read) ends a single run with one ``error:`` line on stderr and exit status 1.
- Inside a multirun, a failed run writes ``error.txt`` into its folder (with the traceback when it
  is a bug) and the sweep goes on; the sweep summary lists it and the multirun exits 1 at the end.
- Anything else is a bug and keeps its full traceback.

Hydra reports its own errors on a dozen lines unless ``HYDRA_FULL_ERROR`` is set (its documented
switch), in which case they propagate; ``run_entry`` sets it and turns them into one line here.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Callable, NoReturn

from base.errors import UserError

log = logging.getLogger("train")


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def fail(message: str) -> NoReturn:
    print("error: " + message, file=sys.stderr)
    sys.exit(1)


def is_user_error(exc: BaseException) -> bool:
    """A mistake in the user's input, not a bug: ours, or a trainer setting Lightning refuses."""
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    return isinstance(exc, (UserError, MisconfigurationException))


def hydra_error_line(exc: BaseException) -> str:
    """A Hydra composition or override error as one line: ``experiment='kmnist_huge' is not a
    known experiment; allowed: ...``, ``Could not override 'trainer.max_epoch'. To append ... (Key
    'max_epoch' is not in struct)``, ``cannot read the override 'model.lr=[1': ...``."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(exc, MissingConfigException) and exc.options and "/" in (exc.missing_cfg_file or ""):
        group, _, value = exc.missing_cfg_file.rpartition("/")
        return f"{group}={value!r} is not a known {group}; allowed: {', '.join(exc.options)}"
    message = str(exc).split("\nSee https://hydra.cc")[0]
    if isinstance(exc, OverrideParseException):
        return one_line(f"cannot read the override {exc.override!r}: {message}")
    if exc.__cause__ is not None:
        message += f" ({str(exc.__cause__).splitlines()[0]})"
    return one_line(message)


def record_failure(out_dir: Path, exc: Exception, with_traceback: bool) -> float:
    """A failed run of a multirun: ``error.txt`` in its folder; NaN is what the sweeper sees."""
    import traceback

    out_dir.mkdir(parents=True, exist_ok=True)
    text = f"{type(exc).__name__}: {one_line(exc)}\n"
    if with_traceback:
        text += "\n" + "".join(traceback.format_exception(exc))
        log.exception("run failed: %s", one_line(exc))
    else:
        log.error("run failed: %s", one_line(exc))
    (out_dir / "error.txt").write_text(text)
    return float("nan")


def run_job(job: Callable[[], float | None], multirun: bool, out_dir: Callable[[], Path]) -> float | None:
    """Run one job (inside Hydra's task function) under the policy above."""
    try:
        return job()
    except Exception as exc:  # noqa: BLE001 - sorted into the policy's cases
        user = is_user_error(exc)
        if multirun:
            return record_failure(out_dir(), exc, with_traceback=not user)
        if user:
            fail(one_line(exc))
        raise


def run_entry(main: Callable[[], object], before: Callable[[], None] = lambda: None) -> None:
    """``train.py``'s ``__main__``: ``before()`` (checks that need no config), then Hydra's
    ``main()``, with every user mistake, Hydra's included, as one line."""
    from hydra.errors import ConfigCompositionException, OverrideParseException

    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # Hydra raises its errors instead of printing them
    try:
        before()
        main()
    except UserError as exc:
        fail(one_line(exc))
    except (ConfigCompositionException, OverrideParseException) as exc:  # composing, not a bug in a run
        fail(hydra_error_line(exc))
