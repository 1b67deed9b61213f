"""The counting LSTMs set by hand (``conf/experiment/count_lstm_manual_*``) and the measure that
scores every position under ``legal_next``: the hand-set nets recognise their language for every
n up to 10,000 (the streamed test, checked against the module's own test on the data module's
strings), their cells hold the exact counts, and a net that drops b inside an a-block, right on
every determined position, is scored wrong."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from base.errors import ConfigError
from base.languages import A, B, C
from datamodules.grammar import GrammarDataModule
from lightning_modules.long_strings import symbols_at, wrong_per_length
from lightning_modules.objectives import Objective
from lightning_modules.recurrent import SequencePredictor
from lightning_modules.recurrent_nets import LSTM, Layout
from conftest import REPO, load_results, quiet, run_train

LEGAL = Objective.of("legal_next", "mse")
LAYOUT = Layout("lstm", 3, 4)
LANGUAGES = ("anbncn", "anb2nc3n")


def hand_weights(language: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "experiment" / f"count_lstm_manual_{language}.yaml").model.weights)


def hand_flat(language: str) -> torch.Tensor:
    return LAYOUT.flat_of(hand_weights(language))


def module_wrong(flat: torch.Tensor, language: str, lengths: list[int]) -> list[int]:
    """The module's own generalisation test (``SequencePredictor._evaluate`` on the data module's
    strings, one block each from the initial state): the wrong scored positions per string."""
    model = SequencePredictor(cell="lstm", hidden_units=4, num_symbols=3, objective="legal_next", loss="mse")
    dm = GrammarDataModule(language=language, blocks=1, eval_blocks=1, eval_max_n=max(lengths))
    batch = dm.batch([dm.language.sequence([n]) for n in lengths])
    return model._evaluate({k: v[None] for k, v in batch.items()}, [0], flat[None])["wrong"][0].tolist()


def test_the_symbols_of_a_streamed_string_are_the_data_modules():
    """``symbols_at`` against the data module's own string, every position, n = 1..6 of both languages."""
    for language, (k, m) in (("anbncn", (1, 1)), ("anb2nc3n", (2, 3))):
        dm = GrammarDataModule(language=language, blocks=1)
        for n in range(1, 7):
            symbols = dm.language.sequence([n])["symbols"]
            t = torch.arange(len(symbols))
            assert symbols_at(t, torch.tensor(n), k, m).tolist() == symbols.tolist()


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_streamed_test_scores_what_the_modules_test_scores(language):
    """On n = 1..14, per string, the same wrong scored positions as the module's test on the data
    module's strings: for the hand-set net (none wrong), for three drawn nets (wrong in places),
    and for the hand-set net with its weights disturbed."""
    lengths = list(range(1, 15))
    drawn = [LAYOUT.initial("uniform", torch.Generator().manual_seed(s)) for s in range(3)]
    disturbed = hand_flat(language) + 0.8 * torch.randn(LAYOUT.size, generator=torch.Generator().manual_seed(7))
    nets = torch.stack([hand_flat(language), *drawn, disturbed])
    streamed = wrong_per_length(LAYOUT, nets, LEGAL, language, lengths)
    for i, flat in enumerate(nets):
        assert streamed[i].tolist() == module_wrong(flat, language, lengths)
    assert streamed[0].sum() == 0 and streamed[1:].sum() > 0


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_hand_set_lstm_recognises_every_string_up_to_n_1000(language):
    """Every string for n = 1..1,000, every position, float32 (about a second; the soak test
    below goes to 10,000)."""
    wrong = wrong_per_length(LAYOUT, hand_flat(language)[None], LEGAL, language, range(1, 1_001))
    assert wrong.shape == (1, 1_000) and int(wrong.sum()) == 0


@pytest.mark.soak
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_hand_set_lstm_recognises_every_string_up_to_n_10000(language):
    """Every string a^n b^n c^n (a^n b^2n c^3n) for n = 1..10,000, every position, float32 (the
    longest: 60,001 symbols): no thresholded output differs from the legal set. 35 s and 70 s on
    a 2-core AMD EPYC: ``python -m pytest -m soak``."""
    wrong = wrong_per_length(LAYOUT, hand_flat(language)[None], LEGAL, language, range(1, 10_001))
    assert wrong.shape == (1, 10_000) and int(wrong.sum()) == 0


