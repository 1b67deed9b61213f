"""Downloads, the KMNIST data module's messages and its loaders, in process: what a fetch reads
and reports, which mirror's error wins, where the temporary folder lives, the log lines a user
reads, and the samplers' promises (every test image once, a shuffle fixed by seed and epoch)."""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from base.errors import DataError
from datamodules import download
from datamodules.download import CorruptDownload, DownloadError, fetch, fetch_all
from datamodules.kmnist import KMNISTDataModule
from datamodules.tensor_batches import EpochShuffleSampler, EvalShardSampler, TensorBatches, batch_loader


class _Response(io.BytesIO):
    def __init__(self, data: bytes, reads: list):
        super().__init__(data)
        self.reads = reads

    def read(self, size=-1):
        self.reads.append(size)
        return super().read(size)


@pytest.fixture
def served(monkeypatch):
    """``urlopen`` replaced by a server of ``files`` (url -> bytes); records each call's timeout and read sizes."""
    state = SimpleNamespace(files={}, calls=[], reads=[])

    def urlopen(url, timeout=None):
        state.calls.append((url, timeout))
        if "://" not in url:  # as urllib says it
            raise ValueError(f"unknown url type: {url!r}")
        if url not in state.files:
            raise urllib.error.URLError("Connection refused")
        return _Response(state.files[url], state.reads)

    monkeypatch.setattr(download.urllib.request, "urlopen", urlopen)
    return state


def test_fetch_reads_in_chunks_with_a_timeout_and_counts_every_byte(served, tmp_path):
    data = bytes(range(256)) * (4096 * 2 + 100)  # 2 MiB + 25,600 bytes: three chunks
    served.files["http://m/f.gz"] = data
    fetch("http://m/f.gz", tmp_path / "f.gz", hashlib.md5(data).hexdigest())
    assert (tmp_path / "f.gz").read_bytes() == data
    assert served.calls == [("http://m/f.gz", download.TIMEOUT_S)] and download.TIMEOUT_S == 30
    assert served.reads == [download.CHUNK] * 4 and download.CHUNK == 1 << 20  # the 4th read finds the end
    with pytest.raises(CorruptDownload) as caught:
        fetch("http://m/f.gz", tmp_path / "g.gz", "0" * 32, timeout=5)
    assert str(caught.value) == f"http://m/f.gz is corrupt or truncated: 2,122,752 bytes with MD5 {hashlib.md5(data).hexdigest()}, expected MD5 {'0' * 32}"
    assert served.calls[-1] == ("http://m/f.gz", 5)


def test_fetch_names_why_it_could_not_download(served, tmp_path):
    with pytest.raises(DownloadError) as caught:
        fetch("http://m/none.gz", tmp_path / "x", "0" * 32)
    assert str(caught.value) == "cannot download http://m/none.gz: Connection refused"  # the URLError's reason
    with pytest.raises(DownloadError) as caught:
        fetch("no-scheme", tmp_path / "x", "0" * 32, timeout=1)  # a ValueError: it has no reason
    assert str(caught.value) == "cannot download no-scheme: unknown url type: 'no-scheme'"


def test_fetch_all_tries_each_mirror_and_reports_a_corrupt_file_before_an_unreachable_one(served, tmp_path):
    good = b"kmnist"
    md5 = hashlib.md5(good).hexdigest()
    served.files["http://second/a.gz"] = good
    target = tmp_path / "raw"
    fetch_all(["http://first/", "http://second//"], {"a.gz": md5}, target)
    assert [url for url, _ in served.calls] == ["http://first/a.gz", "http://second/a.gz"]  # one "/" between base and name
    assert (target / "a.gz").read_bytes() == good and [p.name for p in target.iterdir()] == ["a.gz"]  # the temporary folder is gone
    served.files["http://second/b.gz"] = b"other"
    for order in (["http://first", "http://second"], ["http://second", "http://first"]):
        with pytest.raises(DataError) as caught:
            fetch_all(order, {"b.gz": md5}, tmp_path / "raw2")
        assert type(caught.value) is CorruptDownload and str(caught.value).startswith("http://second/b.gz is corrupt or truncated")
        assert list((tmp_path / "raw2").iterdir()) == []
    with pytest.raises(DownloadError, match=r"^cannot download http://first/c.gz: Connection refused$"):
        fetch_all(["http://first", "http://third"], {"c.gz": md5}, tmp_path / "raw3")


