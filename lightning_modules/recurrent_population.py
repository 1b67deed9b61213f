"""SequencePopulation: N independent SRNs or LSTMs (seeds ``init_seed .. init_seed + N - 1``)
trained together in one process.

Networks of 2-3 units spend an update mostly in per-operation overhead, so N of them in one
batched computation cost little more than one. Every weight has a leading seed dimension; the
recurrence is a loop over time steps of batched matrix products (``torch.bmm``), one matrix per
seed, and the optimiser (SGD or Adam, torch's update rules) acts element by element with a step
count per seed. Each seed keeps its own life, as ``SequencePredictor`` + ``SolvedStopping`` give
it alone: its initial weights (the same generator calls), its own sequences (the batches, the
validation and the test sequences it would draw alone; ``GrammarDataModule(seeds=N)``), its
evaluations every ``eval_every`` updates, its restarts (``Attempts``), its early stop (solved on
``solved_evaluations`` evaluations in a row, then ``solved_patience`` updates more) and its budget
(``max_updates``). A seed that has
ended is frozen and leaves the computation, so the cost falls as the population finishes.

Every batch is padded to the language's longest sequence, so a seed's arithmetic does not
depend on the other seeds: seed s in a population ends as a population of one (``seeds=1``
through this module) does, bit for bit (``tests/test_population.py``). Against the fused
``nn.RNN``/``nn.LSTM`` of a single run (``SequencePredictor``), which sums in another order, the
agreement is to float rounding: the same losses to about 1e-6 over the first updates, which can
part over thousands of updates.

Shapes: weights (S, ...); inputs (S, B, T, Sym) one-hot; states (S, B, T, H).
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections import Counter
from typing import Optional, Union

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from analysis.population import success_rate, updates_distribution
from analysis.recurrent import generalisation
from analysis.stopping import after_evaluation, stop_due
from base.errors import check, check_int
from lightning_modules.attempts import Attempts
from lightning_modules.recurrent import check_sequence_settings
from lightning_modules.recurrent_nets import CELLS, initialise
from lightning_modules.seed_share import SeedShare

log = logging.getLogger(__name__)

NAMES = ("W", "U", "b", "H0", "V", "c")  # input, recurrent, bias, initial state (SRN), output weight and bias


def _net_weights(net) -> dict[str, torch.Tensor]:
    """A single ``SRN``/``LSTM``'s weights in the population's layout (x W, h U, h V)."""
    cell = net.rnn if hasattr(net, "rnn") else net.lstm
    out = {"W": cell.weight_ih_l0.T, "U": cell.weight_hh_l0.T, "b": cell.bias_ih_l0 + cell.bias_hh_l0,
           "V": net.out.weight.T, "c": net.out.bias}
    if hasattr(net, "H0"):
        out["H0"] = net.H0
    return {k: v.detach().clone() for k, v in out.items()}


def forward(p: dict[str, torch.Tensor], x: torch.Tensor, steps: int, lstm: bool, trace: bool = False):
    """Logits (S, B, T, Sym) of the networks ``p`` on inputs ``x`` (S, B, T, Sym), computing the
    first ``steps`` time steps (the rest are padding: their logits are left at the output bias).
    With ``trace``, also the hidden states (S, B, steps, H).

    The products run time-major (rows ordered by time step, then sequence), so that the rows of
    the first ``steps`` positions, and the order in which their gradients are summed, are the same
    whatever ``steps`` the other seeds' batches ask for."""
    S, B, T, Sym = x.shape
    H = p["U"].shape[1]
    x_tm = x.transpose(1, 2)[:, :steps].reshape(S, steps * B, Sym)  # (S, steps B, Sym), time-major
    xw = torch.baddbmm(p["b"][:, None, :], x_tm, p["W"]).view(S, steps, B, -1)
    if lstm:
        h = c = x.new_zeros(S, B, H)
    else:
        h = torch.tanh(p["H0"])[:, None, :].expand(S, B, H)
    hs = []
    for t in range(steps):
        z = torch.baddbmm(xw[:, t], h, p["U"])  # x_t W + b + h U
        if lstm:
            i, f, g, o = z.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:
            h = torch.tanh(z)
        hs.append(h)
    hidden = torch.stack(hs, dim=1)  # (S, steps, B, H)
    out = torch.baddbmm(p["c"][:, None, :], hidden.view(S, steps * B, H), p["V"]).view(S, steps, B, Sym).transpose(1, 2)
    if steps < T:
        out = torch.cat([out, p["c"][:, None, None, :].expand(S, B, T - steps, Sym)], dim=2)
    return (out, hidden.transpose(1, 2)) if trace else out


