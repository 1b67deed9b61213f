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

from base.errors import check, check_choice, check_int
from base.languages import A, B, C, LANGUAGES, PHASE_A, PHASE_B, PHASE_C, PHASE_RESET, symbol_names
from base.seeds import seeds_of_rank

FIELDS = ("inputs", "targets", "probs", "ref_probs", "determined", "valid", "phase", "count", "n", "step")
# The reference's generator gives every position whose input is an A the fixed target distribution
# P(A) = 0.8, P(B) = 0.2 (not the exact probability); its printed error is measured against it.
REFERENCE_A_TARGET = (0.8, 0.2)


@dataclass(frozen=True)
class CountingLanguage:
    """a^n b^(b n) c^(c n), with n uniform in 1..max_n; with ``end`` a sequence ends with the end
    symbol T (the last symbol's target) in place of the next block's a (Suzgun et al. 2019)."""

    b: int
    c: int
    max_n: int
    end: bool = False

    @property
    def num_symbols(self) -> int:
        """Outputs (and input columns: T's is never set), the end symbol's index the last."""
        return (3 if self.c else 2) + self.end

    @property
    def last(self) -> int:
        """The symbol after a sequence's last block: the next block's a, or T."""
        return self.num_symbols - 1 if self.end else A

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
        sym.append(self.last)  # the next block's A (the last B/C must predict it), or T
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

    def longest(self, blocks: int) -> int:
        """The positions of the longest sequence of ``blocks`` blocks (every n = max_n)."""
        return blocks * self.max_n * (1 + self.b + self.c)

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
    """Batches of fresh random sequences, forever, from a seeded generator, one ``sequence`` at
    a time: the plain reading of the generator, against which the tests check ``SeedStreams``."""

    def __init__(self, language: CountingLanguage, blocks: int, batch_size: int, seed: int | list[int]):
        self.language, self.blocks, self.batch_size, self.seed = language, blocks, batch_size, seed

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        lang = self.language
        while True:
            yield collate([lang.sequence(lang.random_lengths(rng, self.blocks)) for _ in range(self.batch_size)], lang.num_symbols)


def training_batch(language: CountingLanguage, lengths: np.ndarray, length: int | None = None) -> dict[str, torch.Tensor]:
    """Block lengths ``(..., blocks)`` -> the fields training needs, as ``collate`` makes them:
    ``inputs`` (..., T, S) one-hot, ``targets`` (..., T) (-100 at padding) and ``valid``
    (..., T), padded to the longest sequence (or to ``length``). Built with one ``np.repeat``
    over runs of equal symbols instead of a ``sequence`` call per sequence (thousands per update
    in a population)."""
    lengths = np.asarray(lengths, np.int64)
    lead, blocks = lengths.shape[:-1], lengths.shape[-1]
    n = lengths.reshape(-1, blocks)
    runs = [(A, 1), (B, language.b)] + ([(C, language.c)] if language.c else [])
    symbols = np.array([s for s, _ in runs] * blocks + [language.last], np.int64)  # every sequence: these runs, then the next block's A (or T)
    run_lengths = np.concatenate([np.repeat(n, len(runs), axis=1) * np.tile([k for _, k in runs], blocks), np.ones((len(n), 1), np.int64)], axis=1)
    total = run_lengths.sum(axis=1)  # symbols per sequence
    T = length if length is not None else (int(total.max()) - 1 if len(total) else 0)
    flat = np.repeat(np.tile(symbols, len(n)), run_lengths.ravel())
    rows = np.repeat(np.arange(len(n)), total)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(total) - total, total)
    seq = np.full((len(n), T + 1), -1, np.int64)
    seq[rows, cols] = flat
    inputs, targets = seq[:, :-1], seq[:, 1:]
    valid = targets >= 0
    onehot = np.zeros((len(n), T, language.num_symbols), np.float32)
    np.put_along_axis(onehot, np.maximum(inputs, 0)[..., None], 1.0, axis=-1)
    onehot *= valid[..., None]
    return {"inputs": torch.from_numpy(onehot.reshape(*lead, T, language.num_symbols)), "targets": torch.from_numpy(np.where(valid, targets, -100).reshape(*lead, T)),
            "valid": torch.from_numpy(valid.reshape(*lead, T))}


