"""Checkpoints every K updates, or every K epochs, that a killed run can resume from, exactly."""

from __future__ import annotations

from pathlib import Path

from pytorch_lightning.callbacks import Checkpoint

from base.contracts import CountsUpdates
from base.errors import check, check_int
from base.files import replaced_atomically


class PeriodicCheckpoint(Checkpoint):
    """Write ``<dirpath>/last.ckpt`` every ``every_updates`` updates, or at the end of every
    ``every_epochs``-th training epoch, atomically (a temporary file, then a rename), so that a run
    killed at any moment leaves the previous checkpoint whole, and
    ``ckpt_path=<run>/checkpoints/last.ckpt`` goes on as the run would have.

    By epochs (KMNIST): in ``on_train_epoch_end``, after the epoch's evaluation and after the
    module's own epoch-end hook (Lightning runs a ``Checkpoint``'s hooks last), where Lightning's
    ``ModelCheckpoint`` takes its end-of-epoch checkpoint; the resumed run starts the next epoch.

    By updates: in a run that evaluates during training (the recurrent nets), at the end of
    the first evaluation at or after each multiple, where Lightning's ``ModelCheckpoint`` takes
    its own, so that the evaluation and every decision about it (restarts, early stops) are in
    the checkpoint and a resumed run neither repeats nor skips it; in a run that does not (the
    grid), at the end of the training step that crossed the multiple, after every other callback.
    The data modules save their streams' positions with it. Updates are the module's own count
    (``CountsUpdates``: the grid makes up to 1,000 per Lightning step), else Lightning's
    ``global_step``.

    The step or epoch that ends the training saves nothing here: ``ModelCheckpoint`` writes the
    final one (``save_last``).

    Why not Lightning's ``ModelCheckpoint`` alone: it writes in place (a kill during the write
    leaves a broken file); it counts Lightning steps; under manual optimisation Lightning 2.6 warns
    at every ``every_n_train_steps`` save that it holds the weights after the step, which is what
    resuming needs; and since Lightning 2.6.0 (its change 21244) ``save_last=True`` with
    ``save_top_k=0`` writes ``last.ckpt`` only when training ends, not after each epoch.
    Subclassing ``Checkpoint`` puts it after every other callback, as Lightning does for its own.
    """

    def __init__(self, dirpath: str, every_updates: int | None = None, every_epochs: int | None = None, filename: str = "last.ckpt"):
        check((every_updates is None) != (every_epochs is None), "every_updates", every_updates,
              f"an integer >= 1, or null with every_epochs set (now every_epochs={every_epochs!r}): one of the two")
        if every_updates is not None:
            check_int("every_updates", every_updates, 1)
        if every_epochs is not None:
            check_int("every_epochs", every_epochs, 1)
        self.path = Path(dirpath) / filename
        self.every_updates, self.every_epochs = every_updates, every_epochs
        self._due: int | None = None

    @staticmethod
    def _updates(trainer, pl_module) -> int:
        return pl_module.updates_done() if isinstance(pl_module, CountsUpdates) else trainer.global_step

    def _next_multiple(self, now: int) -> int:
        return (now // self.every_updates + 1) * self.every_updates

    def on_train_start(self, trainer, pl_module):
        if self.every_updates is not None:
            self._due = self._next_multiple(self._updates(trainer, pl_module))

    def on_train_epoch_end(self, trainer, pl_module):
        if self.every_epochs is None or (trainer.current_epoch + 1) % self.every_epochs or self._training_ends(trainer):
            return
        self._save(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not trainer.enable_validation:
            self._save_if_due(trainer, pl_module)

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._save_if_due(trainer, pl_module)

    def _save_if_due(self, trainer, pl_module) -> None:
        now = self._updates(trainer, pl_module)
        if self._due is None or now < self._due or trainer.should_stop:
            return
        self._due = self._next_multiple(now)
        self._save(trainer)

    @staticmethod
    def _training_ends(trainer) -> bool:
        """This epoch is the last: ``max_epochs`` reached, ``max_steps`` reached or a stop asked for."""
        max_epochs, max_steps = trainer.max_epochs, trainer.max_steps
        return (trainer.should_stop or (max_epochs is not None and max_epochs >= 0 and trainer.current_epoch + 1 >= max_epochs)
                or (max_steps is not None and 0 <= max_steps <= trainer.global_step))

    def _save(self, trainer) -> None:
        with replaced_atomically(self.path, writer=trainer.is_global_zero) as part:
            trainer.save_checkpoint(part, weights_only=False)  # on every process (Lightning's rule); rank 0 writes
