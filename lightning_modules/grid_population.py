"""GridPopulation: N independent grid perceptrons (seeds ``init_seed .. init_seed + N - 1``)
trained together in one process.

The 21-parameter net spends nearly all of an update in per-call overhead, so N of them in one
batched computation cost little more than one: row s of every array is seed s's network, and
``grid_fast.adam_updates`` updates each row exactly as it would update that network alone (the
same function serves ``GridPerceptron``, with one row). Each seed keeps its own life: its initial
weights, its Adam state and step count, its stopping rule (100% held for ``stop_after_perfect``
updates, or ``max_updates`` spent) and its restarts (``Attempts``). A seed that has ended is
frozen, weights and optimiser state alike, and leaves the computation, so the cost falls as the
population finishes; the run ends when every seed has ended. So seed s in a population ends with
the same outcome, first success and weights, bit for bit, as ``seed=s`` trained alone
(``tests/test_population.py``).

The updates run in NumPy on the CPU whatever the accelerator: the arrays are a few kilobytes.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
import pytorch_lightning as pl
import torch

from analysis.grid import dividing_lines, point_table
from analysis.population import success_rate, updates_distribution
from base.errors import check, check_int
from lightning_modules.attempts import Attempts
from lightning_modules.grid import check_grid_settings
from lightning_modules.grid_fast import adam_updates, size, unflatten
from lightning_modules.grid_nets import WEIGHT_KEYS, GridNet
from lightning_modules.seed_share import SeedShare

log = logging.getLogger(__name__)


class GridPopulation(SeedShare, pl.LightningModule):
    """``seeds`` sigmoid grid perceptrons, trained with the reference's settings (see
    ``GridPerceptron`` for the arguments they share); ``analyse_seed`` is the seed whose net the
    figures and the printout show (default: the first that reached 100%)."""

    study = "grid"  # results.json's family (orchestration.studies)
    first_success_key = "first_perfect_update"

    def __init__(
        self,
        seeds: int = 2,
        hidden_units: int = 5,
        activation: str = "sigmoid",
        init_std: float = 0.15,
        lr: float = 0.001,
        weight_decay: float = 1e-5,
        max_updates: int = 200_000,
        stop_after_perfect: int = 2000,
        restarts: int = 0,
        restart_after: int = 50_000,
        weights: Optional[dict] = None,
        weights_file: Optional[str] = None,
        weight_scale: float = 1.0,
        init_seed: int = 0,
        fast: bool = True,
        analyse_seed: Optional[int] = None,
    ):
        super().__init__()
        check_int("seeds", seeds, 1)
        check_grid_settings(hidden_units, init_std, lr, weight_decay, max_updates, stop_after_perfect, restarts, restart_after, weight_scale)
        check(activation == "sigmoid", "activation", activation, "sigmoid (a population is trained; a step net has nothing to train)")
        check(weights is None and weights_file is None, "weights", weights if weights is not None else weights_file,
              "null: a population trains from N(0, init_std) initialisations, one per seed")
        check(fast is True, "fast", fast, "true (a population trains with the NumPy updates only)")
        seed_list = [int(init_seed) + i for i in range(seeds)]
        check(analyse_seed is None or analyse_seed in seed_list, "analyse_seed", analyse_seed,
              f"null (the first seed that succeeds) or one of the trained seeds, {seed_list[0]}..{seed_list[-1]}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.seed_list = seed_list
        P = size(hidden_units)
        # the population's state, one row per seed: NumPy arrays on the CPU (Lightning moves
        # parameters and buffers to the accelerator; these stay), saved in checkpoints by hand
        self.theta = np.zeros((seeds, P), np.float32)
        self.exp_avg = np.zeros((seeds, P), np.float32)
        self.exp_avg_sq = np.zeros((seeds, P), np.float32)
        self.adam_step = np.zeros(seeds, np.int64)
        self.updates = np.zeros(seeds, np.int64)  # over all attempts
        self.streak = np.zeros(seeds, np.int64)
        self.ended = np.zeros(seeds, bool)
        self.attempts = [Attempts(s, restarts, restart_after, first_key="first_perfect_update") for s in seed_list]
        for i, a in enumerate(self.attempts):
            self._initialise(i, a.start(0))
        self.last_test: dict[str, Any] = {}

    # -- weights ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _initialise(self, i: int, seed: int) -> None:
        """Row ``i`` gets the weights ``GridPerceptron`` draws from ``seed`` (the same generator
        calls, in the same order) and a fresh Adam state."""
        hp, H = self.hparams, self.hparams.hidden_units
        generator = torch.Generator().manual_seed(int(seed))
        shapes = [(H, 2), (H,), (1, H), (1,)]
        values = [torch.randn(shape, generator=generator) * hp.init_std * hp.weight_scale for shape in shapes]
        self.theta[i] = torch.cat([v.flatten() for v in values]).numpy()
        self.exp_avg[i] = 0
        self.exp_avg_sq[i] = 0
        self.adam_step[i] = 0
        self.streak[i] = 0

    def weights_of(self, seed: int) -> dict[str, list]:
        """Seed ``seed``'s weights as ``GridPerceptron.weights_dict`` gives them."""
        parts = unflatten(self.theta[self.seed_list.index(seed)], self.hparams.hidden_units)
        return {k: v.tolist() for k, v in zip(WEIGHT_KEYS, parts)}

    @property
    def net(self) -> GridNet:
        """The analysed seed's network (after the test; the first seed's before)."""
        return self.net_of(self.analysed_seed() if self.last_test else self.seed_list[0])

    def net_of(self, seed: int) -> GridNet:
        """A ``GridNet`` holding seed ``seed``'s weights (for figures and analysis)."""
        net = GridNet(self.hparams.hidden_units, "sigmoid")
        weights = self.weights_of(seed)
        with torch.no_grad():
            for p, key in zip((net.hidden.weight, net.hidden.bias, net.output.weight, net.output.bias), WEIGHT_KEYS):
                p.copy_(torch.tensor(weights[key]))
        return net

    # -- what the decision-map figures show ---------------------------------------------------------
    def training_view(self) -> None:
        """No single net trains here: the maps are drawn after the test only."""
        return None

    def nets_to_show(self) -> list[dict]:
        """The analysed seed (the files a single run writes), and one seed that failed, if any,
        with the prefix ``seed<s>_``."""
        shown = [self.analysed_seed()]
        failed = self.failed_seed()
        if failed is not None and failed not in shown:
            shown.append(failed)
        out = []
        for k, seed in enumerate(shown):
            i = self.seed_list.index(seed)
            outcome = "reached 100%" if int(self.last_test["right"][i]) == len(self.last_test["points"]) else "did not reach 100%"
            out.append({"net": self.net_of(seed), "weights": self.weights_of(seed), "updates": int(self.updates[i]),
                        "prefix": "" if k == 0 else f"seed{seed}_", "label": f"seed {seed} ({outcome})"})
        return out

    # -- training --------------------------------------------------------------------------------
    def configure_optimizers(self):
        return None  # the updates are grid_fast's Adam, with a step count per seed

    def on_train_start(self):
        self.take_share()  # under several processes: only this process's seeds

    def on_train_end(self):
        self.gather_seeds()

    def _leave(self, i: int) -> None:
        self.ended[i] = True

    def _seed_state(self, i: int) -> dict:
        return {**{k: getattr(self, k)[i].copy() for k in self.STATE}, "attempts": self.attempts[i].state_dict()}

    def _load_seed_state(self, i: int, state: dict) -> None:
        for k in self.STATE:
            getattr(self, k)[i] = state[k]
        self.attempts[i].load_state_dict(state["attempts"])

    def training_step(self, batches, batch_idx):
        """Up to ``len(batches)`` updates of every seed still training, each stopping at its own
        budget, restart decision or stopping rule."""
        hp = self.hparams
        x, y = batches[0]
        n = len(batches)
        limits = np.zeros(hp.seeds, np.int64)
        for i, a in enumerate(self.attempts):
            if self.ended[i]:
                continue
            in_attempt = int(self.updates[i]) - a.current["start_update"]
            limit = min(n, hp.max_updates - in_attempt)
            left = a.updates_until_restart(int(self.updates[i]))
            limits[i] = limit if left is None else min(limit, left)
        result = adam_updates(self.theta, self.exp_avg, self.exp_avg_sq, self.adam_step, hp.hidden_units,  # in place
                              x.cpu().numpy().astype(np.float32), y.cpu().numpy().astype(np.float32), limits,
                              lr=hp.lr, weight_decay=hp.weight_decay, stop_after_correct=hp.stop_after_perfect, streak=self.streak)
        self.streak[:] = result.streak
        for i in np.flatnonzero(limits > 0):
            self._after_chunk(int(i), result)
        active = ~self.ended
        self.log_dict({"population/training": float(active.sum()), "population/loss": float(result.last_loss[limits > 0].mean()),
                       "step": float(self.updates.max())}, on_step=True, on_epoch=False)
        if not active.any():  # every seed has ended
            self.trainer.should_stop = True
        trained = limits > 0  # the chunk's first and last losses of the seeds that trained, for callbacks.divergence
        return {"loss": torch.from_numpy(np.stack([result.first_loss[trained], result.last_loss[trained]])),
                "update": int(self.updates.max()), "samples": int(result.done.sum()) * len(x)}

    def _after_chunk(self, i: int, result) -> None:
        """Seed ``i``'s bookkeeping after its updates, in ``GridPerceptron``'s order of decisions."""
        hp, a = self.hparams, self.attempts[i]
        in_attempt = int(self.updates[i]) - a.current["start_update"]
        if result.first_correct[i] >= 0:
            a.succeeded(in_attempt + int(result.first_correct[i]) + 1)  # counted within the attempt
        self.updates[i] += int(result.done[i])
        now = int(self.updates[i])
        if self.streak[i] >= hp.stop_after_perfect:
            a.end(now, f"100% held for {hp.stop_after_perfect:,} updates")
            self.ended[i] = True
        elif now - a.current["start_update"] >= hp.max_updates:
            a.end(now, f"update budget of {hp.max_updates:,} spent")
            self.ended[i] = True
        elif a.restart_due(now):
            seed = a.restart(now, f"no 100% after {hp.restart_after:,} updates: re-initialised")
            log.info("seed %d: attempt %d reached no 100%% in %d updates; re-initialising with seed %d", self.seed_list[i], len(a) - 1, hp.restart_after, seed)
            self._initialise(i, seed)

    STATE = ("theta", "exp_avg", "exp_avg_sq", "adam_step", "updates", "streak", "ended")

    def on_save_checkpoint(self, checkpoint):
        checkpoint[Attempts.CHECKPOINT_KEY] = [a.state_dict() for a in self.attempts]
        checkpoint["population"] = {k: torch.from_numpy(getattr(self, k).copy()) for k in self.STATE}

    def on_load_checkpoint(self, checkpoint):
        for a, records in zip(self.attempts, checkpoint.get(Attempts.CHECKPOINT_KEY, [])):
            a.load_state_dict(records)
        for k, v in checkpoint.get("population", {}).items():
            getattr(self, k)[...] = v.numpy()

    # -- evaluation -------------------------------------------------------------------------------
    def test_step(self, batch, batch_idx):
        x, y = batch
        W1, b1, W2, b2 = (torch.from_numpy(part.copy()) for part in unflatten(self.theta, self.hparams.hidden_units))
        h = torch.sigmoid(x.cpu() @ W1.transpose(1, 2) + b1[:, None, :])  # (S, N, H)
        o = torch.sigmoid(h @ W2.transpose(1, 2) + b2[:, None, :])  # (S, N, 1)
        loss = torch.nn.functional.binary_cross_entropy(o, y.cpu().expand_as(o), reduction="none").mean(dim=(1, 2))
        right = ((o >= 0.5) == (y.cpu() >= 0.5)).sum(dim=(1, 2))  # points right, per seed
        acc = right / len(x)
        self.log_dict({"hp/success_rate": float((acc == 1).float().mean()), "hp/acc_test": float(acc.mean())}, on_step=False, on_epoch=True)
        self.last_test = {"points": x.cpu(), "targets": y.cpu(), "hidden": h, "output": o, "loss": loss, "acc": acc, "right": right}

    def analysed_seed(self) -> int:
        """``analyse_seed``, else the first seed that reached 100% on the test, else the first seed."""
        if self.hparams.analyse_seed is not None:
            return int(self.hparams.analyse_seed)
        total = len(self.last_test["points"])
        right = [s for s, r in zip(self.seed_list, self.last_test["right"].tolist()) if r == total]
        return right[0] if right else self.seed_list[0]

    def failed_seed(self) -> int | None:
        """The first seed that did not reach 100% on the test, if any (its figures are drawn too)."""
        total = len(self.last_test["points"])
        return next((s for s, r in zip(self.seed_list, self.last_test["right"].tolist()) if r < total), None)

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
        """results.json of a population: the analysed seed as a single run reports it (so the
        printout, the figures and report.py show one net), every seed's outcome, and the
        population's success rate and updates to success."""
        t = self.last_test
        per_seed = self.seed_outcomes()
        s = self.analysed_seed()
        i = self.seed_list.index(s)
        weights = self.weights_of(s)
        table = point_table(t["points"], t["targets"], t["hidden"][i], t["output"][i])
        mine = per_seed[i]
        outcomes = [r["outcome"] == "succeeded" for r in per_seed]
        return {
            # the analysed seed, as a single run reports it
            "analysed_seed": s,
            "test_loss": mine["test_loss"], "test_acc": mine["test_acc"], "test_correct": mine["test_correct"], "test_total": len(table),
            "activation": "sigmoid", "hidden_units": self.hparams.hidden_units, "weight_scale": self.hparams.weight_scale,
            "weights": weights, "point_table": table, "dividing_lines": dividing_lines(weights["hidden_weight"], weights["hidden_bias"]),
            "updates": mine["updates"], "attempts": mine["attempt_records"], "first_perfect_update": mine["first_perfect_update"],
            # the population
            "population": self.hparams.seeds,
            "seeds": [{k: v for k, v in r.items() if k != "attempt_records"} for r in per_seed],
            "success": success_rate(outcomes),
            "success_rate": sum(outcomes) / len(outcomes),
            "updates_to_success": updates_distribution([r["first_perfect_update"] if r["outcome"] == "succeeded" else None for r in per_seed],
                                                       [r["updates"] for r in per_seed]),
        }