def test_fetch_all_downloads_into_a_temporary_folder_beside_the_target(monkeypatch, tmp_path):
    seen = []

    def fake_fetch(url, dest, md5):
        seen.append(dest.parent)
        assert dest.parent.parent.parent == tmp_path and dest.parent.name.startswith(".download-")  # inside the target
        dest.write_text(url)

    monkeypatch.setattr(download, "fetch", fake_fetch)
    fetch_all(["http://m"], {"a": "x", "b": "y"}, tmp_path / "raw")
    assert len(set(seen)) == 1 and not seen[0].exists()
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["a", "b"]

    def prepare(tmp):  # unpacks into new names, and cleans up after itself
        (tmp / "a.out").write_text("unpacked")
        moved = tmp.parent / "a.out"
        (tmp / "a.out").replace(moved)
        shutil.rmtree(tmp)
        return [moved]

    fetch_all(["http://m"], {"a": "x"}, tmp_path / "raw4", prepare=prepare)  # a folder already gone is no error
    assert (tmp_path / "raw4" / "a.out").read_text() == "unpacked"


def test_the_kmnist_messages_a_user_reads(tmp_path, monkeypatch, caplog, kmnist_mirror):
    url, folder, checksums = kmnist_mirror
    caplog.set_level(logging.INFO, logger="datamodules.kmnist")
    dm = KMNISTDataModule(root=str(tmp_path / "data"), source="download", mirror=url, checksums=checksums)
    dm.prepare_data()
    raw = dm.raw_folder
    names = "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"
    assert f"Downloading KMNIST ({names}) from {url} into {raw}" in [r.getMessage() for r in caplog.records]
    dm.setup("fit")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == ["KMNIST train split: 6284 images (the official split has 60000)"]  # the test split is the official 10,000
    (raw / "t10k-labels-idx1-ubyte").unlink()
    files = KMNISTDataModule(root=str(tmp_path / "data"), source="files")
    with pytest.raises(DataError) as caught:
        files.prepare_data()
    expected = "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"
    assert str(caught.value) == (f"KMNIST files missing in {raw} (data.source=files): expected {expected}"
                                 " (uncompressed IDX, or the same names with .gz); missing: t10k-labels-idx1-ubyte")
    with pytest.raises(DataError, match=r"\(data.source=files\): expected"):
        files.setup("fit")
    unprepared = KMNISTDataModule(root=str(tmp_path / "data"), source="download", mirror=url)
    with pytest.raises(DataError, match=r"\(not prepared\): expected .*; missing: t10k-labels-idx1-ubyte$"):
        unprepared.setup("test")


def test_only_the_missing_labels_are_fetched_and_checked_again(tmp_path, kmnist_mirror, caplog):
    """One file of a pair missing: only it is downloaded, and the pair is not re-read from the
    temporary folder (its images are not there)."""
    url, folder, checksums = kmnist_mirror
    root = tmp_path / "data"
    KMNISTDataModule(root=str(root), source="download", mirror=url, checksums=checksums).prepare_data()
    raw = root / "KMNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte").unlink()
    caplog.set_level(logging.INFO, logger="datamodules.kmnist")
    dm = KMNISTDataModule(root=str(root), source="download", mirror=url, checksums=checksums)
    dm.prepare_data()
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("Downloading")] == [
        f"Downloading KMNIST (t10k-labels-idx1-ubyte.gz) from {url} into {raw.resolve()}"]
    dm.setup()
    assert len(dm.test_set) == 10_000 and dm.data_source == "download"


def test_the_download_failure_line_and_the_fallback_warning(tmp_path, caplog):
    closed = "http://127.0.0.1:9/"
    dm = KMNISTDataModule(root=str(tmp_path / "data"), source="download", mirror=closed)
    with pytest.raises(DataError) as caught:
        dm.prepare_data()
    assert str(caught.value).endswith(". Nothing was written there; data.mirror=<url> names another server, data.source=bundled uses the bundled sample")
    caplog.set_level(logging.WARNING, logger="datamodules.kmnist")
    auto = KMNISTDataModule(root=str(tmp_path / "data"), source="auto", mirror=closed)
    auto.prepare_data()
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("KMNIST could not be downloaded (cannot download http://127.0.0.1:9/train-images-idx3-ubyte.gz: ")
    assert ("training on the bundled sample, 6,284 training images instead (data.source=bundled): about a tenth of the 60,000 of the "
            "benchmark, so accuracies are far below the published ones. For the full set, run with internet access, put the four files in") in message
    assert message.endswith(f"put the four files in {auto.raw_folder}, or set data.mirror=<url>")


