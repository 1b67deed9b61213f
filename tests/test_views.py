"""The interactive views' pieces against known answers: attributions (a linear model's gradient is
its weight row; Captum as an independent oracle), the nets' features, the projector's points and
metadata, the histograms' samples, the custom-scalars layout and the config tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from analysis.attributions import integrated_gradients, saliency
from base.errors import ConfigError
from callbacks.histograms import bounded_sample
from callbacks.scalar_layout import ScalarLayout
from callbacks.state_projector import state_points
from lightning_modules.kmnist_nets import NetConv, NetFull, NetLin
from orchestration.config_tree import command_line_keys, config_tree, experiment_keys
from tests.conftest import REPO


def _images(n=5, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_netlins_gradient_of_a_class_score_is_its_weight_row():
    """The known answer: NetLin's score of class c is W[c] . x + b[c], so its gradient with respect
    to the (normalised) input is W[c], whatever the image."""
    torch.manual_seed(0)
    net = NetLin()
    x = _images()
    target = torch.tensor([0, 3, 3, 9, 5])
    grad = saliency(net.scores, x, target)
    assert grad.shape == x.shape
    for i, c in enumerate(target.tolist()):
        torch.testing.assert_close(grad[i].flatten(), net.fc.weight[c].detach(), rtol=0, atol=1e-7)


def test_integrated_gradients_of_a_linear_model_is_the_input_step_times_the_weight():
    """For a linear score the path integral is exact: IG = (x - baseline) * W[c], and it sums to
    score(x) - score(baseline) (completeness), with one step or many."""
    torch.manual_seed(1)
    net = NetLin()
    x, base = _images(3), torch.full((1, 1, 28, 28), -1.0)
    target = torch.tensor([2, 7, 4])
    for steps in (1, 8):
        ig = integrated_gradients(net.scores, x, target, base, steps)
        want = (x - base) * net.fc.weight[target].detach().view(3, 1, 28, 28)
        torch.testing.assert_close(ig, want, rtol=1e-5, atol=1e-6)
    s = net.scores(x).gather(1, target[:, None]).flatten() - net.scores(base.expand_as(x)).gather(1, target[:, None]).flatten()
    torch.testing.assert_close(ig.flatten(1).sum(1), s.detach(), rtol=1e-4, atol=1e-4)


def test_integrated_gradients_of_netconv_nearly_sum_to_the_change_of_its_score():
    """Completeness on a non-linear net: the attributions of each image sum to its score minus the
    baseline's, to the midpoint rule's error (under 2 % of the change with 64 steps)."""
    torch.manual_seed(2)
    net = NetConv().eval()
    x, base = _images(4), torch.full((1, 1, 28, 28), -1.0)
    target = torch.tensor([1, 2, 3, 4])
    ig = integrated_gradients(net.scores, x, target, base, 64)
    change = (net.scores(x).gather(1, target[:, None]) - net.scores(base.expand_as(x)).gather(1, target[:, None])).flatten().detach()
    assert torch.all((ig.flatten(1).sum(1) - change).abs() <= 0.02 * change.abs() + 1e-4), (ig.flatten(1).sum(1), change)


def test_attributions_are_captums_saliency_and_integrated_gradients():
    """The independent oracle: Captum's Saliency (abs=False) and IntegratedGradients with the
    midpoint rule give the same maps on NetConv."""
    captum = pytest.importorskip("captum.attr")
    torch.manual_seed(3)
    net = NetConv().eval()
    x, base = _images(3), torch.full((3, 1, 28, 28), -1.0)
    target = torch.tensor([5, 0, 8])
    want = captum.Saliency(net.scores).attribute(x, target=target, abs=False)
    torch.testing.assert_close(saliency(net.scores, x, target), want, rtol=1e-5, atol=1e-6)
    want = captum.IntegratedGradients(net.scores).attribute(x, baselines=base, target=target, n_steps=16, method="riemann_middle")
    torch.testing.assert_close(integrated_gradients(net.scores, x, target, base, 16), want, rtol=1e-4, atol=1e-6)


def test_saliency_works_inside_lightnings_test_hooks_which_run_in_inference_mode():
    net = NetLin()
    with torch.inference_mode():
        x, target = _images(2), torch.tensor([1, 2])
        grad = saliency(net.scores, x, target)
    torch.testing.assert_close(grad[1].flatten(), net.fc.weight[2].detach())


def test_each_nets_features_are_its_last_hidden_layer_and_forward_is_the_log_softmax_of_its_scores():
    torch.manual_seed(4)
    x = _images(3)
    conv, full, lin = NetConv(), NetFull(7), NetLin()
    assert conv.features(x).shape == (3, 128) and full.features(x).shape == (3, 7) and lin.features(x).shape == (3, 10)
    torch.testing.assert_close(full.features(x), torch.tanh(x.flatten(1) @ full.fc1.weight.T + full.fc1.bias))
    torch.testing.assert_close(lin.features(x), lin.scores(x))
    h = F.max_pool2d(F.relu(conv.conv2(F.max_pool2d(F.relu(conv.conv1(x)), 2))), 2)
    torch.testing.assert_close(conv.features(x), F.relu(conv.fc1(h.flatten(1))))
    for net in (conv, full, lin):
        torch.testing.assert_close(net(x), F.log_softmax(net.scores(x), dim=1))


def _trace(lengths):
    """A trace's bookkeeping for sequences of the given numbers of positions."""
    seq = np.concatenate([np.full(n, i) for i, n in enumerate(lengths)])
    N = len(seq)
    return {"sequence": seq, "symbol": np.arange(N) % 3, "phase": np.arange(N) % 4, "step": np.arange(N) + 1,
            "count": np.arange(N) + 10, "n": np.arange(N) + 100}


