"""Every LightningModule's settings checks, the optimiser factory and the population's rules, in
process and line by line (train.py prefixes the config group: ``hidden_units=0 ...`` reaches the
user as ``model.hidden_units=0 ...``, tested end to end in the slow tests)."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch

from base.errors import ConfigError
from lightning_modules.grid import GridPerceptron
from lightning_modules.kmnist import KMNISTClassifier
from lightning_modules.kmnist_nets import NetConv, NetFull, NetLin
from lightning_modules.optimizers import optimizer_factory
from lightning_modules.recurrent import SequencePredictor


def _line(build, **kwargs) -> str:
    with pytest.raises(ConfigError) as caught:
        build(**kwargs)
    return str(caught.value)


@pytest.mark.parametrize("kwargs, line", [
    ({"cell": "rnn"}, "cell='rnn' is invalid; allowed: one of srn, lstm, gru"),
    ({"l1": -0.1}, "l1=-0.1 is invalid; allowed: a finite number >= 0"),
    ({"l1": float("nan")}, "l1=nan is invalid; allowed: a finite number >= 0"),
    ({"engine": "fused", "cell": "gru"}, "engine='fused' is invalid; allowed: step, or fused for SRNs and LSTMs without peepholes trained by gradient"),
    ({"engine": "fused", "cell": "lstm", "peepholes": True}, "engine='fused' is invalid; allowed: step, or fused for SRNs and LSTMs without peepholes trained by gradient"),
    ({"engine": "fast", "cell": "lstm"}, "engine='fast' is invalid; allowed: step or fused"),
    ({"hidden_units": 0}, "hidden_units=0 is invalid; allowed: an integer >= 1"),
    ({"num_symbols": 5}, "num_symbols=5 is invalid; allowed: 2 or 3, one more with the end symbol (data.end_symbol)"),
    ({"init": 0}, "init=0 is invalid; allowed: a finite number > 0 (std of a normal) or 'uniform'"),
    ({"init": True}, "init=True is invalid; allowed: a finite number > 0 (std of a normal) or 'uniform'"),
    ({"init": "normal"}, "init='normal' is invalid; allowed: a finite number > 0 (std of a normal) or 'uniform'"),
    ({"restarts": -1}, "restarts=-1 is invalid; allowed: an integer >= 0"),
    ({"restart_after": 0}, "restart_after=0 is invalid; allowed: an integer >= 1"),
    ({"seeds": 0}, "seeds=0 is invalid; allowed: an integer >= 1"),
    ({"seeds": 3, "init_seed": 42, "analyse_seed": 50}, "analyse_seed=50 is invalid; allowed: null (the first seed that succeeds) or one of the trained seeds, 42..44"),
    ({"seeds": 3, "init_seed": 42, "analyse_seed": 41}, "analyse_seed=41 is invalid; allowed: null (the first seed that succeeds) or one of the trained seeds, 42..44"),
])
def test_sequence_predictor_settings(kwargs, line):
    assert _line(SequencePredictor, **kwargs) == line


def test_sequence_predictor_accepts_its_documented_settings():
    model = SequencePredictor(seeds=3, init_seed=42, analyse_seed=44, cell="lstm", hidden_units=3, num_symbols=3, init="uniform", restarts=0, restart_after=1)
    assert model.seed_list == [42, 43, 44] and model.population and model.layout.size == 4 * 3 * (3 + 3 + 1) + 3 * 3 + 3
    assert not SequencePredictor().population and SequencePredictor().seed_list == [0]
    assert SequencePredictor(init=0.5).hparams.init == 0.5 and SequencePredictor().hparams.optimizer == {
        "_target_": "torch.optim.SGD", "lr": 0.005, "weight_decay": 1e-4}  # the reference's SGD when none is named
    assert SequencePredictor(cell="lstm").fused and not SequencePredictor(cell="lstm", seeds=2).fused and not SequencePredictor().fused
    assert not SequencePredictor(cell="lstm", engine="step").fused and SequencePredictor(cell="lstm", engine="step").hparams.engine == "step"


def test_results_and_the_saved_settings_name_the_engine_the_settings_chose():
    """seeds=2 changes how one LSTM's update is computed: the hyperparameters (and so the saved
    config, through the same rule) and results.json say which ran."""
    from lightning_modules.dekf import DEKF
    from orchestration.config import recurrent_engine

    fused = "fused: torch's nn.LSTM kernel over every seed at once (block-diagonal weights) and autograd"
    step = "step: the one-step cell over every seed, gradients by autograd"
    kalman = "step: the one-step cell over every seed, decoupled extended Kalman filter with Jacobians by forward-mode autodiff of the step (torch.func.jvp)"
    assert SequencePredictor(cell="lstm").engine == fused and SequencePredictor(cell="lstm").hparams.engine == "fused"
    assert SequencePredictor(cell="lstm", seeds=2).engine == SequencePredictor(cell="lstm", peepholes=True).engine == SequencePredictor().engine == step
    assert SequencePredictor(cell="gru").engine == step and SequencePredictor(cell="gru").hparams.engine == "step"
    assert SequencePredictor(cell="lstm", seeds=10, engine="fused").engine == fused and SequencePredictor(engine="fused").engine.startswith("fused: torch's nn.RNN")
    assert SequencePredictor(cell="lstm", optimizer=functools.partial(DEKF)).engine == kalman
    assert SequencePredictor(cell="lstm", optimizer=functools.partial(DEKF)).hparams.engine == "step"
    assert [recurrent_engine(1, "lstm", False, "torch.optim.SGD"), recurrent_engine(2, "lstm", False, "torch.optim.SGD"),
            recurrent_engine(1, "lstm", True, "torch.optim.SGD"), recurrent_engine(1, "lstm", False, "lightning_modules.dekf.DEKF"),
            recurrent_engine(1, "srn", False, "torch.optim.SGD")] == ["fused", "step", "step", "step", "step"]
    assert KMNISTClassifier(net=NetLin()).engine.startswith("autograd and the injected torch optimiser, Lightning's automatic optimisation")


@pytest.mark.parametrize("kwargs, line", [
    ({"hidden_units": 0}, "hidden_units=0 is invalid; allowed: an integer >= 1"),
    ({"activation": "relu"}, "activation='relu' is invalid; allowed: one of sigmoid, step"),
    ({"init_std": 0}, "init_std=0 is invalid; allowed: a finite number > 0"),
    ({"lr": -1}, "lr=-1 is invalid; allowed: a finite number > 0"),
    ({"weight_decay": -1e-5}, "weight_decay=-1e-05 is invalid; allowed: a finite number >= 0"),
    ({"stop_after_perfect": 0}, "stop_after_perfect=0 is invalid; allowed: an integer >= 1"),
    ({"restarts": -1}, "restarts=-1 is invalid; allowed: an integer >= 0"),
    ({"restart_after": 0}, "restart_after=0 is invalid; allowed: an integer >= 1"),
    ({"weight_scale": 0}, "weight_scale=0 is invalid; allowed: a finite number > 0"),
    ({"seeds": 0}, "seeds=0 is invalid; allowed: an integer >= 1"),
    ({"seeds": 2, "analyse_seed": 2}, "analyse_seed=2 is invalid; allowed: null (the first seed that succeeds) or one of the trained seeds, 0..1"),
])
def test_grid_perceptron_settings(kwargs, line):
    assert _line(GridPerceptron, **kwargs) == line



def test_hand_set_weights_train_one_net_only():
    weights = {"hidden_weight": [[1.0, 0.0]], "hidden_bias": [0.0], "output_weight": [[1.0]], "output_bias": [0.0]}
    assert GridPerceptron(hidden_units=1, weights=weights).seed_list == [0]
    assert _line(GridPerceptron, hidden_units=1, weights=weights, seeds=3) == (
        "seeds=3 is invalid; allowed: 1 with hand-set weights (model.weights / model.weights_file): every seed would be the same net")


@pytest.mark.parametrize("kwargs, line", [
    ({"net": "mlp"}, "net='mlp' is invalid; allowed: a Classifier or its config with a _target_"),
    ({"net": {"_target_": "lightning_modules.kmnist_nets.NetFull", "hidden_units": 0}}, "net.hidden_units=0 is invalid; allowed: an integer >= 1"),
    ({"net": {"_target_": "lightning_modules.kmnist_nets.NetConv", "hidden_units": 10}},
     "net: NetConv(hidden_units=10) is invalid: ...() got an unexpected keyword argument 'hidden_units'"),
    ({"net": {"_target_": "torch.nn.Linear"}}, "net._target_='torch.nn.Linear' is invalid; allowed: a subclass of Classifier"),
    ({"net": {"_target_": "lightning_modules.kmnist_nets.NetLin", "num_classes": 1}}, "net.num_classes=1 is invalid; allowed: an integer >= 2"),
    ({"optimizer": {"_target_": "torch.optim.SGD", "lr": -1}}, "optimizer: SGD(lr=-1) is invalid: Invalid learning rate: -1"),
    ({"optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1, "momentum": -0.1}}, "optimizer: SGD(lr=0.1, momentum=-0.1) is invalid: Invalid momentum value: -0.1"),
    ({"scheduler": {"_target_": "torch.optim.lr_scheduler.StepLR"}},
     "scheduler: StepLR() is invalid: StepLR.__init__() missing 1 required positional argument: 'step_size'"),
    ({"scheduler": "step"}, "scheduler='step' is invalid; allowed: a _partial_ LR scheduler config, e.g. model/scheduler=step"),
    ({"scheduler": {"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 2, "gamma": float("inf")}}, "scheduler.gamma=inf is invalid; allowed: a finite number"),
    ({"channels_last": 1}, "channels_last=1 is invalid; allowed: true or false"),
    ({"compile": "yes"}, "compile='yes' is invalid; allowed: true or false"),
])
def test_kmnist_classifier_settings(kwargs, line):
    head, _, tail = line.partition("...")  # "...": Python's own name of the function, whatever wraps it
    got = _line(KMNISTClassifier, **kwargs)
    assert got == line if not tail else (got.startswith(head) and got.endswith(tail))


def test_the_kmnist_net_optimiser_and_scheduler_are_injected_and_kept_as_descriptions_that_build_them_again():
    model = KMNISTClassifier(net=NetFull(7, num_classes=5), optimizer=functools.partial(torch.optim.Adam, lr=0.003),
                             scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=2))
    hp = model.hparams
    assert hp.net == {"_target_": "lightning_modules.kmnist_nets.NetFull", "hidden_units": 7, "num_classes": 5}
    assert hp.optimizer == {"_target_": "torch.optim.adam.Adam", "lr": 0.003}
    assert hp.scheduler == {"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 2}
    again = KMNISTClassifier(**hp)  # what load_from_checkpoint does
    assert isinstance(again.net, NetFull) and again.net.fc1.out_features == 7 and again.net.fc2.out_features == 5
    config = again.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.Adam) and config["optimizer"].defaults["lr"] == 0.003
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR) and config["lr_scheduler"]["interval"] == "epoch"
    assert isinstance(KMNISTClassifier(net=NetLin()).configure_optimizers(), torch.optim.SGD)


def test_the_optimiser_from_a_partial_or_its_description():
    factory, description = optimizer_factory(functools.partial(torch.optim.Adam, lr=0.01, betas=(0.8, 0.9)))
    assert description == {"_target_": "torch.optim.adam.Adam", "lr": 0.01, "betas": (0.8, 0.9)}
    opt = factory([torch.nn.Parameter(torch.zeros(2))])
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["lr"] == 0.01 and opt.defaults["betas"] == (0.8, 0.9)
    factory, description = optimizer_factory({"_target_": "torch.optim.RMSprop", "_partial_": True, "lr": 0.02})
    assert description == {"_target_": "torch.optim.RMSprop", "lr": 0.02}
    assert isinstance(factory([torch.nn.Parameter(torch.zeros(1))]), torch.optim.RMSprop)
    again, _ = optimizer_factory(description)  # what a checkpoint's hparams hold builds the same optimiser
    assert again([torch.nn.Parameter(torch.zeros(1))]).defaults["lr"] == 0.02


@pytest.mark.parametrize("optimizer, line", [
    (functools.partial(torch.optim.SGD, 0.1), "optimizer=functools.partial(<class 'torch.optim.sgd.SGD'>, 0.1) is invalid; allowed: a _partial_ optimiser config with keyword settings only"),
    ("adam", "optimizer='adam' is invalid; allowed: a _partial_ optimiser config, e.g. model/optimizer=adam"),
    ({"lr": 0.1}, "optimizer={'lr': 0.1} is invalid; allowed: a _partial_ optimiser config, e.g. model/optimizer=adam"),
    ({"_target_": "torch.optim.Adamm"}, "optimizer._target_='torch.optim.Adamm' is not an importable optimiser class; e.g. torch.optim.SGD, torch.optim.Adam"),
    ({"_target_": "nosuchmodule.Opt"}, "optimizer._target_='nosuchmodule.Opt' is not an importable optimiser class; e.g. torch.optim.SGD, torch.optim.Adam"),
    ({"_target_": "Adam"}, "optimizer._target_='Adam' is not an importable optimiser class; e.g. torch.optim.SGD, torch.optim.Adam"),
    ({"_target_": "torch.optim.SGD", "lr": -1}, "optimizer: SGD(lr=-1) is invalid: Invalid learning rate: -1"),
    ({"_target_": "torch.optim.Adam", "lr": 0.1, "bogus": 1}, "optimizer: Adam(lr=0.1, bogus=1) is invalid: Adam.__init__() got an unexpected keyword argument 'bogus'"),
])
def test_a_bad_optimiser_is_one_line_naming_it(optimizer, line):
    with pytest.raises(ConfigError) as caught:
        optimizer_factory(optimizer)
    assert str(caught.value) == line


class _Population(SequencePredictor):
    """A SequencePredictor whose test outcomes are set by hand."""

    def outcomes(self, solved):
        self.last_test = {"solved": solved}
        return self


def test_which_seed_is_analysed_and_which_are_drawn():
    model = _Population(seeds=3, init_seed=10).outcomes([False, True, True])
    assert model.analysed_seed() == 11 and model.failed_seed() == 10 and model.shown_seeds() == [11, 10]
    model.outcomes([False, False, False])
    assert model.analysed_seed() == 10 and model.shown_seeds() == [10]  # the first seed, which is also the failed one
    model.outcomes([True, True, True])
    assert model.failed_seed() is None and model.shown_seeds() == [10]
    chosen = _Population(seeds=3, init_seed=10, analyse_seed=12).outcomes([True, False, True])
    assert chosen.analysed_seed() == 12 and chosen.shown_seeds() == [12, 11]
    single = _Population().outcomes([False])
    assert single.shown_seeds() == [0]  # a single run draws its one net once


def test_each_process_takes_its_share_of_the_seeds():
    model = SequencePredictor(seeds=5)
    assert model.my_seeds() == [0, 1, 2, 3, 4]  # not attached to a trainer: one process
    left = []
    model._leave = left.append
    model.my_seeds = lambda: [1, 3]
    model.take_share()
    assert left == [0, 2, 4]


def test_the_population_summary():
    model = SequencePredictor(seeds=4, init_seed=3)
    per_seed = [
        {"seed": 3, "outcome": "succeeded", "first_solved_update": 500, "updates": 600, "attempt_records": [1]},
        {"seed": 4, "outcome": "failed", "first_solved_update": 200, "updates": 1000, "attempt_records": [2]},
        {"seed": 5, "outcome": "succeeded", "first_solved_update": 900, "updates": 900, "attempt_records": []},
        {"seed": 6, "outcome": "failed", "first_solved_update": None, "updates": 700, "attempt_records": []},
    ]
    summary = model.population_summary(per_seed)
    assert summary["population"] == 4 and summary["success_rate"] == 0.5
    assert summary["seeds"] == [{k: v for k, v in r.items() if k != "attempt_records"} for r in per_seed]
    assert summary["success"] == {"succeeded": 2, "of": 4, "rate": 0.5, "interval95": [0.15, 0.85]}
    # a seed that failed on the test counts as censored at its updates, even if it was solved during training
    u = summary["updates_to_success"]
    assert (u["succeeded"], u["censored"], u["min"], u["max"]) == (2, 2, 500, 900)
