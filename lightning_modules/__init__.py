"""One LightningModule per model family."""

from lightning_modules.grid import GridNet, GridPerceptron
from lightning_modules.kmnist import KMNISTClassifier
from lightning_modules.kmnist_nets import NetConv, NetFull, NetLin

__all__ = ["GridNet", "GridPerceptron", "KMNISTClassifier", "NetLin", "NetFull", "NetConv"]