def test_the_projector_shows_whole_sequences_up_to_the_limit_with_their_metadata():
    k, columns = state_points(_trace([3, 4, 5]), 8)
    assert k == 7  # the first two sequences (3 + 4 positions); the third would pass 8
    assert columns == {"symbol": list("ABCABCA"), "phase": ["A", "B", "C", "reset", "A", "B", "C"], "position": [1, 2, 3, 4, 5, 6, 7],
                       "count": [10, 11, 12, 13, 14, 15, 16], "n": [100, 101, 102, 103, 104, 105, 106], "sequence": [0, 0, 0, 1, 1, 1, 1]}
    assert state_points(_trace([3, 4, 5]), 12)[0] == 12 and state_points(_trace([3, 4, 5]), 100)[0] == 12  # all of them
    assert state_points(_trace([3, 4, 5]), 2)[0] == 2  # a first sequence longer than the limit is cut at it
    assert state_points(_trace([3, 4, 5]), 7)[0] == 7  # two whole sequences fill the limit exactly
    assert state_points(_trace([2, 2, 2, 5]), 7)[0] == 6  # the last of several whole sequences that fit


def test_an_extent_is_two_finite_numbers_in_order():
    from omegaconf import OmegaConf

    from base.errors import check_extent

    assert check_extent(OmegaConf.create([-0.5, 2.5])) == (-0.5, 2.5) and check_extent((0, 1)) == (0.0, 1.0)
    for bad in ([1, 1], [2, 1], [0, float("nan")], [0, float("inf")], [0], [0, 1, 2], "ab", None, [True, 2]):
        with pytest.raises(ConfigError, match=r"^extent=.* is invalid; allowed: \[lo, hi\]: two finite numbers with lo < hi$"):
            check_extent(bad)


def test_a_histogram_sample_is_every_value_or_a_bounded_subset_of_them():
    values = torch.arange(100.0).view(10, 10)
    assert torch.equal(bounded_sample(values, 100, torch.Generator().manual_seed(0)), torch.arange(100.0))
    part = bounded_sample(values, 30, torch.Generator().manual_seed(0))
    assert part.shape == (30,) and len(set(part.tolist())) == 30 and set(part.tolist()) <= set(range(100))


