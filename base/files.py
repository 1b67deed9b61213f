"""Files that are whole or absent: every file a run or a download leaves is written through
``replaced_atomically``, so that a reader, or a process killed at any moment, finds the previous
version or none, never part of one (results.json, checkpoints, unpacked data files)."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def replaced_atomically(path: Path, writer: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; when the block ends, rename it onto
    ``path`` (a rename within a folder is atomic on POSIX and Windows). If the block raises, the
    temporary file is removed and ``path`` keeps what it had. ``writer=False`` is for the processes
    of a multi-process run that take part in a save but do not write (Lightning's rule: rank 0
    writes): they neither rename nor remove."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    try:
        yield tmp
    except BaseException:
        if writer:
            tmp.unlink(missing_ok=True)
        raise
    if writer:
        os.replace(tmp, path)


def write_json(path: Path, data: dict) -> None:
    """``data`` as indented JSON in ``path``, whole or not at all (results.json)."""
    with replaced_atomically(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
