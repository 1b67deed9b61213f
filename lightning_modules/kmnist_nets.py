"""The three KMNIST networks of the reference study, as plain ``nn.Module``s.

Input: images ``(N, 1, 28, 28)``, normalised to [-1, 1]. Output: log-probabilities ``(N, 10)``
(log_softmax, so the loss is NLL exactly as in the reference).

Each net also gives ``features(x)``, its last hidden layer (what the embedding projector shows:
NetConv's 128 ReLU units, NetFull's H tanh units, NetLin's 10 scores, having no hidden layer),
and ``scores(x) = head(features(x))``, the class scores before the softmax (what an attribution
explains: the log-probabilities would add the other classes' scores through the normaliser).
``forward`` is ``log_softmax(scores(x))``.

A module is handed its net (``model.net`` in the config, as the lightning-hydra-template does);
``settings`` are a net's constructor arguments, what a checkpoint keeps to build it again.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from base.errors import check_int


class Classifier(nn.Module):
    """What the three nets share: ``scores = head(features)``, ``forward = log_softmax(scores)``;
    each net defines ``features``, and ``head`` is its output layer ``fc2`` unless it says otherwise."""

    settings: dict  # the constructor's arguments
    num_classes: int

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc2(features)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.scores(x), dim=1)


class NetLin(Classifier):
    """flatten -> Linear(784, 10) -> log_softmax. 7,850 parameters."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, 2)
        self.settings = {"num_classes": num_classes}
        self.fc = nn.Linear(28 * 28, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 10): the scores (NetLin has no hidden layer)."""
        return self.fc(x.flatten(1))

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return features


class NetFull(Classifier):
    """flatten -> Linear(784, H) -> tanh -> Linear(H, 10) -> log_softmax.

    ``795 H + 10`` parameters: 75,535 for the reference's H = 95.
    """

    def __init__(self, hidden_units: int = 95, num_classes: int = 10):
        super().__init__()
        check_int("hidden_units", hidden_units, 1)
        self.num_classes = check_int("num_classes", num_classes, 2)
        self.settings = {"hidden_units": hidden_units, "num_classes": num_classes}
        self.fc1 = nn.Linear(28 * 28, hidden_units)
        self.fc2 = nn.Linear(hidden_units, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, H) hidden tanh units."""
        return torch.tanh(self.fc1(x.flatten(1)))


class NetConv(Classifier):
    """Two 3x3 conv blocks (16 and 32 channels, 'same' padding, ReLU, 2x2 max-pool: 28 -> 14 -> 7),
    then Linear(32*7*7 = 1568, 128) -> ReLU -> Linear(128, 10) -> log_softmax. 206,922 parameters."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, 2)
        self.settings = {"num_classes": num_classes}
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 128) ReLU units of the last hidden layer."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (N, 16, 14, 14)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (N, 32, 7, 7)
        return F.relu(self.fc1(x.flatten(1)))  # (N, 128)



