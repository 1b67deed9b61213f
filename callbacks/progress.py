"""Lightning's progress bar, on a terminal only."""

from __future__ import annotations

import sys
from typing import Optional

from pytorch_lightning.callbacks import TQDMProgressBar


class TerminalProgressBar(TQDMProgressBar):
    """``TQDMProgressBar`` when the run's stdout is a terminal, nothing otherwise.

    The bar redraws itself with carriage returns; in a log file, a pipe or a job scheduler's
    output each redraw stays (``Training: | | 0/? [00:00<?, ?it/s]Epoch 0: ...``), one long line
    that buries what is around it, an error line included. Off a terminal the run's metrics are
    in its loggers and its printout. ``interactive``: force the bar on (true) or off (false);
    null asks stdout."""

    def __init__(self, refresh_rate: int = 1, process_position: int = 0, leave: bool = False, interactive: Optional[bool] = None):
        super().__init__(refresh_rate=refresh_rate, process_position=process_position, leave=leave)
        self.interactive = sys.stdout.isatty() if interactive is None else bool(interactive)
        if not self.interactive:
            self.disable()
