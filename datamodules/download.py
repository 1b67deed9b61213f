"""Downloading data files all-or-nothing: each file is checked against its MD5 in a temporary
folder, and only a complete, verified set is moved into place.

torchvision's ``download_url`` writes straight into the target folder (a corrupt or truncated
download stays there) and opens connections without a timeout (a network that drops packets
instead of refusing them hangs it); this keeps what it does, redirects and MD5 checks, without
either.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from base.errors import DataError

TIMEOUT_S = 30  # per connection attempt and per read, not for the whole file
CHUNK = 1 << 20


class DownloadError(DataError):
    """A file could not be fetched (no network, no such file on the server)."""


class CorruptDownload(DataError):
    """A file arrived but is not the expected one (MD5 mismatch: truncated, or another file)."""


def fetch(url: str, dest: Path, md5: str, timeout: float = TIMEOUT_S) -> None:
    """Download ``url`` to ``dest`` and check its MD5; raise ``DownloadError`` or ``CorruptDownload``."""
    digest = hashlib.md5()
    size = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:  # ValueError: a malformed URL
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(f"cannot download {url}: {reason}") from None
    if digest.hexdigest() != md5:
        raise CorruptDownload(f"{url} is corrupt or truncated: {size:,} bytes with MD5 {digest.hexdigest()}, expected MD5 {md5}")


def fetch_all(base_urls: list[str], files: dict[str, str], target: Path, prepare=None) -> None:
    """Download every ``name`` of ``files`` (name -> MD5) from the first of ``base_urls`` that
    serves it, into ``target``, all or nothing.

    The files land in a temporary folder beside ``target``; ``prepare(tmp_dir)`` may then unpack
    and check them there, returning the paths to move into ``target``. Any failure removes the
    temporary folder, so ``target`` never holds a partial download.
    """
    target.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=target))
    try:
        for name, md5 in files.items():
            errors: list[DataError] = []
            for base in base_urls:
                try:
                    fetch(base.rstrip("/") + "/" + name, tmp / name, md5)
                    break
                except DataError as exc:
                    errors.append(exc)
            else:
                # a corrupt file says more than an unreachable mirror: report it first
                errors.sort(key=lambda e: not isinstance(e, CorruptDownload))
                raise type(errors[0])(str(errors[0]))
        done = prepare(tmp) if prepare is not None else [tmp / name for name in files]
        for path in done:
            path.replace(target / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
