"""Plain facts of Kuzushiji-MNIST, and how a run names the data it trained on."""

from __future__ import annotations

# (romaji, hiragana) of classes 0-9.
CLASSES = [("o", "お"), ("ki", "き"), ("su", "す"), ("tsu", "つ"), ("na", "な"),
           ("ha", "は"), ("ma", "ま"), ("ya", "や"), ("re", "れ"), ("wo", "を")]
CLASS_NAMES = [romaji for romaji, _ in CLASSES]
OFFICIAL_SIZES = {"train": 60_000, "test": 10_000}
# the genuine sample shipped in datamodules/kmnist_sample/: the first training images, all test images
SAMPLE_TRAIN_SIZE = 6_284
SAMPLE_LABEL = f"bundled sample, {SAMPLE_TRAIN_SIZE:,} training images"


def data_label(source: str | None, train_size: int | None) -> str:
    """How a run's KMNIST training data is named wherever its figures appear:
    ``bundled sample, 6,284 training images``, ``full KMNIST, 60,000 training images``, or
    ``KMNIST files with N training images (not the full 60,000)``."""
    if source == "bundled":
        return SAMPLE_LABEL
    if train_size == OFFICIAL_SIZES["train"]:
        return f"full KMNIST, {train_size:,} training images"
    size = f"{train_size:,}" if train_size is not None else "an unknown number of"
    return f"KMNIST files with {size} training images (not the full {OFFICIAL_SIZES['train']:,})"
