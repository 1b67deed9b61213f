"""Checkpoints every K updates that a killed run can resume from, exactly."""

from __future__ import annotations

from pathlib import Path

from pytorch_lightning.callbacks import Checkpoint

from base.contracts import CountsUpdates
from base.errors import check_int
from base.files import replaced_atomically


class PeriodicCheckpoint(Checkpoint):
    """Write ``<dirpath>/last.ckpt`` every ``every_updates`` updates of training, atomically (a
    temporary file, then a rename), so that a run killed at any moment leaves the previous
    checkpoint whole, and ``ckpt_path=<run>/checkpoints/last.ckpt`` goes on as the run would have.

    When it is taken: in a run that evaluates during training (the recurrent nets), at the end of
    the first evaluation at or after each multiple, where Lightning's ``ModelCheckpoint`` takes
    its own, so that the evaluation and every decision about it (restarts, early stops) are in
    the checkpoint and a resumed run neither repeats nor skips it; in a run that does not (the
    grid), at the end of the training step that crossed the multiple, after every other callback.
    The data modules save their streams' positions with it. A step that ends the training saves
    nothing here: ``ModelCheckpoint`` writes the final one. Updates are the module's own count
    (``CountsUpdates``: the grid makes up to 1,000 per Lightning step), else Lightning's
    ``global_step``.

    Why not Lightning's ``ModelCheckpoint(every_n_train_steps=...)``, which the runs keep for the
    checkpoint at the end of each epoch: it writes in place (a kill during the write leaves a
    broken file), it counts Lightning steps, and under manual optimisation Lightning 2.6 warns at
    every such save that it holds the weights after the step, which is what resuming needs.
    Subclassing ``Checkpoint`` puts it after every other callback, as Lightning does for its own.
    """

    def __init__(self, dirpath: str, every_updates: int, filename: str = "last.ckpt"):
        check_int("every_updates", every_updates, 1)
        self.path = Path(dirpath) / filename
        self.every_updates = every_updates
        self._due: int | None = None

    @staticmethod
    def _updates(trainer, pl_module) -> int:
        return pl_module.updates_done() if isinstance(pl_module, CountsUpdates) else trainer.global_step

    def _next_multiple(self, now: int) -> int:
        return (now // self.every_updates + 1) * self.every_updates

    def on_train_start(self, trainer, pl_module):
        self._due = self._next_multiple(self._updates(trainer, pl_module))

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
        with replaced_atomically(self.path, writer=trainer.is_global_zero) as part:
            trainer.save_checkpoint(part, weights_only=False)  # on every process (Lightning's rule); rank 0 writes
