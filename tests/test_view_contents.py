"""What each TensorBoard view shows, read back from the files TensorBoard reads and checked against
an independent computation: the projector's rows against their metadata rows (a recurrent net's
states on a known sequence, from the reference's formulas; a classifier's features and labels),
the PR curves against counts made directly from the labels and scores, the attributions against
known answers (NetLin: its weight row; integrated gradients' completeness from the documented
blank-image baseline), and the histograms against the weights and gradients they claim to show."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from PIL import Image
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray

import callbacks.test_set_views as test_set_views
from analysis.attributions import integrated_gradients
from base.contracts import ShownNet
from base.errors import ConfigError
from callbacks.histograms import HistogramCallback, bounded_sample
from callbacks.state_projector import StateProjector
from callbacks.test_set_views import AttributionCallback
from datamodules.grammar import GrammarDataModule
from datamodules.kmnist import KMNISTDataModule
from lightning_modules.kmnist import KMNISTClassifier
from lightning_modules.kmnist_nets import NetConv, NetFull, NetLin
from lightning_modules.recurrent_nets import make_net
from conftest import REPO
from oracles import reference_logits, unpack


def _trainer(tmp_path: Path, datamodule=None, step: int = 0):
    return SimpleNamespace(loggers=[TensorBoardLogger(tmp_path, name="tb", version="")], global_step=step, is_global_zero=True, datamodule=datamodule)


def _rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def _events(trainer) -> EventAccumulator:
    trainer.loggers[0].experiment.flush()
    acc = EventAccumulator(trainer.loggers[0].log_dir, size_guidance={"histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


# ---- the projector ------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["srn", "lstm"])
def test_the_state_projectors_row_i_is_the_state_after_input_i_of_a_known_sequence_and_its_metadata_row_i(cell, tmp_path):
    """Two sequences of a^n b^2n c^3n, blocks [2] and [1]: 12 + 6 inputs. Row i of the tensors is
    the state after reading input i (the reference's formulas run step by step), and row i of the
    metadata that input: its symbol, phase, position in its run, count and block length, written
    out here by hand. A projector one step off (the state before the input) fails."""
    torch.manual_seed(5)
    net = make_net(cell, 3, 3)
    dm = GrammarDataModule(language="anb2nc3n", max_n=4)
    known = [dm.language.sequence([2]), dm.language.sequence([1])]
    dm.test_sequences_of = lambda seed: known
    module = SimpleNamespace(nets_to_show=lambda: [ShownNet(net, seed=0)])
    trainer = _trainer(tmp_path, dm)
    StateProjector(max_points=100).on_test_end(trainer, module)

    flat = net.flat()
    w = unpack(cell, flat.double(), 3, 3)
    states = {}
    for seq in known:
        x = F.one_hot(torch.as_tensor(seq["symbols"][:-1]), 3).double()[None]
        out = reference_logits(cell, w, x)
        for key in ("hidden", "cell"):
            if key in out:
                states.setdefault(key, []).append(out[key][0])
    folder = Path(trainer.loggers[0].log_dir) / "00000"
    meta = _rows(folder / "hidden_states" / "metadata.tsv")
    assert meta[0] == ["symbol", "phase", "position", "count", "n", "sequence"]
    assert [r[0] for r in meta[1:]] == list("AABBBBCCCCCC") + list("ABBCCC")
    assert [r[1] for r in meta[1:]] == ["A"] * 2 + ["B"] * 4 + ["C"] * 6 + ["A", "B", "B", "C", "C", "C"]
    assert [int(r[2]) for r in meta[1:]] == [1, 2, 1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 1, 1, 2, 1, 2, 3]
    assert [int(r[3]) for r in meta[1:]] == [1, 2, 4, 3, 2, 1, 6, 5, 4, 3, 2, 1, 1, 2, 1, 3, 2, 1]  # A's seen; B's or C's still to come
    assert [int(r[4]) for r in meta[1:]] == [2] * 12 + [1] * 6 and [int(r[5]) for r in meta[1:]] == [0] * 12 + [1] * 6
    for key, per_sequence in states.items():
        rows = np.array(_rows(folder / f"{key}_states" / "tensors.tsv"), dtype=float)
        want = torch.cat(per_sequence).numpy()
        assert rows.shape == want.shape == (18, 3)
        np.testing.assert_allclose(rows, want, rtol=1e-3, atol=1e-4)  # written to 4 significant digits
        assert np.abs(np.diff(want, axis=0)).max() > 1e-2  # neighbouring rows differ: a shift would show
    assert set(states) == ({"hidden", "cell"} if cell == "lstm" else {"hidden"})


def _confusions(labels, preds) -> torch.Tensor:
    """The confusion matrix (rows: true class, columns: predicted) counted directly."""
    return torch.bincount(labels * 10 + preds, minlength=100).view(10, 10)


def _image_data(n: int = 40, seed: int = 0):
    """A KMNIST data module holding ``n`` random test images (normalised) and labels 0..9."""
    g = torch.Generator().manual_seed(seed)
    dm = KMNISTDataModule()
    images = dm.from_pixels(torch.rand(n, 1, 28, 28, generator=g))
    labels = torch.arange(n) % 10
    dm.test_set = SimpleNamespace(tensors=(images, labels))
    return dm, images, labels


def test_the_classifiers_projector_row_i_is_image_is_features_and_its_metadata_row_i_its_labels(tmp_path):
    torch.manual_seed(0)
    module = KMNISTClassifier(net=NetFull(6))
    dm, images, labels = _image_data(25)
    trainer = _trainer(tmp_path, dm)
    test_set_views.TestSetViews(pr_curves=False).on_test_end(trainer, module)
    folder = Path(trainer.loggers[0].log_dir) / "00000" / "NetFull_features"
    feats = torch.tanh(images.flatten(1) @ module.net.fc1.weight.detach().T + module.net.fc1.bias.detach())  # NetFull's hidden layer
    preds = (feats @ module.net.fc2.weight.detach().T + module.net.fc2.bias.detach()).argmax(1)
    np.testing.assert_allclose(np.array(_rows(folder / "tensors.tsv"), dtype=float), feats.numpy(), rtol=1e-3, atol=1e-4)
    meta = _rows(folder / "metadata.tsv")
    assert meta[0] == ["true", "predicted", "correct", "true name", "predicted name"]
    names = KMNISTDataModule.classes
    assert meta[1:] == [[str(t), str(p), str(t == p), names[t], names[p]] for t, p in zip(labels.tolist(), preds.tolist())]
    assert len(set(preds.tolist())) > 1  # predictions that differ from row to row: a shift would show


# ---- PR curves ----------------------------------------------------------------------------------


def test_each_pr_curve_counts_the_true_labels_against_the_classs_probability(tmp_path):
    """Per class c, at each of K thresholds t_k = k / (K - 1): true positives = images of class c
    with P(c) >= t_k, false positives = other images with P(c) >= t_k, and the rest; precision
    and recall from them. Counted here from the labels and the softmax of the scores directly."""
    torch.manual_seed(1)
    module = KMNISTClassifier(net=NetLin())
    with torch.no_grad():
        module.net.fc.weight.mul_(20)  # spread the probabilities over (0, 1)
    dm, images, _ = _image_data(60)
    probs = (images.flatten(1) @ module.net.fc.weight.detach().T + module.net.fc.bias.detach()).softmax(1).double()
    labels = torch.where(torch.arange(60) % 2 == 0, probs.argmax(1), (probs.argmax(1) + 1) % 10)  # half read right, half wrong
    dm.test_set = SimpleNamespace(tensors=(images, labels))
    trainer = _trainer(tmp_path, dm, step=7)
    K = 11
    test_set_views.TestSetViews(projector=False, pr_thresholds=K).on_test_end(trainer, module)
    acc = _events(trainer)
    curves = 0
    thresholds = torch.arange(K, dtype=torch.float64) / (K - 1)
    names = KMNISTDataModule.classes
    for c in range(10):
        (event,) = acc.Tensors(f"pr_curve/{c}_{names[c]}")
        assert event.step == 7
        tp, fp, tn, fn, precision, recall = make_ndarray(event.tensor_proto)
        above = probs[:, c, None] >= thresholds  # (N, K)
        positive = (labels == c)[:, None]
        want = [(above & positive).sum(0), (above & ~positive).sum(0), (~above & ~positive).sum(0), (~above & positive).sum(0)]
        for got, expected in zip((tp, fp, tn, fn), want):
            np.testing.assert_array_equal(got, expected.numpy())
        np.testing.assert_allclose(precision, (want[0] / (want[0] + want[1]).clamp(min=1e-7)).numpy(), rtol=1e-6)
        np.testing.assert_allclose(recall, (want[0] / (want[0] + want[3]).clamp(min=1e-7)).numpy(), rtol=1e-6)
        assert tp[0] == int((labels == c).sum()) and fp[0] == 60 - tp[0]  # the lowest threshold takes every image
        curves += bool(0 < tp[K // 2] < tp[0])
    assert curves >= 3  # curves, not constants: the middle threshold passes some of a class's images and not others


# ---- attributions -------------------------------------------------------------------------------


def test_the_attributions_of_netlin_are_its_weight_rows_times_the_step_from_the_blank_image(tmp_path, monkeypatch):
    """For NetLin the score of class k is W[k] . x + b[k]: its saliency is W[k], its integrated
    gradients from the blank image (every pixel 0, normalised to -1) are (x + 1) * W[k] and sum to
    the score's change from the blank image (completeness); the difference map is that of b
    minus a. The examples are the test images of a read as b, most confident first."""
    torch.manual_seed(2)
    module = KMNISTClassifier(net=NetLin())
    dm, images, labels = _image_data(80)
    W, bias = module.net.fc.weight.detach(), module.net.fc.bias.detach()
    probs = (images.flatten(1) @ W.T + bias).softmax(1)
    preds = probs.argmax(1)
    cm = _confusions(labels, preds)
    off = cm - torch.diag(torch.diag(cm))
    a, b = divmod(int(off.argmax()), 10)  # the largest confusion
    module.last_eval = {"test": {"confusion": cm}}
    drawn = []
    monkeypatch.setattr(test_set_views, "attribution_figure", lambda pixels, maps, title: drawn.append((pixels, maps, title)) or test_set_views.Figure())
    monkeypatch.setattr(test_set_views, "publish", lambda *args, **kwargs: None)
    trainer = _trainer(tmp_path, dm)
    AttributionCallback(pairs=1, examples=3, steps=4).on_test_end(trainer, module)

    ((pixels, maps, title),) = drawn
    read_as_b = ((labels == a) & (preds == b)).nonzero().flatten()
    chosen = read_as_b[probs[read_as_b, b].argsort(descending=True)][:3]
    assert len(chosen) >= 1 and f"read as {KMNISTDataModule.classes[b]}" in title
    x = images[chosen]
    torch.testing.assert_close(pixels, dm.pixels(x))
    blank = dm.from_pixels(torch.zeros(1, 1, 28, 28))
    assert blank.unique().tolist() == [-1.0]
    step = (x - blank).flatten(1)
    (ig_b_title, ig_b), (_, ig_a), (_, diff), (_, grad_b) = maps
    torch.testing.assert_close(ig_b.flatten(1), step * W[b], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ig_a.flatten(1), step * W[a], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(diff.flatten(1), step * (W[b] - W[a]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_b.flatten(1), W[b].expand_as(step), rtol=0, atol=1e-7)
    change = (x.flatten(1) @ W[b] + bias[b]) - (blank.flatten(1) @ W[b] + bias[b])
    torch.testing.assert_close(ig_b.flatten(1).sum(1), change, rtol=1e-4, atol=1e-4)  # completeness


def test_integrated_gradients_of_netconv_from_the_blank_image_sum_to_its_score_change(tmp_path, monkeypatch):
    """Completeness through the callback on a non-linear net: each example's map of the score of
    b sums to score_b(x) - score_b(blank image) within the midpoint rule's error."""
    torch.manual_seed(3)
    module = KMNISTClassifier(net=NetConv()).eval()
    dm, images, labels = _image_data(60)
    with torch.no_grad():
        preds = module.net.scores(images).argmax(1)
    cm = _confusions(labels, preds)
    a, b = divmod(int((cm - torch.diag(torch.diag(cm))).argmax()), 10)
    module.last_eval = {"test": {"confusion": cm}}
    drawn = []
    monkeypatch.setattr(test_set_views, "attribution_figure", lambda pixels, maps, title: drawn.append((pixels, maps)) or test_set_views.Figure())
    monkeypatch.setattr(test_set_views, "publish", lambda *args, **kwargs: None)
    AttributionCallback(pairs=1, examples=4, steps=64).on_test_end(_trainer(tmp_path, dm), module)
    ((pixels, maps),) = drawn
    x = dm.from_pixels(pixels)
    blank = dm.from_pixels(torch.zeros(1, 1, 28, 28))
    with torch.no_grad():
        change = module.net.scores(x)[:, b] - module.net.scores(blank)[0, b]
    total = maps[0][1].flatten(1).sum(1)
    assert torch.all((total - change).abs() <= 0.02 * change.abs() + 1e-3), (total, change)
    for (_, got), target in ((maps[0], b), (maps[1], a)):  # with the configured 64 steps, not the function's default 32
        torch.testing.assert_close(got, integrated_gradients(module.net.scores, x, torch.full((len(x),), target), blank, 64), rtol=1e-5, atol=1e-7)


# ---- histograms ---------------------------------------------------------------------------------


def _histogram(acc, tag):
    return [(e.step, e.histogram_value) for e in acc.Histograms(tag)]


def test_the_histograms_hold_the_weights_and_gradients_of_that_update(tmp_path):
    """NetLin's 7,850 weights and their gradient on one batch, all drawn (under max_samples): the
    histogram's count, min, max, sum and sum of squares are the tensors'. NetConv's fc1 (200,704
    weights) is sampled: max_samples values from inside the tensor's range."""
    torch.manual_seed(4)
    module = KMNISTClassifier(net=NetLin())
    x, y = torch.randn(16, 1, 28, 28), torch.arange(16) % 10
    F.nll_loss(module(x), y).backward()
    trainer = _trainer(tmp_path)
    HistogramCallback(every_updates=10, max_samples=10_000).on_before_optimizer_step(trainer, module, None)
    acc = _events(trainer)
    for tag, values in (("weights/fc.weight", module.net.fc.weight), ("weights/fc.bias", module.net.fc.bias), ("gradients/fc.weight", module.net.fc.weight.grad)):
        ((step, h),) = _histogram(acc, tag)
        v = values.detach().double().flatten()
        assert step == 0 and h.num == v.numel()
        assert (h.min, h.max) == pytest.approx((float(v.min()), float(v.max())), rel=1e-6)
        assert h.sum == pytest.approx(float(v.sum()), rel=1e-5, abs=1e-7) and h.sum_squares == pytest.approx(float((v * v).sum()), rel=1e-5)
        assert sum(h.bucket) == v.numel()

    conv = KMNISTClassifier(net=NetConv())
    trainer = _trainer(tmp_path / "conv")
    HistogramCallback(max_samples=5_000).on_before_optimizer_step(trainer, conv, None)
    ((_, h),) = _histogram(_events(trainer), "weights/fc1.weight")
    w = conv.net.fc1.weight.detach()
    assert h.num == 5_000 and w.min() <= h.min and h.max <= w.max()
    assert abs(h.sum / h.num - float(w.mean())) < 4 * float(w.std()) / math.sqrt(5_000)  # a sample of these weights


def test_a_histogram_of_nan_or_inf_leaves_them_out_and_one_with_nothing_finite_is_not_drawn(tmp_path):
    """A diverging run's views before its check ends it: no TensorBoard 'histogram is empty' crash."""
    module = KMNISTClassifier(net=NetLin())
    with torch.no_grad():
        module.net.fc.weight[0, :3] = torch.tensor([math.nan, math.inf, -math.inf])
        module.net.fc.bias.fill_(math.nan)
    trainer = _trainer(tmp_path)
    HistogramCallback().on_before_optimizer_step(trainer, module, None)
    acc = _events(trainer)
    ((_, h),) = _histogram(acc, "weights/fc.weight")
    finite = module.net.fc.weight.detach().flatten()[3:].double()
    assert h.num == 7_837 and h.sum == pytest.approx(float(finite.sum()), rel=1e-5, abs=1e-7)
    assert "weights/fc.bias" not in acc.Tags()["histograms"]


class _Watched:
    """A module naming its weights, gradients and gate activations (``NamedWeights``), with its
    own update count when ``updates`` is set (``CountsUpdates``, as the grid's)."""

    def __init__(self, updates=None):
        self.weights = {"w": torch.arange(6.0).view(2, 3)}
        self.gates = {"forget": torch.tensor([0.25, 0.5, 0.75, 1.0])}
        if updates is not None:
            self.updates_done = lambda: updates[0]

    def named_weights(self):
        return self.weights

    def named_gradients(self):
        return {"w": -self.weights["w"]}

    def named_activations(self):
        return self.gates


def test_the_histograms_are_drawn_at_update_0_then_at_the_first_update_past_each_multiple_with_the_gates(tmp_path):
    """Every 5 updates: at 0, 5, 11 (the first past 10), 15, not 12 or 14; the gates' values too,
    at the update they are drawn for; with gates=false none of them; on other ranks nothing."""
    trainer, module = _trainer(tmp_path), _Watched()
    callback = HistogramCallback(every_updates=5)
    for step in (0, 3, 5, 11, 12, 14, 15):
        trainer.global_step = step
        callback.on_before_optimizer_step(trainer, module, None)
    acc = _events(trainer)
    for tag, values in (("weights/w", module.weights["w"]), ("gradients/w", -module.weights["w"]), ("gates/forget", module.gates["forget"])):
        drawn = _histogram(acc, tag)
        assert [step for step, _ in drawn] == [0, 5, 11, 15], tag
        assert all(h.num == values.numel() and h.sum == pytest.approx(float(values.sum())) for _, h in drawn), tag

    other = _trainer(tmp_path / "other")
    other.is_global_zero = False
    no_gates = _trainer(tmp_path / "no_gates")
    for t, cb in ((other, HistogramCallback(every_updates=5)), (no_gates, HistogramCallback(every_updates=5, gates=False))):
        cb.on_before_optimizer_step(t, module, None)
    assert _events(other).Tags()["histograms"] == []
    assert sorted(_events(no_gates).Tags()["histograms"]) == ["gradients/w", "weights/w"]


def test_the_histograms_need_a_module_that_names_its_weights():
    HistogramCallback().setup(None, _Watched(), "fit")
    with pytest.raises(ConfigError) as caught:
        HistogramCallback().setup(None, object(), "fit")
    assert str(caught.value) == "callbacks.histograms needs a module that names its weights (named_weights, named_gradients), not object"


def test_a_module_that_counts_its_own_updates_is_drawn_at_its_count(tmp_path):
    """The grid makes up to 1,000 updates a Lightning step, outside ``optimizer.step``: the
    histograms are drawn after each Lightning step, at its count, and never from the optimiser hook."""
    count = [0]
    trainer, module = _trainer(tmp_path, step=1), _Watched(updates=count)
    callback = HistogramCallback(every_updates=2500)
    for updates in (1000, 2000, 3000, 4000, 5000):
        count[0] = updates
        callback.on_before_optimizer_step(trainer, module, None)
        callback.on_train_batch_end(trainer, module, None, None, 0)
    assert [step for step, _ in _histogram(_events(trainer), "weights/w")] == [1000, 3000, 5000]  # bucket 0 after the first step


def test_a_sampled_histogram_is_the_sample_drawn_with_its_updates_seed(tmp_path):
    """The values drawn at update s are ``bounded_sample(values, max_samples, generator)`` with one
    generator seeded s for the update, drawn from for the weights, then their gradients:
    reproducible from the update alone."""
    module = _Watched()
    module.weights = {"w": torch.randn(50, 40, generator=torch.Generator().manual_seed(0))}
    module.gates = {"forget": torch.rand(300, generator=torch.Generator().manual_seed(1))}
    trainer = _trainer(tmp_path, step=7)
    HistogramCallback(every_updates=1, max_samples=100).on_before_optimizer_step(trainer, module, None)
    acc = _events(trainer)
    gen = torch.Generator().manual_seed(7)
    want = {"weights/w": bounded_sample(module.weights["w"], 100, gen), "gradients/w": bounded_sample(-module.weights["w"], 100, gen),
            "gates/forget": bounded_sample(module.gates["forget"], 100, gen)}
    for tag, sample in want.items():
        ((step, h),) = _histogram(acc, tag)
        assert step == 7 and h.num == 100 and h.sum == pytest.approx(float(sample.sum()), rel=1e-6)
    assert float(want["weights/w"].sum()) != pytest.approx(-float(want["gradients/w"].sum()), rel=1e-3)  # two different subsets


def test_the_callbacks_defaults_are_their_configs_and_their_bad_settings_are_named():
    conf = OmegaConf.load(REPO / "conf" / "callbacks" / "default.yaml")
    cb = HistogramCallback()
    assert (cb.every_updates, cb.max_samples, cb.gates) == (conf.histograms.every_updates, conf.histograms.max_samples, True) == (500, 10_000, True)
    assert StateProjector().max_points == OmegaConf.load(REPO / "conf" / "callbacks" / "recurrent.yaml").state_projector.max_points == 10_000
    assert HistogramCallback(max_samples=1).max_samples == 1
    for build, line in ((lambda: HistogramCallback(gates=1), "gates=1 is invalid; allowed: true or false"),
                        (lambda: HistogramCallback(max_samples=0), "max_samples=0 is invalid; allowed: an integer >= 1"),
                        (lambda: StateProjector(max_points=0), "max_points=0 is invalid; allowed: an integer >= 1")):
        with pytest.raises(ConfigError) as caught:
            build()
        assert str(caught.value) == line


def test_the_state_projector_shows_the_analysed_seeds_own_sequences_on_rank_0_only(tmp_path):
    torch.manual_seed(6)
    net = make_net("srn", 2, 2)
    dm = GrammarDataModule(language="anb2n", max_n=4)
    own, other = [dm.language.sequence([2])], [dm.language.sequence([3])]
    dm.test_sequences_of = lambda seed: own if seed == 7 else other
    module = SimpleNamespace(nets_to_show=lambda: [ShownNet(net, seed=7)])
    trainer = _trainer(tmp_path, dm)
    StateProjector().on_test_end(trainer, module)
    meta = _rows(Path(trainer.loggers[0].log_dir) / "00000" / "hidden_states" / "metadata.tsv")
    assert [int(r[4]) for r in meta[1:]] == [2] * 6  # n = 2: seed 7's sequence, not another seed's
    elsewhere = _trainer(tmp_path / "rank1", dm)
    elsewhere.is_global_zero = False
    StateProjector().on_test_end(elsewhere, module)
    assert not (Path(elsewhere.loggers[0].log_dir) / "00000").exists()


def test_the_attribution_figures_go_to_tensorboard_and_files_one_per_confusion_with_its_examples(tmp_path, monkeypatch):
    """pairs=3 over a confusion matrix whose largest cell has no example left under the current
    weights (its pair is skipped, the next keep their numbers), one pair with a single example
    (drawn) and one with more than ``examples`` (cut to the most confident)."""
    torch.manual_seed(7)
    module = KMNISTClassifier(net=NetLin())
    dm, images, _ = _image_data(60)
    probs = (images.flatten(1) @ module.net.fc.weight.detach().T + module.net.fc.bias.detach()).softmax(1)
    preds = probs.argmax(1)
    counts = torch.bincount(preds, minlength=10)
    b = int(counts.argmax())  # the most predicted class: read for several others
    others = [c for c in range(10) if c != b]
    a1 = others[0]
    labels = preds.clone()
    read_b = (preds == b).nonzero().flatten()
    assert len(read_b) >= 4, "the case needs several images read as b"
    labels[read_b[:3]] = a1  # three a1's read as b
    labels[read_b[3]] = others[1]  # one of another class read as b
    dm.test_set = SimpleNamespace(tensors=(images, labels))
    cm = _confusions(labels, preds)
    ghost = (others[2], others[3])
    cm[ghost] = 50  # the largest confusion, with no such image under these weights
    module.last_eval = {"test": {"confusion": cm}}
    figures, published = [], []
    monkeypatch.setattr(test_set_views, "attribution_figure", lambda pixels, maps, title: figures.append(pixels) or (f"figure {len(figures)}"))
    monkeypatch.setattr(test_set_views, "publish", lambda trainer, fig, tag, png: published.append((trainer, fig, tag, png)))
    trainer = _trainer(tmp_path, dm)
    AttributionCallback(pairs=3, examples=2, steps=2, save_dir=str(tmp_path / "figures")).on_test_end(trainer, module)
    names = KMNISTDataModule.classes
    assert [(t, fig, tag, png) for t, fig, tag, png in published] == [
        (trainer, "figure 1", "attributions/final_test_2", tmp_path / "figures" / f"attributions_2_{names[a1]}_as_{names[b]}.png"),
        (trainer, "figure 2", "attributions/final_test_3", tmp_path / "figures" / f"attributions_3_{names[others[1]]}_as_{names[b]}.png")]
    first = read_b[:3][probs[read_b[:3], b].argsort(descending=True)][:2]
    torch.testing.assert_close(figures[0], dm.pixels(images[first]))  # the two most confident of three
    torch.testing.assert_close(figures[1], dm.pixels(images[read_b[3:4]]))  # a pair with one example is drawn
    published.clear()
    AttributionCallback(pairs=3, examples=2, steps=2).on_test_end(trainer, module)
    assert [png for *_, png in published] == [None, None]  # no save_dir: TensorBoard only
    elsewhere = _trainer(tmp_path, dm)
    elsewhere.is_global_zero = False
    published.clear()
    AttributionCallback(pairs=3).on_test_end(elsewhere, module)
    assert published == []
    module.last_eval = {}  # no final test yet: nothing to explain
    AttributionCallback(pairs=3).on_test_end(trainer, module)
    assert published == []


def test_the_test_set_views_defaults_settings_and_limits(tmp_path):
    conf = OmegaConf.load(REPO / "conf" / "callbacks" / "kmnist.yaml")
    views, attributions = test_set_views.TestSetViews(), AttributionCallback()
    assert (views.projector, views.pr_curves, views.max_points, views.pr_thresholds) == (True, True, conf.test_set_views.max_points, 127)
    assert (attributions.pairs, attributions.examples, attributions.steps) == (conf.attributions.pairs, conf.attributions.examples, conf.attributions.steps) == (1, 6, 32)
    assert attributions.save_dir is None and AttributionCallback(save_dir="f").save_dir == Path("f")
    for build, line in ((lambda: test_set_views.TestSetViews(projector=1), "projector=1 is invalid; allowed: true or false"),
                        (lambda: test_set_views.TestSetViews(pr_curves="yes"), "pr_curves='yes' is invalid; allowed: true or false"),
                        (lambda: test_set_views.TestSetViews(pr_thresholds=1), "pr_thresholds=1 is invalid; allowed: an integer >= 2"),
                        (lambda: AttributionCallback(pairs=0), "pairs=0 is invalid; allowed: an integer >= 1"),
                        (lambda: AttributionCallback(examples=0), "examples=0 is invalid; allowed: an integer >= 1"),
                        (lambda: AttributionCallback(steps=0), "steps=0 is invalid; allowed: an integer >= 1")):
        with pytest.raises(ConfigError) as caught:
            build()
        assert str(caught.value) == line
    assert test_set_views.TestSetViews(pr_thresholds=2).pr_thresholds == 2 and AttributionCallback(examples=1).examples == 1

    module = KMNISTClassifier(net=NetLin())
    dm, images, labels = _image_data(25)
    limit = (8192 // 28) ** 2  # 292 glyphs a side of the sprite
    with pytest.raises(ConfigError) as caught:
        test_set_views.TestSetViews(max_points=limit + 1, pr_curves=False).on_test_end(_trainer(tmp_path / "over", dm), module)
    assert str(caught.value) == f"max_points={limit + 1} is invalid; allowed: at most 85,264 (a sprite of 28-pixel glyphs is at most 8192 pixels a side)"
    trainer = _trainer(tmp_path / "ten", dm)
    test_set_views.TestSetViews(max_points=limit, pr_curves=False).on_test_end(_trainer(tmp_path / "limit", dm), module)
    test_set_views.TestSetViews(max_points=10, pr_curves=False).on_test_end(trainer, module)
    folder = Path(trainer.loggers[0].log_dir) / "00000" / "NetLin_features"
    assert len(_rows(folder / "tensors.tsv")) == 10 and len(_rows(folder / "metadata.tsv")) == 11  # the first 10 images, a header
    sprite = np.asarray(Image.open(folder / "sprite.png"), dtype=float) / 255  # 4 x 4 glyphs of 28 pixels
    for i in (0, 5, 9):
        r, c = divmod(i, 4)
        np.testing.assert_allclose(sprite[28 * r : 28 * r + 28, 28 * c : 28 * c + 28], dm.pixels(images[i])[0].numpy(), atol=1 / 255 + 1e-6)

    elsewhere = _trainer(tmp_path / "rank1", dm)
    elsewhere.is_global_zero = False
    test_set_views.TestSetViews().on_test_end(elsewhere, module)
    assert not (Path(elsewhere.loggers[0].log_dir) / "00000").exists() and _events(elsewhere).Tags()["tensors"] == []
    for data in (GrammarDataModule(), _image_data(2)[0]):
        if isinstance(data, KMNISTDataModule):
            data.test_set = None
        with pytest.raises(ConfigError) as caught:
            test_set_views.TestSetViews().on_test_end(_trainer(tmp_path / "wrong", data), module)
        assert str(caught.value) == f"the test-set views need labelled test images (data=kmnist), not {type(data).__name__}"


def test_the_attribution_figure_shows_each_glyph_over_its_maps_on_a_symmetric_red_blue_scale():
    """One column per image: the glyph in grey on [0, 1], then one row per map, in bwr with limits
    +-max|map| of that image (white is 0), each row named on the left; an empty set of images
    still gives one blank column."""
    g = torch.Generator().manual_seed(8)
    pixels = torch.rand(3, 1, 28, 28, generator=g)
    maps = [(f"map {r}", torch.randn(3, 1, 28, 28, generator=g) * (r + 1)) for r in range(2)]
    fig = test_set_views.attribution_figure(pixels, maps, "o read as su")
    assert fig._suptitle.get_text() == "o read as su" and fig._suptitle.get_fontsize() == 10
    assert tuple(fig.get_size_inches()) == pytest.approx((1.25 * 3 + 1.8, 1.3 * 3 + 0.6))  # 1.25 in a column, 1.3 a row
    assert fig.get_layout_engine().__class__.__name__ == "ConstrainedLayoutEngine"
    axes = np.array(fig.axes).reshape(3, 3)  # rows: glyph, map 0, map 1; columns: images
    for c in range(3):
        (glyph,) = axes[0, c].get_images()
        np.testing.assert_array_equal(glyph.get_array(), pixels[c, 0].numpy())
        assert glyph.get_cmap().name == "gray" and glyph.get_clim() == (0, 1)
        for r, (_, m) in enumerate(maps, start=1):
            (shown,) = axes[r, c].get_images()
            lim = float(m[c, 0].abs().max())
            np.testing.assert_array_equal(shown.get_array(), m[c, 0].numpy())
            assert shown.get_cmap().name == "bwr" and shown.get_clim() == pytest.approx((-lim, lim))
        assert all(not ax.get_xticks().size and not ax.get_yticks().size for ax in axes[:, c])
    assert [axes[r, 0].get_ylabel() for r in range(3)] == ["glyph", "map 0", "map 1"]
    assert [axes[r, 0].yaxis.label.get_fontsize() for r in range(3)] == [8, 8, 8]
    empty = test_set_views.attribution_figure(torch.zeros(0, 1, 28, 28), [("m", torch.zeros(0, 1, 28, 28))], "none")
    assert len(empty.axes) == 2 and not any(ax.axison for ax in empty.axes) and not any(ax.get_images() for ax in empty.axes)
    flat = test_set_views.attribution_figure(pixels[:1], [("zero", torch.zeros(1, 1, 28, 28))], "a zero map")
    assert np.array(flat.axes)[1].get_images()[0].get_clim() == pytest.approx((-1e-12, 1e-12))  # no division by a zero range