def test_the_custom_scalars_layout_is_tensorboards_and_a_bad_one_is_refused_by_key():
    charts = OmegaConf.create({"KMNIST": {"loss": ["loss/train", "loss/test"]}})  # as Hydra passes it
    assert ScalarLayout(charts).layout == {"KMNIST": {"loss": ["Multiline", ["loss/train", "loss/test"]]}}
    for bad in ({}, {"KMNIST": {}}, {"KMNIST": {"loss": []}}, {"KMNIST": {"loss": "loss/train"}}, {"KMNIST": {"loss": [1]}}):
        with pytest.raises(ConfigError, match=r"^charts=.* is invalid; allowed: a mapping \{category: \{chart title: \[tag, \.\.\.\]\}\}"):
            ScalarLayout(bad)


def test_the_config_tree_has_one_line_per_key_with_the_experiments_and_the_command_lines_marked():
    cfg = OmegaConf.create({"seed": 42, "data": {"language": "anbn", "batch_size": 16, "lengths": [1, 2]}, "model": {"optimizer": {"lr": 0.01}, "loss": None},
                            "run": "${data.language}_x", "flag": True})
    experiment = {"data.batch_size": "# experiment", "model": "# experiment: model=lstm"}
    assert config_tree(cfg, experiment, {"model.optimizer.lr", "seed"}).splitlines() == [
        "seed: 42  # command line",
        "data:",
        "  language: anbn",
        "  batch_size: 16  # experiment",
        "  lengths: [1, 2]",
        "model:  # experiment: model=lstm",
        "  optimizer:",
        "    lr: 0.01  # command line",
        "  loss: null",
        "run: anbn_x",
        "flag: true",
    ]


def test_the_keys_an_experiment_file_and_a_command_line_set():
    assert experiment_keys(REPO / "conf", "lstm_anb2nc3n") == {
        "data": "# experiment: data=grammar", "model": "# experiment: model=lstm", "model.optimizer": "# experiment: model/optimizer=adam",
        "callbacks": "# experiment: callbacks=recurrent", "data.language": "# experiment", "data.batch_size": "# experiment",
        "model.restarts": "# experiment", "model.restart_after": "# experiment", "trainer.max_epochs": "# experiment",
        "trainer.max_steps": "# experiment", "trainer.val_check_interval": "# experiment", "trainer.check_val_every_n_epoch": "# experiment"}
    assert experiment_keys(REPO / "conf", None) == {} and experiment_keys(REPO / "conf", "no_such_experiment") == {}
    assert command_line_keys(["experiment=kmnist_conv", "trainer.max_epochs=1", "+model.x=2", "~callbacks.divergence", "model/optimizer=sgd",
                              "hydra.run.dir=/tmp/x"]) == {"experiment", "trainer.max_epochs", "model.x", "callbacks.divergence", "model.optimizer"}