def test_setup_for_test_only_loads_no_training_set_and_on_device_places_the_data(tmp_path):
    dm = KMNISTDataModule(root=str(tmp_path), source="bundled")
    dm.setup("test")
    assert dm.train_set is None and len(dm.test_set) == 10_000
    dm.setup("fit")
    assert len(dm.train_set) == 6_284
    placed = []

    class Data:
        def to(self, device):
            placed.append(device)
            return self

    data = Data()
    assert dm._placed(data) is data and placed == []  # on_device off
    on = KMNISTDataModule(root=str(tmp_path), source="bundled", on_device=True)
    assert on._placed(data) is data and placed == []  # no trainer yet
    on.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("meta")), world_size=1, global_rank=0)
    assert on._placed(data) is data and placed == [torch.device("meta")]


def test_the_evaluation_loader_shards_over_processes_without_repeating_a_sample(tmp_path):
    dm = KMNISTDataModule(root=str(tmp_path), source="bundled", eval_batch_size=1000)
    dm.setup("test")
    assert [len(b[0]) for b in dm.test_dataloader()] == [1000] * 10  # no trainer: one process, in order
    seen = []
    for rank in range(3):
        dm.trainer = SimpleNamespace(world_size=3, global_rank=rank)
        loader = dm.val_dataloader()
        assert isinstance(loader.sampler, EvalShardSampler)
        seen += [int(i) for i in loader.sampler]
        assert sum(len(b[1]) for b in loader) == len(range(rank, 10_000, 3))
    assert sorted(seen) == list(range(10_000))
    dm.trainer = SimpleNamespace(world_size=2, global_rank=1)  # two processes shard too
    assert list(dm.val_dataloader().sampler) == list(range(1, 10_000, 2))
    dm.trainer = SimpleNamespace(world_size=1, global_rank=0)
    assert not isinstance(dm.val_dataloader().sampler, EvalShardSampler)


