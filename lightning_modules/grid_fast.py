"""Many full-batch Adam updates of a population of grid perceptrons in one call, without autograd.

The network is tiny (2 -> H -> 1 on 9 points), so each autograd + ``torch.optim.Adam`` update
costs ~300 us of per-operation overhead on a CPU and 200,000 of them take over a minute. Here
the gradients are the exact analytic ones and Adam is ``torch.optim.Adam``'s own rule (L2 weight
decay, bias corrections, no amsgrad), in float32 NumPy, for A networks at once: row a of each
array is one network (one seed). Every operation acts on rows separately, so a network's updates
are the same whether it trains alone (A = 1) or among others; ``tests/test_population.py``
checks that bit for bit. A row stops at its own
update limit or once every point has been right for ``stop_after_correct`` updates in a row, and
then leaves the computation, so the cost falls as a population finishes.

``GridAdam`` is the torch optimiser around it: its state (moments and a step count per row) is
an optimiser state Lightning checkpoints, and one ``step()`` is one call of ``adam_updates``.
``tests/test_grid.py`` checks the updates against autograd + ``torch.optim.Adam`` on the same
stacked parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# torch's binary_cross_entropy clamps log() at -100 and divides its gradient by
# max(p (1 - p), 1e-12); the same constants keep the two paths identical when a unit saturates.
# (The clamp is on the log itself: flooring p at exp(-100) instead, a float32 denormal, gives
# log = -99.98.)
LOG_MIN = np.float32(-100.0)
BCE_EPS = 1e-12


@dataclass
class ChunkResult:
    """Per row: ``done`` updates made; ``first_correct``, the index (0-based, in this call) of the
    first update whose forward pass had every point right (what the reference counts), -1 if
    none; ``streak``, updates in a row with every point right at the end (counting on from the
    streak given); ``first_loss``, the loss of the call's first forward pass (a row's loss before
    these updates); ``last_loss`` and ``last_output`` (N, 1): the last forward pass."""

    done: np.ndarray  # (A,) int
    first_correct: np.ndarray  # (A,) int
    streak: np.ndarray  # (A,) int
    last_loss: np.ndarray  # (A,) float
    last_output: np.ndarray  # (A, N, 1)
    first_loss: np.ndarray  # (A,) float


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def bce(o: np.ndarray, y_pos: np.ndarray) -> np.ndarray:
    """Mean binary cross-entropy per row of outputs ``o`` (A, N, 1) against 0/1 targets, clamped as torch does."""
    with np.errstate(divide="ignore"):  # log(0) = -inf, clamped below
        return -np.maximum(np.log(np.where(y_pos, o, 1.0 - o)), LOG_MIN).mean(axis=(1, 2))


def size(hidden: int) -> int:
    """Parameters of one network: ``4 H + 1``."""
    return 4 * hidden + 1


def unflatten(flat: np.ndarray, hidden: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Views ``W1 (..., H, 2), b1 (..., H), W2 (..., 1, H), b2 (..., 1)`` into flat parameter
    vectors ``(..., 4 H + 1)`` (one network, or one row per network)."""
    H, lead = hidden, flat.shape[:-1]
    return (flat[..., : 2 * H].reshape(*lead, H, 2), flat[..., 2 * H : 3 * H],
            flat[..., 3 * H : 4 * H].reshape(*lead, 1, H), flat[..., 4 * H :])


