"""The recurrent study's data streams in process: a stream's position before any batch, a stream
resumed from it drawing what the uninterrupted one draws, the data module's checkpointed state,
and the per-seed evaluation sets against each seed's generator drawn alone. (The kill-and-resume
runs of train.py in tests/test_population.py check the same end to end.)"""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from datamodules.grammar import CountingLanguage, GrammarDataModule, SeedStreams, collate

LANG = CountingLanguage(2, 0, 4)


def _take(stream, k):
    it = iter(stream)
    return [next(it) for _ in range(k)]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a)


@pytest.mark.parametrize("resume_at", [0, 1, 5, 6, 7, 13])
def test_a_stream_resumed_from_its_state_draws_what_the_uninterrupted_stream_draws(resume_at):
    batches = _take(SeedStreams(LANG, 5, 2, seeds=[3, 4, 5], chunk=6), 16)
    interrupted = SeedStreams(LANG, 5, 2, seeds=[3, 4, 5], chunk=6)
    _take(interrupted, resume_at + 1)  # trained on resume_at batches; Lightning had fetched one more
    state = interrupted.state_at(resume_at)
    assert state["batch"] == resume_at and state["chunk_start"] == resume_at - resume_at % 6 and len(state["states"]) == 3
    resumed = SeedStreams(LANG, 5, 2, seeds=[3, 4, 5], start=state, chunk=6)
    again = _take(resumed, 16 - resume_at)
    assert len(again) == 16 - resume_at and all(_same(a, b) for a, b in zip(again, batches[resume_at:]))


def test_the_state_of_a_position_whose_chunk_is_gone_or_not_drawn_is_empty():
    stream = SeedStreams(LANG, 5, 1, seeds=[0], chunk=4)
    assert stream.state_at(0) == {}  # nothing drawn yet
    _take(stream, 13)  # chunks at 0, 4, 8, 12 drawn; 0 and 4 forgotten (only the one before the newest is kept)
    assert stream.state_at(2) == {} and stream.state_at(5) == {}
    assert stream.state_at(9)["chunk_start"] == 8 and stream.state_at(12)["chunk_start"] == 12
    assert stream.state_at(16) == {}


def test_each_seeds_batches_are_its_own_generators_draws():
    """Seed s's block lengths are ``default_rng(s).integers(1, N + 1, (chunk, B, blocks))``, a
    chunk at a time, whatever the other seeds are; an ended seed leaves the batches."""
    stream = SeedStreams(LANG, 3, 2, seeds=[7, 9], chunk=5)
    batches = _take(stream, 7)
    drawn = []
    for row, seed in enumerate([7, 9]):
        rng = np.random.default_rng(seed)
        lengths = np.concatenate([rng.integers(1, 5, size=(5, 2, 3)), rng.integers(1, 5, size=(5, 2, 3))])
        drawn.append(lengths)
        for k, batch in enumerate(batches):
            alone = collate([LANG.sequence(l) for l in lengths[k]], 2, LANG.longest(3))
            assert torch.equal(batch["inputs"][row], alone["inputs"]) and torch.equal(batch["targets"][row], alone["targets"])
    for k, batch in enumerate(batches):  # the longest sequence of any seed: 1 + 3 sum(n) symbols, 3 sum(n) inputs
        assert batch["steps"] == max(int(d[k].sum(-1).max()) for d in drawn) * 3
    assert all(b["rows"].tolist() == [0, 1] for b in batches)
    stream.end(0)
    later = next(iter(SeedStreams(LANG, 3, 2, seeds=[7, 9], active=[1], chunk=5)))
    assert later["rows"].tolist() == [1] and torch.equal(later["inputs"][0], batches[0]["inputs"][1])
    none = next(iter(SeedStreams(LANG, 3, 2, seeds=[7, 9], active=[], chunk=5)))
    assert none["rows"].tolist() == [] and none["steps"] == 0 and none["inputs"].shape[0] == 0


def test_the_data_modules_state_is_the_streams_position_at_the_trainers_step():
    dm = GrammarDataModule(language="anb2n", seeds=2, seed=10)
    assert dm.state_dict() == {}  # no stream yet
    dm.trainer = SimpleNamespace(world_size=1, global_rank=0, global_step=3)
    loader = dm.train_dataloader()
    assert dm.state_dict() == {}  # nothing drawn
    it = iter(loader)
    drawn = [next(it) for _ in range(6)]
    state = dm.state_dict()
    assert state == {"stream": dm.stream.state_at(3)} and state["stream"]["batch"] == 3
    fresh = GrammarDataModule(language="anb2n", seeds=2, seed=10)
    fresh.trainer = dm.trainer
    fresh.load_state_dict(state)
    resumed = iter(fresh.train_dataloader())
    assert all(_same(next(resumed), b) for b in drawn[3:])
    assert fresh._resume is None  # used once: a later dataloader starts over
    fresh.load_state_dict({})
    assert fresh._resume is None


