"""LightningDataModules: KMNIST, the 9-point grid, counting-language sequences."""

from datamodules.grammar import GrammarDataModule
from datamodules.grid import GridDataModule
from datamodules.kmnist import KMNISTDataModule

__all__ = ["GrammarDataModule", "GridDataModule", "KMNISTDataModule"]