def test_the_projectors_files_are_written_as_tensorboard_reads_them(tmp_path):
    """Known points, metadata and glyphs: the TSV values, the header row, the sprite's tiling
    (image i at row i // k, column i % k of a k x k grid) and the config; a tag written again
    replaces its entry, others stay; without a TensorBoard logger nothing is written."""
    from types import SimpleNamespace

    from PIL import Image
    from pytorch_lightning.loggers import TensorBoardLogger

    from callbacks.figures import write_embedding

    logger = TensorBoardLogger(tmp_path, name="tb", version="")
    trainer = SimpleNamespace(loggers=[logger], global_step=7)
    images = torch.stack([torch.full((1, 2, 3), v / 4) for v in range(5)])  # 5 glyphs of 2 x 3, grey levels 0, 64, 128, 191, 255
    assert write_embedding(trainer, torch.tensor([[0.123456, 2.0], [3.0, -4.5], [1e-5, 7.0], [8.0, 9.0], [0.0, 1.0]]),
                           {"class": [0, 1, 2, 3, 4], "name": list("abcde")}, "glyphs", images=images)
    folder = Path(logger.log_dir) / "00007" / "glyphs"
    assert (folder / "tensors.tsv").read_text().splitlines() == ["0.1235\t2", "3\t-4.5", "1e-05\t7", "8\t9", "0\t1"]
    assert (folder / "metadata.tsv").read_text().splitlines() == ["class\tname", "0\ta", "1\tb", "2\tc", "3\td", "4\te"]
    sprite = np.array(Image.open(folder / "sprite.png"))
    assert sprite.shape == (3 * 2, 3 * 3)  # ceil(sqrt(5)) = 3 glyphs a side
    for i, level in enumerate([0, 64, 128, 191, 255]):
        r, c = divmod(i, 3)
        assert (sprite[2 * r : 2 * r + 2, 3 * c : 3 * c + 3] == level).all(), i
    assert (sprite[4:, 6:] == 0).all()  # the empty cells
    write_embedding(trainer, torch.zeros(5, 2), {"class": [0] * 5, "name": list("vwxyz")}, "other")
    write_embedding(trainer, torch.ones(5, 2), {"class": [1] * 5, "name": list("fghij")}, "glyphs")
    config = (Path(logger.log_dir) / "projector_config.pbtxt").read_text()
    assert config.count("tensor_name") == 2 and 'tensor_name: "other:00007"' in config and 'tensor_name: "glyphs:00007"' in config
    assert "sprite" not in config  # the second write of glyphs had no images
    assert (folder / "tensors.tsv").read_text().splitlines()[0] == "1\t1"
    assert not write_embedding(SimpleNamespace(loggers=[], global_step=0), torch.zeros(1, 1), {"a": [1]}, "none")


def test_a_remote_tensorboard_folder_is_refused_before_training_by_every_projector(tmp_path):
    from types import SimpleNamespace

    from pytorch_lightning.loggers import TensorBoardLogger

    from callbacks.grid_projector import GridProjector
    from callbacks.state_projector import StateProjector
    from callbacks.test_set_views import TestSetViews

    class Remote(TensorBoardLogger):
        @property
        def experiment(self):
            return SimpleNamespace(get_logdir=lambda: "s3://bucket/run/tensorboard")

    trainer = SimpleNamespace(loggers=[Remote(tmp_path)], global_step=0)
    for callback in (TestSetViews(), StateProjector(), GridProjector()):
        with pytest.raises(ConfigError) as caught:
            callback.setup(trainer, None, "fit")
        assert str(caught.value).startswith("logger.tensorboard.save_dir='s3://bucket/run/tensorboard' is invalid for the embedding projector; allowed: a local folder")
    TestSetViews(projector=False).setup(trainer, None, "fit")  # PR curves only: nothing to check


def test_a_float64_net_is_traced_on_the_float32_batches_the_data_gives():
    """Under trainer.precision=64-true the nets hold float64 weights while the data's batches stay
    float32: the trace (the histograms' gates, the projector, the figures) runs in the net's dtype."""
    from analysis.recurrent import trace_batch
    from datamodules.grammar import GrammarDataModule
    from lightning_modules.recurrent_nets import make_net

    dm = GrammarDataModule(language="anbncn", eval_sequences=3)
    batch = dm.batch(dm.eval_sequences("val", dm.seed_list[0]))
    torch.manual_seed(0)
    net32 = make_net("lstm", 3, 3, True)
    net64 = make_net("lstm", 3, 3, True).double()
    net64.load_state_dict({k: v.double() for k, v in net32.state_dict().items()})
    a, b = trace_batch(net32, batch), trace_batch(net64, batch)
    assert b["forget"].dtype == np.float64 and a["forget"].dtype == np.float32
    np.testing.assert_allclose(a["cell"], b["cell"], rtol=1e-4, atol=1e-5)