def test_tensor_batches_and_their_samplers():
    x, y = torch.arange(20.0).view(10, 2), torch.arange(10)
    data = TensorBatches(x, y)
    assert len(data) == 10
    single = TensorBatches(torch.arange(4))  # one tensor is a dataset too
    assert len(single) == 4 and single.__getitems__([2, 0])[0].tolist() == [2, 0]
    got = data.__getitems__([3, 1])
    assert torch.equal(got[0], x[[3, 1]]) and torch.equal(got[1], y[[3, 1]])
    assert EpochShuffleSampler(data).seed == 0
    sampler = EpochShuffleSampler(data, seed=5)
    assert sampler.epoch == 0
    assert list(sampler) == torch.randperm(10, generator=torch.Generator().manual_seed(5)).tolist()
    sampler.set_epoch(2)
    assert list(sampler) == torch.randperm(10, generator=torch.Generator().manual_seed(7)).tolist()  # seed + epoch
    shard = EvalShardSampler(data, num_replicas=4, rank=3)
    assert list(shard) == [3, 7] and len(shard) == 2 and shard.shuffle is False and shard.drop_last is False
    loader = batch_loader(data, 4)
    assert [b[1].tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and loader.num_workers == 0
    shuffled = batch_loader(data, 4, shuffle=True, seed=5)
    assert [i for b in shuffled for i in b[1].tolist()] == list(EpochShuffleSampler(data, seed=5))
    assert batch_loader(data, 4, shuffle=True).sampler.seed == 0
    sharded = batch_loader(data, 2, distributed=(3, 1))
    assert [b[1].tolist() for b in sharded] == [[1, 4], [7]] and isinstance(sharded.sampler, EvalShardSampler)


# ---- the data modules' settings, line by line -----------------------------------------------------

_MD5S = "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"


@pytest.mark.parametrize("kwargs, line", [
    ({"mirror": "ftp-host"}, "mirror='ftp-host' is invalid; allowed: null or a base URL such as http://host/kmnist/"),
    ({"checksums": {"a": "b"}}, f"checksums={{'a': 'b'}} is invalid; allowed: null (the official MD5s) or a mapping of {_MD5S} to MD5s"),
    ({"batch_size": 0}, "batch_size=0 is invalid; allowed: an integer >= 1"),
    ({"eval_batch_size": 0}, "eval_batch_size=0 is invalid; allowed: an integer >= 1"),
    ({"std": 0}, "std=0 is invalid; allowed: a finite number > 0"),
    ({"shuffle": "yes"}, "shuffle='yes' is invalid; allowed: true or false"),
    ({"on_device": 1}, "on_device=1 is invalid; allowed: true or false"),
])
def test_kmnist_data_settings(kwargs, line):
    from base.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        KMNISTDataModule(**kwargs)
    assert str(caught.value) == line


def test_kmnist_data_defaults_and_the_smallest_settings(tmp_path):
    dm = KMNISTDataModule()
    hp = dm.hparams
    assert (hp.root, hp.source, hp.batch_size, hp.eval_batch_size, hp.shuffle, hp.seed, hp.on_device) == ("data", "auto", 64, 1000, True, 0, False)
    assert dm.raw_folder == (Path("data") / "KMNIST" / "raw").resolve() and dm._downloaded is False
    small = KMNISTDataModule(root=str(tmp_path), source="bundled", batch_size=1, eval_batch_size=1)
    small.setup("test")
    assert len(next(iter(small.test_dataloader()))[1]) == 1
    assert small._resolve_source() == "bundled"


def test_the_grid_data():
    from base.errors import ConfigError
    from datamodules.grid import GridDataModule, RepeatBatch, RepeatedBatch, grid_points

    dm = GridDataModule(batches_per_step=3)
    assert dm.hparams.batches_per_step == 3 and GridDataModule().hparams.batches_per_step == 1000
    points, targets = grid_points()
    assert torch.equal(dm.test_set.tensors[0], points) and torch.equal(dm.test_set.tensors[1], targets)
    (test_batch,) = list(dm.test_dataloader())  # the 9 points once
    assert torch.equal(test_batch[0], points) and torch.equal(test_batch[1], targets)
    item = next(iter(dm.train_dataloader()))
    assert isinstance(item, RepeatedBatch) and len(item) == 3
    assert GridDataModule(batches_per_step=1).hparams.batches_per_step == 1
    with pytest.raises(ConfigError) as caught:
        GridDataModule(batches_per_step=0)
    assert str(caught.value) == "batches_per_step=0 is invalid; allowed: an integer >= 1"
    repeated = RepeatedBatch(points, targets, times=2)
    assert repeated[-2][0] is points and repeated[1][1] is targets
    for bad in (2, -3):
        with pytest.raises(IndexError) as caught:
            repeated[bad]
        assert caught.value.args == (bad,)
    assert len(list(RepeatBatch(points, targets, times=3))) == 3 and len(list(RepeatBatch(points, targets, times=1, group=4))) == 1
    forever = iter(RepeatBatch(points))
    assert all(next(forever)[0] is points for _ in range(50))


def test_tensor_batches_refuse_unequal_lengths():
    with pytest.raises(ValueError) as caught:
        TensorBatches(torch.zeros(3), torch.zeros(4))
    assert str(caught.value) == "TensorBatches needs tensors with the same first dimension"
    with pytest.raises(ValueError):
        TensorBatches()
    with pytest.raises(ValueError):
        TensorBatches(torch.zeros(4), torch.zeros(4), torch.zeros(5))
    data = TensorBatches(torch.arange(3.0), torch.arange(3))
    assert data.to("cpu") is data and data[1] == (torch.tensor(1.0), torch.tensor(1))
    moved = data.to("meta")
    assert moved is not data and moved.device.type == "meta" and len(moved) == 3


def test_the_official_mirrors_are_tried_in_turn_and_named(tmp_path, kmnist_mirror, monkeypatch, caplog):
    """Without data.mirror, torchvision's mirrors in order (here a closed port, then the loopback
    mirror); the log line names them all."""
    from datamodules import kmnist as kmnist_module

    url, folder, checksums = kmnist_mirror
    closed = "http://127.0.0.1:9/"
    monkeypatch.setattr(kmnist_module, "official_files", lambda: ([closed, url], list(checksums.items())))
    caplog.set_level(logging.INFO, logger="datamodules.kmnist")
    dm = KMNISTDataModule(root=str(tmp_path / "data"), source="download")
    dm.prepare_data()
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Downloading")]
    assert f"from {closed} or {url} into" in line
    (dm.raw_folder / "t10k-labels-idx1-ubyte").unlink()
    (dm.raw_folder / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"; missing: train-labels-idx1-ubyte, t10k-labels-idx1-ubyte$"):
        KMNISTDataModule(root=str(tmp_path / "data"), source="files").prepare_data()


def test_a_download_whose_checksum_matches_but_whose_files_do_not_read_is_refused(tmp_path, kmnist_mirror):
    """The MD5 the user gave matches what the mirror serves, but the images are truncated: the
    unpacked pair is read before anything is moved, and nothing is written."""
    import gzip

    url, folder, checksums = kmnist_mirror
    name = "t10k-images-idx3-ubyte.gz"
    data = gzip.decompress((folder / name).read_bytes())[:-100]  # 100 bytes short
    (folder / name).write_bytes(gzip.compress(data))
    checksums = {**checksums, name: hashlib.md5((folder / name).read_bytes()).hexdigest()}
    dm = KMNISTDataModule(root=str(tmp_path / "data"), source="download", mirror=url, checksums=checksums)
    with pytest.raises(DataError, match="truncated"):
        dm.prepare_data()
    assert not dm.raw_folder.exists() or [p.name for p in dm.raw_folder.iterdir()] == []
