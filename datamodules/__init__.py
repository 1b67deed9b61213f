"""LightningDataModules: KMNIST and the 9-point grid."""

from datamodules.grid import GridDataModule
from datamodules.kmnist import KMNISTDataModule

__all__ = ["GridDataModule", "KMNISTDataModule"]
