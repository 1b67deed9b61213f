"""Every config composes and instantiates; bad values stop a run before training, in one line."""

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from conftest import REPO, error_line, run_train
from orchestration.config import group_options, instantiate_group, register_resolvers
from base.errors import ConfigError, UserError

CONF = REPO / "conf"
EXPERIMENTS = group_options()["experiment"]


def _compose(overrides, tmp_path: Path):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        # paths.output_dir normally comes from the Hydra run; give it a folder here
        return compose("train", overrides=[*overrides, f"paths.output_dir={tmp_path}"])


def test_experiments_present():
    assert {"kmnist_lin", "kmnist_full", "kmnist_conv"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_instantiates(experiment, tmp_path):
    cfg = _compose([f"experiment={experiment}"], tmp_path)
    model = instantiate(cfg.model)
    instantiate(cfg.data)
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    loggers = [instantiate(c) for c in cfg.logger.values()]
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    assert trainer.max_epochs >= 1
    optimizer = model.hparams.get("optimizer") or {}
    if optimizer.get("_target_") == "lightning_modules.dekf.DEKF":  # the Kalman filter has no step size: its initial covariance
        assert optimizer["p0"] > 0 and model.kalman
    else:
        assert (model.hparams.get("lr") or optimizer["lr"]) > 0


@pytest.mark.parametrize(
    "experiment, net, hidden",
    [("kmnist_lin", "NetLin", None), ("kmnist_full", "NetFull", 95), ("kmnist_conv", "NetConv", None)],
)
def test_kmnist_experiments_reproduce_reference_settings(experiment, net, hidden, tmp_path):
    cfg = _compose([f"experiment={experiment}"], tmp_path)
    assert cfg.model.net._target_ == f"lightning_modules.kmnist_nets.{net}" and cfg.model.net.get("hidden_units") == hidden
    opt = cfg.model.optimizer
    assert (opt._target_, opt.lr, opt.momentum, opt.weight_decay) == ("torch.optim.SGD", 0.01, 0.5, 0.0) and "scheduler" not in cfg.model
    assert (cfg.data.batch_size, cfg.data.mean, cfg.data.std) == (64, 0.5, 0.5)
    assert cfg.trainer.max_epochs == 10


# options that only make sense with their study's data
COMPANIONS = {("model", "srn"): ["data=grammar"], ("model", "lstm"): ["data=grammar"], ("model", "gru"): ["data=grammar"], ("model", "grid_perceptron"): ["data=grid"]}


@pytest.mark.parametrize("group", ["trainer", "logger", "callbacks", "data", "model"])
def test_every_option_of_every_group_composes(group, tmp_path):
    for option in group_options()[group]:
        cfg = _compose([f"{group}={option}", *COMPANIONS.get((group, option), [])], tmp_path)
        if group == "trainer":
            assert cfg.trainer._target_ == "pytorch_lightning.Trainer"
        elif group in ("logger", "callbacks"):
            for node in cfg[group].values():
                instantiate(node)
        else:
            instantiate(cfg[group])


def test_ddp_trainer_config(tmp_path):
    cfg = _compose(["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2", "trainer.precision=bf16-mixed"], tmp_path)
    assert (cfg.trainer.strategy, cfg.trainer.devices, cfg.trainer.num_nodes, cfg.trainer.precision) == ("ddp", 4, 2, "bf16-mixed")
    # the grid and recurrent studies split their seeds over the processes: nothing to average
    for experiment in ("check_sig", "srn_anb2n"):
        assert _compose([f"experiment={experiment}", "trainer=ddp"], tmp_path).trainer.strategy == "ddp_population"


def test_eval_settings_reach_the_grammar_data(tmp_path):
    cfg = _compose(["experiment=lstm_anb2nc3n", "eval.max_n=60", "eval.sequences=50"], tmp_path)
    dm = instantiate(cfg.data)
    assert len(dm.generalisation_sequences) == 60 and len(dm.test_sequences) == 50


def test_hidden_units_override(tmp_path):
    cfg = _compose(["experiment=kmnist_full", "model.net.hidden_units=10"], tmp_path)
    assert sum(p.numel() for p in instantiate(cfg.model).parameters()) == 795 * 10 + 10


@pytest.mark.slow
def test_hydra_flags_still_work():
    proc = run_train("--cfg", "job", "experiment=kmnist_full", "model.net.hidden_units=7")
    assert proc.returncode == 0, proc.stderr
    assert "hidden_units: 7" in proc.stdout and "_target_: lightning_modules.kmnist.KMNISTClassifier" in proc.stdout


@pytest.mark.slow
def test_unknown_group_choice_is_refused_with_allowed_options(tmp_path):
    proc = run_train("experiment=nope", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 1 and re.search(r"experiment='nope' .*allowed: .*kmnist_conv", error_line(proc))
    # inside a sweep too, before any run of it starts
    proc = run_train("-m", "model=net_lin,x", "data.source=bundled", "trainer.max_epochs=1", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert proc.returncode == 1 and "model='x' is not a known model; allowed: grid_perceptron, gru, lstm, net_conv" in error_line(proc)
    assert "Traceback" not in proc.stderr and not list((tmp_path / "sweep").glob("*/.hydra"))


@pytest.mark.parametrize("overrides, line", [
    # the literature's settings: gate biases, clipping, initialisation, selection lengths
    (["experiment=lstm_anb2nc3n", "model.forget_bias=nan"], "model.forget_bias=nan is invalid; allowed: null or a finite number (with cell=lstm)"),
    (["experiment=lstm_anb2nc3n", "model.input_bias=-inf"], "model.input_bias=-inf is invalid; allowed: null or a finite number (with cell=lstm)"),
    (["experiment=lstm_anb2nc3n_legal", "model.clip_grad_norm=inf"], "model.clip_grad_norm=inf is invalid; allowed: null or a finite number > 0"),
    (["experiment=lstm_anb2nc3n", "model.init=inf"], "model.init=inf is invalid; allowed: a finite number > 0 (std of a normal) or 'uniform'"),
    (["experiment=lstm_anb2nc3n_legal", "data.select_lengths=[0,12]"], "data.select_lengths=[0, 12] is invalid; allowed: null or a list of distinct integers >= 1"),
    # the optimisers, the Kalman filter's own settings under the key the user types
    (["experiment=lstm_anb2nc3n", "model.optimizer.lr=nan"], "model.optimizer.lr=nan is invalid; allowed: a finite number"),
    (["experiment=lstm_anb2nc3n", "+model.optimizer.betas=[0.9,inf]"], "model.optimizer.betas=[0.9, inf] is invalid; allowed: finite numbers"),
    (["experiment=dekf_anbncn", "model.optimizer.p0=-1"], "model.optimizer.p0=-1 is invalid; allowed: a finite number > 0"),
    (["experiment=dekf_anbncn", "model.optimizer.r_end=inf"], "model.optimizer.r_end=inf is invalid; allowed: a finite number"),
    (["experiment=dekf_anbncn", "model.optimizer.anneal_strings=0"], "model.optimizer.anneal_strings=0 is invalid; allowed: an integer >= 1"),
    (["experiment=dekf_anbncn", "model.optimizer.decoupling=layers"], "model.optimizer.decoupling='layers' is invalid; allowed: one of units, none"),
    (["experiment=kmnist_lin", "model.optimizer.lr=inf"], "model.optimizer.lr=inf is invalid; allowed: a finite number"),
    (["experiment=kmnist_full", "model.net.hidden_units=0"], "model.net.hidden_units=0 is invalid; allowed: an integer >= 1"),
    (["experiment=kmnist_conv", "model/scheduler=step", "model.scheduler.gamma=nan"], "model.scheduler.gamma=nan is invalid; allowed: a finite number"),
    (["experiment=lstm_anb2nc3n", "model.l1=-1"], "model.l1=-1 is invalid; allowed: a finite number >= 0"),
    (["experiment=dekf_anbncn", "model.engine=fused"], "model.engine='fused' is invalid; allowed: step, or fused for SRNs and LSTMs without peepholes trained by gradient"),
    (["experiment=check_sig", "model.init_std=inf"], "model.init_std=inf is invalid; allowed: a finite number > 0"),
    (["experiment=check_sig", "model.weight_decay=nan"], "model.weight_decay=nan is invalid; allowed: a finite number >= 0"),
    # the views' intervals and ranges, the checks' own settings
    (["callbacks.histograms.every_updates=0"], "callbacks.histograms.every_updates=0 is invalid; allowed: an integer >= 1"),
    (["callbacks.periodic_checkpoint.every_epochs=0"], "callbacks.periodic_checkpoint.every_epochs=0 is invalid; allowed: an integer >= 1"),
    (["callbacks.confused_examples.pairs=0"], "callbacks.confused_examples.pairs=0 is invalid; allowed: an integer >= 1"),
    (["callbacks.attributions.steps=0"], "callbacks.attributions.steps=0 is invalid; allowed: an integer >= 1"),
    (["callbacks.test_set_views.max_points=0"], "callbacks.test_set_views.max_points=0 is invalid; allowed: an integer >= 1"),
    (["callbacks.divergence.rise=nan"], "callbacks.divergence.rise=nan is invalid; allowed: null (no check of the rise) or a finite number > 1"),
    (["callbacks.divergence.rise=0.5"], "callbacks.divergence.rise=0.5 is invalid; allowed: null (no check of the rise) or a finite number > 1"),
    (["experiment=check_sig", "callbacks.decision_maps.every_updates=0"], "callbacks.decision_maps.every_updates=0 is invalid; allowed: an integer >= 1"),
    (["experiment=check_sig", "+callbacks.decision_maps.extent=[2,1]"], "callbacks.decision_maps.extent=[2, 1] is invalid; allowed: [lo, hi]: two finite numbers with lo < hi"),
    (["experiment=check_sig", "callbacks.grid_projector.resolution=1"], "callbacks.grid_projector.resolution=1 is invalid; allowed: an integer >= 2"),
    (["experiment=lstm_anb2nc3n", "callbacks.state_trajectories.every_n_evals=-1"], "callbacks.state_trajectories.every_n_evals=-1 is invalid; allowed: an integer >= 0"),
    (["experiment=lstm_anb2nc3n", "callbacks.state_projector.max_points=0"], "callbacks.state_projector.max_points=0 is invalid; allowed: an integer >= 1"),
    (["experiment=lstm_anb2nc3n", "callbacks.solved_stopping.threshold=nan"], "callbacks.solved_stopping.threshold=nan is invalid; allowed: a finite number"),
    (["experiment=lstm_anb2nc3n", "callbacks.periodic_checkpoint.every_updates=0"], "callbacks.periodic_checkpoint.every_updates=0 is invalid; allowed: an integer >= 1"),
])
def test_a_bad_setting_is_one_line_naming_the_key_as_typed(overrides, line, tmp_path):
    """What train.py prints, in process: the config composed from the command line's overrides,
    the group built as train.py builds it, the error's line naming the key the user typed."""
    cfg = _compose(overrides, tmp_path)
    group, _, rest = line.partition(".")
    node, key = (cfg.callbacks[rest.split(".")[0]], f"callbacks.{rest.split('.')[0]}") if group == "callbacks" else (cfg[group], group)
    with pytest.raises(UserError) as caught:
        instantiate_group(node, key)
    assert str(caught.value) == line


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides, must_contain",
    [
        (["experiment=kmnist_full", "model.net.hidden_units=0"], ["model.net.hidden_units=0", "integer >= 1"]),
        (["experiment=kmnist_full", "model.net.hidden_units=-3"], ["model.net.hidden_units=-3", "integer >= 1"]),
        (["model.optimizer.lr=-0.1"], ["model.optimizer: SGD(lr=-0.1", "Invalid learning rate: -0.1"]),
        (["trainer.max_epochs=0"], ["trainer.max_epochs=0", "integer >= 1"]),
        (["experiment=srn_anb2n", "trainer.max_steps=0"], ["trainer.max_steps=0", "-1 (no limit) or an integer >= 1"]),
        (["experiment=srn_anb2n", "data.language=abc"], ["data.language='abc'", "anbn, anb2n, anbncn, anb2nc3n"]),
        (["model=srn"], ["data.language", "data=kmnist and model=srn"]),
        (["experiment=srn_anb2n", "model.cell=rnn"], ["model.cell='rnn'", "srn, lstm, gru"]),
        (["experiment=srn_anb2n", "model.optimizer.lr=-1"], ["model.optimizer: Adam(lr=-1", "Invalid learning rate: -1"]),
        (["experiment=srn_anb2n", "model/optimizer=rprop"], ["model/optimizer='rprop'", "adam, dekf, rmsprop, sgd"]),
        (["experiment=srn_anb2n", "threads=0"], ["threads=0 is invalid; allowed: auto or an integer >= 1"]),
        (["model.net._target_=resnet.ResNet"], ["model.net._target_='resnet.ResNet' is not an importable net class"]),
        (["model=transformer"], ["model='transformer'", "net_conv", "net_full", "net_lin"]),
        (["experiment=kmnist_huge"], ["experiment='kmnist_huge'", "kmnist_conv"]),
        (["data.batch_size=0"], ["data.batch_size=0", "integer >= 1"]),
        (["trainer.max_epoch=3"], ["trainer.max_epoch", "not in struct"]),
        (["model.optimizer.lr=[1"], ["model.optimizer.lr=[1"]),
        (["experiment=lstm_anb2nc3n", "model.forget_bias=nan", "trainer.max_steps=200"], ["model.forget_bias=nan is invalid; allowed: null or a finite number (with cell=lstm)"]),
        (["experiment=lstm_anb2nc3n", "model/optimizer=dekf", "model.optimizer.p0=-1"], ["model.optimizer.p0=-1 is invalid; allowed: a finite number > 0"]),
    ],
)
def test_invalid_values_stop_before_training(overrides, must_contain, tmp_path):
    kmnist = not any(o.startswith("experiment=") and "kmnist" not in o for o in overrides)
    data = ["data.source=files", f"data.root={tmp_path / 'none'}"] if kmnist else []  # never download
    proc = run_train(*overrides, f"hydra.run.dir={tmp_path / 'run'}", *data)
    assert proc.returncode == 1
    line = error_line(proc)
    for text in must_contain:
        assert text in line, line
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "results.json").exists()
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_grid_experiments_reproduce_reference_settings(tmp_path):
    """reference.md, part 2: N(0, 0.15), Adam lr 0.001, weight decay 1e-5, BCE, stop after 2,000
    perfect updates or 200,000; H = 5; the hand-designed step net and its x10 sigmoid version."""
    sig = _compose(["experiment=check_sig"], tmp_path)
    m = sig.model
    assert (m.hidden_units, m.activation, m.init_std, m.lr, m.weight_decay) == (5, "sigmoid", 0.15, 0.001, 1e-5)
    assert (m.stop_after_perfect, sig.trainer.max_steps, m.restarts, m.weights, sig.fit) == (2000, 200_000, 0, None, True)
    step = _compose(["experiment=check_step_manual"], tmp_path)
    w = step.model.weights
    assert (step.model.hidden_units, step.model.activation, step.fit, step.model.weight_scale) == (4, "step", False, 1.0)
    assert w.hidden_weight == [[1, 1]] * 4 and w.hidden_bias == [-0.5, -1.5, -2.5, -3.5]
    assert w.output_weight == [[1, -1, 1, -1]] and w.output_bias == [-0.5]
    scaled = _compose(["experiment=check_sig_manual"], tmp_path)
    assert (scaled.model.activation, scaled.model.weight_scale, scaled.fit) == ("sigmoid", 10.0, False)
    assert scaled.model.weights == step.model.weights


@pytest.mark.parametrize("experiment, cell, hidden, language, init", [
    ("srn_anb2n_reference", "srn", 2, "anb2n", 0.001), ("lstm_anb2nc3n_reference", "lstm", 3, "anb2nc3n", "uniform"),
])
def test_recurrent_reference_experiments_reproduce_reference_settings(experiment, cell, hidden, language, init, tmp_path):
    """reference.md, part 3: one sequence per update, SGD lr 0.005, weight decay 1e-4, no momentum,
    100,000 updates, no early stop; SRN-2 on a^n b^2n from N(0, 0.001), LSTM-3 on a^n b^2n c^3n
    uniform in +-1/sqrt(H); blocks of n in 1..4, 5 blocks a sequence."""
    cfg = _compose([f"experiment={experiment}"], tmp_path)
    m, d, t = cfg.model, cfg.data, cfg.trainer
    o = m.optimizer
    assert (m.cell, m.hidden_units, m.init, m.restarts, m.seeds) == (cell, hidden, init, 0, 1)
    assert (o._target_, o._partial_, o.lr, o.weight_decay, o.momentum) == ("torch.optim.SGD", True, 0.005, 1e-4, 0.0)
    assert (d.language, d.batch_size, d.max_n, d.blocks) == (language, 1, 4, 5)
    assert (t.max_steps, t.max_epochs) == (100_000, 1) and cfg.callbacks.get("solved_stopping") is None
    assert m.num_symbols == (3 if language == "anb2nc3n" else 2)


def _lightning_checkpoint(path: Path, model, **drop) -> Path:
    """What Lightning's checkpoint holds that ``check_checkpoint`` reads (``state_dict``, ``epoch``,
    ``hyper_parameters``), without keys named in ``drop``."""
    import torch

    ckpt = {"state_dict": model.state_dict(), "epoch": 0, "hyper_parameters": dict(model.hparams)}
    torch.save({k: v for k, v in ckpt.items() if k not in drop}, path)
    return path


def test_the_checkpoint_check_tells_the_same_net_at_another_size(tmp_path):
    """NetFull with 95 and with 200 hidden units have the same parameter names; only the shapes
    tell them apart (a check on names alone would pass a wrong checkpoint)."""
    from lightning_modules.kmnist import KMNISTClassifier
    from lightning_modules.kmnist_nets import NetFull
    from orchestration.config import check_checkpoint
    from base.errors import UserError

    small, large = KMNISTClassifier(net=NetFull(95)), KMNISTClassifier(net=NetFull(200))
    assert small.state_dict().keys() == large.state_dict().keys()
    saved = _lightning_checkpoint(tmp_path / "full95.ckpt", small)
    assert check_checkpoint(str(saved), KMNISTClassifier(net=NetFull(95))) == str(saved)
    with pytest.raises(UserError) as caught:
        check_checkpoint(str(saved), large)
    line = str(caught.value)
    assert line.startswith(f"ckpt_path={str(saved)!r} holds a different model") and "'hidden_units': 95" in line and "'hidden_units': 200" in line
    assert "\n" not in line
    assert check_checkpoint(None, large) is None


@pytest.mark.parametrize("drop, expected", [("state_dict", "is not a Lightning checkpoint"), ("epoch", "is not a Lightning checkpoint")])
def test_the_checkpoint_check_wants_what_lightning_writes(tmp_path, drop, expected):
    from lightning_modules.kmnist import KMNISTClassifier
    from lightning_modules.kmnist_nets import NetLin
    from orchestration.config import check_checkpoint
    from base.errors import UserError

    model = KMNISTClassifier(net=NetLin())
    path = _lightning_checkpoint(tmp_path / "lin.ckpt", model, **{drop: True})
    with pytest.raises(UserError, match=expected):
        check_checkpoint(str(path), model)
    with pytest.raises(UserError, match="no such file"):
        check_checkpoint(str(tmp_path / "none.ckpt"), model)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="is not a readable checkpoint"):
        check_checkpoint(str(tmp_path / "junk.ckpt"), model)


