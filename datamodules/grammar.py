"""Counting languages a^n b^(k n) c^(m n) for next-symbol prediction, and their DataModule.

One generator serves a^n b^n (k=1, m=0), a^n b^2n (2, 0), a^n b^n c^n (1, 1) and
a^n b^2n c^3n (2, 3). A sequence is an initial A, then ``blocks`` blocks, each n A's (the first
of which is the A already seen), k n B's and m n C's, with n uniform in 1..max_n; every block is
followed by the A that starts the next, so the last B/C of the last block still has a next
symbol to predict. The network sees symbols 0..T-1 and predicts symbols 1..T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from base.errors import check_choice, check_int
from base.languages import A, B, C, LANGUAGES, PHASE_A, PHASE_B, PHASE_C, PHASE_RESET, SYMBOLS
from datamodules.tensor_batches import EvalShardSampler

FIELDS = ("inputs", "targets", "probs", "ref_probs", "determined", "valid", "phase", "count", "n", "step")
# The reference's generator gives every position whose input is an A the fixed target distribution
# P(A) = 0.8, P(B) = 0.2 (not the exact probability); its printed error is measured against it.
REFERENCE_A_TARGET = (0.8, 0.2)


@dataclass(frozen=True)
class CountingLanguage:
    """a^n b^(b n) c^(c n), with n uniform in 1..max_n."""

    b: int
    c: int
    max_n: int

    @property
    def num_symbols(self) -> int:
        return 3 if self.c else 2

    def sequence(self, lengths: list[int] | np.ndarray) -> dict[str, np.ndarray]:
        """One sequence with the given block lengths. Per position t (input symbol t, target t+1):

        - ``symbols`` (T+1,): the whole sequence, 0 = A, 1 = B, 2 = C;
        - ``targets`` (T,): the next symbol;
        - ``ref_probs`` (T, S): the reference's target: ``probs`` but at every position whose
          input is an A, the fixed [0.8, 0.2] (A, B; 0 for C) its generator assumes;
        - ``probs`` (T, S): its exact distribution under the generator. After k A's of a block,
          the next is A with probability (N - k) / (N - k + 1) and B otherwise (N = max_n; B for
          sure once k >= N); after the first B everything is fixed;
        - ``determined`` (T,): the next symbol is certain because a B has been seen in this block
          (every B and C position; the A positions are not, whatever k);
        - ``phase`` (T,): A, B, C or reset (index into ``PHASES``);
        - ``count`` (T,): the count a counter must hold after this input: A's seen in the block
          on A / reset positions, B's (or C's) still to come including this one on B (C) positions;
        - ``step`` (T,): 1-based index of this symbol within its phase of the block;
        - ``n`` (T,): the block length.
        """
        kb, mc, N = self.b, self.c, self.max_n
        sym, phase, count, step, n_of = [], [], [], [], []
        for i, n in enumerate(int(v) for v in lengths):
            if n < 1:
                raise ValueError(f"block length {n} < 1")
            sym += [A] * n
            phase += [PHASE_A if i == 0 else PHASE_RESET] + [PHASE_A] * (n - 1)
            count += list(range(1, n + 1))
            step += list(range(1, n + 1))
            for symbol, ph, length in ((B, PHASE_B, kb * n), (C, PHASE_C, mc * n)):
                sym += [symbol] * length
                phase += [ph] * length
                count += list(range(length, 0, -1))
                step += list(range(1, length + 1))
            n_of += [n] * (n + (kb + mc) * n)
        sym.append(A)  # starts the next block: the last B/C must predict it
        symbols = np.array(sym, dtype=np.int64)
        phase = np.array(phase, dtype=np.int64)
        count = np.array(count, dtype=np.int64)
        T = len(symbols) - 1
        targets = symbols[1:]
        probs = np.zeros((T, self.num_symbols), dtype=np.float32)
        probs[np.arange(T), targets] = 1.0
        in_a = (phase == PHASE_A) | (phase == PHASE_RESET)
        k = count[in_a]
        p_b = np.where(k >= N, 1.0, 1.0 / np.maximum(N - k + 1, 1))
        probs[in_a, A] = 1.0 - p_b
        probs[in_a, B] = p_b
        ref_probs = probs.copy()
        ref_probs[in_a] = 0.0
        ref_probs[in_a, A], ref_probs[in_a, B] = REFERENCE_A_TARGET
        return {
            "symbols": symbols,
            "targets": targets,
            "probs": probs,
            "ref_probs": ref_probs,
            "determined": ~in_a,
            "phase": phase,
            "count": count,
            "step": np.array(step, dtype=np.int64),
            "n": np.array(n_of, dtype=np.int64),
        }

    def random_lengths(self, rng: np.random.Generator, blocks: int) -> np.ndarray:
        return rng.integers(1, self.max_n + 1, size=blocks)


def collate(sequences: list[dict[str, np.ndarray]], num_symbols: int, length: int | None = None) -> dict[str, torch.Tensor]:
    """Pad sequences to the longest one (or to ``length``). Returns (B, T[, S]) tensors:
    ``inputs`` one-hot float, ``targets`` (-100 at padding, ignored by the loss), ``probs``, ``ref_probs``,
    ``determined`` and ``valid`` (False at padding), ``phase``/``count``/``step``/``n`` (-1 at padding)."""
    Bn = len(sequences)
    T = length or max(len(s["targets"]) for s in sequences)
    out = {
        "inputs": np.zeros((Bn, T, num_symbols), np.float32),
        "targets": np.full((Bn, T), -100, np.int64),
        "probs": np.zeros((Bn, T, num_symbols), np.float32),
        "ref_probs": np.zeros((Bn, T, num_symbols), np.float32),
        "determined": np.zeros((Bn, T), bool),
        "valid": np.zeros((Bn, T), bool),
        **{k: np.full((Bn, T), -1, np.int64) for k in ("phase", "count", "step", "n")},
    }
    for i, s in enumerate(sequences):
        L = len(s["targets"])
        out["inputs"][i, np.arange(L), s["symbols"][:-1]] = 1.0
        out["valid"][i, :L] = True
        for key in ("targets", "probs", "ref_probs", "determined", "phase", "count", "step", "n"):
            out[key][i, :L] = s[key]
    return {k: torch.from_numpy(v) for k, v in out.items()}


class SequenceStream(IterableDataset):
    """Batches of fresh random sequences, forever, from a seeded generator (one item = one
    update; the run ends at ``trainer.max_steps`` or when the task is solved)."""

    def __init__(self, language: CountingLanguage, blocks: int, batch_size: int, seed: int | list[int]):
        self.language, self.blocks, self.batch_size, self.seed = language, blocks, batch_size, seed

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        lang = self.language
        while True:
            yield collate([lang.sequence(lang.random_lengths(rng, self.blocks)) for _ in range(self.batch_size)], lang.num_symbols)


class SequenceTable:
    """Every sequence of ``blocks`` blocks with lengths in 1..max_n, as one array of symbols padded
    to the longest (``max_n ** blocks`` rows: 1,024 for the reference's 4 and 5), so that a batch
    of sequences for many seeds is one gather instead of thousands of ``sequence`` calls.

    ``length``: T, the positions of the longest sequence; every batch is padded to it, whatever
    its sequences, so that a network's computation does not depend on the other seeds' batches."""

    def __init__(self, language: CountingLanguage, blocks: int):
        self.language, self.blocks = language, blocks
        N = language.max_n
        self.length = blocks * N * (1 + language.b + language.c)
        grids = np.stack(np.meshgrid(*[np.arange(1, N + 1)] * blocks, indexing="ij"), axis=-1).reshape(-1, blocks)
        self.symbols = np.full((len(grids), self.length + 1), -1, np.int64)
        for row, lengths in enumerate(grids):  # row = sum_j (lengths[j] - 1) N^(blocks-1-j)
            s = language.sequence(lengths)["symbols"]
            self.symbols[row, : len(s)] = s
        self.weights = N ** np.arange(blocks - 1, -1, -1)

    def batch(self, lengths: np.ndarray) -> dict[str, torch.Tensor]:
        """Block lengths ``(..., blocks)`` -> ``inputs`` (..., T, S) one-hot, ``targets`` (..., T)
        (-100 at padding) and ``valid`` (..., T), the fields training needs, as ``collate`` makes them."""
        sym = self.symbols[((np.asarray(lengths) - 1) * self.weights).sum(-1)]
        inputs, targets = sym[..., :-1], sym[..., 1:]
        valid = targets >= 0
        onehot = np.zeros((*inputs.shape, self.language.num_symbols), np.float32)
        np.put_along_axis(onehot, np.maximum(inputs, 0)[..., None], 1.0, axis=-1)
        onehot *= valid[..., None]
        return {"inputs": torch.from_numpy(onehot), "targets": torch.from_numpy(np.where(valid, targets, -100)), "valid": torch.from_numpy(valid)}


class PopulationStream(IterableDataset):
    """For each of ``seeds``, the batches ``SequenceStream`` would draw for it alone (the same
    generator, the same draws), stacked: one item is ``{inputs (R, B, T, Sym), targets (R, B, T),
    valid (R, B, T), rows (R,)}`` for the R seeds still training (``rows``: their indices in
    ``seeds``), every batch padded to the table's T.

    The population marks the seeds that have ended in ``ended``; their generators stop drawing,
    which changes nothing for the others (each seed has its own generator)."""

    def __init__(self, table: SequenceTable, batch_size: int, seeds: list[int]):
        self.table, self.batch_size, self.seeds = table, batch_size, seeds
        self.ended = [False] * len(seeds)

    def __iter__(self):
        rngs = [np.random.default_rng(seed) for seed in self.seeds]
        N, blocks = self.table.language.max_n, self.table.blocks
        while True:
            rows = [i for i, ended in enumerate(self.ended) if not ended]
            # one draw of (batch, blocks) gives what batch_size draws of `blocks` give (tested)
            lengths = np.stack([rngs[i].integers(1, N + 1, size=(self.batch_size, blocks)) for i in rows])
            yield {**self.table.batch(lengths), "rows": torch.tensor(rows)}


class GrammarDataModule(pl.LightningDataModule):
    """Next-symbol prediction on a counting language, generated on the fly.

    - train: ``batch_size`` fresh sequences per update (reference: 1), from ``seed``;
    - val (the per-evaluation check of ``solved``, which early stopping and restarts act on):
      ``eval_sequences`` (100) sequences drawn once from a stream of their own;
    - test: another ``eval_sequences`` fresh sequences from a third stream (so the reported
      ``solved`` is not measured on the sequences that decided when to stop), then one sequence
      per block length n = 1..``eval_max_n`` (40), each two blocks of length n, to measure how
      far the counting generalises.

    With ``population`` (for ``SequencePopulation``), training items stack the batches of seeds
    ``seed .. seed + seeds - 1`` (``PopulationStream``), and ``population_sets`` gives every
    seed's own validation and test sequences, as each would have alone.

    Args:
        language: anbn, anb2n, anbncn or anb2nc3n.
        max_n: block lengths are uniform in 1..max_n (reference 4).
        blocks: blocks per sequence (reference 5).
        seeds, population: how many seeds train together, as a population.
    """

    def __init__(self, language: str = "anb2n", max_n: int = 4, blocks: int = 5, batch_size: int = 1,
                 eval_sequences: int = 100, eval_max_n: int = 40, seed: int = 0, seeds: int = 1, population: bool = False):
        super().__init__()
        check_choice("language", language, tuple(LANGUAGES))
        check_int("max_n", max_n, 1)
        check_int("blocks", blocks, 1)
        check_int("batch_size", batch_size, 1)
        check_int("eval_sequences", eval_sequences, 1)
        check_int("eval_max_n", eval_max_n, 1)
        check_int("seeds", seeds, 1)
        self.save_hyperparameters()
        b, c = LANGUAGES[language]
        self.language = CountingLanguage(b, c, max_n)
        self.symbols = SYMBOLS[: self.language.num_symbols]
        # streams of their own: never the training sequences, nor each other
        self.val_sequences, self.test_sequences = (
            [self.language.sequence(self.language.random_lengths(rng, blocks)) for _ in range(eval_sequences)]
            for rng in (np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2]))
        )
        self.generalisation_sequences = [self.language.sequence([n, n]) for n in range(1, eval_max_n + 1)]
        self.seed_list = [seed + i for i in range(seeds)]
        self._table: SequenceTable | None = None

    @property
    def table(self) -> SequenceTable:
        if self._table is None:
            self._table = SequenceTable(self.language, self.hparams.blocks)
        return self._table

    def population_sets(self, seeds: list[int]) -> dict[str, dict[str, torch.Tensor]]:
        """Every seed's own ``val`` and ``test`` sequences (drawn as ``GrammarDataModule(seed=s)``
        draws them), stacked: (S, eval_sequences, T) tensors padded to the table's T; and the
        ``generalisation`` sequences (one per block length, the same for every seed)."""
        hp, lang, T = self.hparams, self.language, self.table.length
        out: dict[str, dict[str, torch.Tensor]] = {}
        for split, stream in (("val", 1), ("test", 2)):
            per_seed = []
            for seed in seeds:
                rng = np.random.default_rng([seed, stream])
                per_seed.append(collate([lang.sequence(lang.random_lengths(rng, hp.blocks)) for _ in range(hp.eval_sequences)], lang.num_symbols, T))
            out[split] = {k: torch.stack([b[k] for b in per_seed]) for k in per_seed[0]}
        out["generalisation"] = self.batch(self.generalisation_sequences)
        return out

    def batch(self, sequences: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
        """``sequences`` of this language collated into one padded batch (see ``collate``)."""
        return collate(sequences, self.language.num_symbols)

    def batch_of_blocks(self, block_lengths: list[list[int]]) -> dict[str, torch.Tensor]:
        """One sequence per list of block lengths (``[[1], [2]]``: a block of n = 1, one of n = 2),
        collated into one batch: what the analysis traces a network on."""
        return self.batch([self.language.sequence(lengths) for lengths in block_lengths])

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def train_dataloader(self):
        hp = self.hparams
        world, rank = self._world()
        if hp.population:
            self.population_stream = PopulationStream(self.table, hp.batch_size, self.seed_list)
            return DataLoader(self.population_stream, batch_size=None)
        # under DDP every process draws sequences of its own (process 0 keeps the single-process stream)
        seed = hp.seed if rank == 0 else [hp.seed, rank]
        return DataLoader(SequenceStream(self.language, hp.blocks, hp.batch_size, seed), batch_size=None)

    def _loader(self, sequences, batch_size):
        """Fixed batches; under DDP split over the processes without repeating any (a padding
        sampler would count some sequences twice). Batches are small so that every process gets some."""
        S = self.language.num_symbols
        batches = [collate(sequences[i : i + batch_size], S) for i in range(0, len(sequences), batch_size)]
        world, rank = self._world()
        if world == 1:
            return DataLoader(batches, batch_size=None)
        return DataLoader(batches, batch_size=None, sampler=EvalShardSampler(batches, num_replicas=world, rank=rank))

    def val_dataloader(self):
        return self._loader(self.val_sequences, 10)

    def test_dataloader(self):
        return [self._loader(self.test_sequences, 10), self._loader(self.generalisation_sequences, 4)]
