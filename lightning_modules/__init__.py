"""One LightningModule per model family."""

from lightning_modules.kmnist import KMNISTClassifier
from lightning_modules.kmnist_nets import NetConv, NetFull, NetLin

__all__ = ["KMNISTClassifier", "NetLin", "NetFull", "NetConv"]
