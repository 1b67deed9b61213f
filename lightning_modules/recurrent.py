"""SequencePredictor: S >= 1 SRNs or LSTMs predicting the next symbol of a counting language."""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter
from functools import partial
from typing import Any, Optional, Union

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MeanMetric

from analysis.recurrent import generalisation, trace_batch
from base.contracts import SeedData, ShownNet
from base.errors import ConfigError, check, check_choice, check_int, is_number
from lightning_modules.compiled import compiled_for
from lightning_modules.dekf import DEKF, kalman_update
from lightning_modules.long_strings import wrong_per_length
from lightning_modules.metrics import PerSeedSums
from lightning_modules.objectives import Objective
from lightning_modules.optimizers import optimizer_factory
from lightning_modules.population import SeedPopulation
from lightning_modules.recurrent_nets import CELLS, FUSED_CELLS, ForwardJacobian, Layout, advance, forward, fused_logits, make_net, penalty, real_steps
from lightning_modules.recurrent_nets import losses as seed_losses

log = logging.getLogger(__name__)

# the reference's optimiser, when a config names none
REFERENCE_SGD = {"_target_": "torch.optim.SGD", "lr": 0.005, "weight_decay": 1e-4}
EVAL_SUMS = ("nll", "positions", "squared_error", "squared_error_exact", "scored_right", "scored")
EVAL_CHUNK = 128  # sequences evaluated at once (see _evaluate); H B a multiple of 64 for H = 1, 2, 3, ...: no padding rows
VAL_NAMES = {"loss": "loss/val", "error": "error/val", "error_exact": "error_exact/val", "acc": "acc/val"}
TEST_NAMES = {"loss": "hp/loss_test", "error": "hp/error_test", "error_exact": "hp/error_exact_test", "acc": "hp/acc_test"}


def _counts(values) -> dict[str, int]:
    """How many seeds have each value, in increasing order of the value (JSON keys are strings)."""
    return {str(n): k for n, k in sorted(Counter(values).items())}


def fused_applies(cell: Any, peepholes: Any, kalman: bool) -> bool:
    """torch's fused kernels compute SRNs and LSTMs without peepholes; the Kalman filter needs the step."""
    return cell in FUSED_CELLS and not peepholes and not kalman


def default_engine(seeds: Any, cell: Any, peepholes: Any, kalman: bool) -> str:
    """``fused`` (torch's ``nn.LSTM`` kernel: ~10x faster than the step for one LSTM on a CPU) for
    one LSTM without peepholes trained by gradient, else ``step`` (the one-step cell, every seed
    at once: a seed computes bit for bit as alone; faster than the fused kernels for SRNs, and for
    100 LSTMs, measured)."""
    return "fused" if seeds == 1 and cell == "lstm" and fused_applies(cell, peepholes, kalman) else "step"


