"""GridPerceptron: the two-layer perceptron on the 9-point grid, trained or hand-designed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.grid_fast import adam_updates, unflatten
from runner.errors import ConfigError, check, check_choice, check_int, check_positive, check_range

log = logging.getLogger(__name__)

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


def dividing_line(w: tuple[float, float], b: float) -> dict:
    """Where a unit with input weights ``w = (w_x, w_y)`` and bias ``b`` switches: the line
    ``w_x x + w_y y + b = 0``, on which a sigmoid is 0.5 and a step jumps to 1.

    Returns ``{"equation": "y = -1.00 x + 0.50", "on": "above"}`` (the side where the unit is
    >= 0.5); vertical lines read ``x = c``, horizontal ones ``y = c``; with both weights 0 there
    is no line, ``equation`` is None and ``on`` is ``everywhere`` or ``nowhere``.
    """
    wx, wy, b = float(w[0]), float(w[1]), float(b)
    tiny = 1e-9 * max(abs(wx), abs(wy), abs(b), 1.0)

    def num(v: float) -> str:
        return f"{v + 0.0:.2f}"  # + 0.0 turns -0.0 into 0.0

    if abs(wy) > tiny:
        slope, intercept = -wx / wy, -b / wy
        if abs(wx) <= tiny:
            equation = f"y = {num(intercept)}"
        else:
            equation = f"y = {num(slope)} x {'-' if intercept < 0 else '+'} {num(abs(intercept))}"
        return {"equation": equation, "on": "above" if wy > 0 else "below"}
    if abs(wx) > tiny:
        return {"equation": f"x = {num(-b / wx)}", "on": "right" if wx > 0 else "left"}
    return {"equation": None, "on": "everywhere" if b >= 0 else "nowhere"}


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


class GridPerceptron(pl.LightningModule):
    """The 2-H-1 perceptron of the grid study: model, BCE loss, Adam, accuracy.

    One Lightning training step runs ``updates_per_step`` full-batch updates (manual
    optimisation): Lightning's per-step machinery costs more than an update of this tiny net.
    With ``fast`` (default) the updates run in ``grid_fast.adam_updates`` (exact gradients,
    torch's Adam rule, ~30 us each); with ``fast: false`` through autograd and
    ``torch.optim.Adam`` (~300 us each). Both read and write the same ``torch.optim.Adam`` state.

    Training stops once every point has been right for ``stop_after_perfect`` consecutive
    updates (accuracy is measured on the forward pass before each update, as in the
    reference), or after ``max_updates`` updates. With ``restarts: N``, an attempt that has not
    reached 100% after ``restart_after`` updates is re-initialised from seed ``init_seed + k``
    (attempt k = 0, 1, ...), at most N times.

    Args:
        hidden_units: H >= 1.
        activation: ``sigmoid`` (trainable) or ``step`` (Heaviside, step(0) = 1; evaluation only).
        init_std: weights and biases drawn from N(0, init_std) (reference 0.15).
        lr, weight_decay: Adam (reference 0.001, 1e-5).
        weights / weights_file: start from these weights instead (keys ``hidden_weight``
            [H, 2], ``hidden_bias`` [H], ``output_weight`` [1, H], ``output_bias`` [1]).
        weight_scale: every weight and bias is multiplied by this after it is set.
        init_seed: seed of the initial weights of attempt 0.
    """

    def __init__(
        self,
        hidden_units: int = 5,
        activation: str = "sigmoid",
        init_std: float = 0.15,
        lr: float = 0.001,
        weight_decay: float = 1e-5,
        max_updates: int = 200_000,
        stop_after_perfect: int = 2000,
        updates_per_step: int = 1000,
        restarts: int = 0,
        restart_after: int = 50_000,
        weights: Optional[dict] = None,
        weights_file: Optional[str] = None,
        weight_scale: float = 1.0,
        init_seed: int = 0,
        fast: bool = True,
    ):
        super().__init__()
        check_int("hidden_units", hidden_units, 1)
        check_choice("activation", activation, ACTIVATIONS)
        check_positive("init_std", init_std)
        check_positive("lr", lr)
        check_range("weight_decay", weight_decay, 0)
        for key, value, minimum in (
            ("max_updates", max_updates, 1),
            ("stop_after_perfect", stop_after_perfect, 1),
            ("updates_per_step", updates_per_step, 1),
            ("restarts", restarts, 0),
            ("restart_after", restart_after, 1),
        ):
            check_int(key, value, minimum)
        check_positive("weight_scale", weight_scale)
        check(isinstance(fast, bool), "fast", fast, "true or false")
        given = load_weights(weights, weights_file, hidden_units)
        self.save_hyperparameters()
        self.automatic_optimization = False

        self.net = GridNet(hidden_units, activation)
        self._given_weights = given
        self.attempts: list[dict] = []
        self.updates = 0  # over all attempts
        self._streak = 0
        self._reset_weights(init_seed)
        self.last_test: dict[str, Any] = {}

    # -- weights -------------------------------------------------------------------------
    def _params(self) -> list[nn.Parameter]:
        n = self.net
        return [n.hidden.weight, n.hidden.bias, n.output.weight, n.output.bias]

    @torch.no_grad()
    def _reset_weights(self, seed: int) -> None:
        """Set the weights of a new attempt (given ones, or N(0, init_std) from ``seed``)."""
        hp = self.hparams
        if self._given_weights is not None:
            values = [self._given_weights[k] for k in WEIGHT_KEYS]
        else:
            generator = torch.Generator().manual_seed(int(seed))
            values = [torch.randn(p.shape, generator=generator) * hp.init_std for p in self._params()]
        for p, v in zip(self._params(), values):
            p.copy_(v * hp.weight_scale)
        self.attempts.append({"attempt": len(self.attempts) + 1, "seed": int(seed), "updates": 0, "first_perfect_update": None, "outcome": "running"})
        self._streak = 0

    def weights_dict(self) -> dict[str, list]:
        return {k: p.detach().cpu().tolist() for k, p in zip(WEIGHT_KEYS, self._params())}

    # -- training --------------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        return torch.optim.Adam(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)

    def on_fit_start(self):
        if self.hparams.activation == "step":
            raise ConfigError("activation='step' cannot be trained (its gradient is zero everywhere); use fit=false, or activation=sigmoid")

    def _chunk_fast(self, x: torch.Tensor, y: torch.Tensor, n: int, adam: torch.optim.Adam):
        params = self._params()
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
            theta, m, v, step0, self.hparams.hidden_units,
            x.detach().cpu().numpy().astype(np.float32), y.detach().cpu().numpy().astype(np.float32), n,
            lr=group["lr"], weight_decay=group["weight_decay"], betas=group["betas"], eps=group["eps"],
            stop_after_correct=self.hparams.stop_after_perfect, streak=self._streak,
        )
        H = self.hparams.hidden_units
        with torch.no_grad():
            for i, p in enumerate(params):
                for dst, src in ((p, theta), (adam.state[p]["exp_avg"], m), (adam.state[p]["exp_avg_sq"], v)):
                    dst.copy_(torch.from_numpy(unflatten(src, H)[i].copy()).view_as(dst))
                adam.state[p]["step"].fill_(float(new_step))
        return result.all_correct, result.last_loss, torch.from_numpy(result.last_output)

    def _chunk_torch(self, x: torch.Tensor, y: torch.Tensor, n: int, adam: torch.optim.Adam):
        correct = np.empty(n, bool)
        streak = self._streak
        for k in range(n):
            o = self.net(x)
            loss = F.binary_cross_entropy(o, y)
            correct[k] = bool(((o >= 0.5) == (y >= 0.5)).all())
            adam.zero_grad()
            loss.backward()
            adam.step()
            streak = streak + 1 if correct[k] else 0
            if streak >= self.hparams.stop_after_perfect:
                correct = correct[: k + 1]
                break
        adam.zero_grad()  # grads None again: the bookkeeping step below must not move anything
        return correct, float(loss.detach()), o.detach().cpu()

    def training_step(self, batch, batch_idx):
        hp = self.hparams
        x, y = batch
        attempt = self.attempts[-1]
        lightning_opt = self.optimizers()
        adam = lightning_opt.optimizer
        # never run past a threshold inside a chunk: the budget, or the restart decision
        limit = hp.max_updates - attempt["updates"]
        if attempt["first_perfect_update"] is None and len(self.attempts) <= hp.restarts and attempt["updates"] < hp.restart_after:
            limit = min(limit, hp.restart_after - attempt["updates"])
        n = min(hp.updates_per_step, limit)
        chunk = self._chunk_fast if hp.fast else self._chunk_torch
        correct, loss, output = chunk(x, y, n, adam)
        # Lightning counts optimizer steps through its own wrapper; with every .grad None this
        # step moves no weight (torch.optim skips such parameters) and only advances the count
        # that checkpointing relies on. The real updates happened above.
        lightning_opt.step()

        done = len(correct)
        if attempt["first_perfect_update"] is None and correct.any():
            attempt["first_perfect_update"] = attempt["updates"] + int(np.argmax(correct)) + 1
        wrong = np.flatnonzero(~correct)
        self._streak = self._streak + done if wrong.size == 0 else done - int(wrong[-1]) - 1
        attempt["updates"] += done
        self.updates += done
        acc = float(((output >= 0.5) == (y.cpu() >= 0.5)).float().mean())
        self.log_dict({"loss/train": loss, "acc/train": acc, "step": float(self.updates)}, on_step=True, on_epoch=False)

        if self._streak >= hp.stop_after_perfect:
            attempt["outcome"] = f"100% held for {hp.stop_after_perfect:,} updates"
            self.trainer.should_stop = True
        elif attempt["updates"] >= hp.max_updates:
            attempt["outcome"] = f"update budget of {hp.max_updates:,} spent"
            self.trainer.should_stop = True
        elif attempt["first_perfect_update"] is None and attempt["updates"] >= hp.restart_after and len(self.attempts) <= hp.restarts:
            attempt["outcome"] = f"no 100% after {hp.restart_after:,} updates: re-initialised"
            seed = hp.init_seed + len(self.attempts)
            log.info("attempt %d reached no 100%% in %d updates; re-initialising with seed %d", len(self.attempts), hp.restart_after, seed)
            self._reset_weights(seed)
            adam.state.clear()
        return {"samples": done * len(x)}

    # -- checkpoints keep the training record --------------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        checkpoint["grid_training"] = {"attempts": self.attempts, "updates": self.updates, "streak": self._streak}

    def on_load_checkpoint(self, checkpoint):
        state = checkpoint.get("grid_training")
        if state:
            self.attempts, self.updates, self._streak = state["attempts"], state["updates"], state["streak"]

    # -- evaluation -------------------------------------------------------------------------
    def test_step(self, batch, batch_idx):
        x, y = batch
        h, o = self.net.activations(x)
        loss = F.binary_cross_entropy(o, y)
        acc = ((o >= 0.5) == (y >= 0.5)).float().mean()
        self.log_dict({"hp/loss_test": loss, "hp/acc_test": acc}, on_step=False, on_epoch=True)
        self.last_test = {"points": x.cpu(), "targets": y.cpu(), "hidden": h.detach().cpu(), "output": o.detach().cpu(), "loss": float(loss)}

    def test_summary(self) -> dict:
        """Final figures for results.json: accuracy, weights, the point table, dividing lines, training record."""
        t = self.last_test
        pred = (t["output"] >= 0.5).float()
        right = (pred == t["targets"]).flatten()
        weights = self.weights_dict()
        table = [
            {
                "x": float(p[0]), "y": float(p[1]), "target": int(tg), "hidden": [round(float(v), 4) for v in hid],
                "output": round(float(o), 4), "pred": int(pr), "correct": bool(ok),
            }
            for p, tg, hid, o, pr, ok in zip(t["points"], t["targets"].flatten(), t["hidden"], t["output"].flatten(), pred.flatten(), right)
        ]
        lines = [
            {"unit": f"h{i}", **dividing_line(w, b)}
            for i, (w, b) in enumerate(zip(weights["hidden_weight"], weights["hidden_bias"]))
        ]
        final = self.attempts[-1] if self.updates else None
        return {
            "test_loss": t["loss"],
            "test_acc": int(right.sum()) / len(right),
            "test_correct": int(right.sum()),
            "test_total": len(right),
            "activation": self.hparams.activation,
            "hidden_units": self.hparams.hidden_units,
            "weight_scale": self.hparams.weight_scale,
            "weights": weights,
            "point_table": table,
            "dividing_lines": lines,
            "updates": self.updates,
            "attempts": self.attempts if self.updates else [],
            "first_perfect_update": final["first_perfect_update"] if final else None,
        }
