"""Build the offline KMNIST stand-in from the genuine files in ``../shared/data/kmnist``.

That folder holds the full genuine test split and the first 6,284 genuine training images
(the 60k training file cannot be downloaded on the project's machines). This writes them in
torchvision's raw layout so that ``KMNISTDataModule(root=OUT, download=False)`` reads them:

    python -m datamodules.kmnist_standin --out data_standin
    python train.py experiment=kmnist_conv data.root=data_standin data.download=false

Figures from it must be labelled "6,284 training images", never as the 60k benchmark.
"""

from __future__ import annotations

import argparse
import gzip
import os
import struct
from pathlib import Path

from datamodules.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from runner.errors import DataError

SHARED_FILES = {
    "train-images-idx3-ubyte": "train-images-first6284-idx3-ubyte.gz",
    "train-labels-idx1-ubyte": "train-labels-first6284-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte": "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte": "t10k-labels-idx1-ubyte.gz",
}


def default_shared_dir() -> Path:
    """``$KMNIST_SHARED_DIR``, else ``../shared/data/kmnist`` beside the repository."""
    env = os.environ.get("KMNIST_SHARED_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "kmnist"


def _write_idx(path: Path, array, magic: int) -> None:
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.tobytes())


def build_standin(out_root: Path, shared_dir: Path | None = None, train_limit: int | None = None, test_limit: int | None = None) -> Path:
    """Write ``out_root/KMNIST/raw/{train,t10k}-{images,labels}-idx?-ubyte``; return ``out_root``.

    ``train_limit`` / ``test_limit`` keep only the first images of a split (tests use an odd
    test size to check that no image is counted twice across devices).
    """
    shared_dir = shared_dir or default_shared_dir()
    raw = Path(out_root) / "KMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, source in SHARED_FILES.items():
        src = shared_dir / source
        if not src.is_file():
            raise DataError(f"{src} not found: the stand-in needs the genuine files of ../shared/data/kmnist")
        tmp = raw / f"{name}.part"
        tmp.write_bytes(gzip.decompress(src.read_bytes()))
        magic = IMAGES_MAGIC if "images" in name else LABELS_MAGIC
        limit = train_limit if name.startswith("train") else test_limit
        array = read_idx(tmp, magic)  # also checks the genuine file
        if limit is not None:
            _write_idx(tmp, array[:limit], magic)
        tmp.replace(raw / name)
    return Path(out_root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="root folder to write KMNIST/raw/ into")
    parser.add_argument("--shared", type=Path, default=None, help="folder with the genuine .gz files")
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--test-limit", type=int, default=None)
    args = parser.parse_args()
    root = build_standin(args.out, args.shared, args.train_limit, args.test_limit)
    print(f"stand-in written to {root / 'KMNIST' / 'raw'}")


if __name__ == "__main__":
    main()
