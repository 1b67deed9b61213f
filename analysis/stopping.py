"""When a recurrent net counts as held solved, and when it stops: the rule of ``SolvedStopping``
(one net) and of ``SequencePopulation`` (each seed), in one place so that the two cannot drift."""

from __future__ import annotations


def after_evaluation(streak: int, held_at: int | None, solved: bool, update: int, evaluations: int | None) -> tuple[int, int | None]:
    """The streak of solved evaluations in a row after one more evaluation at ``update``, and
    ``held_at``: the update at which the streak first reached ``evaluations`` (None until then,
    and always with ``evaluations`` None: no early stop)."""
    streak = streak + 1 if solved else 0
    if held_at is None and evaluations is not None and streak >= evaluations:
        held_at = update
    return streak, held_at


def stop_due(held_at: int | None, patience: int | None, update: int) -> bool:
    """Whether a net held solved at ``held_at`` stops at ``update``: ``patience`` updates later
    (0: at once; None: never, it trains its full schedule)."""
    return held_at is not None and patience is not None and update >= held_at + patience