def adam_updates(
    flat: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    step: np.ndarray,
    hidden: int,
    x: np.ndarray,
    y: np.ndarray,
    limits: np.ndarray,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    stop_after_correct: int | None = None,
    streak: np.ndarray | None = None,
) -> ChunkResult:
    """Up to ``limits[a]`` updates of row a, in place on the parameters ``flat`` (A, 4 H + 1),
    their Adam moments (same shape) and step counts ``step`` (A,); ``x`` is (N, 2), ``y`` (N, 1),
    all float32. A row also stops once every point has been right on ``stop_after_correct``
    consecutive forward passes (counting on from ``streak[a]``)."""
    A, N = flat.shape[0], x.shape[0]
    beta1, beta2 = betas
    y_pos = y >= 0.5
    inv_n = np.float32(1.0 / N)
    streak = np.zeros(A, np.int64) if streak is None else streak.astype(np.int64).copy()
    limits = np.asarray(limits, np.int64)
    done, first = np.zeros(A, np.int64), np.full(A, -1, np.int64)
    last_loss, last_output = np.zeros(A, np.float32), np.zeros((A, N, 1), np.float32)
    rows = np.flatnonzero(limits > 0)  # the rows still updating; the others have left
    first_loss, first_pass = np.zeros(A, np.float32), True
    while rows.size:
        # working copies of the rows still updating (a row that stops is written back and dropped)
        th, m, v, st = flat[rows], exp_avg[rows], exp_avg_sq[rows], step[rows].copy()
        W1, b1, W2, b2 = unflatten(th, hidden)
        grad = np.empty_like(th)
        gW1, gb1, gW2, gb2 = unflatten(grad, hidden)
        k, sk, lim, fc = done[rows].copy(), streak[rows].copy(), limits[rows], first[rows].copy()
        while True:
            # forward: h (R, N, H), o (R, N, 1)
            h = sigmoid(np.matmul(x, W1.transpose(0, 2, 1)) + b1[:, None, :])
            o = sigmoid(np.matmul(h, W2.transpose(0, 2, 1)) + b2[:, None, :])
            ok = ((o >= 0.5) == y_pos).all(axis=(1, 2))
            if first_pass:
                first_loss[rows], first_pass = bce(o, y_pos), False
            # backward through BCE and the sigmoids, as torch computes it
            s = o * (1.0 - o)
            dz2 = (o - y) / np.maximum(s, BCE_EPS) * s * inv_n  # (R, N, 1)
            dz1 = np.matmul(dz2, W2) * (h * (1.0 - h))  # (R, N, H)
            np.matmul(dz1.transpose(0, 2, 1), x, out=gW1)
            np.sum(dz1, axis=1, out=gb1)
            np.matmul(dz2.transpose(0, 2, 1), h, out=gW2)
            np.sum(dz2, axis=1, out=gb2)
            # torch.optim.Adam (single-tensor path), each row with its own step count
            st += 1
            g = grad + weight_decay * th
            m += (1 - beta1) * (g - m)  # lerp_(g, 1 - beta1)
            v *= beta2
            v += (1 - beta2) * g * g
            bias2 = np.sqrt(1.0 - beta2 ** st.astype(np.float64)).astype(np.float32)[:, None]
            step_size = (lr / (1.0 - beta1 ** st.astype(np.float64))).astype(np.float32)[:, None]
            th -= step_size * m / (np.sqrt(v) / bias2 + np.float32(eps))
            fc = np.where((fc < 0) & ok, k, fc)
            k += 1
            sk = np.where(ok, sk + 1, 0)
            stop = k >= lim
            if stop_after_correct is not None:
                stop |= sk >= stop_after_correct
            if stop.any():
                break
        # write back every working row; drop the ones that stopped
        flat[rows], exp_avg[rows], exp_avg_sq[rows], step[rows] = th, m, v, st
        done[rows], streak[rows], first[rows] = k, sk, fc
        last_loss[rows], last_output[rows] = bce(o, y_pos), o
        rows = rows[~stop]
    return ChunkResult(done, first, streak, last_loss, last_output, first_loss)


class GridAdam(torch.optim.Optimizer):
    """``torch.optim.Adam``'s rule for the rows of one parameter ``(A, 4 H + 1)`` (one grid
    perceptron per row), each row with its own moments and step count, and the exact gradients
    of the grid's BCE computed inside: one ``step()`` makes up to ``limits[a]`` full-batch updates
    of row a (``adam_updates``), since one update of this net costs less than Lightning's
    per-step machinery. ``step`` therefore takes the batch and the per-row limits as keyword
    arguments, which Lightning's ``LightningOptimizer.step(**kwargs)`` passes through.

    The updates run in NumPy on the CPU whatever the device (the arrays are a few kilobytes);
    tensors elsewhere are copied there and back."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})
        if sum(len(g["params"]) for g in self.param_groups) != 1:
            raise ValueError("GridAdam updates one parameter: the (rows, 4 H + 1) weights of a population")

    @property
    def weights(self) -> torch.Tensor:
        return self.param_groups[0]["params"][0]

    def _state(self) -> dict:
        p = self.weights
        state = self.state[p]
        if not state:  # what torch.optim.Adam creates at its first step, with a step count per row
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] = torch.zeros(p.shape[0], dtype=torch.int64, device=p.device)
        return state

    @torch.no_grad()
    def reset_rows(self, rows: list[int]) -> None:
        """A fresh start for rows ``rows`` (re-initialised networks): moments and step count 0."""
        state = self._state()
        for key in ("exp_avg", "exp_avg_sq", "step"):
            state[key][rows] = 0

    @torch.no_grad()
    def step(self, closure=None, *, hidden: int, points: torch.Tensor, targets: torch.Tensor, limits: np.ndarray,
             stop_after_correct: int | None = None, streak: np.ndarray | None = None) -> ChunkResult:
        """Up to ``limits[a]`` updates of row a on the full batch ``points`` (N, 2), ``targets``
        (N, 1); a row also stops once every point has been right for ``stop_after_correct``
        updates in a row, counting on from ``streak[a]``."""
        if closure is not None:
            with torch.enable_grad():
                closure()  # Lightning's hooks around an optimiser step; the gradients are computed below
        group, state, p = self.param_groups[0], self._state(), self.weights
        tensors = [p, state["exp_avg"], state["exp_avg_sq"], state["step"]]
        arrays = [t.detach().cpu().numpy() for t in tensors]  # views of CPU tensors: updated in place
        result = adam_updates(*arrays, hidden, points.detach().cpu().numpy().astype(np.float32), targets.detach().cpu().numpy().astype(np.float32),
                              limits, lr=group["lr"], weight_decay=group["weight_decay"], betas=group["betas"], eps=group["eps"],
                              stop_after_correct=stop_after_correct, streak=streak)
        for t, a in zip(tensors, arrays):
            if t.device.type != "cpu":
                t.copy_(torch.from_numpy(a))
        return result