@pytest.fixture
def threads_restored():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("overrides, user, launcher, expected", [
    (["experiment=srn_anb2n"], None, None, 1),                      # the study's measured choice
    (["experiment=check_sig"], None, None, 1),
    (["experiment=kmnist_conv"], None, None, 8),                    # torch's default: every core
    (["experiment=kmnist_conv", "threads=3"], None, None, 3),       # the config's number wins
    (["experiment=srn_anb2n", "threads=3"], "2", None, 3),
    (["experiment=srn_anb2n"], "2", None, 2),                       # the user's OMP_NUM_THREADS wins over the study's
    (["experiment=kmnist_conv"], None, 4, 2),                       # 4 joblib jobs at once on 8 cores: 2 each
    (["experiment=kmnist_conv"], "8", 4, 2),                        # ... even when the user asked for more
    (["experiment=srn_anb2n"], None, 4, 1),
    (["experiment=kmnist_conv", "trainer=ddp_sim"], None, None, 4),  # 2 DDP processes on the CPU: 4 each
])
def test_threads_follow_the_study_the_user_and_the_share_of_cores(overrides, user, launcher, expected, tmp_path, monkeypatch, threads_restored):
    import torch
    from omegaconf import OmegaConf

    from orchestration import launch

    monkeypatch.setattr(launch.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(launch, "USER_THREADS", user)
    torch.set_num_threads(5)  # what an earlier run in this process left: never kept
    hydra_cfg = None if launcher is None else OmegaConf.create({"launcher": {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", "n_jobs": launcher}})
    done = launch.set_threads(_compose(overrides, tmp_path), hydra_cfg)
    assert torch.get_num_threads() == expected and done["torch_threads"] == expected


def test_threads_setting_is_checked(tmp_path):
    from orchestration.launch import set_threads

    with pytest.raises(ConfigError, match=r"threads=0 is invalid; allowed: auto or an integer >= 1"):
        set_threads(_compose(["experiment=srn_anb2n", "threads=0"], tmp_path))