def test_every_seeds_evaluation_sets_are_its_generator_drawn_alone():
    dm = GrammarDataModule(language="anb2nc3n", max_n=10, blocks=2, eval_sequences=3, seed=4, seeds=3)
    lang = dm.language
    for split, stream in (("val", 1), ("test", 2)):
        for seed in (4, 5, 6):
            rng = np.random.default_rng([seed, stream])
            alone = [lang.sequence(rng.integers(1, 11, size=2)) for _ in range(3)]
            got = dm.eval_sequences(split, seed)
            assert len(got) == 3 and all(np.array_equal(a["symbols"], b["symbols"]) for a, b in zip(got, alone))
    assert all(np.array_equal(a["symbols"], b["symbols"]) for a, b in zip(dm.test_sequences_of(5), dm.eval_sequences("test", 5)))
    assert all(np.array_equal(a["symbols"], b["symbols"]) for a, b in zip(dm.test_sequences, dm.eval_sequences("test", 4)))
    assert not np.array_equal(dm.eval_sequences("val", 4)[0]["symbols"], dm.eval_sequences("test", 4)[0]["symbols"])
    with pytest.raises(ValueError):
        dm.test_sequences_of(7)  # not one of this run's seeds
    batch = dm.batch_of_blocks([[1], [2, 1]])
    one = collate([lang.sequence([1]), lang.sequence([2, 1])], 3)
    assert batch.keys() == one.keys() and all(torch.equal(batch[k], one[k]) for k in batch)
    assert batch["inputs"].shape == (2, len(lang.sequence([2, 1])["targets"]), 3)


def test_the_generalisation_strings_have_one_or_two_blocks_per_length():
    two = GrammarDataModule(language="anbncn", eval_max_n=3)
    one = GrammarDataModule(language="anbncn", eval_max_n=3, eval_blocks=1)
    lang = two.language
    assert [s["symbols"].tolist() for s in one.generalisation_sequences] == [lang.sequence([n])["symbols"].tolist() for n in (1, 2, 3)]
    assert [s["symbols"].tolist() for s in two.generalisation_sequences] == [lang.sequence([n, n])["symbols"].tolist() for n in (1, 2, 3)]
    assert one.generalisation_sequences[1]["symbols"].tolist() == [0, 0, 1, 1, 2, 2, 0]  # a a b b c c | a
    with pytest.raises(Exception, match=r"^eval_blocks=3 is invalid; allowed: 1 or 2$"):
        GrammarDataModule(eval_blocks=3)


def test_training_batches_of_any_shape_are_the_sequences_collated_one_by_one():
    """``training_batch`` builds (..., T, S) inputs at once; the oracle collates each sequence
    from ``CountingLanguage.sequence``. Lengths (2, 3, blocks), padded to a given length or to the longest."""
    from datamodules.grammar import training_batch

    lang = CountingLanguage(2, 3, 6)
    lengths = np.random.default_rng(0).integers(1, 7, size=(2, 3, 2))
    for length in (None, lang.longest(2)):
        got = training_batch(lang, lengths, length)
        T = length if length is not None else max(len(lang.sequence(l)["targets"]) for l in lengths.reshape(-1, 2))
        assert got["inputs"].shape == (2, 3, T, 3) and got["targets"].shape == (2, 3, T) and got["valid"].shape == (2, 3, T)
        for i in range(2):
            one = collate([lang.sequence(l) for l in lengths[i]], 3, T)
            for key in ("inputs", "targets", "valid"):
                assert torch.equal(got[key][i], one[key]), key
    abab = training_batch(CountingLanguage(1, 0, 3), np.array([[1, 2]]))
    assert abab["targets"][0].tolist() == [1, 0, 0, 1, 1, 0]  # a b | a a b b | a


def test_a_seed_that_ends_stops_drawing_in_the_running_stream():
    dm = GrammarDataModule(language="anb2n", seeds=3, seed=0)
    assert dm.state_dict() == {}
    dm.end_seed(0)  # before any stream: nothing to stop
    dm.trainer = SimpleNamespace(world_size=1, global_rank=0, global_step=0)
    it = iter(dm.train_dataloader())
    assert next(it)["rows"].tolist() == [0, 1, 2]
    dm.end_seed(1)
    later = [next(it)["rows"].tolist() for _ in range(3)]
    assert later[-1] == [0, 2] and dm.stream.ended == [False, True, False]
    dm.trainer = None
    assert dm.state_dict() == {}  # a stream but no trainer: no position to save


