"""KMNISTDataModule: normalisation, batches as slices, shuffling, and the errors for missing or
corrupt files. Uses small synthetic IDX files, so it runs without the real data."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from datamodules import KMNISTDataModule
from datamodules.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from datamodules.kmnist import RAW_FILES, normalise
from runner.errors import DataError

RAW_NAMES = [n for pair in RAW_FILES.values() for n in pair]


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    path.write_bytes(struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())


def make_raw(root: Path, n_train: int = 150, n_test: int = 50, seed: int = 0) -> Path:
    """Synthetic KMNIST raw files: random pixels, labels 0..9."""
    rng = np.random.default_rng(seed)
    raw = root / "KMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        images_name, labels_name = RAW_FILES[split]
        write_idx(raw / images_name, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), IMAGES_MAGIC)
        write_idx(raw / labels_name, (np.arange(n) % 10).astype(np.uint8), LABELS_MAGIC)
    return raw


def test_normalise_matches_torchvision_transforms():
    images = np.random.default_rng(1).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    reference = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    expected = torch.stack([reference(Image.fromarray(im, mode="L")) for im in images])
    ours = normalise(torch.from_numpy(images), 0.5, 0.5)
    assert ours.shape == (4, 1, 28, 28) and ours.dtype == torch.float32
    assert torch.allclose(ours, expected, atol=1e-6)
    assert ours[0, 0, 0, 0] == -1.0 and ours[0, 0, 0, 1] == 1.0


@pytest.mark.parametrize("batches_per_step, groups", [(1, [1, 1, 1]), (2, [2, 1]), (5, [3])])
def test_batches_are_slices_of_the_split_in_order(tmp_path, batches_per_step, groups):
    make_raw(tmp_path, n_train=150)
    dm = KMNISTDataModule(root=str(tmp_path), batch_size=64, shuffle=False, download=False, batches_per_step=batches_per_step)
    dm.prepare_data()
    dm.setup("fit")
    images, labels = dm.train_set.tensors
    items = list(dm.train_dataloader())  # each item: the batches of one training step
    assert [len(item) for item in items] == groups
    batches = [b for item in items for b in item]
    assert [len(b[1]) for b in batches] == [64, 64, 22]
    assert torch.equal(torch.cat([b[0] for b in batches]), images)
    assert torch.equal(torch.cat([b[1] for b in batches]), labels)
    raw = np.frombuffer((tmp_path / "KMNIST/raw/train-images-idx3-ubyte").read_bytes()[16:], np.uint8)
    assert torch.allclose(images.flatten(), torch.from_numpy(raw.astype(np.float32)) / 127.5 - 1, atol=1e-6)


def test_shuffle_is_a_permutation_fixed_by_seed_and_epoch(tmp_path):
    make_raw(tmp_path, n_train=150)

    def epoch_images(seed, epoch):
        dm = KMNISTDataModule(root=str(tmp_path), batch_size=64, shuffle=True, download=False, seed=seed)
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)  # what Lightning calls before each training epoch
        return dm.train_set.tensors[0], torch.cat([b[0] for item in loader for b in item])

    images, first = epoch_images(0, 0)
    # every image exactly once (compared exactly, row by row: a float projection of the rows
    # rounded differently in a different order and made this check flaky)
    rows = torch.unique(images.flatten(1), dim=0)
    assert len(first) == len(images) == len(rows) and torch.equal(torch.unique(first.flatten(1), dim=0), rows)
    assert not torch.equal(first, images)  # shuffled
    assert torch.equal(first, epoch_images(0, 0)[1])  # same seed and epoch: same order (resumable)
    assert not torch.equal(first, epoch_images(0, 1)[1])  # next epoch: a new order
    assert not torch.equal(first, epoch_images(1, 0)[1])  # another seed: a new order


def test_gz_copies_are_unpacked(tmp_path):
    raw = make_raw(tmp_path)
    for name in RAW_NAMES:
        (raw / f"{name}.gz").write_bytes(gzip.compress((raw / name).read_bytes()))
        (raw / name).unlink()
    dm = KMNISTDataModule(root=str(tmp_path), download=False)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) == 150 and len(dm.test_set) == 50


def test_missing_files_without_download_name_folder_and_files(tmp_path):
    dm = KMNISTDataModule(root=str(tmp_path / "nothing"), download=False)
    with pytest.raises(DataError) as err:
        dm.prepare_data()
    msg = str(err.value)
    assert str((tmp_path / "nothing" / "KMNIST" / "raw").resolve()) in msg
    assert all(name in msg for name in RAW_NAMES)
    assert "\n" not in msg


def test_failed_download_is_one_clear_error(tmp_path, monkeypatch):
    from urllib.error import URLError

    import torchvision.datasets

    def offline(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried http://x, got:\n" + str(URLError("no network")))

    monkeypatch.setattr(torchvision.datasets.KMNIST, "download", offline)
    dm = KMNISTDataModule(root=str(tmp_path), download=True)
    with pytest.raises(DataError, match="download failed") as err:
        dm.prepare_data()
    assert all(name in str(err.value) for name in RAW_NAMES)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "damage, expected",
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b + b"\0" * 7, "trailing bytes"),
        (lambda b: b"\x00\x00\x09\x03" + b[4:], "magic number"),
        (lambda b: b[:2], "too short"),
    ],
)
def test_corrupt_image_file_is_named(tmp_path, damage, expected):
    raw = make_raw(tmp_path)
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(damage(path.read_bytes()))
    dm = KMNISTDataModule(root=str(tmp_path), download=False)
    with pytest.raises(DataError, match=expected) as err:
        dm.setup("fit")
    assert str(path.resolve()) in str(err.value)


def test_label_count_mismatch_and_bad_labels(tmp_path):
    raw = make_raw(tmp_path, n_train=150)
    write_idx(raw / "train-labels-idx1-ubyte", np.zeros(149, np.uint8), LABELS_MAGIC)
    with pytest.raises(DataError, match="150 images but .* 149 labels"):
        KMNISTDataModule(root=str(tmp_path), download=False).setup("fit")
    write_idx(raw / "train-labels-idx1-ubyte", np.full(150, 12, np.uint8), LABELS_MAGIC)
    with pytest.raises(DataError, match="label 12"):
        KMNISTDataModule(root=str(tmp_path), download=False).setup("fit")


def test_corrupt_gz_is_named(tmp_path):
    raw = tmp_path / "KMNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot decompress"):
        KMNISTDataModule(root=str(tmp_path), download=False).prepare_data()
    assert not (raw / "train-images-idx3-ubyte").exists()


def test_read_idx_returns_header_shape(tmp_path):
    a = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "x", a, IMAGES_MAGIC)
    assert np.array_equal(read_idx(tmp_path / "x", IMAGES_MAGIC), a)