class SequencePopulation(SeedShare, pl.LightningModule):
    """``seeds`` SRNs or LSTMs on a counting language (arguments as ``SequencePredictor``), with
    the run's schedule: ``max_updates`` (the single run's ``trainer.max_steps``), ``eval_every``
    (its ``val_check_interval``), ``solved_evaluations`` and ``solved_patience`` (its
    ``SolvedStopping``'s ``evaluations`` and ``patience``; None: no early stop). ``analyse_seed``: the seed whose net the figures and printout show (default: the
    first one solved on the test)."""

    study = "recurrent"  # results.json's family (orchestration.studies)
    first_success_key = "first_solved_update"

    def __init__(
        self,
        seeds: int = 2,
        cell: str = "srn",
        hidden_units: int = 2,
        num_symbols: int = 2,
        init: Union[str, float] = 0.001,
        optimizer: str = "sgd",
        lr: float = 0.005,
        momentum: float = 0.0,
        weight_decay: float = 1e-4,
        init_seed: int = 0,
        restarts: int = 0,
        restart_after: int = 20_000,
        max_updates: int = 100_000,
        eval_every: int = 1000,
        solved_evaluations: Optional[int] = None,
        solved_patience: Optional[int] = 0,
        analyse_seed: Optional[int] = None,
    ):
        super().__init__()
        check_int("seeds", seeds, 1)
        check_sequence_settings(cell, hidden_units, num_symbols, init, optimizer, lr, momentum, weight_decay, restarts, restart_after)
        for key, value in (("max_updates", max_updates), ("eval_every", eval_every)):
            check_int(key, value, 1)
        check(solved_evaluations is None or (isinstance(solved_evaluations, int) and solved_evaluations >= 1), "solved_evaluations", solved_evaluations, "null or an integer >= 1")
        check(solved_patience is None or (isinstance(solved_patience, int) and solved_patience >= 0), "solved_patience", solved_patience, "null or an integer >= 0")
        seed_list = [int(init_seed) + i for i in range(seeds)]
        check(analyse_seed is None or analyse_seed in seed_list, "analyse_seed", analyse_seed,
              f"null (the first seed solved on the test) or one of the trained seeds, {seed_list[0]}..{seed_list[-1]}")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.seed_list = seed_list
        self.lstm = cell == "lstm"
        template = CELLS[cell](num_symbols, hidden_units)
        self.shapes = {k: tuple(v.shape) for k, v in _net_weights(template).items()}
        P = sum(math.prod(shape) for shape in self.shapes.values())
        # the population's weights and optimiser state: one flat row of P numbers per seed (one
        # optimiser update for all of a seed's weights); buffers, so they go to the device
        self.register_buffer("theta", torch.zeros(seeds, P))
        self.register_buffer("moment1", torch.zeros(seeds, P))  # Adam's first moment, or SGD's momentum
        self.register_buffer("moment2", torch.zeros(seeds, P))  # Adam's second moment
        self.register_buffer("opt_step", torch.zeros(seeds, dtype=torch.int64))
        self.updates = 0  # every seed still training has made this many updates
        self.ended = [False] * seeds
        self.stopped_at: list[Optional[int]] = [None] * seeds
        self.made: list[Optional[int]] = [None] * seeds  # updates a seed made, once gathered from another process
        self.solved_streak = [0] * seeds
        self.held_at: list[Optional[int]] = [None] * seeds  # the update at which a seed's streak reached solved_evaluations
        self.first_solved: list[Optional[int]] = [None] * seeds
        self.first_solved_seconds: list[Optional[float]] = [None] * seeds
        self.attempts = [Attempts(s, restarts, restart_after, first_key="first_solved_update") for s in seed_list]
        for i, a in enumerate(self.attempts):
            self._initialise(i, a.start(0))
        self.sets: dict | None = None
        self.last_test: dict = {}
        self._t0 = time.perf_counter()

    # -- weights ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _initialise(self, i: int, seed: int) -> None:
        """Row ``i`` gets the weights ``SequencePredictor`` draws from ``seed`` and a fresh optimiser state."""
        net = CELLS[self.hparams.cell](self.hparams.num_symbols, self.hparams.hidden_units)
        initialise(net, self.hparams.init, torch.Generator().manual_seed(int(seed)))
        weights = _net_weights(net)
        self.theta[i] = torch.cat([weights[k].flatten() for k in self.shapes]).to(self.theta.device)
        self.moment1[i] = 0
        self.moment2[i] = 0
        self.opt_step[i] = 0

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views ``{W, U, b, (H0,) V, c}``, each (R, ...), into flat rows ``(R, P)``."""
        out, start = {}, 0
        for name, shape in self.shapes.items():
            size = math.prod(shape)
            out[name] = flat[:, start : start + size].view(-1, *shape)
            start += size
        return out

    def weights(self, rows=None) -> dict[str, torch.Tensor]:
        return self.unflatten(self.theta if rows is None else self.theta[rows])

    def net_of(self, seed: int):
        """A single ``SRN``/``LSTM`` holding seed ``seed``'s weights (for figures and analysis)."""
        hp = self.hparams
        net = CELLS[hp.cell](hp.num_symbols, hp.hidden_units)
        w = {k: v[self.seed_list.index(seed)].detach().cpu() for k, v in self.weights().items()}
        cell = net.rnn if hasattr(net, "rnn") else net.lstm
        with torch.no_grad():
            cell.weight_ih_l0.copy_(w["W"].T)
            cell.weight_hh_l0.copy_(w["U"].T)
            cell.bias_ih_l0.copy_(w["b"])
            net.out.weight.copy_(w["V"].T)
            net.out.bias.copy_(w["c"])
            if "H0" in w:
                net.H0.copy_(w["H0"])
        return net

    @property
    def net(self):
        """The analysed seed's network (after the test; the first seed's before)."""
        return self.net_of(self.analysed_seed() if self.last_test else self.seed_list[0])

    # -- training --------------------------------------------------------------------------------
    def configure_optimizers(self):
        return None  # torch's SGD / Adam rules, applied below with a step count per seed

    def on_fit_start(self):
        self._t0 = time.perf_counter()

    def on_train_start(self):
        self.take_share()  # under several processes: only this process's seeds

    def on_train_end(self):
        self.gather_seeds()

    def _leave(self, i: int) -> None:
        self._end(i)

    def _made(self, i: int) -> int:
        """The updates seed ``i`` made."""
        if self.made[i] is not None:
            return self.made[i]
        return self.stopped_at[i] or min(self.updates, self.hparams.max_updates)

    def _seed_state(self, i: int) -> dict:
        return {"theta": self.theta[i].cpu(), "opt_step": int(self.opt_step[i]), "attempts": self.attempts[i].state_dict(),
                "stopped_at": self.stopped_at[i], "first_solved": self.first_solved[i],
                "first_solved_seconds": self.first_solved_seconds[i], "made": self._made(i)}

    def _load_seed_state(self, i: int, state: dict) -> None:
        self.theta[i] = state["theta"].to(self.theta.device)
        self.opt_step[i] = state["opt_step"]
        self.attempts[i].load_state_dict(state["attempts"])
        self.stopped_at[i], self.first_solved[i] = state["stopped_at"], state["first_solved"]
        self.first_solved_seconds[i], self.made[i] = state["first_solved_seconds"], state["made"]
        self.ended[i] = True

    def _sets(self) -> dict:
        if self.sets is None:
            sets = self.trainer.datamodule.population_sets(self.seed_list)
            self.sets = {split: {k: v.to(self.device) for k, v in batch.items()} for split, batch in sets.items()}
        return self.sets

    @torch.no_grad()
    def _step(self, rows: torch.Tensor, flat: torch.Tensor) -> None:
        """One optimiser update of ``rows`` (R,), whose weights are the rows ``flat`` (R, P) with
        their gradients: torch's SGD (momentum, dampening 0) or Adam (single-tensor rule), element
        by element, with each seed's own step count."""
        hp = self.hparams
        self.opt_step[rows] += 1
        p, g = flat.detach(), flat.grad
        if hp.weight_decay:
            g = g + hp.weight_decay * p
        if hp.optimizer == "adam":
            beta1, beta2 = 0.9, 0.999
            step = self.opt_step[rows].double()[:, None]
            m = self.moment1[rows].lerp_(g, 1 - beta1)
            v = self.moment2[rows].mul_(beta2).addcmul_(g, g, value=1 - beta2)
            bias1 = (1 - beta1**step).to(p.dtype)
            bias2_sqrt = (1 - beta2**step).sqrt().to(p.dtype)
            self.theta[rows] = p - (hp.lr / bias1) * (m / (v.sqrt() / bias2_sqrt + 1e-8))
            self.moment1[rows], self.moment2[rows] = m, v
        else:
            if hp.momentum:
                first = (self.opt_step[rows] == 1)[:, None]
                g = torch.where(first, g, self.moment1[rows] * hp.momentum + g)
                self.moment1[rows] = g
            self.theta[rows] = p - hp.lr * g

    def training_step(self, batch, batch_idx):
        """One update of every seed still training, on its own batch (the batch may still hold
        seeds that ended after it was drawn: they are left out)."""
        active = [i for i, e in enumerate(self.ended) if not e]
        rows = torch.tensor(active, device=self.device)
        drawn = batch["rows"].tolist()
        keep = torch.tensor([drawn.index(i) for i in active], device=self.device)
        flat = self.theta[rows].requires_grad_()  # a copy of the active rows: the leaf the gradients land on
        params = self.unflatten(flat)
        x, targets, valid = batch["inputs"][keep], batch["targets"][keep], batch["valid"][keep]
        steps = int(valid.any(dim=1).sum(dim=1).max())  # the longest real sequence: the rest is padding
        logits = forward(params, x, steps, self.lstm)
        nll = F.cross_entropy(logits.flatten(0, 2), targets.flatten(), ignore_index=-100, reduction="none").view(len(active), -1)
        per_seed = nll.sum(dim=1) / valid.flatten(1).sum(dim=1)  # each seed's mean over its real positions
        per_seed.sum().backward()  # each seed's gradient is that of its own loss
        self._step(rows, flat)
        self.updates += 1
        if self.updates % self.hparams.eval_every == 0:
            self._evaluate(active)
        else:
            self._stop_the_held()
        for i in active:
            if not self.ended[i] and self.updates >= self.hparams.max_updates:
                self._end(i)
        if self.updates % 50 == 0:  # logging every update would cost more than a small population's update
            self.log_dict({"population/training": float(len(active)), "population/loss": float(per_seed.detach().mean()), "step": float(self.updates)},
                          on_step=True, on_epoch=False)
        if all(self.ended):
            self.trainer.should_stop = True
        return {"loss": per_seed.detach()[None], "update": self.updates, "samples": len(active) * x.shape[1]}  # loss: (1 update, seeds)

    def _end(self, i: int) -> None:
        """Seed ``i`` has ended: frozen from now on, and its sequences are no longer drawn."""
        self.ended[i] = True
        stream = getattr(self.trainer.datamodule, "population_stream", None) if self._trainer is not None else None
        if stream is not None:
            stream.ended[i] = True

    @torch.no_grad()
    def _evaluate(self, active: list[int]) -> None:
        """Each active seed on its own validation sequences; then, per seed, what the single run
        does after an evaluation: note the first solve, restart an attempt unsolved too long, and
        stop once solved on ``solved_evaluations`` evaluations in a row."""
        hp = self.hparams
        rows = torch.tensor(active, device=self.device)
        val = self._sets()["val"]
        det, targets = val["determined"][rows], val["targets"][rows]
        pred = forward(self.weights(rows), val["inputs"][rows], val["inputs"].shape[2], self.lstm).argmax(-1)
        solved = ((pred == targets) | ~det).all(dim=2).all(dim=1).tolist()  # det_acc == 1.0
        for i, ok in zip(active, solved):
            a = self.attempts[i]
            if ok:
                a.succeeded(self.updates)
            if a.restart_due(self.updates):
                seed = a.restart(self.updates, f"not solved after {hp.restart_after:,} updates: re-initialised")
                log.info("seed %d: attempt %d not solved after %d updates; re-initialising with seed %d", self.seed_list[i], len(a) - 1, hp.restart_after, seed)
                self._initialise(i, seed)
            if ok and self.first_solved[i] is None:
                self.first_solved[i] = self.updates
                self.first_solved_seconds[i] = round(time.perf_counter() - self._t0, 2)
            self.solved_streak[i], self.held_at[i] = after_evaluation(self.solved_streak[i], self.held_at[i], ok, self.updates, hp.solved_evaluations)
        self._stop_the_held()

    def _stop_the_held(self) -> None:
        """End the seeds held solved ``solved_patience`` updates ago (``SolvedStopping``'s rule)."""
        for i, held in enumerate(self.held_at):
            if not self.ended[i] and stop_due(held, self.hparams.solved_patience, self.updates):
                self.stopped_at[i] = self.updates
                self._end(i)

    STATE = ("updates", "ended", "stopped_at", "made", "solved_streak", "held_at", "first_solved", "first_solved_seconds")

    def on_save_checkpoint(self, checkpoint):
        checkpoint[Attempts.CHECKPOINT_KEY] = [a.state_dict() for a in self.attempts]
        checkpoint["population"] = {k: getattr(self, k) for k in self.STATE}

    def on_load_checkpoint(self, checkpoint):
        for a, records in zip(self.attempts, checkpoint.get(Attempts.CHECKPOINT_KEY, [])):
            a.load_state_dict(records)
        for k, v in checkpoint.get("population", {}).items():
            setattr(self, k, v)

    # -- evaluation -------------------------------------------------------------------------------
    @torch.no_grad()
    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        """Every seed on its own test sequences and on the generalisation sequences (the test
        loaders of the datamodule are not used: the sets come from ``population_sets``)."""
        if batch_idx or dataloader_idx:
            return
        sets, S = self._sets(), len(self.seed_list)
        test = sets["test"]
        logits = forward(self.weights(), test["inputs"], test["inputs"].shape[2], self.lstm)
        valid, det, targets = test["valid"], test["determined"], test["targets"]
        nll = F.cross_entropy(logits.flatten(0, 2), targets.flatten(), ignore_index=-100, reduction="none").view(S, -1)
        count = valid.flatten(1).sum(dim=1)
        probs = logits.softmax(-1)
        sq = ((probs - test["ref_probs"]) ** 2).sum(-1) * valid  # (S, B, T): the reference's measure
        sq_exact = ((probs - test["probs"]) ** 2).sum(-1) * valid
        right = ((logits.argmax(-1) == targets) & det).flatten(1).sum(dim=1)
        gen = sets["generalisation"]
        g_in = gen["inputs"].expand(S, *gen["inputs"].shape)
        g_pred = forward(self.weights(), g_in, g_in.shape[2], self.lstm).argmax(-1)
        g_wrong = ((g_pred != gen["targets"]) & gen["determined"]).sum(dim=2)  # (S, n)
        self.last_test = {
            "loss": (nll.sum(dim=1) / count).tolist(),
            "error": (sq.flatten(1).sum(dim=1) / (count * logits.shape[-1])).tolist(),
            "error_exact": (sq_exact.flatten(1).sum(dim=1) / (count * logits.shape[-1])).tolist(),
            "det_acc": (right / det.flatten(1).sum(dim=1)).tolist(),
            "solved": (right == det.flatten(1).sum(dim=1)).tolist(),
            "sequences": test["inputs"].shape[1],
            "generalisation": [generalisation(gen["n"][:, 0].tolist(), (w == 0).tolist()) for w in g_wrong],
        }
        solved = self.last_test["solved"]
        self.log_dict({"hp/success_rate": sum(solved) / S, "hp/det_acc_test": sum(self.last_test["det_acc"]) / S}, on_step=False, on_epoch=True)

    def nets_to_show(self) -> list[dict]:
        """The analysed seed's net, and one seed's that failed on the test (file prefix ``seed<s>_``)."""
        s = self.analysed_seed()
        shown = [{"net": self.net_of(s), "label": f"seed {s}"}]
        failed = next((seed for seed, ok in zip(self.seed_list, self.last_test["solved"]) if not ok), None)
        if failed is not None and failed != s:
            shown.append({"net": self.net_of(failed), "prefix": f"seed{failed}_", "label": f"seed {failed} (not solved)"})
        return shown

    def analysed_seed(self) -> int:
        """``analyse_seed``, else the first seed solved on the test, else the first seed."""
        if self.hparams.analyse_seed is not None:
            return int(self.hparams.analyse_seed)
        return next((s for s, ok in zip(self.seed_list, self.last_test["solved"]) if ok), self.seed_list[0])

    def seed_outcomes(self) -> list[dict]:
        """One entry per seed after the test: ``seed``, ``outcome`` (succeeded: solved on its test
        sequences), ``updates``, ``first_solved_update``, attempts, and its test figures."""
        t = self.last_test
        out = []
        for i, seed in enumerate(self.seed_list):
            made = self._made(i)
            attempts = self.attempts[i].summary(made, "solved", "not solved when training ended") if self.updates else []
            out.append({
                "seed": seed, "outcome": "succeeded" if t["solved"][i] else "failed", "updates": made,
                "first_solved_update": self.first_solved[i], "stopped_early_at_update": self.stopped_at[i], "attempts": len(attempts),
                "test_loss": t["loss"][i], "error": t["error"][i], "error_exact": t["error_exact"][i], "det_acc": t["det_acc"][i], "solved": bool(t["solved"][i]),
                "max_n_generalised": t["generalisation"][i]["max_n_generalised"],
                "fraction_lengths_right": t["generalisation"][i]["fraction_lengths_right"], "lengths_right": t["generalisation"][i]["lengths_right"],
                "attempt_records": attempts,
            })
        return out

    def generalisation_by_net(self) -> list[dict]:
        """The last test's generalisation of every seed, labelled by seed."""
        return [{"label": f"seed {s}", **g} for s, g in zip(self.seed_list, self.last_test.get("generalisation", []))]

    def test_summary(self) -> dict:
        """results.json of a population: the analysed seed as a single run reports it, every
        seed's outcome, the success rate, the updates to success and the spread of how far the
        counting generalises."""
        per_seed = self.seed_outcomes()
        s = self.analysed_seed()
        i = self.seed_list.index(s)
        mine, t = per_seed[i], self.last_test
        outcomes = [r["outcome"] == "succeeded" for r in per_seed]
        generalised = Counter(r["max_n_generalised"] for r in per_seed)
        return {
            "analysed_seed": s,
            "test_loss": mine["test_loss"], "error": mine["error"], "error_exact": mine["error_exact"], "det_acc": mine["det_acc"], "solved": mine["solved"],
            "test_sequences": t["sequences"], **t["generalisation"][i], "attempts": mine["attempt_records"],
            "first_solved_update": mine["first_solved_update"], "first_solved_seconds": self.first_solved_seconds[i],
            "stopped_early_at_update": mine["stopped_early_at_update"], "updates": mine["updates"],
            "population": self.hparams.seeds,
            "seeds": [{k: v for k, v in r.items() if k != "attempt_records"} for r in per_seed],
            "success": success_rate(outcomes),
            "success_rate": sum(outcomes) / len(outcomes),
            "updates_to_success": updates_distribution([r["first_solved_update"] if r["outcome"] == "succeeded" else None for r in per_seed],
                                                       [r["updates"] for r in per_seed]),
            "max_n_generalised_counts": {str(n): generalised[n] for n in sorted(generalised)},
            "fraction_lengths_right_median": statistics.median(r["fraction_lengths_right"] for r in per_seed),
            "fraction_lengths_right_best": max(r["fraction_lengths_right"] for r in per_seed),
        }


__all__ = ["SequencePopulation", "forward"]
