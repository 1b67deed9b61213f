"""Many full-batch Adam updates of the grid perceptron in one call, without autograd.

The network is tiny (2 -> H -> 1 on 9 points), so each autograd + ``torch.optim.Adam`` update
costs ~300 us of per-operation overhead on a CPU and 200,000 of them take over a minute. Here
the gradients are the exact analytic ones and Adam is ``torch.optim.Adam``'s own rule
(L2 weight decay, bias corrections, no amsgrad), in float32 NumPy on one flat parameter vector.
The state is torch's Adam state (``exp_avg``, ``exp_avg_sq``, ``step``), read and written back
by ``adam_chunk``, so both paths can take turns on the same optimizer; ``tests/test_grid.py``
checks that they give the same losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# torch's binary_cross_entropy clamps log() at -100 and divides its gradient by
# max(p (1 - p), 1e-12); the same constants keep the two paths identical when a unit saturates.
LOG_FLOOR = np.float32(np.exp(-100.0))
BCE_EPS = 1e-12


@dataclass
class ChunkResult:
    """``all_correct[k]``: every point right on the forward pass before update k (what the
    reference counts); ``last_loss`` and ``last_output`` (N, 1): the last of those forward passes."""

    all_correct: np.ndarray  # (n,) bool
    last_loss: float
    last_output: np.ndarray


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def bce(o: np.ndarray, y_pos: np.ndarray) -> float:
    """Mean binary cross-entropy of outputs ``o`` (N, 1) against 0/1 targets, clamped as torch does."""
    return float(-np.log(np.maximum(np.where(y_pos, o, 1.0 - o), LOG_FLOOR)).mean())


def unflatten(flat: np.ndarray, hidden: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Views ``W1 (H, 2), b1 (H,), W2 (1, H), b2 (1,)`` into one flat vector of ``4 H + 1``."""
    H = hidden
    return flat[: 2 * H].reshape(H, 2), flat[2 * H : 3 * H], flat[3 * H : 4 * H].reshape(1, H), flat[4 * H :]


def adam_updates(
    flat: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    step: int,
    hidden: int,
    x: np.ndarray,
    y: np.ndarray,
    n: int,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    stop_after_correct: int | None = None,
    streak: int = 0,
) -> tuple[ChunkResult, int]:
    """Run up to ``n`` updates in place on the flat parameter vector (see ``unflatten``) and
    its Adam moments (same layout); ``x`` is (N, 2), ``y`` (N, 1), all float32.

    ``step`` is the number of Adam steps taken so far. Stops early once all points have been
    right on ``stop_after_correct`` consecutive updates (counting on from ``streak``).
    Returns the record of the updates made and the new step count.
    """
    W1, b1, W2, b2 = unflatten(flat, hidden)
    beta1, beta2 = betas
    correct = np.empty(n, bool)
    y_pos = y >= 0.5
    inv_n = 1.0 / x.shape[0]
    grad = np.empty_like(flat)
    gW1, gb1, gW2, gb2 = unflatten(grad, hidden)
    done, o = n, None
    for k in range(n):
        # forward: h (N, H), o (N, 1)
        h = sigmoid(x @ W1.T + b1)
        o = sigmoid(h @ W2.T + b2)
        correct[k] = ok = bool(((o >= 0.5) == y_pos).all())
        # backward through BCE and the sigmoids, as torch computes it
        s = o * (1.0 - o)
        dz2 = (o - y) / np.maximum(s, BCE_EPS) * s * inv_n  # (N, 1)
        dz1 = (dz2 @ W2) * (h * (1.0 - h))  # (N, H)
        np.matmul(dz1.T, x, out=gW1)
        np.sum(dz1, axis=0, out=gb1)
        np.matmul(dz2.T, h, out=gW2)
        np.sum(dz2, axis=0, out=gb2)
        # torch.optim.Adam (single-tensor path) on all parameters at once
        step += 1
        g = grad + weight_decay * flat
        exp_avg += (1 - beta1) * (g - exp_avg)  # lerp_(g, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * g * g
        denom = np.sqrt(exp_avg_sq) / ((1 - beta2**step) ** 0.5) + eps
        flat -= (lr / (1 - beta1**step)) * exp_avg / denom
        streak = streak + 1 if ok else 0
        if stop_after_correct is not None and streak >= stop_after_correct:
            done = k + 1
            break
    if o is None:
        raise ValueError("adam_updates needs n >= 1")
    return ChunkResult(correct[:done], bce(o, y_pos), o), step


def adam_chunk(params: list, adam, x, y, n: int, hidden: int, stop_after_correct: int, streak: int) -> ChunkResult:
    """Up to ``n`` updates of ``params`` (``hidden.weight, hidden.bias, output.weight,
    output.bias``) by ``adam_updates``, on the state of ``adam`` (a ``torch.optim.Adam`` over
    them): the parameters and their Adam moments are flattened into NumPy, updated, and copied
    back, so checkpoints and the autograd path see exactly what ``torch.optim.Adam`` would hold.
    ``x`` (N, 2) and ``y`` (N, 1) are tensors."""
    import torch

    group = adam.param_groups[0]
    for p in params:
        state = adam.state[p]
        if not state:  # what torch.optim.Adam creates on its first step
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def flat(tensors):
        return np.concatenate([t.detach().cpu().numpy().astype(np.float32).ravel() for t in tensors])

    theta = flat(params)
    m = flat([adam.state[p]["exp_avg"] for p in params])
    v = flat([adam.state[p]["exp_avg_sq"] for p in params])
    step0 = int(adam.state[params[0]]["step"])
    result, new_step = adam_updates(
        theta, m, v, step0, hidden,
        x.detach().cpu().numpy().astype(np.float32), y.detach().cpu().numpy().astype(np.float32), n,
        lr=group["lr"], weight_decay=group["weight_decay"], betas=group["betas"], eps=group["eps"],
        stop_after_correct=stop_after_correct, streak=streak,
    )
    with torch.no_grad():
        for i, p in enumerate(params):
            for dst, src in ((p, theta), (adam.state[p]["exp_avg"], m), (adam.state[p]["exp_avg_sq"], v)):
                dst.copy_(torch.from_numpy(unflatten(src, hidden)[i].copy()).view_as(dst))
            adam.state[p]["step"].fill_(float(new_step))
    return result
