"""What the callbacks read from a study's LightningModule, as types: the floors above ``base``
(callbacks, modules) may not import each other, so the contracts between them live here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Protocol, runtime_checkable


@dataclass
class ShownNet:
    """One network a figure callback draws after the test: ``net`` (an ``nn.Module``), the
    ``prefix`` of its file names and TensorBoard tags ("" for the run's own net, ``seed<s>_`` for a
    population's failed seed), a ``label`` for titles, for the grid its ``weights`` and
    ``updates``, and its ``seed``."""

    net: Any
    label: str = ""
    prefix: str = ""
    weights: Optional[dict] = None
    updates: Optional[int] = None
    seed: Optional[int] = None  # whose own evaluation sequences the figures trace


@runtime_checkable
class Population(Protocol):
    """A module training ``len(seed_list)`` networks (one for a single run)."""

    seed_list: list[int]
    first_success_key: str  # the seed outcomes' key of the update of first success

    def seed_outcomes(self) -> list[dict]:
        """One entry per seed after the test: ``seed``, ``outcome`` ("succeeded"/"failed"), ``updates``, ..."""

    def nets_to_show(self) -> list[ShownNet]:
        """The networks the figures show after the test (a single run: its net)."""


@runtime_checkable
class StoppableSeeds(Protocol):
    """A module whose seeds an early-stopping callback may end one by one."""

    seed_list: list[int]
    stopped_early: list[Optional[int]]  # per seed: the update a stopping rule ended it at (None: it was not)

    def analysed_seed(self) -> int:
        """The seed results.json reports as the run's own."""

    def val_metric(self, name: str) -> list[Optional[float]]:
        """Per seed, the value of the logged validation metric ``name`` at the last evaluation
        (None for a seed this process did not evaluate: ended, or trained elsewhere)."""

    def end_seed(self, index: int, early: bool = False) -> None:
        """Seed ``index`` stops training (``early``: stopped by a rule before its budget)."""


@runtime_checkable
class SeedData(Protocol):
    """A data module that draws each seed's own sequences (``datamodules.grammar``)."""

    seed_list: list[int]
    language: Any  # has num_symbols, max_n

    def end_seed(self, index: int) -> None:
        """Seed ``index`` has ended: stop drawing its training sequences."""


@runtime_checkable
class CountsUpdates(Protocol):
    """A module that makes several optimiser updates per Lightning step and counts them itself."""

    def updates_done(self) -> int:
        """The updates made so far (a population: those of its seeds still training)."""


@runtime_checkable
class ImageTestSet(Protocol):
    """A data module of labelled images (``datamodules.kmnist``): what the test-set views read."""

    test_set: Any  # a TensorBatches of images (N, 1, H, W), normalised, and labels (N,)
    classes: Any  # the class names, by label

    def pixels(self, images: Any) -> Any:
        """Normalised images -> the same images with pixels in [0, 1], as stored."""

    def from_pixels(self, pixels: Any) -> Any:
        """Pixels in [0, 1] -> normalised as the net sees them."""


@runtime_checkable
class NamedWeights(Protocol):
    """A module whose analysed net's weights and gradients the histograms show."""

    def named_weights(self) -> dict[str, Any]:
        """The analysed net's weights by name (tensors, any shape)."""

    def named_gradients(self) -> dict[str, Any]:
        """Their gradients in the update being made (call from ``on_before_optimizer_step``);
        empty when the update uses none (the Kalman filter) or this process does not hold the seed."""

    def named_activations(self) -> dict[str, Any]:
        """Activations worth a histogram, by name (an LSTM's gates on its validation sequences); may be empty."""