class BatchTable:
    """Every sequence of ``blocks`` blocks with lengths in 1..max_n, built once by
    ``training_batch`` (``max_n ** blocks`` of them: 1,024 for the reference's 4 and 5), so that
    the batches of many seeds are one gather instead of thousands of sequences built anew. Only
    for languages whose table is small (``fits``); the others build their batches each time."""

    LIMIT = 1 << 16  # sequences

    def __init__(self, language: CountingLanguage, blocks: int):
        N = language.max_n
        grids = np.stack(np.meshgrid(*[np.arange(1, N + 1)] * blocks, indexing="ij"), axis=-1).reshape(-1, blocks)
        self.fields = training_batch(language, grids, language.longest(blocks))  # row = sum_j (n_j - 1) N^(blocks-1-j)
        self.weights = N ** np.arange(blocks - 1, -1, -1)

    @staticmethod
    def fits(language: CountingLanguage, blocks: int) -> bool:
        return language.max_n ** blocks <= BatchTable.LIMIT

    def batch(self, lengths: np.ndarray) -> dict[str, torch.Tensor]:
        """What ``training_batch(language, lengths, longest)`` gives, by one gather."""
        lengths = np.asarray(lengths)
        rows = torch.from_numpy(((lengths - 1) * self.weights).sum(-1).reshape(-1))
        return {k: v.index_select(0, rows).reshape(*lengths.shape[:-1], *v.shape[1:]) for k, v in self.fields.items()}


class SeedStreams(IterableDataset):
    """For each of ``seeds`` (seed values), the batches a run with that seed trains on, forever:
    ``batch_size`` sequences of ``blocks`` blocks, the block lengths drawn from the seed's own
    generator exactly as ``SequenceStream`` draws them (the same generator, the same draws), so a
    seed trains on the same sequences alone and in a population. One item is ``{inputs (R, B, T,
    S), targets (R, B, T), valid (R, B, T), rows (R,)}`` for the R seeds still training (``rows``:
    their indices in ``seeds``), padded to the language's longest sequence, so that a seed's
    sums run over the same positions whatever the other seeds drew (bit for bit alone or not).

    ``end(i)``: seed i has ended and its generator stops drawing, which changes nothing for the
    others. The generators draw ``chunk`` batches' lengths at a time (one call instead of
    ``chunk``: the same numbers) and remember their state at the start of each chunk, so
    ``state_at(k)`` can give the state before the k-th batch (0-based) of the stream cheaply, and
    a stream resumed from it (``start``) draws what the uninterrupted stream would have drawn."""

    def __init__(self, language: CountingLanguage, blocks: int, batch_size: int, seeds: list[int], active: list[int] | None = None,
                 start: dict | None = None, chunk: int = 64, sets: list[np.ndarray] | None = None):
        self.language, self.blocks, self.batch_size, self.seeds, self.chunk = language, blocks, batch_size, seeds, chunk
        self.sets = sets  # per seed, a fixed training set (K, blocks) replayed in order (None: fresh draws)
        self.ended = [i not in (active if active is not None else range(len(seeds))) for i in range(len(seeds))]
        self.start = start  # {"batch": k, "states": [generator state at the start of k's chunk, per seed]}
        self._chunk_states: dict[int, list] = {}  # chunk start batch -> generator states there
        self._table = BatchTable(language, blocks) if BatchTable.fits(language, blocks) else None

    def end(self, index: int) -> None:
        self.ended[index] = True

    def state_at(self, batch: int) -> dict:
        """The stream's position before its ``batch``-th batch (one drawn since the start: Lightning
        fetches a batch ahead of the one training)."""
        if self.sets is not None:  # a fixed set: the position is the batch's index
            return {"batch": batch}
        first = batch - batch % self.chunk
        states = self._chunk_states.get(first)
        return {} if states is None else {"batch": batch, "chunk_start": first, "states": states}

    def _batch(self, lengths: np.ndarray, rows: list[int]) -> dict:
        """The item for block lengths ``(R, B, blocks)`` of the seeds ``rows``."""
        fields = self._table.batch(lengths) if self._table is not None and rows else training_batch(self.language, lengths, self.language.longest(self.blocks))
        # steps: the longest real sequence, which the recurrence runs to (each sequence has 1 + (1 + b + c) sum(n) symbols)
        steps = int(lengths.sum(-1).max()) * (1 + self.language.b + self.language.c) if rows else 0
        return {**fields, "rows": torch.tensor(rows, dtype=torch.long), "steps": steps}

    def _replay(self):
        """Each seed's fixed set, ``batch_size`` strings an update in the set's order, from the start again after its last."""
        B, k = self.batch_size, (self.start or {}).get("batch", 0)
        while True:
            rows = [i for i, ended in enumerate(self.ended) if not ended]
            lengths = np.stack([s[(k * B + np.arange(B)) % len(s)] for s in (self.sets[i] for i in rows)]) if rows else np.ones((0, B, self.blocks), np.int64)
            yield self._batch(lengths, rows)
            k += 1

    def __iter__(self):
        if self.sets is not None:
            yield from self._replay()
            return
        N, B, blocks, K = self.language.max_n, self.batch_size, self.blocks, self.chunk
        rngs = [np.random.default_rng(seed) for seed in self.seeds]
        k = 0
        if self.start is not None:  # resume: the states at the start of the chunk, then skip into it
            for rng, state in zip(rngs, self.start["states"]):
                rng.bit_generator.state = state
            k = self.start["chunk_start"]
        drawn: dict[int, np.ndarray] = {}
        while True:
            if k % K == 0:
                self._chunk_states = {s: v for s, v in self._chunk_states.items() if s >= k - K}  # the chunk before is still being trained on
                self._chunk_states[k] = [rng.bit_generator.state for rng in rngs]
                drawn = {i: rngs[i].integers(1, N + 1, size=(K, B, blocks)) for i, ended in enumerate(self.ended) if not ended}
            if self.start is None or k >= self.start["batch"]:
                rows = [i for i, ended in enumerate(self.ended) if not ended and i in drawn]
                lengths = np.stack([drawn[i][k % K] for i in rows]) if rows else np.ones((0, B, blocks), np.int64)  # none: this process's seeds have all ended
                yield self._batch(lengths, rows)
            k += 1


