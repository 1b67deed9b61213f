"""GridPerceptron: S >= 1 two-layer perceptrons on the 9-point grid, trained or hand-designed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from analysis.grid import dividing_lines, point_table
from base.contracts import ShownNet
from base.errors import ConfigError, check, check_choice, check_int, check_positive, check_range
from lightning_modules.compiled import compiled_for
from lightning_modules.grid_nets import ACTIVATIONS, WEIGHT_KEYS, GridNet, grid_forward, load_weights, size, step, unflatten
from lightning_modules.population import SeedPopulation
from lightning_modules.row_adam import RowAdam, Rows, adam_rows

log = logging.getLogger(__name__)


def seed_losses(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, hidden: int) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The grid's BCE for rows ``w`` (R, 4 H + 1) of stacked weights (one net per row) on points
    ``x`` (N, 2) with targets ``y`` (N, 1): the sum over rows of each row's mean loss (so a row's
    gradient is its own loss's), and, aside, each row's loss (R,) and outputs (R, N, 1)."""
    _, o = grid_forward(*unflatten(w, hidden), x)
    losses = F.binary_cross_entropy(o, y.expand_as(o), reduction="none").mean(dim=(1, 2))
    return losses.sum(), (losses.detach(), o.detach())


seed_gradients = torch.func.grad(seed_losses, has_aux=True)  # (gradient (R, 4 H + 1), (losses, outputs))


