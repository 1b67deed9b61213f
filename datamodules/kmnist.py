"""KMNISTDataModule: Kuzushiji-MNIST as two normalised in-memory tensors."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pytorch_lightning as pl
import torch

from base.errors import DataError, check, check_choice, check_int, check_positive
from base.kmnist import CLASS_NAMES, OFFICIAL_SIZES, SAMPLE_LABEL, data_label
from datamodules import kmnist_sample
from datamodules.download import fetch_all
from datamodules.idx import gunzip, read_images_and_labels
from datamodules.tensor_batches import TensorBatches, batch_loader

log = logging.getLogger(__name__)

# torchvision's raw layout: ROOT/KMNIST/raw/<name> (uncompressed IDX).
RAW_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def normalise(images_uint8: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 ``(N, 28, 28)`` -> float32 ``(N, 1, 28, 28)``; the same numbers as torchvision's
    ``ToTensor()`` (scale to [0, 1]) followed by ``Normalize(mean, std)``."""
    return images_uint8.unsqueeze(1).float().div_(255.0).sub_(mean).div_(std)


SOURCES = ("auto", "download", "bundled", "files")


def official_files() -> tuple[list[str], list[tuple[str, str]]]:
    """torchvision's KMNIST mirrors and ``(file.gz, MD5)`` pairs: one list of record, kept by
    torchvision (imported here, not at start-up: the grid and recurrent runs never need it)."""
    from torchvision.datasets import KMNIST

    return list(KMNIST.mirrors), list(KMNIST.resources)


