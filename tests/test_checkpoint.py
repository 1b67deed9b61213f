"""PeriodicCheckpoint, in process: when it saves (module updates or Lightning steps, with and
without evaluation during training, after a resume), where, and what it leaves on other ranks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from base.errors import ConfigError
from callbacks.checkpoint import PeriodicCheckpoint


class _Trainer(SimpleNamespace):
    """What the callback reads of a trainer; ``save_checkpoint`` writes as Lightning does (rank 0 only)."""

    def __init__(self, validates: bool, rank0: bool = True):
        super().__init__(global_step=0, enable_validation=validates, sanity_checking=False, should_stop=False, is_global_zero=rank0, saved=[])

    def save_checkpoint(self, path, weights_only=False):
        assert weights_only is False  # the optimiser state and the callbacks' state are needed to resume
        self.saved.append((str(path), self.global_step))
        if self.is_global_zero:
            path.write_text(f"step {self.global_step}")


class _Grid:
    """A module that counts its own updates (``base.contracts.CountsUpdates``)."""

    def __init__(self):
        self.updates = 0

    def updates_done(self) -> int:
        return self.updates


def test_a_module_counting_its_updates_is_saved_at_the_first_step_past_each_multiple(tmp_path):
    cb, trainer, module = PeriodicCheckpoint(str(tmp_path), every_updates=2500), _Trainer(validates=False), _Grid()
    cb.on_train_start(trainer, module)
    saved_at = []
    for step in range(1, 10):  # 1,000 updates a Lightning step
        trainer.global_step, module.updates = step, 1000 * step
        before = len(trainer.saved)
        cb.on_train_batch_end(trainer, module, None, None, step)
        cb.on_validation_end(trainer, module)  # no evaluation in this run: never called by Lightning, and saves nothing more
        if len(trainer.saved) > before:
            saved_at.append(module.updates)
    assert saved_at == [3000, 5000, 8000]
    assert (tmp_path / "last.ckpt").read_text() == "step 8" and not (tmp_path / "last.ckpt.part").exists()
    assert trainer.saved[0][0] == str(tmp_path / "last.ckpt.part")  # written beside it, then renamed


def test_a_run_that_evaluates_is_saved_at_the_end_of_an_evaluation(tmp_path):
    cb, trainer = PeriodicCheckpoint(str(tmp_path), every_updates=1000, filename="periodic.ckpt"), _Trainer(validates=True)
    module = object()  # no update count of its own: Lightning's global_step counts
    cb.on_train_start(trainer, module)
    for step in range(1, 3001):
        trainer.global_step = step
        cb.on_train_batch_end(trainer, module, None, None, step)  # never here when the run evaluates
        if step % 250 == 0:
            trainer.sanity_checking = step == 250  # a sanity check is not an evaluation of training
            cb.on_validation_end(trainer, module)
    assert [s for _, s in trainer.saved] == [1000, 2000, 3000]
    assert (tmp_path / "periodic.ckpt").read_text() == "step 3000"


def test_after_a_resume_the_next_save_is_at_the_next_multiple(tmp_path):
    cb, trainer, module = PeriodicCheckpoint(str(tmp_path), every_updates=1000), _Trainer(validates=False), _Grid()
    module.updates = 4200
    cb.on_train_start(trainer, module)
    for updates in (4900, 5000, 5100, 6100):
        module.updates = updates
        cb.on_train_batch_end(trainer, module, None, None, 0)
    assert len(trainer.saved) == 2  # at 5000 and at 6100; not at 4900 or 5100


def test_the_step_that_ends_training_and_a_callback_never_started_save_nothing(tmp_path):
    cb, trainer, module = PeriodicCheckpoint(str(tmp_path), every_updates=10), _Trainer(validates=False), _Grid()
    module.updates = 50
    cb.on_train_batch_end(trainer, module, None, None, 0)  # before on_train_start: nothing is due
    cb.on_train_start(trainer, module)
    module.updates, trainer.should_stop = 70, True  # ModelCheckpoint writes the final one
    cb.on_train_batch_end(trainer, module, None, None, 0)
    assert trainer.saved == [] and not (tmp_path / "last.ckpt").exists()


def test_other_ranks_take_part_but_write_and_rename_nothing(tmp_path):
    cb, trainer, module = PeriodicCheckpoint(str(tmp_path), every_updates=10), _Trainer(validates=False, rank0=False), _Grid()
    (tmp_path / "last.ckpt.part").write_text("rank 0's, being written")
    cb.on_train_start(trainer, module)
    module.updates = 10
    cb.on_train_batch_end(trainer, module, None, None, 0)
    assert len(trainer.saved) == 1  # Lightning's rule: every process calls save_checkpoint
    assert (tmp_path / "last.ckpt.part").read_text() == "rank 0's, being written" and not (tmp_path / "last.ckpt").exists()


def test_the_interval_is_checked():
    with pytest.raises(ConfigError, match=r"^every_updates=0 is invalid; allowed: an integer >= 1$"):
        PeriodicCheckpoint("x", every_updates=0)
    with pytest.raises(ConfigError, match=r"^every_epochs=0 is invalid; allowed: an integer >= 1$"):
        PeriodicCheckpoint("x", every_epochs=0)
    for updates, epochs in ((None, None), (10, 1)):
        with pytest.raises(ConfigError, match=rf"^every_updates={updates} is invalid; allowed: an integer >= 1, or null with every_epochs set \(now every_epochs={epochs}\): one of the two$"):
            PeriodicCheckpoint("x", every_updates=updates, every_epochs=epochs)
    assert PeriodicCheckpoint("x", every_updates=1).every_updates == 1


@pytest.mark.parametrize("max_epochs, max_steps, saved", [(5, -1, [1, 3]), (4, -1, [1]), (-1, 400, [1]), (-1, 450, [1, 3])])
def test_by_epochs_it_saves_at_the_end_of_every_kth_epoch_but_the_last(tmp_path, max_epochs, max_steps, saved):
    """After every 2nd epoch (0-based 1, 3, ...: Lightning's every_n_epochs), 100 updates an epoch; not the epoch that ends
    training by max_epochs or max_steps (ModelCheckpoint writes that one), nor anything in steps or evaluations."""
    cb, trainer, module = PeriodicCheckpoint(str(tmp_path), every_epochs=2), _Trainer(validates=True), _Grid()
    trainer.max_epochs, trainer.max_steps = max_epochs, max_steps
    cb.on_train_start(trainer, module)
    epochs = []
    for epoch in range(5):
        trainer.current_epoch = epoch
        for step in range(100 * epoch + 1, 100 * epoch + 101):
            trainer.global_step = module.updates = step
            cb.on_train_batch_end(trainer, module, None, None, step)
        cb.on_validation_end(trainer, module)
        before = len(trainer.saved)
        cb.on_train_epoch_end(trainer, module)
        epochs += [epoch] * (len(trainer.saved) - before)
        if 0 <= max_steps <= trainer.global_step or epoch + 1 == max_epochs:
            break
    assert epochs == saved
    assert (tmp_path / "last.ckpt").read_text() == f"step {100 * saved[-1] + 100}"


def test_every_third_epoch_counts_epochs_from_one(tmp_path):
    cb, trainer = PeriodicCheckpoint(str(tmp_path), every_epochs=3), _Trainer(validates=False)
    trainer.max_epochs, trainer.max_steps = 10, -1
    saved = []
    for epoch in range(9):
        trainer.current_epoch = trainer.global_step = epoch
        before = len(trainer.saved)
        cb.on_train_epoch_end(trainer, _Grid())
        saved += [epoch] * (len(trainer.saved) - before)
    assert saved == [2, 5, 8]  # after the 3rd, 6th and 9th epochs


def test_by_epochs_a_stop_asked_for_saves_nothing(tmp_path):
    cb, trainer = PeriodicCheckpoint(str(tmp_path), every_epochs=1), _Trainer(validates=False)
    trainer.current_epoch, trainer.max_epochs, trainer.max_steps, trainer.should_stop = 0, 10, -1, True
    cb.on_train_epoch_end(trainer, _Grid())
    assert trainer.saved == []


def test_an_evaluating_run_counts_the_modules_own_updates(tmp_path):
    """With evaluation during training, the due update is still the module's count, not Lightning's steps."""
    cb, trainer, module = PeriodicCheckpoint(str(tmp_path), every_updates=1000), _Trainer(validates=True), _Grid()
    cb.on_train_start(trainer, module)
    for step in range(1, 31):
        trainer.global_step, module.updates = step, 100 * step
        cb.on_validation_end(trainer, module)
    assert [s for _, s in trainer.saved] == [10, 20, 30]  # at 1,000, 2,000 and 3,000 updates