def clip_per_row(grads: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Each row (a seed's gradient ``(R, P)``) scaled as ``torch.nn.utils.clip_grad_norm_`` scales
    one network's: by ``min(1, max_norm / (norm + 1e-6))``."""
    norms = torch.linalg.vector_norm(grads, dim=1, keepdim=True)
    return grads * (max_norm / (norms + 1e-6)).clamp(max=1.0)


def filter_symbol(layout: Layout, objective: Objective, l1: float, groups: tuple[torch.Tensor, ...], flat: torch.Tensor, state, dstate,
                  tangents: torch.Tensor, x: torch.Tensor, wanted: torch.Tensor, valid: torch.Tensor, blocks: tuple[torch.Tensor, ...],
                  r: torch.Tensor, q: torch.Tensor):
    """One symbol of the Kalman filter for R networks: after input ``x`` (R, S) the outputs the
    filter measures (``objective.outputs`` of the logits, and with ``l1`` sqrt(penalty)) and
    their Jacobian with respect to the weights ``flat`` (R, P), carried through the string
    (``recurrent_nets.advance``), then the measurement update towards ``wanted`` (R, M) of the
    networks whose string has this symbol (``valid`` (R,) bool; the others keep their weights and
    P). Returns the weights, the state and its tangents, P's blocks, and the logits (R, S)."""

    def measured(logits, f):
        y = objective.outputs(logits)
        return torch.cat([y, penalty(f, l1).clamp(min=1e-12).sqrt()[:, None]], dim=1) if l1 else y

    (state, (logits, y)), (dstate, (_, dy)) = advance(layout, measured, flat, state, dstate, x, tangents)
    new_flat, new_blocks = kalman_update(flat, dy.permute(1, 2, 0), wanted - y, blocks, groups, r, q)
    flat = torch.where(valid[:, None], new_flat, flat)
    blocks = tuple(torch.where(valid[:, None, None], n, b) for n, b in zip(new_blocks, blocks))
    return flat, state, dstate, blocks, logits


def compiled_filter_symbol(layout: Layout, objective: Objective, l1: float, groups: tuple[torch.Tensor, ...]):
    """``filter_symbol`` through ``torch.compile``, once per process and setting
    (``compiled.compiled_for``): one call a symbol instead of a few hundred small operations
    under ``vmap`` and ``jvp``. Static shapes: ``vmap``'s ``jvp`` cannot be compiled for a
    symbolic number of networks (the caller keeps the number fixed)."""
    key = ("filter", layout, objective, l1, tuple(tuple(g.tolist()) for g in groups))
    return compiled_for(key, lambda: partial(filter_symbol, layout, objective, l1, groups), fullgraph=True, dynamic=False)


class SequencePredictor(SeedPopulation, pl.LightningModule):
    """Model, loss (NLL of the actual next symbol, as the reference), optimiser and metrics of
    the recurrent study, for ``seeds`` networks (seeds ``init_seed`` ..; 1 for a single run),
    each with its own life as a run of that seed alone would have it: its initial weights, its
    sequences (``GrammarDataModule(seeds=...)``), its own optimiser state (one parameter per
    seed, so torch's optimiser keeps a state and a step count per seed, and skips a seed without
    a gradient), its evaluations, restarts and early stop (``callbacks.solved_stopping``), and
    its budget (``trainer.max_steps`` updates). A seed that has ended is frozen and leaves the
    computation.

    How a step is computed (``engine``, named in the saved config and results.json): ``step``, the
    networks' one time step (``recurrent_nets.step``) run over the sequences for every seed at
    once, gradients from autograd and the Kalman filter's Jacobians from forward-mode autodiff of
    the same step; or ``fused``, torch's ``nn.LSTM`` (``nn.RNN``) kernel over every seed at once
    with block-diagonal weights, and autograd (LSTMs and SRNs without peepholes trained by
    gradient; the default for one LSTM, ~10x faster than the step for 1 or 10 LSTMs on a CPU,
    slower for 100; tested equal to the step to float rounding).

    Metrics of an evaluation (``val`` every ``trainer.val_check_interval`` updates, ``test`` at
    the end), per seed:

    - ``error``: the reference's measure, the mean squared difference between the predicted
      next-symbol distribution and the reference's target (the exact one, except [0.8, 0.2] at
      every position whose input is an A), over all positions and symbols: its ~0.01-0.03, of which
      even a perfect predictor keeps about 0.029 (a^n b^2n) or 0.0097 (a^n b^2n c^3n);
    - ``error_exact``: the same against the exact distribution of the generator (0 is perfect);
    - ``acc``: the fraction of scored positions predicted right (``Objective.scored``: under
      ``next_symbol`` the determined positions, after the first B of a block, where the most
      likely predicted symbol must be the true next one; under ``legal_next`` every position,
      where every thresholded output must equal the legal set); ``solved`` = acc is 1.0.

    The second test set (one sequence per block length n = 1..N) gives ``max_n_generalised``: the
    largest N such that every block length 1..N is predicted without a single error on the
    scored positions.

    Args:
        seeds: S, networks trained together.
        cell: ``srn`` or ``lstm``.
        hidden_units: H.
        num_symbols: 2 (A, B) or 3 (A, B, C); set from the data's language.
        init: weights from N(0, init) for a number, or ``uniform`` (+-1/sqrt(H)).
        optimizer: a ``_partial_`` torch optimiser (reference: SGD lr 0.005, weight decay 1e-4).
        init_seed: seed of the first network's initial weights.
        restarts, restart_after: an attempt not solved (``acc`` 1.0 on the validation
            sequences) ``restart_after`` updates after it began is re-initialised from seed
            ``init_seed + k`` (attempt k = 0, 1, ...), at most ``restarts`` times; the reference
            left that to the user.
        analyse_seed: the seed whose net the figures and the printout show (default: the first
            one solved on the test).
        objective, loss: ``next_symbol`` (the reference's softmax and NLL) or ``legal_next`` (a
            sigmoid per symbol towards the set of legal next symbols, ``loss`` ``mse`` or ``bce``);
            see ``lightning_modules.objectives``.
        peepholes: the LSTM's peephole connections (Gers & Schmidhuber 2001): the input and forget
            gates see c_{t-1}, the output gate c_t; ``nn.LSTM`` has none, so the batched
            recurrence trains such a net even alone.
        forget_bias, input_bias: the LSTM's initial forget- and input-gate biases (e.g. +1 and
            -1, as npow/schmidhuber-problems starts); None keeps the drawn values.
        clip_grad_norm: each seed's gradient scaled to at most this 2-norm before its update
            (torch's ``clip_grad_norm_`` rule, per seed as if it trained alone); None: no clipping.
        l1: the weight regulariser: ``l1`` times the sum of a seed's weights' magnitudes is added
            to its loss (gradient training), or measured as one more output that should be 0 (the
            Kalman filter: sqrt of the penalty, so its squared error is the penalty); 0: none.
        engine: ``step`` or ``fused`` (see above); null: ``fused`` for one LSTM, else ``step``.
        weights: the network's weights set by hand, by the layout's names (``weight_ih`` (G, S),
            ``weight_hh``, ``bias``, ``out_weight``, ``out_bias``[, ``H0``, ``peephole``]), in
            place of drawn ones (``conf/experiment/count_lstm_manual_*``; one seed).
    """

    study = "recurrent"  # results.json's family (orchestration.studies)
    ddp_strategy = "ddp_population"  # under trainer=ddp each process trains its share of the seeds
    first_success_key = "first_solved_update"
    threads = 1  # intra-op threads: 2-3-unit nets gain nothing from more and lose up to 6x beside a busy process

    def __init__(
        self,
        seeds: int = 1,
        cell: str = "srn",
        hidden_units: int = 2,
        num_symbols: int = 2,
        init: Union[str, float] = 0.001,
        optimizer: Any = None,
        init_seed: int = 0,
        restarts: int = 0,
        restart_after: int = 20_000,
        analyse_seed: Optional[int] = None,
        objective: str = "next_symbol",
        loss: Optional[str] = None,
        peepholes: bool = False,
        forget_bias: Optional[float] = None,
        input_bias: Optional[float] = None,
        clip_grad_norm: Optional[float] = None,
        l1: float = 0.0,
        engine: Optional[str] = None,
        weights: Optional[dict] = None,
    ):
        super().__init__()
        check_choice("cell", cell, CELLS)
        check_int("hidden_units", hidden_units, 1)
        check(num_symbols in (2, 3, 4), "num_symbols", num_symbols, "2 or 3, one more with the end symbol (data.end_symbol)")
        check(init == "uniform" or (is_number(init) and init > 0), "init", init, "a finite number > 0 (std of a normal) or 'uniform'")
        check_int("restarts", restarts, 0)
        check_int("restart_after", restart_after, 1)
        self.objective = Objective.of(objective, loss)
        check(peepholes is False or (peepholes is True and cell == "lstm"), "peepholes", peepholes, "true or false (true only with cell=lstm)")
        for key, value in (("forget_bias", forget_bias), ("input_bias", input_bias)):
            check(value is None or (cell == "lstm" and is_number(value)), key, value, "null or a finite number (with cell=lstm)")
        check(clip_grad_norm is None or (is_number(clip_grad_norm) and clip_grad_norm > 0), "clip_grad_norm", clip_grad_norm, "null or a finite number > 0")
        check(is_number(l1) and l1 >= 0, "l1", l1, "a finite number >= 0")
        self._make_optimizer, description = optimizer_factory(REFERENCE_SGD if optimizer is None else optimizer)
        fused_fits = fused_applies(cell, peepholes, self.kalman)
        engine = default_engine(seeds, cell, peepholes, self.kalman) if engine is None else engine
        check(engine == "step" or (engine == "fused" and fused_fits), "engine", engine,
              "step, or fused for SRNs and LSTMs without peepholes trained by gradient" if not fused_fits else "step or fused")
        check(weights is None or seeds == 1, "seeds", seeds, "1 with hand-set weights (model.weights): every seed would be the same net")
        self.save_hyperparameters(ignore=["optimizer", "engine"])
        self.hparams["engine"] = engine  # what ran, not null
        self.hparams["optimizer"] = description  # plain: checkpoints load with weights_only=True
        self.automatic_optimization = False
        self._population(seeds, init_seed, restarts, restart_after, analyse_seed)
        self.layout = Layout(cell, num_symbols, hidden_units, peepholes)
        self._given = None if weights is None else self.layout.flat_of(weights)
        self.seed_weights = nn.ParameterList([nn.Parameter(self._initial(a.start(0))) for a in self.attempts])
        self._param_list: Optional[list[nn.Parameter]] = None
        self.fused = engine == "fused"
        S = seeds
        self.ended_at: list[Optional[int]] = [None] * S  # the update at which a seed stopped
        self.stopped_early: list[Optional[int]] = [None] * S  # ... when a stopping rule stopped it
        self.first_solved: list[Optional[int]] = [None] * S  # the first evaluation solved, in any attempt
        self.first_solved_seconds: list[Optional[float]] = [None] * S
        self.train_loss = MeanMetric(nan_strategy="disable")  # over seeds and updates since the last evaluation; no host sync per step
        self.eval_sums = nn.ModuleDict({stage: PerSeedSums(S, EVAL_SUMS) for stage in ("val", "test", "test_selected")})
        self.eval_max_n: Optional[int] = None
        self.generalisation_wrong: Optional[PerSeedSums] = None
        # model selection (data.select_lengths): per seed, the best net on the selection sequences
        self.select_lengths: list[int] = []
        self.selection_wrong: Optional[PerSeedSums] = None
        self.generalisation_wrong_selected: Optional[PerSeedSums] = None
        self.selected: list[Optional[dict]] = [None] * S  # {"update", "fraction_right", "weights"}
        self.curve: list[list[list[int]]] = [[] for _ in range(S)]  # data.track_generalisation: [update, max_n_generalised] per evaluation
        self.last_val: dict[str, list[Optional[float]]] = {}
        self.last_test: dict[str, Any] = {}
        self._t0 = time.perf_counter()

    # -- weights ---------------------------------------------------------------------------------
    def _initial(self, seed: int) -> torch.Tensor:
        """Seed ``seed``'s initial weights, with the gate biases ``forget_bias``/``input_bias`` set
        (torch's gate order i, f, g, o); the hand-set ones when ``weights`` are given."""
        if self._given is not None:
            return self._given.clone()
        flat = self.layout.initial(self.hparams.init, torch.Generator().manual_seed(int(seed)))
        H, bias = self.hparams.hidden_units, self.layout.views(flat)["bias"]
        for value, gate in ((self.hparams.get("input_bias"), 0), (self.hparams.get("forget_bias"), 1)):
            if value is not None:
                bias[gate * H : (gate + 1) * H] = float(value)
        return flat

    def _params(self) -> list[nn.Parameter]:
        """The seeds' parameters as a plain list (``ParameterList`` indexing costs ~5 us each)."""
        if self._param_list is None:
            self._param_list = list(self.seed_weights)
        return self._param_list

    def _flat(self, rows: list[int]) -> torch.Tensor:
        """The weights of seeds ``rows`` as one tensor ``(R, P)`` (no gradient)."""
        params = self._params()
        return torch.stack([params[i].detach() for i in rows])

    def net_of(self, seed: int) -> nn.Module:
        """A single ``SRN``/``LSTM`` holding seed ``seed``'s weights (for figures and analysis)."""
        hp = self.hparams
        return make_net(hp.cell, hp.num_symbols, hp.hidden_units, self.layout.peepholes).load_flat(self.seed_weights[self.seed_list.index(seed)])

    @property
    def net(self) -> nn.Module:
        """The analysed seed's network (after the test; the first seed's before)."""
        return self.net_of(self.analysed_seed() if self.last_test else self.seed_list[0])

    def named_weights(self) -> dict[str, torch.Tensor]:
        """The watched seed's weights by the layout's names (``weight_ih`` (S, G H), ...); empty on a
        process that does not train it."""
        if not self.watched_process():
            return {}
        return self.layout.views(self.seed_weights[self.seed_list.index(self.watched_seed())].detach())

    def named_gradients(self) -> dict[str, torch.Tensor]:
        """Their gradients in the update being made (empty under the Kalman filter, which uses none)."""
        grad = self.seed_weights[self.seed_list.index(self.watched_seed())].grad if self.watched_process() else None
        return {} if grad is None else self.layout.views(grad.detach())

    def named_activations(self) -> dict[str, torch.Tensor]:
        """An LSTM's gates ``input``, ``forget``, ``output`` (each (positions, H)) on the watched
        seed's validation sequences; nothing for an SRN or on a process that does not train the seed."""
        if self.hparams.cell != "lstm" or not self.watched_process():
            return {}
        dm, seed = self.trainer.datamodule, self.watched_seed()
        tr = trace_batch(self.net_of(seed), dm.batch(dm.val_sequences_of(seed)))
        return {gate: torch.from_numpy(tr[gate]) for gate in ("input", "forget", "output")}

    # -- training --------------------------------------------------------------------------------
    @property
    def engine(self) -> str:
        """What computes an update, for results.json (``model.engine``, and the Kalman filter)."""
        if self.kalman:
            return "step: the one-step cell over every seed, decoupled extended Kalman filter with Jacobians by forward-mode autodiff of the step (torch.func.jvp)"
        if self.fused:
            return f"fused: torch's nn.{'LSTM' if self.hparams.cell == 'lstm' else 'RNN'} kernel over every seed at once (block-diagonal weights) and autograd"
        return "step: the one-step cell over every seed, gradients by autograd"

    def configure_optimizers(self):
        optimizer = self._make_optimizer(self.seed_weights.parameters())
        if isinstance(optimizer, DEKF):
            optimizer.attach(self.layout)
        return optimizer

    @property
    def kalman(self) -> bool:
        """Trained by the decoupled extended Kalman filter (``model/optimizer=dekf``)."""
        return self._make_optimizer.func is DEKF  # optimizer_factory gives a functools.partial of the class

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule
        if not isinstance(dm, SeedData):
            raise ConfigError(f"the recurrent model needs the counting-language data (data=grammar), not {type(dm).__name__}")
        if dm.language.num_symbols != self.hparams.num_symbols:
            raise ConfigError(f"model.num_symbols={self.hparams.num_symbols} does not match the data: {dm.hparams.language} has {dm.language.num_symbols} symbols")
        if self.kalman and dm.hparams.batch_size != 1:
            raise ConfigError(f"data.batch_size={dm.hparams.batch_size} is invalid with model/optimizer=dekf; allowed: 1 (the filter takes one string at a time)")
        if dm.seed_list != self.seed_list:
            raise ConfigError(f"the data's seeds {dm.seed_list[0]}..{dm.seed_list[-1]} are not the model's {self.seed_list[0]}..{self.seed_list[-1]} (data.seed, data.seeds)")
        if self.generalisation_wrong is None:
            self.eval_max_n = dm.hparams.eval_max_n
            lengths = tuple(str(n) for n in range(1, self.eval_max_n + 1))
            self.generalisation_wrong = PerSeedSums(len(self.seed_list), lengths).to(self.device)
            self.select_lengths = list(dm.hparams.get("select_lengths") or [])
            if self.select_lengths:
                self.selection_wrong = PerSeedSums(len(self.seed_list), tuple(str(n) for n in self.select_lengths)).to(self.device)
                self.generalisation_wrong_selected = PerSeedSums(len(self.seed_list), lengths).to(self.device)

    def on_fit_start(self):
        self._t0 = time.perf_counter()

    def on_train_start(self):
        super().on_train_start()  # under several processes: only this process's seeds
        for i, ended in enumerate(self.ended):  # a resumed run: the seeds that had ended draw no sequences
            if ended:
                self.trainer.datamodule.end_seed(i)

    def training_step(self, batch, batch_idx):
        """One update of every seed still training, on its own batch (the batch may still hold
        seeds that ended after it was drawn: they are left out)."""
        drawn = batch["rows"].tolist()
        active = [i for i in drawn if not self.ended[i]]
        opt = self.optimizers()
        clip = self.hparams.get("clip_grad_norm")
        if self.kalman:
            losses = self._kalman_step(batch, drawn, active, opt.optimizer) if active else torch.zeros(0, device=self.device)
        elif active:
            params = self._params()
            l1 = self.hparams.get("l1", 0.0)
            fields = [batch[k] for k in ("inputs", "targets", "valid")]
            if len(active) < len(drawn):
                keep = torch.tensor([drawn.index(i) for i in active], device=self.device)
                fields = [f.index_select(0, keep) for f in fields]
            inputs, targets, valid = fields
            flat = torch.stack([params[i] for i in active])  # (R, P); autograd flows back to each seed's parameter
            if self.fused:
                losses = self.objective.mean_loss(fused_logits(self.layout, flat, inputs), targets, inputs)  # (R,)
            else:
                # steps: the longest real sequence of the seeds drawn, which the stream knows
                losses = seed_losses(self.layout, flat, inputs, targets, valid, self.objective, steps=batch.get("steps"))
            opt.zero_grad()
            self.manual_backward((losses + penalty(flat, l1)).sum() if l1 else losses.sum())  # the seeds' losses are independent
            for i in active:  # a buffer of its own, not a view into the stacked gradient: the fused
                params[i].grad = params[i].grad.clone()  # optimiser then rounds a seed as it would alone
            if clip is not None:
                grads = clip_per_row(torch.stack([params[i].grad for i in active]), clip)
                for i, g in zip(active, grads):
                    params[i].grad.copy_(g)
            losses = losses.detach()
        else:  # this process's seeds have all ended; the others' have not
            losses = torch.zeros(0, device=self.device)
        opt.step()
        for i in active:
            self._params()[i].grad = None
        self.train_loss.update(losses)  # (empty on a process whose seeds have all ended: it still takes part in the reduction)
        samples = len(active) * batch["inputs"].shape[1] if active else 0
        return {"loss": losses[None], "samples": samples}  # loss: (1 update, seeds)

    @torch.no_grad()
    def _kalman_step(self, batch: dict, drawn: list[int], active: list[int], dekf: DEKF) -> torch.Tensor:
        """One string per seed, symbol by symbol: the outputs and their Jacobian, then the
        filter's update of each seed's weights, before the next symbol (``filter_symbol``, for
        every seed at once). With ``l1`` the outputs end with sqrt(penalty), which should be 0.
        Returns each seed's loss on the string (the objective's mean over its symbols, measured
        before each update)."""
        rows = [drawn.index(i) for i in active]
        params = [self._params()[i] for i in active]
        A = len(active)
        if dekf.compiled:  # as many rows as this process has seeds, however many have ended: compiled
            # code is specialised on shapes (vmap's jvp cannot be compiled for any number), so the
            # rows of ended seeds are filled with a copy of the first, whose string is not valid
            pad = max(len(self.my_seeds()) - A, 0)
            rows, params = rows + rows[:1] * pad, params + params[:1] * pad
        x, targets, valid = (batch[k].index_select(0, torch.tensor(rows, device=self.device))[:, 0] for k in ("inputs", "targets", "valid"))  # (R, T, ...)
        valid = valid.clone()
        valid[A:] = 0
        flat = torch.stack([p.detach() for p in params])
        jacobian = ForwardJacobian(self.layout, flat)
        # distinct tensors (the LSTM's initial h and c are one zero tensor): compiled code is
        # specialised on which inputs alias, and would be compiled again after the first symbol
        state, dstate = (tuple(s.clone() for s in both) for both in (jacobian.state, jacobian.dstate))
        blocks, (r, q) = dekf.blocks_of(params), dekf.noise_of(params, flat.dtype, flat.device)
        l1 = self.hparams.get("l1", 0.0)
        settings = (self.layout, self.objective, l1, tuple(dekf._groups(params[0])))
        symbol = compiled_filter_symbol(*settings) if dekf.compiled else partial(filter_symbol, *settings)
        steps = int(valid.sum(1).max())
        wanted = self.objective.wanted(x[:, :steps], targets[:, :steps])  # (A, T, S), for every symbol at once
        if l1:
            wanted = torch.cat([wanted, wanted.new_zeros(*wanted.shape[:2], 1)], dim=2)
        # time-major copies: each symbol's inputs are then contiguous, with the same strides
        # whatever the string's length (compiled code is specialised on strides)
        xs, ws, vs = (a.transpose(0, 1).contiguous() for a in (x[:, :steps], wanted, valid[:, :steps] > 0))
        logits = []
        for t in range(steps):
            flat, state, dstate, blocks, out = symbol(flat, state, dstate, jacobian.tangents, xs[t], ws[t], vs[t], blocks, r, q)
            logits.append(out)
        params = params[:A]
        dekf.store(params, flat[:A], tuple(b[:A] for b in blocks))
        for p in params:
            dekf.end_string(p)
        losses = self.objective.per_position(torch.stack(logits, dim=1), targets[:, :steps], x[:, :steps]) * valid[:, :steps]
        return (losses.sum(1) / valid.sum(1).clamp(min=1))[:A]

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.stop_when_every_seed_has_ended()

    def on_validation_end(self):
        if not self.trainer.sanity_checking:
            self.stop_when_every_seed_has_ended()

    def end_seed(self, index: int, early: bool = False) -> None:
        """Seed ``index`` has ended: frozen from now on, and its sequences are no longer drawn."""
        if self.ended[index]:
            return
        self.ended[index] = True
        self.ended_at[index] = self.trainer.global_step
        if early:
            self.stopped_early[index] = self.trainer.global_step
        self.trainer.datamodule.end_seed(index)  # (the run stops in the module's hooks once every seed has ended)

    def _leave(self, i: int) -> None:
        self.ended[i] = True

    # -- evaluation ------------------------------------------------------------------------------
    @torch.no_grad()
    def _evaluate(self, batch: dict, rows: list[int], flat: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """Seeds ``rows`` on their own sequences: per seed and sequence ``(R, N, ...)`` fields of
        ``batch`` (or one set shared by every seed, ``(1, N, ...)``), with their weights (or
        ``flat`` (R, P)). Returns the sums ``EVAL_SUMS`` (R, 6) and the wrong scored positions
        (``Objective.scored``) per sequence ``wrong`` (R, N).

        More than ``EVAL_CHUNK`` sequences (a generalisation test to n = 1,000: 1,000 strings of up
        to 6,000 symbols) are run ``EVAL_CHUNK`` at a time, each chunk cut to its own longest
        string: in one batch every string is padded to the longest, and the recurrence keeps each
        step's states, which took 8 GB for 5 seeds on a^n b^2n c^3n; in chunks under 1 GB."""
        N = batch["valid"].shape[1]
        if N <= EVAL_CHUNK:
            return self._evaluate_chunk(batch, rows, flat)
        parts = []
        for start in range(0, N, EVAL_CHUNK):
            chunk = {k: v[:, start : start + EVAL_CHUNK] for k, v in batch.items()}
            steps = max(real_steps(chunk["valid"]), 1)
            parts.append(self._evaluate_chunk({k: v[:, :, :steps] for k, v in chunk.items()}, rows, flat))
        return {"sums": torch.stack([p["sums"] for p in parts]).sum(0), "wrong": torch.cat([p["wrong"] for p in parts], dim=1)}

    def _evaluate_chunk(self, batch: dict, rows: list[int], flat: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """``_evaluate`` on one batch as it is."""
        idx = torch.tensor(rows, device=self.device)
        b = {k: (v.expand(len(rows), *v.shape[1:]) if v.shape[0] == 1 else v[idx]) for k, v in batch.items()}
        valid, targets = b["valid"], b["targets"]
        logits = forward(self.layout, self._flat(rows) if flat is None else flat, b["inputs"], valid)["logits"]
        objective = self.objective
        nll = objective.per_position(logits, targets, b["inputs"]) * valid  # the objective's loss (the NLL for next_symbol)
        probs = objective.distribution(logits)
        squared = ((probs - b["ref_probs"]) ** 2).sum(-1) * valid  # the reference's measure
        squared_exact = ((probs - b["probs"]) ** 2).sum(-1) * valid
        scored = objective.scored(b["determined"], valid)
        hit = objective.right(logits, targets, b["inputs"])
        sums = torch.stack([t.flatten(1).sum(1).double() for t in (nll, valid, squared, squared_exact, hit & scored, scored)], dim=1)
        return {"sums": sums, "wrong": (~hit & scored).sum(-1)}

    def _measured(self, stage: str) -> dict[str, list[Optional[float]]]:
        """Per seed, the means of the last ``stage`` pass (reduced over processes; None for a seed
        nobody evaluated), and the number of sequences each was evaluated on."""
        s = {k: v.cpu() for k, v in self.eval_sums[stage].per_seed().items()}
        self.eval_sums[stage].reset()
        symbols = self.hparams.num_symbols
        out: dict[str, list[Optional[float]]] = {k: [] for k in ("loss", "error", "error_exact", "acc")}
        for i in range(len(self.seed_list)):
            n, scored = float(s["positions"][i]), float(s["scored"][i])
            seen = n > 0
            out["loss"].append(float(s["nll"][i]) / n if seen else None)
            out["error"].append(float(s["squared_error"][i]) / (n * symbols) if seen else None)
            out["error_exact"].append(float(s["squared_error_exact"][i]) / (n * symbols) if seen else None)
            out["acc"].append(float(s["scored_right"][i]) / scored if seen and scored else None)
        return out

    def _mine_training(self) -> list[int]:
        return [i for i in self.my_seeds() if not self.ended[i]]

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0):
        rows = self._mine_training()
        if dataloader_idx == 1:  # the model-selection sequences: the wrong scored positions per length
            wrong = self._evaluate(batch, rows)["wrong"] if rows else torch.zeros(0, len(self.select_lengths), dtype=torch.long)
            self.selection_wrong.update(torch.tensor(rows, dtype=torch.long), wrong)
            return
        # (an empty update when this process's seeds have all ended: every process takes part in the reduction)
        sums = self._evaluate(batch, rows)["sums"] if rows else torch.zeros(0, len(EVAL_SUMS), dtype=torch.float64)
        self.eval_sums["val"].update(torch.tensor(rows, dtype=torch.long), sums)

    def _select(self, evaluated: set[int], step: int) -> None:
        """After an evaluation: each evaluated seed's net is kept when it gets more selection lengths
        right than its best so far (the earliest of equals)."""
        wrong = torch.stack(list(self.selection_wrong.per_seed().values()), dim=1).cpu()  # (seeds, lengths)
        self.selection_wrong.reset()
        for i in sorted(evaluated):
            fraction = float((wrong[i] == 0).double().mean())
            best = self.selected[i]
            if best is None or fraction > best["fraction_right"]:
                self.selected[i] = {"update": step, "fraction_right": fraction, "weights": self.seed_weights[i].detach().clone()}

    def on_validation_epoch_end(self):
        evaluated = set(self._mine_training())
        measured = self._measured("val")
        self.last_val = {VAL_NAMES[k]: [v if i in evaluated else None for i, v in enumerate(values)] for k, values in measured.items()}
        seen = [i for i, v in enumerate(measured["acc"]) if v is not None]
        if seen:
            for key, name in VAL_NAMES.items():  # a single net's values; a population's mean over the seeds evaluated
                self.log(name, statistics.fmean(measured[key][i] for i in seen), sync_dist=True)
        if not self.trainer.sanity_checking:
            self.log("loss/train", self.train_loss.compute(), sync_dist=True)  # reduced by compute(); sync_dist only averages equal numbers
            self.train_loss.reset()
        if self.population:
            self.log("population/training", float(sum(not self.ended[i] for i in self.my_seeds())), reduce_fx="sum", sync_dist=True)
        if self.trainer.sanity_checking:
            if self.selection_wrong is not None:
                self.selection_wrong.reset()
            return
        step = self.trainer.global_step
        if self.selection_wrong is not None:  # before a restart replaces a seed's weights
            self._select(evaluated, step)
        if self.trainer.datamodule.hparams.get("track_generalisation") and evaluated:
            self._track(sorted(evaluated), step)
        for i in sorted(evaluated):
            self._after_evaluation(i, measured["acc"][i] == 1.0, step)

    def _track(self, rows: list[int], step: int) -> None:
        """The generalisation test of seeds ``rows`` now (``data.track_generalisation``): one
        string per n = 1..eval_max_n from the initial state, streamed; a point of each seed's curve."""
        hp = self.trainer.datamodule.hparams
        lengths = list(range(1, self.eval_max_n + 1))
        wrong = wrong_per_length(self.layout, self._flat(rows), self.objective, hp.language, lengths, hp.get("end_symbol", False)).cpu()
        reached = []
        for j, i in enumerate(rows):
            reached.append(generalisation(lengths, (wrong[j] == 0).tolist())["max_n_generalised"])
            self.curve[i].append([step, reached[-1]])
        self.log("max_n_generalised/val", statistics.fmean(reached))  # this process's seeds (a curve per seed is in results.json)

    def _after_evaluation(self, i: int, solved: bool, step: int) -> None:
        """What a run does after an evaluation: note when the seed was first solved; re-initialise
        an attempt still unsolved ``restart_after`` updates after its start (seed ``init_seed + k``)."""
        a = self.attempts[i]
        if solved:
            a.succeeded(step)
            if self.first_solved[i] is None:  # the first solve of the run, whatever stops it
                self.first_solved[i] = step
                self.first_solved_seconds[i] = round(time.perf_counter() - self._t0, 2)
        if a.restart_due(step):
            restart_after = self.hparams.restart_after
            seed = a.restart(step, f"not solved after {restart_after:,} updates: re-initialised")
            log.info("seed %d: attempt %d not solved after %d updates; re-initialising with seed %d", self.seed_list[i], len(a) - 1, restart_after, seed)
            with torch.no_grad():
                self.seed_weights[i].copy_(self._initial(seed))
            # the new weights start with a fresh optimiser state, as a new run does (torch.optim
            # keeps a parameter's state in `state`, created again at its next step)
            self.optimizers().optimizer.state.pop(self.seed_weights[i], None)

    def val_metric(self, name: str) -> list[Optional[float]]:
        """Per seed, the validation metric ``name`` (``acc/val``, ...) of the last evaluation."""
        if name not in self.last_val:
            raise ConfigError(f"callbacks.solved_stopping.monitor={name!r} is invalid; allowed: one of {', '.join(VAL_NAMES.values())}")
        return self.last_val[name]

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        rows = self.my_seeds()
        if not rows:
            return
        out = self._evaluate(batch, rows)
        if dataloader_idx == 0:
            self.eval_sums["test"].update(torch.tensor(rows), out["sums"])
        else:  # one sequence per block length, the same for every seed: the errors per length
            self.generalisation_wrong.update(torch.tensor(rows), out["wrong"])
        if self.select_lengths:  # the selected nets on the same test sequences
            flat = torch.stack([(self.selected[i] or {}).get("weights", self._params()[i].detach()).to(self.device) for i in rows])
            chosen = self._evaluate(batch, rows, flat)
            if dataloader_idx == 0:
                self.eval_sums["test_selected"].update(torch.tensor(rows), chosen["sums"])
            else:
                self.generalisation_wrong_selected.update(torch.tensor(rows), chosen["wrong"])

    def on_test_epoch_end(self):
        measured = self._measured("test")
        wrong = torch.stack(list(self.generalisation_wrong.per_seed().values()), dim=1).cpu()  # (seeds, lengths)
        self.generalisation_wrong.reset()
        lengths = list(range(1, self.eval_max_n + 1))
        gen = [generalisation(lengths, (row == 0).tolist()) for row in wrong]
        self.last_test = {**measured, "solved": [v == 1.0 for v in measured["acc"]], "generalisation": gen,
                          "sequences": self.trainer.datamodule.hparams.eval_sequences}
        if self.select_lengths:
            chosen = self._measured("test_selected")
            wrong = torch.stack(list(self.generalisation_wrong_selected.per_seed().values()), dim=1).cpu()
            self.generalisation_wrong_selected.reset()
            self.last_test["selected"] = [
                {"update": (self.selected[i] or {}).get("update"), "selection_fraction_right": (self.selected[i] or {}).get("fraction_right"),
                 "test_loss": chosen["loss"][i], "acc": chosen["acc"][i], "solved": chosen["acc"][i] == 1.0,
                 **generalisation(lengths, (wrong[i] == 0).tolist())}
                for i in range(len(self.seed_list))]
        if self.population:
            solved = self.last_test["solved"]
            self.log_dict({"hp/success_rate": sum(solved) / len(solved), "hp/acc_test": statistics.fmean(measured["acc"])}, sync_dist=True)
        else:  # (already reduced over processes; sync_dist only averages equal numbers)
            self.log_dict({TEST_NAMES[k]: measured[k][0] for k in TEST_NAMES} | {"hp/max_n_generalised": float(gen[0]["max_n_generalised"])}, sync_dist=True)

    def _test_succeeded(self, i: int) -> bool:
        return bool(self.last_test["solved"][i])

    # -- what the figures show -----------------------------------------------------------------------
    def nets_to_show(self) -> list[ShownNet]:
        """The analysed seed's net, and in a population one seed's that failed on the test (file prefix ``seed<s>_``)."""
        shown = []
        for k, seed in enumerate(self.shown_seeds()):
            label = "" if not self.population else (f"seed {seed}" if k == 0 else f"seed {seed} (not solved)")
            shown.append(ShownNet(self.net_of(seed), label=label, prefix="" if k == 0 else f"seed{seed}_", seed=seed))
        return shown

    def generalisation_by_net(self) -> list[dict]:
        """The last test's generalisation (``analysis.recurrent.generalisation``) of every seed, labelled."""
        gen = self.last_test.get("generalisation", [])
        if not self.population:
            return [{"label": "this net", **gen[0]}] if gen else []
        return [{"label": f"seed {s}", **g} for s, g in zip(self.seed_list, gen)]

    # -- the record ----------------------------------------------------------------------------------
    def _made(self, i: int) -> int:
        """The updates seed ``i`` made."""
        return self.ended_at[i] if self.ended_at[i] is not None else self.trainer.global_step

    def seed_outcomes(self) -> list[dict]:
        """One entry per seed after the test: ``seed``, ``outcome`` (succeeded: solved on its test
        sequences), ``updates``, ``first_solved_update``, attempts, and its test figures."""
        t, trained = self.last_test, self.trainer.global_step > 0
        out = []
        for i, seed in enumerate(self.seed_list):
            made = self._made(i)
            attempts = self.attempts[i].summary(made, "solved", "not solved when training ended") if trained else []
            g = t["generalisation"][i]
            out.append({
                "seed": seed, "outcome": "succeeded" if t["solved"][i] else "failed", "updates": made,
                "first_solved_update": self.first_solved[i], "stopped_early_at_update": self.stopped_early[i], "attempts": len(attempts),
                "test_loss": t["loss"][i], "error": t["error"][i], "error_exact": t["error_exact"][i], "acc": t["acc"][i], "solved": bool(t["solved"][i]),
                "max_n_generalised": g["max_n_generalised"], "fraction_lengths_right": g["fraction_lengths_right"], "lengths_right": g["lengths_right"],
                "attempt_records": attempts, **({"generalisation_curve": self.curve[i]} if self.curve[i] else {}),
                **({"selected": t["selected"][i]} if "selected" in t else {}),
            })
        return out

    def test_summary(self) -> dict:
        """results.json: the analysed seed as a single run reports it; a population adds every
        seed's outcome, the success rate, the updates to success and the spread of how far the
        counting generalises."""
        per_seed = self.seed_outcomes()
        i = self.seed_list.index(self.analysed_seed())
        mine, t = per_seed[i], self.last_test
        gen = t["generalisation"][i]
        summary = {
            "test_loss": mine["test_loss"], "error": mine["error"], "error_exact": mine["error_exact"], "acc": mine["acc"], "solved": mine["solved"],
            "test_sequences": t["sequences"], **gen, "attempts": mine["attempt_records"],
            "first_solved_update": mine["first_solved_update"], "first_solved_seconds": self.first_solved_seconds[i],
        }
        if "selected" in mine:  # model selection: the analysed seed's best net on the selection sequences, tested
            summary["selection"] = {"lengths": self.select_lengths, "sequences": "one block per length", **mine["selected"]}
        if not self.population:
            return summary
        return {
            "analysed_seed": self.seed_list[i], **summary, "stopped_early_at_update": mine["stopped_early_at_update"], "updates": mine["updates"],
            **self.population_summary(per_seed),
            "max_n_generalised_counts": _counts(r["max_n_generalised"] for r in per_seed),
            "fraction_lengths_right_median": statistics.median(r["fraction_lengths_right"] for r in per_seed),
            "fraction_lengths_right_best": max(r["fraction_lengths_right"] for r in per_seed),
            **({"selected_max_n_generalised_counts": _counts(r["selected"]["max_n_generalised"] for r in per_seed),
                "selected_fraction_lengths_right_median": statistics.median(r["selected"]["fraction_lengths_right"] for r in per_seed)}
               if "selected" in mine else {}),
        }

    # -- checkpoints and processes ---------------------------------------------------------------------
    STATE = ("ended", "ended_at", "stopped_early", "first_solved", "first_solved_seconds", "selected", "curve")

    def on_save_checkpoint(self, checkpoint):
        checkpoint["attempts"] = [a.state_dict() for a in self.attempts]
        checkpoint["seeds"] = {k: list(getattr(self, k)) for k in self.STATE}

    def on_load_checkpoint(self, checkpoint):
        for a, records in zip(self.attempts, checkpoint.get("attempts", [])):
            a.load_state_dict(records)
        for k, v in checkpoint.get("seeds", {}).items():
            setattr(self, k, list(v))

    def _seed_state(self, i: int) -> dict:
        state = {k: getattr(self, k)[i] for k in self.STATE}
        if state["selected"] is not None:
            state["selected"] = {**state["selected"], "weights": state["selected"]["weights"].cpu()}
        return {"weights": self.seed_weights[i].detach().cpu(), "attempts": self.attempts[i].state_dict(), **state}

    def _load_seed_state(self, i: int, state: dict) -> None:
        with torch.no_grad():
            self.seed_weights[i].copy_(state["weights"])
        self.attempts[i].load_state_dict(state["attempts"])
        for k in self.STATE:
            getattr(self, k)[i] = state[k]
        self.ended[i] = True


__all__ = ["SequencePredictor"]