def test_each_process_draws_only_its_own_seeds():
    from base.seeds import seeds_of_rank

    dm = GrammarDataModule(language="anb2n", seeds=5, seed=0)
    assert dm.my_seeds() == [0, 1, 2, 3, 4]  # no trainer: one process
    dm.trainer = SimpleNamespace(world_size=2, global_rank=1, global_step=0)
    assert dm.my_seeds() == seeds_of_rank(5, 2, 1) and len(dm.my_seeds()) < 5
    batch = next(iter(dm.train_dataloader()))
    assert batch["rows"].tolist() == dm.my_seeds()


def test_collate_pads_with_the_documented_values_in_the_documented_dtypes():
    """a b b (n = 1) beside a a b b b b (n = 2) of a^n b^2n: the short one's padding is -100 in
    ``targets``, -1 in phase/count/step/n, zero probabilities and no input; every field's dtype is
    the one the losses and the figures read."""
    lang = CountingLanguage(2, 0, 4)
    short, long_ = lang.sequence([1]), lang.sequence([2])
    b = collate([short, long_], 2)
    L, T = len(short["targets"]), len(long_["targets"])
    assert (L, T) == (3, 6) and b["targets"].shape == (2, 6)
    assert b["targets"][0, L:].tolist() == [-100] * 3 and b["valid"][0].tolist() == [True] * 3 + [False] * 3
    for key in ("phase", "count", "step", "n"):
        assert b[key][0, L:].tolist() == [-1] * 3 and b[key][0, :L].tolist() == short[key].tolist(), key
    for key in ("inputs", "probs", "ref_probs"):
        assert not b[key][0, L:].any() and b[key].dtype == torch.float32, key
    for key in ("targets", "phase", "count", "step", "n"):
        assert b[key].dtype == torch.int64, key
    assert b["valid"].dtype == b["determined"].dtype == torch.bool
    assert b["inputs"][1].argmax(-1).tolist() == [0, 0, 1, 1, 1, 1]  # a a b b b b: each position's input symbol


def test_a_training_batch_is_the_collated_sequences_padding_and_dtypes_included():
    """The fields ``training_batch`` builds at once (inputs, targets, valid: what training reads),
    against ``collate`` of the sequences one by one, padding and dtypes included."""
    from datamodules.grammar import training_batch

    lang = CountingLanguage(2, 3, 4)
    lengths = np.array([[1, 3], [4, 2], [2, 2]])
    got, one = training_batch(lang, lengths), collate([lang.sequence(l) for l in lengths], 3)
    assert set(got) == {"inputs", "targets", "valid"} and not got["valid"][2, -1] and got["targets"][2, -1] == -100
    for key in got:
        assert got[key].dtype == one[key].dtype and torch.equal(got[key], one[key]), key


def test_the_languages_longest_string_and_a_block_of_length_zero():
    """a^6 b^12 c^18 twice is 72 symbols; a block of length 0 is refused with its length."""
    assert CountingLanguage(2, 3, 6).longest(2) == 72 and CountingLanguage(2, 0, 10).longest(1) == 30
    with pytest.raises(ValueError, match=r"^block length 0 < 1$"):
        CountingLanguage(2, 0, 4).sequence([2, 0])


def test_the_batch_table_is_built_up_to_its_limit_of_sequences():
    """``BatchTable.fits``: max_n ** blocks sequences at most 65,536 (256 ** 2 fits, 257 ** 2 and
    50 ** 3 do not)."""
    from datamodules.grammar import BatchTable

    assert BatchTable.LIMIT == 65_536
    assert BatchTable.fits(CountingLanguage(1, 0, 256), 2) and not BatchTable.fits(CountingLanguage(1, 0, 257), 2)
    assert not BatchTable.fits(CountingLanguage(1, 0, 50), 3) and BatchTable.fits(CountingLanguage(1, 0, 40), 3)


