"""The genuine KMNIST sample shipped with the package: the full test split (10,000 images) and the
first 6,284 training images, as gzip'd IDX files (see ``README.md`` here for how it was cut, its
licence, CC BY-SA 4.0, and its citation).

``KMNISTDataModule(source="bundled")`` reads these files where they lie; ``unpack`` writes them
in torchvision's raw layout for tools that want a folder (the benchmark's torchvision pipeline,
tests that cut a smaller split).
"""

from __future__ import annotations

import struct
from pathlib import Path

from base.files import replaced_atomically

SAMPLE_DIR = Path(__file__).resolve().parent

# torchvision's raw name -> (bundled file, its MD5)
FILES = {
    "train-images-idx3-ubyte": ("train-images-first6284-idx3-ubyte.gz", "ec21c625e0954eae17417bf97885500c"),
    "train-labels-idx1-ubyte": ("train-labels-first6284-idx1-ubyte.gz", "0ce73d2f2a5d0e2b1e6fe547d772d8fb"),
    "t10k-images-idx3-ubyte": ("t10k-images-idx3-ubyte.gz", "5c965bf0a639b31b8f53240b1b52f4d7"),
    "t10k-labels-idx1-ubyte": ("t10k-labels-idx1-ubyte.gz", "7320c461ea6c1c855c0b718fb2a4b134"),
}


def path(raw_name: str) -> Path:
    """The bundled ``.gz`` file that stands for torchvision's ``raw_name``."""
    return SAMPLE_DIR / FILES[raw_name][0]


def unpack(out_root: Path, train_limit: int | None = None, test_limit: int | None = None) -> Path:
    """Write ``out_root/KMNIST/raw/{train,t10k}-{images,labels}-idx?-ubyte`` (uncompressed IDX)
    from the bundled files and return ``out_root``. ``train_limit`` / ``test_limit`` keep only the
    first images of a split (tests use an odd test size to check that DDP counts no image twice)."""
    from datamodules.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

    raw = Path(out_root) / "KMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        magic = IMAGES_MAGIC if "images" in name else LABELS_MAGIC
        array = read_idx(path(name), magic)
        limit = train_limit if name.startswith("train") else test_limit
        if limit is not None:
            array = array[:limit]
        with replaced_atomically(raw / name) as tmp:
            tmp.write_bytes(struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())
    return Path(out_root)
