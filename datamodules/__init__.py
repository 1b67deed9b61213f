"""LightningDataModules: KMNIST (and, later, the grid and grammar sequences)."""

from datamodules.kmnist import KMNISTDataModule

__all__ = ["KMNISTDataModule"]