class KMNISTDataModule(pl.LightningDataModule):
    """Kuzushiji-MNIST, 10 classes of 28x28 grayscale characters.

    Each split is read once into one normalised float tensor; a batch is a slice of it, not 64
    per-sample PIL transforms. The per-epoch evaluation (``val_dataloader``) uses the test split,
    as the reference study does after every epoch.

    Where the data comes from (``source``):

    - ``auto``: the four files under ``root`` if they are there (``files``); else download them
      (``download``); if the download fails, the bundled sample, with one warning that says so;
    - ``download``: the files under ``root``, else download them, else an error;
    - ``bundled``: the genuine sample shipped with the package (the 10,000 test images and the
      first 6,284 training images, ``datamodules/kmnist_sample``); no network, ``root`` unused;
    - ``files``: only the files under ``root``; missing files are an error.

    ``data_source`` says which one a run used (``files``, ``download`` or ``bundled``).

    Args:
        root: folder holding ``KMNIST/raw/`` (torchvision's layout: the four uncompressed IDX
            files, or the same names with ``.gz``, which are unpacked).
        source: see above.
        mirror: base URL to download the four ``.gz`` files from (an internal mirror); default:
            torchvision's KMNIST mirrors.
        checksums: MD5 of each ``.gz`` file by name; default: the official ones, as torchvision
            lists them. Only a mirror that serves other files needs this.
        batch_size: training batch (reference 64).
        eval_batch_size: batch for evaluation (does not change any result).
        shuffle: reshuffle the training set each epoch (the reference did not: ``false``
            reproduces its fixed order).
        mean, std: normalisation (reference 0.5, 0.5: pixels in [-1, 1]).
        seed: seeds the shuffle; epoch ``e`` uses ``seed + e``.
        on_device: keep both splits on the training device (a GPU) and slice batches there: no
            host-to-device copy per batch. Each process of a DDP run holds its own copy (about
            200 MB for the 60,000 training images). On the CPU it changes nothing.
    """

    classes = CLASS_NAMES

    def __init__(
        self,
        root: str = "data",
        source: str = "auto",
        mirror: str | None = None,
        checksums: dict[str, str] | None = None,
        batch_size: int = 64,
        eval_batch_size: int = 1000,
        shuffle: bool = True,
        mean: float = 0.5,
        std: float = 0.5,
        seed: int = 0,
        on_device: bool = False,
    ):
        super().__init__()
        check_choice("source", source, SOURCES)
        check(mirror is None or (isinstance(mirror, str) and "://" in mirror), "mirror", mirror, "null or a base URL such as http://host/kmnist/")
        official = dict(official_files()[1])
        check(checksums is None or (isinstance(checksums, Mapping) and set(checksums) == set(official)), "checksums", checksums,
              "null (the official MD5s) or a mapping of " + ", ".join(official) + " to MD5s")
        check_int("batch_size", batch_size, 1)
        check_int("eval_batch_size", eval_batch_size, 1)
        check_positive("std", std)
        check(isinstance(shuffle, bool), "shuffle", shuffle, "true or false")
        check(isinstance(on_device, bool), "on_device", on_device, "true or false")
        self.save_hyperparameters()
        self.root = Path(root)
        self.train_set: TensorBatches | None = None
        self.test_set: TensorBatches | None = None
        self.data_source: str | None = None  # files, download or bundled, once set up
        self._downloaded = False

    def pixels(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images -> pixels in [0, 1] (undoes ``normalise``; for pictures of them)."""
        return (images * self.hparams.std + self.hparams.mean).clamp(0, 1)

    def from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] -> normalised as ``normalise`` does."""
        return (pixels - self.hparams.mean) / self.hparams.std

    @property
    def raw_folder(self) -> Path:
        return (self.root / "KMNIST" / "raw").resolve()

    @property
    def label(self) -> str:
        """``bundled sample, 6,284 training images`` and the like (see ``data_label``)."""
        return data_label(self.data_source, len(self.train_set) if self.train_set is not None else None)

    def _missing(self) -> list[str]:
        return [n for pair in RAW_FILES.values() for n in pair if not (self.raw_folder / n).is_file()]

    def prepare_data(self) -> None:
        """Make the four raw files exist under ``root`` (unpack ``.gz`` copies, else download),
        unless the source is ``bundled``. Runs on one process per node (Lightning's rule), before
        fit and again before test: once the data is chosen, it stays."""
        source = self.hparams.source
        if source == "bundled" or self.data_source is not None:
            return
        for name in self._missing():
            if (self.raw_folder / f"{name}.gz").is_file():
                gunzip(self.raw_folder / f"{name}.gz", self.raw_folder / name)
        if not self._missing():
            return
        if source == "files":
            raise self._missing_error("data.source=files")
        try:
            self._download()
        except DataError as exc:
            if source == "download":
                raise DataError(f"KMNIST download into {self.raw_folder} failed: {exc}. Nothing was written there; "
                                "data.mirror=<url> names another server, data.source=bundled uses the bundled sample") from None
            log.warning(
                "KMNIST could not be downloaded (%s); training on the %s instead (data.source=bundled): about a tenth of the "
                "60,000 of the benchmark, so accuracies are far below the published ones. For the full set, run with internet "
                "access, put the four files in %s, or set data.mirror=<url>", exc, SAMPLE_LABEL, self.raw_folder)

    def _download(self) -> None:
        hp = self.hparams
        official_mirrors, official_md5s = official_files()
        checksums = dict(hp.checksums or official_md5s)
        missing = self._missing()
        wanted = {f"{n}.gz": checksums[f"{n}.gz"] for n in missing}
        mirrors = [hp.mirror] if hp.mirror else official_mirrors
        log.info("Downloading KMNIST (%s) from %s into %s", ", ".join(wanted), " or ".join(mirrors), self.raw_folder)

        def unpack_and_check(tmp: Path) -> list[Path]:
            for name in missing:
                gunzip(tmp / f"{name}.gz", tmp / name)
            for images, labels in RAW_FILES.values():
                if images in missing and labels in missing:
                    read_images_and_labels(tmp / images, tmp / labels)
            return [tmp / name for name in missing]

        fetch_all(mirrors, wanted, self.raw_folder, prepare=unpack_and_check)
        self._downloaded = True

    def _missing_error(self, why: str) -> DataError:
        expected = ", ".join(n for pair in RAW_FILES.values() for n in pair)
        return DataError(
            f"KMNIST files missing in {self.raw_folder} ({why}): expected {expected}"
            f" (uncompressed IDX, or the same names with .gz); missing: {', '.join(self._missing())}"
        )

    def _resolve_source(self) -> str:
        """Which data this process reads, decided the same way on every rank (only one process
        per node runs ``prepare_data``; the others see what it left under ``root``)."""
        source = self.hparams.source
        if source == "bundled" or (source == "auto" and self._missing()):
            return "bundled"
        if self._missing():
            raise self._missing_error(f"data.source={source}" if source == "files" else "not prepared")
        return "download" if self._downloaded else "files"

    def _load(self, split: str) -> TensorBatches:
        images_name, labels_name = RAW_FILES[split]
        if self.data_source == "bundled":
            paths = kmnist_sample.path(images_name), kmnist_sample.path(labels_name)
        else:
            paths = self.raw_folder / images_name, self.raw_folder / labels_name
        images, labels = read_images_and_labels(*paths)
        if len(images) != OFFICIAL_SIZES[split] and self.data_source != "bundled":
            log.warning("KMNIST %s split: %d images (the official split has %d)", split, len(images), OFFICIAL_SIZES[split])
        x = normalise(torch.from_numpy(images.copy()), self.hparams.mean, self.hparams.std)
        return TensorBatches(x, torch.from_numpy(labels.astype("int64")))

    def setup(self, stage: str | None = None) -> None:
        if self.data_source is None:
            self.data_source = self._resolve_source()
        if stage in ("fit", None) and self.train_set is None:
            self.train_set = self._load("train")
        if self.test_set is None:
            self.test_set = self._load("test")

    def _placed(self, data: TensorBatches) -> TensorBatches:
        """``data`` on the training device with ``on_device``, else as it is. The loaders are
        built after the strategy has chosen the device (in ``setup`` the module is still on the CPU)."""
        if not self.hparams.on_device or self.trainer is None:
            return data
        return data.to(self.trainer.strategy.root_device)

    def _eval_loader(self):
        trainer = self.trainer
        distributed = (trainer.world_size, trainer.global_rank) if trainer is not None and trainer.world_size > 1 else None
        self.test_set = self._placed(self.test_set)
        return batch_loader(self.test_set, self.hparams.eval_batch_size, distributed=distributed)

    def train_dataloader(self):
        self.train_set = self._placed(self.train_set)
        hp = self.hparams
        return batch_loader(self.train_set, hp.batch_size, shuffle=hp.shuffle, seed=hp.seed)

    def val_dataloader(self):
        return self._eval_loader()

    def test_dataloader(self):
        return self._eval_loader()
