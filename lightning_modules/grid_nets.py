"""The network of the grid study, and the hand-set weights it can start from.

``GridNet``: points ``(N, 2)`` -> hidden activations ``(N, H)`` -> output ``(N, 1)``, with sigmoid
units or the reference's Heaviside step (step(0) = 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn

from base.errors import ConfigError

ACTIVATIONS = ("sigmoid", "step")
WEIGHT_KEYS = ("hidden_weight", "hidden_bias", "output_weight", "output_bias")


def step(z: torch.Tensor) -> torch.Tensor:
    """Heaviside step with step(0) = 1, as in the reference."""
    return (z >= 0).to(z.dtype)


class GridNet(nn.Module):
    """Linear(2, H) -> act -> Linear(H, 1) -> act, act = sigmoid or step."""

    def __init__(self, hidden_units: int, activation: str = "sigmoid"):
        super().__init__()
        self.hidden = nn.Linear(2, hidden_units)
        self.output = nn.Linear(hidden_units, 1)
        self.act = torch.sigmoid if activation == "sigmoid" else step

    def activations(self, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Points ``(N, 2)`` -> hidden activations ``(N, H)`` and output ``(N, 1)``."""
        h = self.act(self.hidden(xy))
        return h, self.act(self.output(h))

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        return self.activations(xy)[1]


def load_weights(weights: Optional[dict], weights_file: Optional[str], hidden_units: int) -> Optional[dict[str, torch.Tensor]]:
    """Weights given in the config (``model.weights``) or a YAML/JSON file (``model.weights_file``),
    checked against the shapes of a network with ``hidden_units`` hidden units."""
    if weights is not None and weights_file is not None:
        raise ConfigError("weights and weights_file are both set; give one of them")
    if weights_file is not None:
        from omegaconf import OmegaConf

        path = Path(weights_file)
        if not path.is_file():
            raise ConfigError(f"weights_file={weights_file!r}: no such file")
        try:
            weights = OmegaConf.to_container(OmegaConf.load(path))
        except Exception as exc:  # noqa: BLE001 - any parse failure reads the same to the user
            raise ConfigError(f"weights_file={weights_file!r} is not YAML or JSON: {str(exc).splitlines()[0]}") from None
        if isinstance(weights, dict) and "weights" in weights:
            weights = weights["weights"]
    if weights is None:
        return None
    H = hidden_units
    expected = f"hidden_weight [{H}, 2], hidden_bias [{H}], output_weight [1, {H}], output_bias [1] (hidden_units={H})"
    if not isinstance(weights, dict) or set(weights) != set(WEIGHT_KEYS):
        keys = sorted(weights) if isinstance(weights, dict) else type(weights).__name__
        raise ConfigError(f"weights must have exactly the keys {', '.join(WEIGHT_KEYS)}; got {keys}. Expected shapes: {expected}")
    shapes = {"hidden_weight": (H, 2), "hidden_bias": (H,), "output_weight": (1, H), "output_bias": (1,)}
    out = {}
    for key, shape in shapes.items():
        try:
            value = torch.as_tensor(weights[key], dtype=torch.float32)
        except (TypeError, ValueError):
            raise ConfigError(f"weights.{key}={weights[key]!r} is not a numeric array. Expected shapes: {expected}") from None
        # unambiguous spellings: a flat list of H output weights, a single output bias
        if key == "output_weight" and tuple(value.shape) == (H,):
            value = value.reshape(1, H)
        if key == "output_bias" and value.ndim == 0:
            value = value.reshape(1)
        if tuple(value.shape) != shape:
            raise ConfigError(f"weights.{key} has shape {list(value.shape)}; expected shapes: {expected}")
        out[key] = value
    return out
