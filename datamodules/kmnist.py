"""KMNISTDataModule: Kuzushiji-MNIST as two normalised in-memory tensors."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import pytorch_lightning as pl
import torch

from datamodules.idx import gunzip, read_images_and_labels
from datamodules.tensor_batches import TensorBatches, batch_loader
from runner.errors import DataError, check, check_int, check_positive

log = logging.getLogger(__name__)

# (romaji, hiragana) of classes 0-9.
CLASSES = [("o", "お"), ("ki", "き"), ("su", "す"), ("tsu", "つ"), ("na", "な"),
           ("ha", "は"), ("ma", "ま"), ("ya", "や"), ("re", "れ"), ("wo", "を")]

# torchvision's raw layout: ROOT/KMNIST/raw/<name> (uncompressed IDX).
RAW_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
OFFICIAL_SIZES = {"train": 60_000, "test": 10_000}


def normalise(images_uint8: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 ``(N, 28, 28)`` -> float32 ``(N, 1, 28, 28)``; the same numbers as torchvision's
    ``ToTensor()`` (scale to [0, 1]) followed by ``Normalize(mean, std)``."""
    return images_uint8.unsqueeze(1).float().div_(255.0).sub_(mean).div_(std)


class KMNISTDataModule(pl.LightningDataModule):
    """Kuzushiji-MNIST, 10 classes of 28x28 grayscale characters.

    Each split is read once into one normalised float tensor; a batch is a slice of it, not 64
    per-sample PIL transforms. The per-epoch evaluation (``val_dataloader``) uses the test split,
    as the reference study does after every epoch.

    Args:
        root: folder holding ``KMNIST/raw/`` (torchvision's layout). Downloaded there when missing.
        batch_size: training batch (reference 64).
        eval_batch_size: batch for evaluation (does not change any result).
        shuffle: reshuffle the training set each epoch (the reference did not: ``false``
            reproduces its fixed order).
        download: fetch missing files through torchvision; when false, missing files are an error.
        mean, std: normalisation (reference 0.5, 0.5: pixels in [-1, 1]).
        seed: seeds the shuffle; epoch ``e`` uses ``seed + e``.
        batches_per_step: training batches per Lightning step: each training item is a list of
            this many consecutive batches and the model makes one update per batch. The updates
            (and losses) are the same for every value; Lightning's per-step work (about 60 hooks,
            the progress bar, logging) is paid once per this many updates. The progress bar,
            ``limit_train_batches`` and ``val_check_interval`` count these steps, ``max_steps``
            and ``global_step`` count updates.
        on_device: keep both splits on the training device (a GPU) and slice batches there: no
            host-to-device copy per batch. Each process of a DDP run holds its own copy (about
            200 MB for the 60,000 training images). On the CPU it changes nothing.
    """

    classes = [romaji for romaji, _ in CLASSES]

    def __init__(
        self,
        root: str = "data",
        batch_size: int = 64,
        eval_batch_size: int = 1000,
        shuffle: bool = True,
        download: bool = True,
        mean: float = 0.5,
        std: float = 0.5,
        seed: int = 0,
        batches_per_step: int = 1,
        on_device: bool = False,
    ):
        super().__init__()
        check_int("batch_size", batch_size, 1)
        check_int("eval_batch_size", eval_batch_size, 1)
        check_int("batches_per_step", batches_per_step, 1)
        check_positive("std", std)
        check(isinstance(shuffle, bool), "shuffle", shuffle, "true or false")
        check(isinstance(download, bool), "download", download, "true or false")
        check(isinstance(on_device, bool), "on_device", on_device, "true or false")
        self.save_hyperparameters()
        self.root = Path(root)
        self.train_set: TensorBatches | None = None
        self.test_set: TensorBatches | None = None

    @property
    def raw_folder(self) -> Path:
        return (self.root / "KMNIST" / "raw").resolve()

    def _missing(self) -> list[str]:
        return [n for pair in RAW_FILES.values() for n in pair if not (self.raw_folder / n).is_file()]

    def prepare_data(self) -> None:
        """Make the four raw files exist: unpack ``.gz`` copies, else download through torchvision."""
        for name in self._missing():
            if (self.raw_folder / f"{name}.gz").is_file():
                gunzip(self.raw_folder / f"{name}.gz", self.raw_folder / name)
        if not self._missing():
            return
        if not self.hparams.download:
            raise self._missing_error("data.download=false")
        log.info("Downloading KMNIST into %s", self.raw_folder)
        from torchvision.datasets import KMNIST

        try:
            # torchvision prints every failed mirror; the one-line error below says it all.
            with contextlib.redirect_stdout(io.StringIO()):
                KMNIST(str(self.root), train=False, download=True)
        except Exception as exc:  # noqa: BLE001 - any download failure ends in the same error
            reason = str(exc).strip().splitlines()
            raise self._missing_error(f"download failed: {reason[-1] if reason else type(exc).__name__}") from None
        if self._missing():
            raise self._missing_error("download did not produce them")

    def _missing_error(self, why: str) -> DataError:
        expected = ", ".join(n for pair in RAW_FILES.values() for n in pair)
        return DataError(
            f"KMNIST files missing in {self.raw_folder} ({why}): expected {expected}"
            f" (uncompressed IDX, or the same names with .gz); missing: {', '.join(self._missing())}"
        )

    def _load(self, split: str) -> TensorBatches:
        if self._missing():
            raise self._missing_error("data.download=false" if not self.hparams.download else "not prepared")
        images_name, labels_name = RAW_FILES[split]
        images, labels = read_images_and_labels(self.raw_folder / images_name, self.raw_folder / labels_name)
        if len(images) != OFFICIAL_SIZES[split]:
            log.warning("KMNIST %s split: %d images (the official split has %d)", split, len(images), OFFICIAL_SIZES[split])
        x = normalise(torch.from_numpy(images.copy()), self.hparams.mean, self.hparams.std)
        return TensorBatches(x, torch.from_numpy(labels.astype("int64")))

    def setup(self, stage: str | None = None) -> None:
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
        return batch_loader(self.train_set, hp.batch_size, shuffle=hp.shuffle, seed=hp.seed, batches_per_item=hp.batches_per_step)

    def val_dataloader(self):
        return self._eval_loader()

    def test_dataloader(self):
        return self._eval_loader()