class EveryProcess(IterableDataset):
    """Fixed batches that every process gets whole: Lightning splits map-style datasets over the
    processes of a DDP run, and here each process evaluates its own seeds on all their sequences."""

    def __init__(self, batches: list[dict[str, torch.Tensor]]):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


class GrammarDataModule(pl.LightningDataModule):
    """Next-symbol prediction on a counting language, generated on the fly, for ``seeds``
    networks (seeds ``seed .. seed + seeds - 1``; one for a single run), each with its own data:

    - train: ``batch_size`` fresh sequences per update (reference: 1), from the seed's generator
      (``SeedStreams``);
    - val (the per-evaluation check of ``solved``, which early stopping and restarts act on):
      ``eval_sequences`` (100) sequences drawn once from a stream of the seed's own
      (``numpy.random.default_rng([seed, 1])``);
    - test: another ``eval_sequences`` fresh sequences from a third stream (``[seed, 2]``, so the
      reported ``solved`` is not measured on the sequences that decided when to stop), then one
      sequence per block length n = 1..``eval_max_n`` (40), each ``eval_blocks`` (2) blocks of
      length n, the same for every seed, to measure how far the counting generalises.

    The evaluation batches stack every seed's sequences: ``(seeds, sequences, T, ...)``.
    Under several processes each trains its share of the seeds (``base.seeds.seeds_of_rank``),
    and draws and evaluates only those.

    Model selection (``select_lengths``, e.g. 11..20 beyond a training bound of 10): at every
    evaluation the module also runs one single-block sequence per length n in the list (n a's,
    then the b's and c's, then the next a), and keeps each seed's best net on them beside the
    final one. These are not the test's sequences, which have two blocks per length.

    Args:
        language: anbn, anb2n, anbncn or anb2nc3n.
        max_n: block lengths are uniform in 1..max_n (reference 4).
        blocks: blocks per sequence (reference 5).
        seeds: how many networks train, each on its own data.
        select_lengths: block lengths of the model-selection sequences (None: no selection).
        eval_blocks: blocks per generalisation test string: 2 (a block of n, then another: the
            count must also reset, as in the reference's study) or 1 (one string a^n b^kn c^mn
            from the initial state, then the next a: the literature's test).
        end_symbol: every sequence ends with the end symbol T (one more output, the last; its
            input column is never set) in place of the next block's a: Suzgun et al.'s strings.
        train_strings: K: each seed trains on a fixed set of K sequences, drawn once and replayed
            in the same order, ``batch_size`` an update, from the start again after the last (an
            epoch is K / batch_size updates); null: a fresh draw every update.
        train_set_seed: with ``train_strings``: null, each seed draws its own set (from
            ``[seed, 3]``); an integer, every seed trains on the one set that seed draws (shared,
            as Suzgun et al.'s trials).
        track_generalisation: every evaluation also runs the generalisation test (one string per
            n = 1..eval_max_n, streamed: ``lightning_modules.long_strings``) on every seed still
            training: results.json's ``generalisation_curve`` and ``max_n_generalised/val``.
    """

    EVAL_BATCH = 25  # sequences per evaluation batch and seed (100 seeds: ~15 MB a batch)

    def __init__(self, language: str = "anb2n", max_n: int = 4, blocks: int = 5, batch_size: int = 1,
                 eval_sequences: int = 100, eval_max_n: int = 40, seed: int = 0, seeds: int = 1, select_lengths: list[int] | None = None,
                 eval_blocks: int = 2, end_symbol: bool = False, train_strings: int | None = None, train_set_seed: int | None = None,
                 track_generalisation: bool = False):
        super().__init__()
        check_choice("language", language, tuple(LANGUAGES))
        check_int("max_n", max_n, 1)
        check_int("blocks", blocks, 1)
        check_int("batch_size", batch_size, 1)
        check_int("eval_sequences", eval_sequences, 1)
        check_int("eval_max_n", eval_max_n, 1)
        check_int("seeds", seeds, 1)
        check(eval_blocks in (1, 2), "eval_blocks", eval_blocks, "1 or 2")
        check(isinstance(end_symbol, bool), "end_symbol", end_symbol, "true or false")
        check(isinstance(track_generalisation, bool) and not (track_generalisation and eval_blocks != 1), "track_generalisation", track_generalisation,
              "true or false (true with data.eval_blocks=1: the tracked test runs one block a string)")
        if train_strings is not None:
            check_int("train_strings", train_strings, 1)
        check(train_set_seed is None or (isinstance(train_set_seed, int) and not isinstance(train_set_seed, bool) and train_strings is not None),
              "train_set_seed", train_set_seed, "null, or an integer with data.train_strings set")
        if select_lengths is not None:
            select_lengths = list(select_lengths)  # (a ListConfig from Hydra)
            ok = len(select_lengths) > 0 and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in select_lengths)
            check(ok and len(set(select_lengths)) == len(select_lengths), "select_lengths", select_lengths, "null or a list of distinct integers >= 1")
        self.save_hyperparameters()
        b, c = LANGUAGES[language]
        self.language = CountingLanguage(b, c, max_n, end_symbol)
        self.symbols = symbol_names(language, end_symbol)
        self.seed_list = [seed + i for i in range(seeds)]
        self.generalisation_sequences = [self.language.sequence([n] * eval_blocks) for n in range(1, eval_max_n + 1)]
        self.selection_sequences = [self.language.sequence([n]) for n in select_lengths] if select_lengths else []
        self._eval: dict[str, list[list[dict]]] = {}
        self.stream: SeedStreams | None = None
        self._resume: dict | None = None

    def eval_sequences(self, split: str, seed: int) -> list[dict[str, np.ndarray]]:
        """Seed ``seed``'s ``val`` or ``test`` sequences (drawn once, from their own stream)."""
        stream = {"val": 1, "test": 2}[split]
        rng = np.random.default_rng([seed, stream])
        return [self.language.sequence(self.language.random_lengths(rng, self.hparams.blocks)) for _ in range(self.hparams.eval_sequences)]

    def _sets(self, split: str) -> list[list[dict]]:
        if split not in self._eval:
            self._eval[split] = [self.eval_sequences(split, s) for s in self.seed_list]
        return self._eval[split]

    @property
    def test_sequences(self) -> list[dict[str, np.ndarray]]:
        """The first seed's test sequences (those of ``seed``)."""
        return self._sets("test")[0]

    def test_sequences_of(self, seed: int) -> list[dict[str, np.ndarray]]:
        return self._sets("test")[self.seed_list.index(seed)]

    def val_sequences_of(self, seed: int) -> list[dict[str, np.ndarray]]:
        return self._sets("val")[self.seed_list.index(seed)]

    def batch(self, sequences: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
        """``sequences`` of this language collated into one padded batch (see ``collate``)."""
        return collate(sequences, self.language.num_symbols)

    def batch_of_blocks(self, block_lengths: list[list[int]]) -> dict[str, torch.Tensor]:
        """One sequence per list of block lengths (``[[1], [2]]``: a block of n = 1, one of n = 2),
        collated into one batch: what the analysis traces a network on."""
        return self.batch([self.language.sequence(lengths) for lengths in block_lengths])

    def training_set(self, seed: int) -> np.ndarray:
        """Seed ``seed``'s fixed training set (``train_strings``): block lengths ``(K, blocks)``,
        drawn once from ``[seed, 3]`` (or ``[train_set_seed, 3]``, shared by every seed)."""
        hp = self.hparams
        source = seed if hp.get("train_set_seed") is None else hp.train_set_seed
        return np.random.default_rng([source, 3]).integers(1, self.language.max_n + 1, size=(hp.train_strings, hp.blocks))

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def my_seeds(self) -> list[int]:
        """Indices of the seeds this process trains and evaluates."""
        return seeds_of_rank(len(self.seed_list), *self._world())

    def end_seed(self, index: int) -> None:
        """Seed ``index`` has ended: its sequences are no longer drawn."""
        if self.stream is not None:
            self.stream.end(index)

    # -- a resumed run draws what the uninterrupted run would have drawn ----------------------
    def state_dict(self) -> dict:
        """The training stream's position: before the batch the next update trains on (one
        batch per update: ``trainer.global_step`` batches have been trained on)."""
        if self.stream is None or self.trainer is None:
            return {}
        position = self.stream.state_at(self.trainer.global_step)
        return {"stream": position} if position else {}

    def load_state_dict(self, state_dict: dict) -> None:
        self._resume = state_dict.get("stream")

    def train_dataloader(self):
        hp = self.hparams
        sets = [self.training_set(s) for s in self.seed_list] if hp.get("train_strings") else None
        self.stream = SeedStreams(self.language, hp.blocks, hp.batch_size, self.seed_list, active=self.my_seeds(), start=self._resume, sets=sets)
        self._resume = None
        return DataLoader(self.stream, batch_size=None)

    def _stacked(self, per_seed: list[list[dict]], length: int) -> list[dict[str, torch.Tensor]]:
        """Every seed's sequences, padded to ``length``, in batches ``(seeds, EVAL_BATCH, T, ...)``
        (the other processes' seeds included, as zeros are not: every process evaluates only
        its own rows, see the module)."""
        S = self.language.num_symbols
        out = []
        for start in range(0, len(per_seed[0]), self.EVAL_BATCH):
            parts = [collate(seqs[start : start + self.EVAL_BATCH], S, length) for seqs in per_seed]
            out.append({k: torch.stack([p[k] for p in parts]) for k in parts[0]})
        return out

    def _loader(self, split: str):
        # padded to the longest possible sequence: a seed's sums do not depend on the other seeds' sequences
        return DataLoader(EveryProcess(self._stacked(self._sets(split), self.language.longest(self.hparams.blocks))), batch_size=None)

    def _shared_loader(self, sequences: list[dict[str, np.ndarray]]):
        """One batch of ``sequences``, the same for every seed (``(1, N, ...)``), whole on every process."""
        batch = self.batch(sequences)
        return DataLoader(EveryProcess([{k: v[None] for k, v in batch.items()}]), batch_size=None)

    def val_dataloader(self):
        if not self.selection_sequences:
            return self._loader("val")
        return [self._loader("val"), self._shared_loader(self.selection_sequences)]

    def test_dataloader(self):
        return [self._loader("test"), self._shared_loader(self.generalisation_sequences)]
