"""What the run's log leaves out."""

from __future__ import annotations

import logging


class NoAdverts(logging.Filter):
    """Drops third-party advertisements from the log: Lightning 2.6 tells every run that builds a
    Trainer without its cloud logger to install it (``💡 Tip: For seamless cloud logging ...
    litlogger``). Nothing else is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("pytorch_lightning") and str(record.msg).startswith("💡 Tip:"))
