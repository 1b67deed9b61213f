"""The small pieces the LightningModules are built of, against hand-worked answers: the attempts'
record and restart rule, the per-seed sums, the objectives' distribution and threshold, and the
exchange of trained seeds between processes at the end of training (milliseconds each)."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.attempts import Attempts
from lightning_modules.grid import GridPerceptron
from lightning_modules.metrics import PerSeedSums
from lightning_modules.objectives import Objective


def test_an_attempt_restarts_exactly_restart_after_updates_after_its_start():
    """Restart after 10 updates, at most once: due at 10 (not 9), the next attempt starts there
    with seed + 1 and counts its updates from its start; no second restart."""
    a = Attempts(init_seed=7, restarts=1, restart_after=10, first_key="first")
    assert a.start(0) == 7
    assert (a.updates_until_restart(9), a.restart_due(9), a.restart_due(10)) == (1, False, True)
    assert a.restart(10, "replaced") == 8 and a[0] == {"attempt": 1, "seed": 7, "start_update": 0, "first": None, "outcome": "replaced", "updates": 10}
    assert a.updates_until_restart(25) is None and not a.restart_due(10**6)
    a.succeeded(14)
    a.succeeded(16)  # the first success stays
    assert a.summary(30, "won", "lost")[1] == {"attempt": 2, "seed": 8, "start_update": 10, "first": 14, "outcome": "won", "updates": 20}
    assert a.current["outcome"] == "running"  # summary() copies
    a.end(34, "stopped")
    assert (a.current["updates"], a.current["outcome"]) == (24, "stopped")
    fresh = Attempts(7, 1, 10, "first")
    fresh.load_state_dict(a.state_dict())
    assert fresh.state_dict() == a.state_dict() and fresh.records[0] is not a.records[0]


def test_per_seed_sums_add_each_seeds_rows_in_float64():
    """Rows added to their own seeds, in float64 (1e8 + 1 is exact there, not in float32), and one
    tensor per name of shape (seeds,) even for a single seed."""
    sums = PerSeedSums(3, ("a", "b"))
    sums.update(torch.tensor([2, 0]), torch.tensor([[1e8, 1.0], [5.0, 6.0]], dtype=torch.float32))
    sums.update(torch.tensor([2]), torch.tensor([[1.0, 2.0]]))
    out = sums.per_seed()
    assert out["a"].tolist() == [5.0, 0.0, 100000001.0] and out["b"].tolist() == [6.0, 0.0, 3.0] and out["a"].dtype == torch.float64
    one = PerSeedSums(1, ("a",))
    one.update(torch.tensor([0]), torch.tensor([[2.5]]))
    assert one.per_seed()["a"].shape == (1,)


def test_legal_next_reads_its_outputs_as_the_papers_do():
    """A sigmoid output counts as on when it is above 0.5 (a logit of exactly 0 is off), and the
    distribution behind ``error`` is the sigmoids scaled to sum to 1 over the symbols."""
    objective = Objective.of("legal_next", "mse")
    after_a = torch.tensor([[[1.0, 0.0, 0.0]]])  # the input is an a: a and b are legal
    target_b = torch.tensor([[1]])
    assert objective.right(torch.tensor([[[3.0, 2.0, -4.0]]]), target_b, after_a).tolist() == [[True]]
    assert objective.right(torch.tensor([[[3.0, 0.0, -4.0]]]), target_b, after_a).tolist() == [[False]]  # b's logit 0: off
    assert objective.right(torch.tensor([[[3.0, 2.0, 0.0]]]), target_b, after_a).tolist() == [[True]]  # c's logit 0: off, as it should be
    logits = torch.tensor([[[-5.0, -6.0, -7.0], [2.0, 0.0, -1.0]]])
    p = torch.sigmoid(logits)
    want = p / p.sum(-1, keepdim=True)
    torch.testing.assert_close(objective.distribution(logits), want)
    assert objective.distribution(logits).sum(-1).flatten().tolist() == pytest.approx([1.0, 1.0])
    torch.testing.assert_close(Objective.of("next_symbol", None).distribution(logits), logits.softmax(-1))


def test_at_the_end_of_training_each_process_takes_the_seeds_the_others_trained(monkeypatch):
    """The exchange under two processes, with torch.distributed's all_gather_object standing in
    for the other process: this process (rank 0) sends its own seeds' states and loads the other's,
    frozen and ended; nothing is sent in one process."""
    import torch.distributed as dist

    trained = GridPerceptron(seeds=4, init_seed=0)
    with torch.no_grad():
        trained.seed_weights += torch.arange(1.0, 5.0)[:, None]  # four nets, none as initialised
    trained.updates[:] = [10, 20, 30, 40]
    mine = GridPerceptron(seeds=4, init_seed=0)
    monkeypatch.setattr(GridPerceptron, "_world", lambda self: (2, 0))
    sent = []

    def all_gather_object(everyone, own):
        sent.append(own)
        everyone[0], everyone[1] = own, {i: trained._seed_state(i) for i in (1, 3)}  # rank 1 trains seeds 1 and 3

    monkeypatch.setattr(dist, "all_gather_object", all_gather_object)
    assert mine.my_seeds() == [0, 2]
    mine.gather_seeds()
    assert list(sent[0]) == [0, 2] and torch.equal(sent[0][2]["weights"], mine.seed_weights[2].detach())
    assert mine.ended == [False, True, False, True] and mine.updates.tolist() == [0, 20, 0, 40]
    assert mine.weights_of(3) == trained.weights_of(3) and mine.weights_of(0) != trained.weights_of(0)
    monkeypatch.setattr(GridPerceptron, "_world", lambda self: (1, 0))
    sent.clear()
    mine.gather_seeds()
    assert sent == []


@pytest.mark.parametrize("make", [lambda: GridPerceptron(seeds=5), lambda: __import__("lightning_modules.recurrent", fromlist=["SequencePredictor"]).SequencePredictor(seeds=5)])
def test_before_training_each_process_leaves_the_seeds_another_trains(make, monkeypatch):
    """Rank 1 of 2 trains seeds 1 and 3 (i mod 2 = 1); the others are ended (frozen) there."""
    module = make()
    monkeypatch.setattr(type(module), "_world", lambda self: (2, 1))
    module.take_share()
    assert module.my_seeds() == [1, 3] and module.ended == [True, False, True, False, True]
