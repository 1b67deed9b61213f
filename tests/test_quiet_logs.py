"""A run's log holds what the run says: no third-party advertisement, and, off a terminal, no
progress-bar redraws (in a log file each redraw stays, before an error line too)."""

from __future__ import annotations

import logging
import sys

from base.logs import NoAdverts
from callbacks.progress import TerminalProgressBar
from conftest import error_line, run_train

BAR = ("it/s]", "Training: |", "Epoch 0: |")


def test_a_run_off_a_terminal_logs_no_advert_and_no_progress_bar(tmp_path):
    """A short SRN run with its output captured (not a terminal) and the default progress bar: its
    stdout, stderr and train.log have Lightning's own lines but neither the litlogger tip nor a bar."""
    proc = run_train("experiment=srn_anb2n", "trainer.max_steps=30", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (tmp_path / "train.log").read_text()
    for text in (proc.stdout, proc.stderr, log):
        assert "litlogger" not in text and "💡" not in text
        assert not any(mark in text for mark in BAR)
    assert "GPU available: False" in log  # Lightning's other lines stay


def test_a_failing_run_ends_with_its_error_line_and_no_bar_before_it(tmp_path):
    proc = run_train("experiment=srn_anb2n", "trainer.max_steps=300", "model.optimizer.lr=1e12", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 1
    assert error_line(proc).startswith("error: training diverged: ")
    assert not any(mark in proc.stdout + proc.stderr for mark in BAR)


def test_the_bar_is_drawn_on_a_terminal_or_when_asked():
    assert TerminalProgressBar(interactive=True).is_enabled
    assert TerminalProgressBar(interactive=False).is_disabled
    assert TerminalProgressBar().is_enabled == sys.stdout.isatty()


def test_the_filter_drops_the_advert_and_nothing_else():
    keep = NoAdverts()

    def record(name, msg):
        return logging.LogRecord(name, logging.INFO, __file__, 1, msg, None, None)

    assert not keep.filter(record("pytorch_lightning.utilities.rank_zero", "💡 Tip: For seamless cloud logging ... litlogger"))
    assert keep.filter(record("pytorch_lightning.utilities.rank_zero", "GPU available: False, used: False"))
    assert keep.filter(record("train", "💡 Tip: a line of ours"))