def test_the_hand_set_cells_hold_the_exact_counts():
    """a^7 b^14 c^21 through the hand-set net for a^n b^2n c^3n: the b-count cell is k after k
    a's, then 7 - j/2 after j b's; the c-count cell 21 when the b's end, then 21 - j after j c's;
    the two flags +-1; all exactly (integers and halves, float32)."""
    net = LSTM(3, 4).load_flat(hand_flat("anb2nc3n"))
    n = 7
    symbols = [A] * n + [B] * 2 * n + [C] * 3 * n
    x = torch.nn.functional.one_hot(torch.tensor(symbols), 3).float()[None]
    cell = net.trace(x)["cell"][0]  # (T, 4)
    a, b, c = range(n), range(n, 3 * n), range(3 * n, 6 * n)
    assert cell[list(a), 2].tolist() == [k + 1.0 for k in a]
    assert cell[list(b), 2].tolist() == [n - (j + 1) / 2 for j in range(2 * n)]
    assert cell[list(b), 3].tolist() == [n + j + 1.0 for j in range(2 * n)]
    assert cell[list(c), 3].tolist() == [3.0 * n - (j + 1) for j in range(3 * n)]
    assert cell[:, 0].tolist() == [1.0] * n + [-1.0] * 5 * n
    assert cell[:, 1].tolist() == [-1.0] * 3 * n + [1.0] * 3 * n


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_position_counts_a_net_that_drops_b_inside_the_a_block_is_wrong(language):
    """The hand-set net with b's logit 21.5 h2 - 1 (in place of 6.5 h0 + 21.5 h2): it no longer
    outputs b inside an a-block (h2 is 0 there), and nowhere else changes (after a b, h2 >= 0.46
    while b's count lasts). Under legal_next every string is then wrong, at exactly its n
    a-positions, though every determined position is right."""
    weights = hand_weights(language)
    weights["out_weight"][1][0], weights["out_bias"][1] = 0.0, -1.0
    flat = LAYOUT.flat_of(weights)
    lengths = list(range(1, 13))
    wrong = wrong_per_length(LAYOUT, flat[None], LEGAL, language, lengths)[0]
    assert wrong.tolist() == lengths  # each of the n a-positions
    assert module_wrong(flat, language, lengths) == lengths
    # the determined positions alone (the measure before every position was scored) are all right
    model = SequencePredictor(cell="lstm", hidden_units=4, num_symbols=3, objective="legal_next", loss="mse")
    dm = GrammarDataModule(language=language, blocks=1)
    b = dm.batch([dm.language.sequence([n]) for n in lengths])
    logits = LSTM(3, 4).load_flat(flat)(b["inputs"])
    right = model.objective.right(logits, b["targets"], b["inputs"])
    assert bool(right[b["determined"]].all()) and not bool(right[b["valid"]].all())


def test_hand_set_weights_of_the_wrong_shape_or_keys_are_one_line():
    weights = hand_weights("anbncn")
    with pytest.raises(ConfigError) as info:
        SequencePredictor(cell="lstm", hidden_units=3, num_symbols=3, weights=weights)
    assert str(info.value) == "weights.weight_ih='an array of shape [16, 3]' is invalid; allowed: finite numbers of shape [12, 3]"
    del weights["bias"]
    with pytest.raises(ConfigError) as info:
        SequencePredictor(cell="lstm", hidden_units=4, num_symbols=3, weights=weights)
    assert str(info.value).startswith("weights=['out_bias', 'out_weight', 'weight_hh', 'weight_ih'] is invalid; allowed: exactly the keys weight_ih, weight_hh, bias,")
    with pytest.raises(ConfigError) as info:
        SequencePredictor(cell="lstm", hidden_units=4, num_symbols=3, seeds=2, weights=hand_weights("anbncn"))
    assert str(info.value).startswith("seeds=2 is invalid; allowed: 1 with hand-set weights")


@pytest.mark.slow
def test_the_hand_set_experiment_runs_and_reports_every_length_right(tmp_path):
    """``python train.py experiment=count_lstm_manual_anb2nc3n eval.max_n=60``: evaluated, not
    trained; solved, every length 1..60 right, every scored position right; the config it ran
    holds the hand-set weights."""
    proc = run_train("experiment=count_lstm_manual_anb2nc3n", "eval.max_n=60", *quiet(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = load_results(tmp_path)
    assert r["solved"] and r["acc"] == 1.0 and r["max_n_generalised"] == 60 and r["fraction_lengths_right"] == 1.0
    saved = OmegaConf.load(tmp_path / "config.yaml")
    assert OmegaConf.to_container(saved.model.weights) == hand_weights("anb2nc3n")
    assert (tmp_path / "figures" / "gates_by_phase.png").is_file() and (tmp_path / "figures" / "cell_trajectories.png").is_file()
