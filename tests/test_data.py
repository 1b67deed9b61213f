"""KMNISTDataModule: normalisation, batches as slices, shuffling, where the data comes from (files,
download from a loopback mirror, the bundled sample), and the errors for missing or corrupt files.
Most tests use small synthetic IDX files."""

import gzip
import re
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
from base.errors import DataError

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


def test_batches_are_slices_of_the_split_in_order(tmp_path):
    make_raw(tmp_path, n_train=150)
    dm = KMNISTDataModule(root=str(tmp_path), batch_size=64, shuffle=False, source="files")
    dm.prepare_data()
    dm.setup("fit")
    images, labels = dm.train_set.tensors
    batches = list(dm.train_dataloader())  # one batch, one training step
    assert [len(b[1]) for b in batches] == [64, 64, 22]
    assert torch.equal(torch.cat([b[0] for b in batches]), images)
    assert torch.equal(torch.cat([b[1] for b in batches]), labels)
    raw = np.frombuffer((tmp_path / "KMNIST/raw/train-images-idx3-ubyte").read_bytes()[16:], np.uint8)
    assert torch.allclose(images.flatten(), torch.from_numpy(raw.astype(np.float32)) / 127.5 - 1, atol=1e-6)


def test_shuffle_is_a_permutation_fixed_by_seed_and_epoch(tmp_path):
    make_raw(tmp_path, n_train=150)

    def epoch_images(seed, epoch):
        dm = KMNISTDataModule(root=str(tmp_path), batch_size=64, shuffle=True, source="files", seed=seed)
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)  # what Lightning calls before each training epoch
        return dm.train_set.tensors[0], torch.cat([b[0] for b in loader])

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
    dm = KMNISTDataModule(root=str(tmp_path), source="files")
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) == 150 and len(dm.test_set) == 50


def test_missing_files_with_source_files_name_folder_and_files(tmp_path):
    dm = KMNISTDataModule(root=str(tmp_path / "nothing"), source="files")
    with pytest.raises(DataError) as err:
        dm.prepare_data()
    msg = str(err.value)
    assert str((tmp_path / "nothing" / "KMNIST" / "raw").resolve()) in msg
    assert all(name in msg for name in RAW_NAMES)
    assert "\n" not in msg


def test_bundled_sample_is_the_genuine_files():
    """The shipped files are the ones the sample's README lists: the two test files are the
    official ones (the MD5s torchvision checks for KMNIST), the training prefix has its own."""
    import hashlib

    from datamodules import kmnist_sample
    from datamodules.kmnist import official_files

    official = dict(official_files()[1])
    for raw_name, (bundled, md5) in kmnist_sample.FILES.items():
        assert hashlib.md5(kmnist_sample.path(raw_name).read_bytes()).hexdigest() == md5, bundled
        if raw_name.startswith("t10k"):
            assert md5 == official[f"{raw_name}.gz"]
    note = (kmnist_sample.SAMPLE_DIR / "README.md").read_text()
    assert "CC BY-SA 4.0" in note and "Deep Learning for Classical Japanese Literature" in note
    assert all(md5 in note for _, md5 in kmnist_sample.FILES.values())


def no_network(monkeypatch):
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_bundled_source_reads_the_package_files_without_network_or_root(tmp_path, monkeypatch):
    no_network(monkeypatch)
    dm = KMNISTDataModule(root=str(tmp_path / "unused"), source="bundled")
    dm.prepare_data()
    dm.setup("fit")
    assert dm.data_source == "bundled" and len(dm.train_set) == 6_284 and len(dm.test_set) == 10_000
    assert dm.label == "bundled sample, 6,284 training images"
    assert torch.bincount(dm.test_set.tensors[1]).tolist() == [1_000] * 10
    assert not (tmp_path / "unused").exists()  # nothing written


def test_auto_prefers_files_under_root(tmp_path, monkeypatch):
    no_network(monkeypatch)
    make_raw(tmp_path, n_train=150)
    dm = KMNISTDataModule(root=str(tmp_path), source="auto")
    dm.prepare_data()
    dm.setup("fit")
    assert dm.data_source == "files" and len(dm.train_set) == 150
    assert "150 training images (not the full 60,000)" in dm.label