def seed_update(w: torch.Tensor, m: torch.Tensor, v: torch.Tensor, count: torch.Tensor, x: torch.Tensor, y: torch.Tensor, hidden: int,
                lr: float, beta1: float, beta2: float, eps: float, weight_decay: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One full-batch update of rows ``w`` (R, 4 H + 1) that share the Adam step count ``count``,
    in place on ``w`` and their moments ``m``, ``v``: the BCE's gradient by autograd, then torch's
    Adam. Returns the forward pass before the update: each row's loss (R,), outputs (R, N, 1),
    and whether it had every point right (R,)."""
    g, (losses, o) = seed_gradients(w, x, y, hidden)
    adam_rows(w, g, m, v, count, lr, beta1, beta2, eps, weight_decay)
    return losses, o, ((o >= 0.5) == (y >= 0.5)).all(dim=2).all(dim=1)


def update_for(hidden: int, settings: tuple[float, ...]):
    """``seed_update`` for ``hidden`` units and Adam ``settings`` (``RowAdam.settings``), a
    function of the rows, their state and the batch."""

    def update(w, m, v, count, x, y):
        return seed_update(w, m, v, count, x, y, hidden, *settings)

    return update


def compiled_update(hidden: int, settings: tuple[float, ...]):
    """``update_for(hidden, settings)`` through ``torch.compile``, once per process and setting
    (``compiled.compiled_for``), the gradient and Adam fused, the settings constants of the kernel
    (as arguments, each call would wrap them as tensors). The number of rows is dynamic
    (``rows_for_compiled``): one kernel for any number of rows. Measured in the module's loop on a
    2-core AMD EPYC: 91 us an update of one net against 862 us eagerly (docs/speed.md)."""
    return compiled_for(("grid", hidden, settings), lambda: update_for(hidden, settings), fullgraph=True)


def rows_for_compiled(rows: Rows) -> Rows:
    """``rows`` marked as having any number of rows (2 or more) for ``compiled_update``, so that
    every population size, and a run of one seed, share one kernel and its rounding: a lone row
    is repeated (the same net computed twice), since compiled code specialises a dimension of
    size 1 into another kernel."""
    if len(rows.index) == 1:
        rows = Rows(*(t.repeat(2, *([1] * (t.dim() - 1))) if t.dim() else t for t in (rows.index, rows.weights, rows.exp_avg, rows.exp_avg_sq, rows.step)))
    for t in (rows.weights, rows.exp_avg, rows.exp_avg_sq):
        torch._dynamo.mark_dynamic(t, 0)  # torch.compile's documented way to keep a dimension dynamic
    return rows


@dataclass
class Updates:
    """What one Lightning step's updates did, per seed: ``done``, updates made; ``first_correct``,
    the index (0-based, in this step) of the first update whose forward pass had every point right
    (what the reference counts), -1 if none; ``streak``, updates in a row with every point right at
    the end (counting on from the streak before); ``first_loss``, the loss of the step's first
    forward pass; ``last_loss`` and ``last_output`` (N, 1): the last forward pass."""

    done: np.ndarray  # (S,) int
    first_correct: np.ndarray  # (S,) int
    streak: np.ndarray  # (S,) int
    last_loss: np.ndarray  # (S,) float
    last_output: np.ndarray  # (S, N, 1)
    first_loss: np.ndarray  # (S,) float


class GridPerceptron(SeedPopulation, pl.LightningModule):
    """The 2-H-1 perceptrons of the grid study (seeds ``init_seed`` ..; 1 for a single run): the
    model, the BCE loss, Adam and the accuracy.

    The weights are one parameter, a row of ``4 H + 1`` numbers per seed. A training item is
    ``data.batches_per_step`` (1,000) copies of the full batch of 9 points
    (``GridDataModule``) and a Lightning step makes up to that many updates of every seed still
    training (``_updates``), each a ``seed_update``: ``grid_forward`` of every training seed at
    once, the BCE's gradient by autograd, torch's Adam with the state ``RowAdam`` holds (a step
    count per seed), compiled together by ``torch.compile``. The module runs this loop, outside
    Lightning's ``optimizer.step`` (so Lightning's ``global_step`` stays 0), because Lightning's
    per-step machinery costs several times an update of a 21-weight net. Each row is updated
    exactly as that network alone would be, so seed s in a population ends as ``seed=s`` alone,
    bit for bit (``tests/test_population.py``).

    Each seed keeps its own life: training stops once every point has been right for
    ``stop_after_perfect`` consecutive updates (accuracy is measured on the forward pass before
    each update, as in the reference), or when it has made ``trainer.max_steps`` updates (its
    budget, over all its attempts: Lightning's own step count is in steps of up to 1,000). With
    ``restarts: N``, an attempt that has not reached 100% after ``restart_after`` updates is
    re-initialised from seed ``init_seed + k`` (attempt k = 0, 1, ...), at most N times; its
    ``first_perfect_update`` counts from the start of the attempt. A seed that has ended is
    frozen and leaves the computation, so the cost falls as a population finishes.

    Args:
        seeds: S, networks trained together (hand-set weights: 1).
        hidden_units: H >= 1.
        activation: ``sigmoid`` (trainable) or ``step`` (Heaviside, step(0) = 1; evaluation only).
        init_std: weights and biases drawn from N(0, init_std) (reference 0.15).
        lr, weight_decay: Adam (reference 0.001, 1e-5).
        weights / weights_file: start from these weights instead (keys ``hidden_weight``
            [H, 2], ``hidden_bias`` [H], ``output_weight`` [1, H], ``output_bias`` [1]).
        weight_scale: every weight and bias is multiplied by this after it is set.
        init_seed: seed of the first network's initial weights.
        analyse_seed: the seed whose net the figures and the printout show (default: the first
            that reached 100%).
        compile: run each update's gradient and Adam step through ``torch.compile`` (a C++
            compiler on a CPU, Triton on a GPU; ~5 s of compiling in each run, ~15 s more the
            first time on a machine) rather than eagerly (~9x slower an update).
    """

    study = "grid"  # results.json's family (orchestration.studies)
    ddp_strategy = "ddp_population"  # under trainer=ddp each process trains its share of the seeds
    first_success_key = "first_perfect_update"
    threads = 1  # the updates of a 21-parameter net gain nothing from more threads

    def __init__(
        self,
        seeds: int = 1,
        hidden_units: int = 5,
        activation: str = "sigmoid",
        init_std: float = 0.15,
        lr: float = 0.001,
        weight_decay: float = 1e-5,
        stop_after_perfect: int = 2000,
        restarts: int = 0,
        restart_after: int = 50_000,
        weights: Optional[dict] = None,
        weights_file: Optional[str] = None,
        weight_scale: float = 1.0,
        init_seed: int = 0,
        analyse_seed: Optional[int] = None,
        compile: bool = True,
    ):
        super().__init__()
        check_int("hidden_units", hidden_units, 1)
        check(isinstance(compile, bool), "compile", compile, "true or false")
        check_choice("activation", activation, ACTIVATIONS)
        check_positive("init_std", init_std)
        check_positive("lr", lr)
        check_range("weight_decay", weight_decay, 0)
        for key, value, minimum in (("stop_after_perfect", stop_after_perfect, 1), ("restarts", restarts, 0), ("restart_after", restart_after, 1)):
            check_int(key, value, minimum)
        check_positive("weight_scale", weight_scale)
        given = load_weights(weights, weights_file, hidden_units)
        check(given is None or seeds == 1, "seeds", seeds, "1 with hand-set weights (model.weights / model.weights_file): every seed would be the same net")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self._population(seeds, init_seed, restarts, restart_after, analyse_seed)
        self._given = given
        self.compiled = compile
        self._batch: Optional[tuple[torch.Tensor, torch.Tensor]] = None  # the training points and targets, once seen
        self.seed_weights = nn.Parameter(torch.zeros(seeds, size(hidden_units)))  # row s: seed s's net
        # per seed: updates over all attempts, and updates in a row with every point right
        self.updates = np.zeros(seeds, np.int64)
        self.streak = np.zeros(seeds, np.int64)
        self.clock = 0  # updates offered to every seed still training (see updates_done)
        for i, a in enumerate(self.attempts):
            self._initialise(i, a.start(0))
        self.last_test: dict[str, Any] = {}

    @property
    def engine(self) -> str:
        """What computes an update, for results.json."""
        how = "compiled by torch.compile" if self.compiled else "eager"
        return f"torch.func.grad of the BCE and torch.optim.adam on the stacked weights, a step count per seed ({how}), many updates a Lightning step"

    # -- weights ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _initialise(self, i: int, seed: int) -> None:
        """Row ``i`` gets the given weights, or N(0, init_std) from ``seed`` (one draw per tensor,
        hidden weight, hidden bias, output weight, output bias), times ``weight_scale``."""
        hp, H = self.hparams, self.hparams.hidden_units
        if self._given is not None:
            values = [self._given[k] for k in WEIGHT_KEYS]
        else:
            generator = torch.Generator().manual_seed(int(seed))
            values = [torch.randn(shape, generator=generator) * hp.init_std for shape in ((H, 2), (H,), (1, H), (1,))]
        self.seed_weights[i] = torch.cat([(v * hp.weight_scale).flatten() for v in values]).to(self.seed_weights.device)
        self.streak[i] = 0

    def weights_of(self, seed: int) -> dict[str, list]:
        """Seed ``seed``'s weights by name (``hidden_weight`` [H, 2], ...)."""
        parts = unflatten(self.seed_weights[self.seed_list.index(seed)].detach().cpu().numpy(), self.hparams.hidden_units)
        return {k: v.tolist() for k, v in zip(WEIGHT_KEYS, parts)}

    def net_of(self, seed: int) -> GridNet:
        """A ``GridNet`` holding seed ``seed``'s weights (for figures and analysis)."""
        net = GridNet(self.hparams.hidden_units, self.hparams.activation)
        weights = self.weights_of(seed)
        with torch.no_grad():
            for p, key in zip((net.hidden.weight, net.hidden.bias, net.output.weight, net.output.bias), WEIGHT_KEYS):
                p.copy_(torch.tensor(weights[key]))
        return net

    @property
    def net(self) -> GridNet:
        """The analysed seed's network (after the test; the first seed's before)."""
        return self.net_of(self.analysed_seed() if self.last_test else self.seed_list[0])

    def named_weights(self) -> dict[str, torch.Tensor]:
        """The watched seed's weights by name (``hidden_weight`` (H, 2), ...); empty on a process
        that does not train it."""
        if not self.watched_process():
            return {}
        return {k: torch.tensor(v) for k, v in self.weights_of(self.watched_seed()).items()}

    def named_gradients(self) -> dict[str, torch.Tensor]:
        """The gradient of the watched seed's loss at its current weights (what its next update
        uses) by name; empty before training and on a process that does not train that seed."""
        if self._batch is None or not self.watched_process():
            return {}
        i = self.seed_list.index(self.watched_seed())
        grad, _ = seed_gradients(self.seed_weights.detach()[i : i + 1], *self._batch, self.hparams.hidden_units)
        return {k: v[0].cpu() for k, v in zip(WEIGHT_KEYS, unflatten(grad, self.hparams.hidden_units))}

    def named_activations(self) -> dict[str, torch.Tensor]:
        return {}

    # -- what the decision-map figures show ---------------------------------------------------------
    def training_view(self) -> Optional[dict]:
        """A single net as it trains (``net``, ``updates`` so far, ``attempt``); None for a
        population, whose maps are drawn after the test only."""
        if self.population:
            return None
        return {"net": self.net_of(self.seed_list[0]), "updates": int(self.updates[0]), "attempt": len(self.attempts[0])}

    def nets_to_show(self) -> list[ShownNet]:
        """The analysed seed (the files a single run writes), and in a population one seed that
        failed, with the prefix ``seed<s>_``."""
        out = []
        for k, seed in enumerate(self.shown_seeds()):
            i = self.seed_list.index(seed)
            outcome = "reached 100%" if self._test_succeeded(i) else "did not reach 100%"
            out.append(ShownNet(self.net_of(seed), label=f"seed {seed} ({outcome})" if self.population else "", prefix="" if k == 0 else f"seed{seed}_",
                                weights=self.weights_of(seed), updates=int(self.updates[i]), seed=seed))
        return out

    # -- training --------------------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        return RowAdam([self.seed_weights], lr=hp.lr, weight_decay=hp.weight_decay)

    def on_fit_start(self):
        if self.hparams.activation == "step":
            raise ConfigError("activation='step' cannot be trained (its gradient is zero everywhere); use fit=false, or activation=sigmoid")
        budget = self.trainer.max_steps
        if not (isinstance(budget, int) and budget >= 1):
            raise ConfigError(f"trainer.max_steps={budget!r} is invalid for the grid study; allowed: an integer >= 1 (each seed's update budget)")

    def _leave(self, i: int) -> None:
        self.ended[i] = True

    def updates_done(self) -> int:
        """The population's clock: the updates a seed training from the start would have made
        (a Lightning step makes up to ``data.batches_per_step`` of them). The same on every
        process, whichever seeds it trains."""
        return self.clock

    def training_step(self, batches, batch_idx):
        """Up to ``len(batches)`` updates of every seed still training, each stopping at its own
        budget, restart decision or stopping rule."""
        hp, budget = self.hparams, self.trainer.max_steps
        x, y = self._batch = batches[0]
        limits = np.zeros(len(self.seed_list), np.int64)
        for i, a in enumerate(self.attempts):
            if not self.ended[i]:
                left = a.updates_until_restart(int(self.updates[i]))
                limits[i] = min(len(batches), budget - int(self.updates[i]), *(() if left is None else (left,)))
        result = self._updates(x, y, limits)
        self.clock = min(self.clock + len(batches), budget)
        self.streak[:] = result.streak
        trained = limits > 0
        for i in np.flatnonzero(trained):
            self._after_updates(int(i), result)
        if self.population:
            loss = float(result.last_loss[trained].mean()) if trained.any() else float("nan")
            self.log_dict({"population/training": float((~np.array(self.ended)).sum()), "population/loss": loss,
                           "step": float(self.updates.max())}, on_step=True, on_epoch=False)
        else:
            acc = float(((torch.from_numpy(result.last_output[0]) >= 0.5) == (y.cpu() >= 0.5)).float().mean())
            self.log_dict({"loss/train": float(result.last_loss[0]), "acc/train": acc, "step": float(self.updates[0])}, on_step=True, on_epoch=False)
        # the chunk's first and last losses of the seeds that trained, for callbacks.divergence
        return {"loss": torch.from_numpy(np.stack([result.first_loss[trained], result.last_loss[trained]])),
                "update": int(self.updates.max()), "samples": int(result.done.sum()) * len(x)}

    def _updates(self, x: torch.Tensor, y: torch.Tensor, limits: np.ndarray) -> Updates:
        """Up to ``limits[i]`` full-batch updates of seed i on points ``x`` (N, 2), targets ``y``
        (N, 1), each a ``seed_update`` of every seed still updating (one call per Adam step count
        among them: one unless seeds restarted). A seed also stops once every point has been right
        on ``stop_after_perfect`` forward passes in a row (counting on from its streak); it then
        leaves the computation, so the cost falls as a population finishes."""
        H, stop_after = self.hparams.hidden_units, self.hparams.stop_after_perfect
        # the updates run here, outside Lightning's optimizer.step: Lightning's per-step machinery
        # costs several times an update of a 21-weight net (docs/speed.md)
        optimizer = self.optimizers(use_pl_optimizer=False)
        update = (compiled_update if self.compiled else update_for)(H, optimizer.settings)
        S, N = len(limits), len(x)
        streak, done, first = self.streak.astype(np.int64).copy(), np.zeros(S, np.int64), np.full(S, -1, np.int64)
        first_loss, last_loss, last_output = np.zeros(S, np.float32), np.zeros(S, np.float32), np.zeros((S, N, 1), np.float32)
        rows, first_pass = np.flatnonzero(limits > 0), True
        while rows.size:
            groups = optimizer.rows(rows.tolist())
            sizes = [len(g.index) for g in groups]
            rows = np.concatenate([g.index.cpu().numpy() for g in groups])  # the rows in the groups' order
            if self.compiled:
                groups = [rows_for_compiled(g) for g in groups]
            k, run, fc, lim = done[rows].copy(), streak[rows].copy(), first[rows].copy(), limits[rows]
            while True:
                if len(groups) == 1:
                    g = groups[0]
                    losses, o, ok = update(g.weights, g.exp_avg, g.exp_avg_sq, g.step, x, y)
                else:
                    results = [update(g.weights, g.exp_avg, g.exp_avg_sq, g.step, x, y) for g in groups]
                    losses, o, ok = (torch.cat([r[j][:n] for r, n in zip(results, sizes)]) for j in range(3))
                ok = ok.cpu().numpy()[: rows.size]
                if first_pass:
                    first_loss[rows], first_pass = losses[: rows.size].cpu().numpy(), False
                fc = np.where((fc < 0) & ok, k, fc)
                k += 1
                run = np.where(ok, run + 1, 0)
                stop = (k >= lim) | (run >= stop_after)
                if stop.any():
                    break
            for g in groups:
                optimizer.store(g)
            done[rows], streak[rows], first[rows] = k, run, fc
            last_loss[rows], last_output[rows] = losses[: rows.size].cpu().numpy(), o[: rows.size].cpu().numpy()
            rows = rows[~stop]
        return Updates(done, first, streak, last_loss, last_output, first_loss)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.stop_when_every_seed_has_ended()

    def _after_updates(self, i: int, result) -> None:
        """Seed ``i``'s bookkeeping after its updates of this step: its first 100%, then the end of
        its training (100% held, or its budget spent), or a restart."""
        hp, a = self.hparams, self.attempts[i]
        in_attempt = int(self.updates[i]) - a.current["start_update"]
        if result.first_correct[i] >= 0:
            a.succeeded(in_attempt + int(result.first_correct[i]) + 1)  # counted within the attempt
        self.updates[i] += int(result.done[i])
        now = int(self.updates[i])
        if self.streak[i] >= hp.stop_after_perfect:
            a.end(now, f"100% held for {hp.stop_after_perfect:,} updates")
            self.ended[i] = True
        elif now >= self.trainer.max_steps:
            a.end(now, f"update budget of {self.trainer.max_steps:,} spent")
            self.ended[i] = True
        elif a.restart_due(now):
            seed = a.restart(now, f"no 100% after {hp.restart_after:,} updates: re-initialised")
            log.info("seed %d: attempt %d reached no 100%% in %d updates; re-initialising with seed %d", self.seed_list[i], len(a) - 1, hp.restart_after, seed)
            self._initialise(i, seed)
            self.optimizers().optimizer.reset_rows([i])

    # -- checkpoints and processes ---------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        checkpoint["attempts"] = [a.state_dict() for a in self.attempts]
        checkpoint["seeds"] = {"updates": torch.from_numpy(self.updates.copy()), "streak": torch.from_numpy(self.streak.copy()), "ended": list(self.ended), "clock": self.clock}

    def on_load_checkpoint(self, checkpoint):
        for a, records in zip(self.attempts, checkpoint.get("attempts", [])):
            a.load_state_dict(records)
        seeds = checkpoint.get("seeds")
        if seeds:
            self.updates[:], self.streak[:] = seeds["updates"].numpy(), seeds["streak"].numpy()
            self.ended, self.clock = list(seeds["ended"]), seeds.get("clock", 0)

    def _seed_state(self, i: int) -> dict:
        return {"weights": self.seed_weights[i].detach().cpu(), "updates": int(self.updates[i]), "streak": int(self.streak[i]), "attempts": self.attempts[i].state_dict()}

    def _load_seed_state(self, i: int, state: dict) -> None:
        with torch.no_grad():
            self.seed_weights[i] = state["weights"].to(self.seed_weights.device)
        self.updates[i], self.streak[i] = state["updates"], state["streak"]
        self.attempts[i].load_state_dict(state["attempts"])
        self.ended[i] = True

    # -- evaluation -------------------------------------------------------------------------------
    @torch.no_grad()
    def activations(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every seed's hidden activations ``(S, N, H)`` and output ``(S, N, 1)`` on points ``x`` ``(N, 2)``."""
        act = torch.sigmoid if self.hparams.activation == "sigmoid" else step
        return grid_forward(*unflatten(self.seed_weights.detach().cpu(), self.hparams.hidden_units), x.cpu(), act)

    def test_step(self, batch, batch_idx):
        x, y = batch
        h, o = self.activations(x)
        targets = y.cpu().expand_as(o)
        loss = F.binary_cross_entropy(o, targets, reduction="none").mean(dim=(1, 2))
        right = ((o >= 0.5) == (targets >= 0.5)).sum(dim=(1, 2))  # points right, per seed
        acc = right / len(x)
        if self.population:
            self.log_dict({"hp/success_rate": float((acc == 1).float().mean()), "hp/acc_test": float(acc.mean())}, on_step=False, on_epoch=True, sync_dist=True)
        else:
            self.log_dict({"hp/loss_test": float(loss[0]), "hp/acc_test": float(acc[0])}, on_step=False, on_epoch=True, sync_dist=True)  # every process: the same 9 points
        self.last_test = {"points": x.cpu(), "targets": y.cpu(), "hidden": h, "output": o, "loss": loss, "right": right}

    def _test_succeeded(self, i: int) -> bool:
        return int(self.last_test["right"][i]) == len(self.last_test["points"])

    def seed_outcomes(self) -> list[dict]:
        """One entry per seed after the test: ``seed``, ``outcome`` (succeeded: 100% on the test),
        ``updates``, ``first_perfect_update`` (of its last attempt), ``attempts``, test figures, and
        ``attempt_records``."""
        t = self.last_test
        trained = bool(self.updates.any())
        per_seed = []
        for i, seed in enumerate(self.seed_list):
            attempts = self.attempts[i].summary(int(self.updates[i]), "stopped after reaching 100%", "stopped before reaching 100%") if trained else []
            right, total = int(t["right"][i]), len(t["points"])
            per_seed.append({
                "seed": seed, "outcome": "succeeded" if right == total else "failed",
                "updates": int(self.updates[i]), "first_perfect_update": attempts[-1]["first_perfect_update"] if attempts else None,
                "attempts": len(attempts), "test_acc": right / total, "test_correct": right, "test_loss": float(t["loss"][i]),
                "attempt_records": attempts,
            })
        return per_seed

    def test_summary(self) -> dict:
        """results.json: the analysed seed as a single run reports it (accuracy, weights, the
        point table, dividing lines, training record); a population adds every seed's outcome,
        its success rate and updates to success."""
        t = self.last_test
        per_seed = self.seed_outcomes()
        s = self.analysed_seed()
        i = self.seed_list.index(s)
        weights, mine = self.weights_of(s), per_seed[i]
        table = point_table(t["points"], t["targets"], t["hidden"][i], t["output"][i])
        summary = {
            "test_loss": mine["test_loss"], "test_acc": mine["test_acc"], "test_correct": mine["test_correct"], "test_total": len(table),
            "activation": self.hparams.activation, "hidden_units": self.hparams.hidden_units, "weight_scale": self.hparams.weight_scale,
            "weights": weights, "point_table": table, "dividing_lines": dividing_lines(weights["hidden_weight"], weights["hidden_bias"]),
            "updates": mine["updates"], "attempts": mine["attempt_records"], "first_perfect_update": mine["first_perfect_update"],
        }
        return {"analysed_seed": s, **summary, **self.population_summary(per_seed)} if self.population else summary
