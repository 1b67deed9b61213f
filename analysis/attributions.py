"""Which pixels a class score rests on: saliency and integrated gradients of an image classifier.

Both explain a score *before* the softmax (``scores(x)``, shape ``(N, C)``): a log-probability
would mix in every other class's score through the normaliser.

Written in torch rather than taken from Captum: the two methods are a gradient and a Riemann sum
of gradients, and this way the KMNIST run needs no extra package; the tests check both against
Captum's ``Saliency`` and ``IntegratedGradients`` (installed with the ``dev`` extra).
"""

from __future__ import annotations

from typing import Callable

import torch

Scores = Callable[[torch.Tensor], torch.Tensor]


def _target_scores(scores: Scores, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return scores(x).gather(1, target.view(-1, 1)).sum()


def saliency(scores: Scores, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The gradient of each image's ``target`` score with respect to the image: ``x`` (N, ...)
    and ``target`` (N,) class indices -> (N, ...), signed (take ``abs()`` for Simonyan et al.'s
    map). Images are independent, so one backward pass of the summed scores gives every gradient."""
    # inference_mode(False): callable from Lightning's test hooks, which run in inference mode
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(_target_scores(scores, x, target.clone()), x)
    return grad


def integrated_gradients(scores: Scores, x: torch.Tensor, target: torch.Tensor, baseline: torch.Tensor | float = 0.0,
                         steps: int = 32) -> torch.Tensor:
    """Sundararajan et al. (2017): ``(x - baseline)`` times the mean gradient of the ``target``
    score along the straight path from ``baseline`` to ``x``, by the midpoint rule with ``steps``
    points. Shapes as :func:`saliency`. The attributions of an image sum to its score at ``x``
    minus its score at the baseline, up to the quadrature error (exactly for a linear model)."""
    x = x.detach()
    base = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    total = torch.zeros_like(x)
    for k in range(steps):
        alpha = (k + 0.5) / steps
        total += saliency(scores, base + alpha * (x - base), target)
    return (x - base) * total / steps
