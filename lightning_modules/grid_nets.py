"""The network of the grid study, defined once, and the hand-set weights it can start from.

``grid_forward`` is the 2-H-1 net's computation for any number of nets at once: points ``(N, 2)``
-> hidden activations ``(..., N, H)`` -> output ``(..., N, 1)``, with sigmoid units or the
reference's Heaviside step (step(0) = 1). Training (a population's rows of stacked weights,
gradients by autograd), the test and ``GridNet`` (one net, for figures and analysis) all call it.
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


def size(hidden: int) -> int:
    """Parameters of one network: ``4 H + 1``."""
    return 4 * hidden + 1


def unflatten(flat: torch.Tensor, hidden: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Views ``W1 (..., H, 2), b1 (..., H), W2 (..., 1, H), b2 (..., 1)`` into flat parameter
    vectors ``(..., 4 H + 1)`` (one network, or one row per network), in ``WEIGHT_KEYS`` order."""
    H, lead = hidden, flat.shape[:-1]
    return (flat[..., : 2 * H].reshape(*lead, H, 2), flat[..., 2 * H : 3 * H],
            flat[..., 3 * H : 4 * H].reshape(*lead, 1, H), flat[..., 4 * H :])


def grid_forward(W1: torch.Tensor, b1: torch.Tensor, W2: torch.Tensor, b2: torch.Tensor, xy: torch.Tensor,
                 act=torch.sigmoid) -> tuple[torch.Tensor, torch.Tensor]:
    """act(act(x W1^T + b1) W2^T + b2) for weights ``W1 (..., H, 2), b1 (..., H), W2 (..., 1, H),
    b2 (..., 1)`` on points ``xy (N, 2)``: hidden activations ``(..., N, H)`` and output
    ``(..., N, 1)``.

    Written as sums of products (two inputs, one output) rather than matrix products: each net's
    numbers then come out the same, bit for bit, whether it is computed alone or as one row of a
    population (a batched matrix product may pick another kernel, and another rounding, for another
    batch size), which is what lets a population's seed end exactly as that seed trained alone."""
    x0, x1 = xy[:, 0:1], xy[:, 1:2]  # (N, 1)
    h = act(x0 * W1[..., None, :, 0] + x1 * W1[..., None, :, 1] + b1[..., None, :])
    return h, act((h * W2).sum(dim=-1, keepdim=True) + b2[..., None, :])


class GridNet(nn.Module):
    """One grid net, ``grid_forward`` on the parameters of Linear(2, H) and Linear(H, 1), act =
    sigmoid or step (the layers hold the weights under the names figures and tables use)."""

    def __init__(self, hidden_units: int, activation: str = "sigmoid"):
        super().__init__()
        self.hidden = nn.Linear(2, hidden_units)
        self.output = nn.Linear(hidden_units, 1)
        self.act = torch.sigmoid if activation == "sigmoid" else step

    def activations(self, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Points ``(N, 2)`` -> hidden activations ``(N, H)`` and output ``(N, 1)``."""
        return grid_forward(self.hidden.weight, self.hidden.bias, self.output.weight, self.output.bias, xy, self.act)

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
