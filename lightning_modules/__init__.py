"""One LightningModule per study: KMNISTClassifier, GridPerceptron, SequencePredictor (the last
two train S >= 1 networks; a single run is S = 1)."""

from lightning_modules.grid import GridPerceptron
from lightning_modules.grid_nets import GridNet
from lightning_modules.kmnist import KMNISTClassifier
from lightning_modules.kmnist_nets import NetConv, NetFull, NetLin
from lightning_modules.recurrent import SequencePredictor
from lightning_modules.recurrent_nets import GRU, LSTM, SRN, RecurrentNet

__all__ = ["GRU", "GridNet", "GridPerceptron", "KMNISTClassifier", "LSTM", "RecurrentNet", "NetLin", "NetFull", "NetConv", "SequencePredictor", "SRN"]
