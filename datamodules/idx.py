"""Reading IDX files (the MNIST/KMNIST format) with checks that name what is wrong.

torchvision's reader asserts; a truncated download then fails with an opaque reshape error.
"""

from __future__ import annotations

import gzip
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np

from base.errors import DataError
from base.files import replaced_atomically

IMAGES_MAGIC = 0x0803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x0801  # unsigned byte, 1 dimension


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzip'd when its name ends in ``.gz``) whose magic
    number must be ``magic``.

    Returns a uint8 array of the shape in the file's header.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} is corrupt: cannot decompress it ({exc})") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    kind = "images" if magic == IMAGES_MAGIC else "labels"
    if len(data) < 4:
        raise DataError(f"{path} is corrupt: {len(data)} bytes, too short for an IDX header")
    found = struct.unpack(">I", data[:4])[0]
    if found != magic:
        raise DataError(f"{path} is corrupt or not an IDX {kind} file: magic number {found:#010x}, expected {magic:#010x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated: {len(data)} bytes, the header alone needs {header}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "corrupt (trailing bytes)"
        shape = "x".join(map(str, dims))
        raise DataError(f"{path} is {what}: its header promises {shape} bytes of data ({expected:,} in all), the file has {len(data):,}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_images_and_labels(images_path: Path, labels_path: Path, image_size: int = 28, num_classes: int = 10):
    """Images ``(N, size, size)`` and labels ``(N,)`` as uint8 arrays, checked for consistency."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.shape[1:] != (image_size, image_size):
        raise DataError(f"{images_path} holds {images.shape[1]}x{images.shape[2]} images; expected {image_size}x{image_size}")
    if len(images) == 0:
        raise DataError(f"{images_path} holds no images")
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images):,} images but {labels_path} holds {len(labels):,} labels")
    if labels.max() >= num_classes:
        raise DataError(f"{labels_path} is corrupt: label {int(labels.max())} found; labels must be 0..{num_classes - 1}")
    return images, labels


def gunzip(src: Path, dst: Path) -> None:
    """Decompress ``src`` to ``dst`` (written under a temporary name, so no half file is left)."""
    try:
        with replaced_atomically(dst) as tmp, gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    except (OSError, EOFError) as exc:
        raise DataError(f"{src} is corrupt: cannot decompress it ({exc})") from None
