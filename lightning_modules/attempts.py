"""Attempts of a training run that may restart: the record, and the rule for when to restart.

The reference told users to restart a stuck run by hand. With ``restarts: N``, an attempt that has
not succeeded ``restart_after`` updates after it began is re-initialised with seed
``init_seed + k`` (attempt k = 0, 1, ...), at most N times; so ``seed=<the seed of an attempt>``
alone reproduces it. The grid study and the recurrent study share this record; each names its
success (``first_perfect_update``: 100% accuracy; ``first_solved_update``: acc 1.0).
"""

from __future__ import annotations

from typing import Any


class Attempts:
    """Every attempt of one run as ``{"attempt", "seed", "start_update", <first_key>, "outcome"}``
    (``updates`` is added once the attempt has ended). Saved in a checkpoint under ``"attempts"``
    (``CHECKPOINT_KEY``) by the module that owns it.

    Args:
        init_seed: seed of attempt 1; attempt k + 1 gets ``init_seed + k``.
        restarts: at most this many re-initialisations.
        restart_after: updates an attempt gets to succeed before it is replaced.
        first_key: the record's name for the update of first success.
    """

    CHECKPOINT_KEY = "attempts"

    def __init__(self, init_seed: int, restarts: int, restart_after: int, first_key: str):
        self.init_seed, self.restarts, self.restart_after, self.first_key = int(init_seed), restarts, restart_after, first_key
        self.records: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.records[index]

    @property
    def current(self) -> dict[str, Any]:
        return self.records[-1]

    def start(self, update: int) -> int:
        """Open the next attempt at ``update``; returns the seed to initialise it with."""
        seed = self.init_seed + len(self.records)
        self.records.append({"attempt": len(self.records) + 1, "seed": seed, "start_update": update, self.first_key: None, "outcome": "running"})
        return seed

    def succeeded(self, update: int) -> None:
        """Note the first update at which the current attempt succeeded."""
        if self.current[self.first_key] is None:
            self.current[self.first_key] = update

    @property
    def may_restart(self) -> bool:
        """The current attempt has not succeeded and a restart is left."""
        return self.current[self.first_key] is None and len(self.records) <= self.restarts

    def updates_until_restart(self, update: int) -> int | None:
        """Updates left before the restart decision (None: no restart can come)."""
        return self.current["start_update"] + self.restart_after - update if self.may_restart else None

    def restart_due(self, update: int) -> bool:
        left = self.updates_until_restart(update)
        return left is not None and left <= 0

    def end(self, update: int, outcome: str) -> None:
        """Close the current attempt at ``update`` with ``outcome``."""
        self.current["updates"] = update - self.current["start_update"]
        self.current["outcome"] = outcome

    def restart(self, update: int, outcome: str) -> int:
        """Close the current attempt and open the next; returns its seed."""
        self.end(update, outcome)
        return self.start(update)

    def summary(self, update: int, succeeded: str, failed: str) -> list[dict[str, Any]]:
        """Copies of every record; a still-running last attempt is closed at ``update`` with the
        outcome ``succeeded`` or ``failed``."""
        out = []
        for record in self.records:
            record = dict(record)
            if record["outcome"] == "running":
                record["updates"] = update - record["start_update"]
                record["outcome"] = succeeded if record[self.first_key] is not None else failed
            out.append(record)
        return out

    def state_dict(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.records]

    def load_state_dict(self, records: list[dict[str, Any]]) -> None:
        self.records = [dict(r) for r in records]