def test_download_from_a_mirror_checks_unpacks_and_reads(tmp_path, kmnist_mirror, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    url, _, checksums = kmnist_mirror
    dm = KMNISTDataModule(root=str(tmp_path / "data"), source="download", mirror=url, checksums=checksums)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.data_source == "download" and len(dm.train_set) == 6_284 and len(dm.test_set) == 10_000
    assert sorted(p.name for p in dm.raw_folder.iterdir()) == sorted(RAW_NAMES)  # no temporary left


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 3], lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:]], ids=["truncated", "one-bit"])
def test_corrupt_download_is_one_error_and_leaves_nothing(tmp_path, kmnist_mirror, monkeypatch, damage):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    url, folder, checksums = kmnist_mirror
    served = folder / "t10k-images-idx3-ubyte.gz"
    served.write_bytes(damage(served.read_bytes()))
    dm = KMNISTDataModule(root=str(tmp_path / "data"), source="download", mirror=url, checksums=checksums)
    with pytest.raises(DataError, match="corrupt or truncated") as err:
        dm.prepare_data()
    assert "t10k-images-idx3-ubyte.gz" in str(err.value) and "\n" not in str(err.value)
    assert list(dm.raw_folder.iterdir()) == []  # not even the three good files


def test_official_checksums_refuse_a_mirror_serving_other_files(tmp_path, kmnist_mirror, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    url, _, _ = kmnist_mirror  # serves the 6,284-image training prefix under the official name
    dm = KMNISTDataModule(root=str(tmp_path / "data"), source="download", mirror=url)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz is corrupt or truncated"):
        dm.prepare_data()
    assert list(dm.raw_folder.iterdir()) == []


def test_unreachable_mirror_download_is_an_error_auto_falls_back(tmp_path, caplog):
    closed = "http://127.0.0.1:9/"
    dm = KMNISTDataModule(root=str(tmp_path / "data"), source="download", mirror=closed)
    with pytest.raises(DataError, match="download into .* failed: cannot download http://127.0.0.1:9/") as err:
        dm.prepare_data()
    assert "\n" not in str(err.value)

    dm = KMNISTDataModule(root=str(tmp_path / "data"), source="auto", mirror=closed)
    with caplog.at_level("WARNING"):
        dm.prepare_data()
    dm.setup("fit")
    assert dm.data_source == "bundled" and len(dm.train_set) == 6_284
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "bundled sample, 6,284 training images" in warnings[0] and "60,000" in warnings[0]
    assert list(dm.raw_folder.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"source": "web"}, "source='web' is invalid; allowed: one of auto, download, bundled, files"),
    ({"mirror": "ftp.example.org"}, "mirror='ftp.example.org' is invalid"),
    ({"checksums": {"x.gz": "0"}}, "checksums="),
])
def test_bad_source_settings_are_named(kwargs, message):
    from base.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        KMNISTDataModule(**kwargs)


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
    dm = KMNISTDataModule(root=str(tmp_path), source="files")
    with pytest.raises(DataError, match=expected) as err:
        dm.setup("fit")
    assert str(path.resolve()) in str(err.value)


def test_label_count_mismatch_and_bad_labels(tmp_path):
    raw = make_raw(tmp_path, n_train=150)
    write_idx(raw / "train-labels-idx1-ubyte", np.zeros(149, np.uint8), LABELS_MAGIC)
    with pytest.raises(DataError, match="150 images but .* 149 labels"):
        KMNISTDataModule(root=str(tmp_path), source="files").setup("fit")
    write_idx(raw / "train-labels-idx1-ubyte", np.full(150, 12, np.uint8), LABELS_MAGIC)
    with pytest.raises(DataError, match="label 12"):
        KMNISTDataModule(root=str(tmp_path), source="files").setup("fit")


def test_corrupt_gz_is_named(tmp_path):
    raw = tmp_path / "KMNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot decompress"):
        KMNISTDataModule(root=str(tmp_path), source="files").prepare_data()
    assert not (raw / "train-images-idx3-ubyte").exists()


def test_read_idx_returns_header_shape(tmp_path):
    a = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "x", a, IMAGES_MAGIC)
    assert np.array_equal(read_idx(tmp_path / "x", IMAGES_MAGIC), a)


@pytest.mark.parametrize("n, world", [(1001, 2), (10, 3), (2, 4)])
def test_eval_shards_hold_every_sample_once(n, world):
    from torch.utils.data import DistributedSampler

    from datamodules.tensor_batches import EvalShardSampler

    shards = [list(EvalShardSampler(range(n), num_replicas=world, rank=r)) for r in range(world)]
    assert sorted(i for s in shards for i in s) == list(range(n))  # no sample repeated or lost
    assert [len(EvalShardSampler(range(n), world, r)) for r in range(world)] == [len(s) for s in shards]
    assert isinstance(EvalShardSampler(range(n), world, 0), DistributedSampler)  # Lightning keeps it under DDP