@pytest.mark.parametrize("key, value, allowed", [
    ("language", "abc", "one of "), ("max_n", 0, "an integer >= 1"), ("blocks", 0, "an integer >= 1"), ("batch_size", 0, "an integer >= 1"),
    ("eval_sequences", 0, "an integer >= 1"), ("eval_max_n", 0, "an integer >= 1"), ("seeds", 0, "an integer >= 1"),
    ("select_lengths", [], "null or a list of distinct integers >= 1"), ("select_lengths", [0, 3], "null or a list of distinct integers >= 1"),
    ("select_lengths", [True], "null or a list of distinct integers >= 1"), ("select_lengths", [2.0], "null or a list of distinct integers >= 1"),
    ("end_symbol", 1, "true or false"), ("train_strings", 0, "an integer >= 1"),
    ("train_set_seed", 3, "null, or an integer with data.train_strings set"),
    ("track_generalisation", True, "true or false (true with data.eval_blocks=1: the tracked test runs one block a string)"),
])
def test_each_bad_data_setting_is_one_line_that_names_it(key, value, allowed):
    from base.errors import ConfigError

    with pytest.raises(ConfigError, match="^" + re.escape(f"{key}={value!r} is invalid; allowed: {allowed}")):
        GrammarDataModule(**{key: value})


def test_the_smallest_settings_are_allowed():
    """One evaluation sequence, lengths up to 1, a selection length of 1: all allowed; the
    symbols the figures label are the language's."""
    dm = GrammarDataModule(language="anb2n", max_n=1, eval_sequences=1, eval_max_n=1, select_lengths=[1])
    assert dm.symbols == "AB" and GrammarDataModule(language="anb2nc3n").symbols == "ABC"


@pytest.mark.parametrize("language, names, end", [("anbncn", "ABCT", 3), ("anb2n", "ABT", 2)])
def test_with_the_end_symbol_a_sequence_ends_with_t_and_the_batches_agree(language, names, end):
    """a a b b c c T (Suzgun et al.'s string for n = 2): the last target is T, the last output;
    its input column is never set; blocks follow each other and T ends the sequence only; the
    fast training batches are the sequences collated one by one."""
    from datamodules.grammar import training_batch

    dm = GrammarDataModule(language=language, end_symbol=True)
    assert dm.symbols == names and dm.language.num_symbols == end + 1
    seq = dm.language.sequence([2])
    assert "".join(names[s] for s in seq["symbols"]) == ("AABBCCT" if language == "anbncn" else "AABBBBT")
    two = dm.language.sequence([1, 2])
    assert "".join(names[s] for s in two["symbols"]) == ("ABCAABBCCT" if language == "anbncn" else "ABBAABBBBT")
    lengths = np.array([[[1, 2], [3, 1]]])
    got = training_batch(dm.language, lengths, dm.language.longest(2))
    one = collate([dm.language.sequence(l) for l in lengths[0]], end + 1, dm.language.longest(2))
    for key in ("inputs", "targets", "valid"):
        assert torch.equal(got[key][0], one[key]), key
    assert got["inputs"][..., end].sum() == 0


def test_a_fixed_training_set_is_replayed_in_order_per_seed_or_shared():
    """``train_strings=5``, 2 strings an update: update k trains on strings 2k, 2k + 1 (mod 5) of
    each seed's set, drawn once from [seed, 3]; ``train_set_seed`` gives every seed the one set;
    a stream resumed at update k goes on as the uninterrupted one."""
    dm = GrammarDataModule(language="anb2n", max_n=6, blocks=1, batch_size=2, seeds=2, seed=7, train_strings=5)
    sets = [np.random.default_rng([s, 3]).integers(1, 7, size=(5, 1)) for s in (7, 8)]
    assert all(np.array_equal(dm.training_set(s), want) for s, want in zip((7, 8), sets))
    stream = SeedStreams(dm.language, 1, 2, [7, 8], sets=sets)
    batches = _take(stream, 6)
    for k, b in enumerate(batches):
        for i in range(2):
            want = training_batch_of(dm.language, sets[i][[(2 * k) % 5, (2 * k + 1) % 5]])
            assert torch.equal(b["inputs"][i], want["inputs"]) and torch.equal(b["targets"][i], want["targets"])
    assert stream.state_at(3) == {"batch": 3}
    resumed = _take(SeedStreams(dm.language, 1, 2, [7, 8], sets=sets, start=stream.state_at(3)), 3)
    assert all(_same(a, b) for a, b in zip(resumed, batches[3:]))
    shared = GrammarDataModule(language="anb2n", max_n=6, blocks=1, seeds=2, seed=7, train_strings=5, train_set_seed=11)
    assert np.array_equal(shared.training_set(7), shared.training_set(8))
    assert np.array_equal(shared.training_set(8), np.random.default_rng([11, 3]).integers(1, 7, size=(5, 1)))


def training_batch_of(language, lengths):
    from datamodules.grammar import training_batch

    return training_batch(language, lengths, language.longest(lengths.shape[-1]))
