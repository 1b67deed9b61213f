"""orchestration/ in process: the config checks and their error lines, the failure policy, what
results.json holds, and the studies' printouts, each with worked-out inputs and outputs. The same
rules are also exercised end to end (train.py in a subprocess, marked slow); these are the tests a
mutation run (docs/mutation.md) can see, and they take well under a second each."""

from __future__ import annotations

import math
import os
import platform

import pytest
import torch
from omegaconf import OmegaConf

from base.errors import ConfigError, DataError, UserError
from orchestration import config, failures


# --- config ----------------------------------------------------------------------------------

def test_run_name_is_the_experiment_then_the_model_then_run():
    assert config.run_name("kmnist_conv", "conv") == "kmnist_conv"
    assert config.run_name(None, "srn") == "srn"
    assert config.run_name(None, None) == "run"
    assert config.run_name("", "") == "run"


def test_num_symbols_follows_the_language_and_names_the_key_when_it_is_wrong():
    from base.languages import LANGUAGES

    assert (config.num_symbols("anb2n"), config.num_symbols("anb2nc3n")) == (2, 3)
    with pytest.raises(ConfigError) as caught:
        config.num_symbols("anbn_typo")
    assert str(caught.value) == f"data.language='anbn_typo' is invalid; allowed: one of {', '.join(LANGUAGES)}"


@pytest.fixture
def fresh_resolvers():
    """No project resolver registered (other tests and imports register them), then back."""
    names = ("run_name", "num_symbols", "ddp_strategy")
    for name in names:
        OmegaConf.clear_resolver(name)
    yield names
    config.register_resolvers()


def test_the_resolvers_conf_uses_are_registered(fresh_resolvers):
    assert not any(OmegaConf.has_resolver(n) for n in fresh_resolvers)
    config.register_resolvers()
    node = OmegaConf.create({"name": "${run_name:null,srn}", "symbols": "${num_symbols:anb2nc3n}",
                             "ddp": "${ddp_strategy:lightning_modules.recurrent.SequencePredictor}",
                             "ddp_kmnist": "${ddp_strategy:lightning_modules.kmnist.KMNISTClassifier}"})
    assert (node.name, node.symbols, node.ddp, node.ddp_kmnist) == ("srn", 3, "ddp_population", "ddp")
    config.register_resolvers()  # a second call is harmless (Hydra's multirun calls it per job)


def test_group_options_lists_yaml_files_per_group_and_leaves_out_hydra(tmp_path):
    for group, names in {"model": ["srn", "lstm"], "data": ["grid"], "hydra": ["default"]}.items():
        (tmp_path / group).mkdir()
        for name in names:
            (tmp_path / group / f"{name}.yaml").write_text("{}\n")
    (tmp_path / "model" / "notes.txt").write_text("not an option")
    (tmp_path / "train.yaml").write_text("{}\n")  # a file at the top is no group
    assert config.group_options(tmp_path) == {"data": ["grid"], "model": ["lstm", "srn"]}
    shipped = config.group_options()
    assert "kmnist_conv" in shipped["experiment"] and "hydra" not in shipped


@pytest.mark.parametrize("override, extra", [
    ("hparams_search=kmnist_optuna", config.OPTUNA),
    ("+hparams_search=kmnist_optuna", config.OPTUNA),
    ("hparams_search=null", None),
    ("hparams_search=", None),
    ("hydra/sweeper=optuna", config.OPTUNA),
    ("hydra/sweeper=basic", None),
    ("hydra/launcher=submitit_local", config.SUBMITIT),
    ("hydra/launcher=submitit_slurm", config.SUBMITIT),
    ("hydra/launcher=slurm", config.SUBMITIT),
    ("hydra/launcher=joblib", None),
    ("~hydra/launcher=slurm", config.SUBMITIT),
    ("model.lr=0.1", None),
    ("hparams_search=a=b", config.OPTUNA),  # the key ends at the first "="
])
def test_which_override_needs_which_extra(override, extra):
    assert config.needed_extra(override) == extra


def test_check_extras_names_the_install_command_when_the_plugin_is_missing(monkeypatch):
    import importlib.util

    asked = []

    def missing(name):
        asked.append(name)
        return None

    monkeypatch.setattr(importlib.util, "find_spec", missing)
    config.check_extras(["model.lr=0.1", "seed=3"])  # nothing that needs an extra: not even looked up
    assert asked == []
    with pytest.raises(ConfigError) as caught:
        config.check_extras(["seed=1", "hydra/launcher=slurm"])
    assert asked == ["hydra_plugins.hydra_submitit_launcher"]
    assert str(caught.value) == ("hydra/launcher=slurm needs the optional extra 'slurm', which is not installed; "
                                 "install it with: pip install -e \".[slurm]\"")

    def no_namespace(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(importlib.util, "find_spec", no_namespace)
    with pytest.raises(ConfigError, match=r"^hparams_search=x needs the optional extra 'optuna'"):
        config.check_extras(["hparams_search=x"])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    config.check_extras(["hparams_search=x", "hydra/launcher=slurm"])  # installed: no error


class Built:
    """A stand-in for a config's ``_target_``: checks its argument as the project's modules do."""

    def __init__(self, hidden_units: int = 1, analyse_seed: int = 0):
        from base.errors import check_int

        check_int("hidden_units", hidden_units, 1)
        check_int("analyse_seed", analyse_seed, 0)
        self.hidden_units = hidden_units


TARGET = f"{__name__}.Built"


def test_instantiate_group_builds_and_prefixes_the_key_of_a_bad_value():
    assert config.instantiate_group(OmegaConf.create({"_target_": TARGET, "hidden_units": 3}), "model").hidden_units == 3
    assert config.instantiate_group(OmegaConf.create({"_target_": TARGET}), "model", hidden_units=4).hidden_units == 4
    with pytest.raises(ConfigError) as caught:
        config.instantiate_group(OmegaConf.create({"_target_": TARGET, "hidden_units": 0}), "model")
    assert str(caught.value) == "model.hidden_units=0 is invalid; allowed: an integer >= 1"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_instantiate_group_names_the_key_the_user_typed():
    node = OmegaConf.create({"model": {"_target_": TARGET, "analyse_seed": "${analyse_seed}"}, "analyse_seed": -2})
    with pytest.raises(ConfigError) as caught:
        config.instantiate_group(node.model, "model")
    assert str(caught.value) == "analyse_seed=-2 is invalid; allowed: an integer >= 0"


def test_typed_key_keeps_the_message_when_the_value_is_the_groups_own():
    node = OmegaConf.create({"a": 1, "b": "${c}", "d": "x${c}", "c": 2})
    message = "model.b=2 is invalid; allowed: an integer >= 3"
    assert config.typed_key(node, "model", message) == "c=2 is invalid; allowed: an integer >= 3"
    assert config.typed_key(node, "model", "model.a=1 is invalid") == "model.a=1 is invalid"
    assert config.typed_key(node, "model", "model.d=x2 is invalid") == "model.d=x2 is invalid"  # not a plain reference
    assert config.typed_key(node, "data", message) == message  # another group's key
    assert config.typed_key(node, "model", "something else") == "something else"
    assert config.typed_key("not a node", "model", message) == message
    assert config.typed_key(OmegaConf.create({"b": "${x.y_z}"}), "model", "model.b=2 bad") == "x.y_z=2 bad"


def test_instantiate_group_turns_a_constructor_type_error_into_one_line():
    with pytest.raises(UserError) as caught:
        config.instantiate_group(OmegaConf.create({"_target_": TARGET, "hidden_unit": 3}), "model")
    line = str(caught.value)
    assert line.startswith("model: ") and "hidden_unit" in line and "\n" not in line
    assert type(caught.value) is UserError and caught.value.__cause__ is None


def test_instantiate_group_reports_a_bug_below_a_constructor_as_a_bug():
    node = OmegaConf.create({"_target_": "builtins.open", "file": "/nonexistent/dir/file"})
    with pytest.raises(Exception) as caught:  # FileNotFoundError is no config mistake: Hydra's own error, traceback kept
        config.instantiate_group(node, "data")
    assert not isinstance(caught.value, UserError)


def test_instantiate_group_names_the_choices_that_do_not_belong_together():
    node = OmegaConf.create({"model": {"_target_": TARGET, "hidden_units": "${data.language}"}, "data": {"root": "x"}})
    with pytest.raises(UserError) as caught:
        config.instantiate_group(node.model, "model")
    line = str(caught.value)
    assert line.startswith("model: ") and line.endswith("(do data=None and model=None belong together?)") and "\n" not in line
    assert "language" in line  # OmegaConf's first line: the key it could not find


def test_the_choices_named_are_the_runs_own(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    config.register_resolvers()
    with initialize_config_dir(config_dir=str(config.CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=kmnist_lin", "model=srn"], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        assert config._choices("data", "model") == "data=kmnist and model=srn"
        with pytest.raises(UserError) as caught:
            config.instantiate_group(cfg.model, "model")
        assert str(caught.value).endswith("(do data=kmnist and model=srn belong together?)")
    finally:
        HydraConfig.instance().cfg = None


def test_instantiate_group_passes_on_a_resolvers_own_line():
    config.register_resolvers()
    node = OmegaConf.create({"_target_": TARGET, "hidden_units": "${num_symbols:abc}"})
    with pytest.raises(UserError) as caught:
        config.instantiate_group(node, "model")
    assert str(caught.value).startswith("data.language='abc' is invalid; allowed: one of ")


@pytest.mark.parametrize("trainer, line", [
    ({"max_epochs": 0}, "trainer.max_epochs=0 is invalid; allowed: an integer >= 1"),
    ({"max_epochs": 1.5}, "trainer.max_epochs=1.5 is invalid; allowed: an integer >= 1"),
    ({"max_epochs": True}, "trainer.max_epochs=True is invalid; allowed: an integer >= 1"),
    ({"max_epochs": 2, "max_steps": 0}, "trainer.max_steps=0 is invalid; allowed: -1 (no limit) or an integer >= 1"),
    ({"max_epochs": 2, "max_steps": -2}, "trainer.max_steps=-2 is invalid; allowed: -1 (no limit) or an integer >= 1"),
    ({"max_epochs": 2, "max_steps": True}, "trainer.max_steps=True is invalid; allowed: -1 (no limit) or an integer >= 1"),
    ({"max_epochs": 2, "max_steps": 2.0}, "trainer.max_steps=2.0 is invalid; allowed: -1 (no limit) or an integer >= 1"),
])
def test_check_trainer_refuses_what_makes_no_run(trainer, line):
    with pytest.raises(ConfigError) as caught:
        config.check_trainer(OmegaConf.create(trainer))
    assert str(caught.value) == line


@pytest.mark.parametrize("trainer", [{"max_epochs": 1}, {"max_epochs": 3, "max_steps": None}, {"max_epochs": 3, "max_steps": -1}, {"max_epochs": 1, "max_steps": 1}, {"max_epochs": 1, "max_steps": 50}])
def test_check_trainer_accepts_a_run(trainer):
    config.check_trainer(OmegaConf.create(trainer))


# --- failures --------------------------------------------------------------------------------

def test_one_line_and_fail(capsys):
    assert failures.one_line(ValueError("a\n  b\tc ")) == "a b c"
    with pytest.raises(SystemExit) as caught:
        failures.fail("model.lr=-1 is invalid")
    assert caught.value.code == 1
    assert capsys.readouterr().err == "error: model.lr=-1 is invalid\n"


def test_what_counts_as_the_users_mistake():
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    assert failures.is_user_error(UserError("x")) and failures.is_user_error(DataError("x"))
    assert failures.is_user_error(MisconfigurationException("devices=3"))
    assert not failures.is_user_error(ValueError("x")) and not failures.is_user_error(RuntimeError("x"))


def test_hydra_errors_as_one_line():
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError

    missing = MissingConfigException("Could not find 'experiment/kmnist_huge'", missing_cfg_file="experiment/kmnist_huge", options=["kmnist_conv", "srn_anb2n"])
    assert failures.hydra_error_line(missing) == "experiment='kmnist_huge' is not a known experiment; allowed: kmnist_conv, srn_anb2n"
    nested = MissingConfigException("x", missing_cfg_file="hydra/launcher/slrm", options=["joblib"])
    assert failures.hydra_error_line(nested) == "hydra/launcher='slrm' is not a known hydra/launcher; allowed: joblib"
    no_options = MissingConfigException("Cannot find primary config 'x'\nSee https://hydra.cc/docs/x for more", missing_cfg_file="x", options=None)
    assert failures.hydra_error_line(no_options) == "Cannot find primary config 'x'"
    no_group = MissingConfigException("Cannot find 'x'", missing_cfg_file="x", options=["a"])
    assert failures.hydra_error_line(no_group) == "Cannot find 'x'"
    parse = OverrideParseException(override="model.lr=[1", message="mismatched input '<EOF>'\n expecting ']'")
    assert failures.hydra_error_line(parse) == "cannot read the override 'model.lr=[1': mismatched input '<EOF>' expecting ']'"
    composed = ConfigCompositionException("Could not override 'trainer.max_epoch'.\nTo append to your config use +trainer.max_epoch=1")
    composed.__cause__ = ConfigAttributeError("Key 'max_epoch' is not in struct\n    full_key: trainer.max_epoch")
    assert failures.hydra_error_line(composed) == ("Could not override 'trainer.max_epoch'. To append to your config use +trainer.max_epoch=1 "
                                                    "(Key 'max_epoch' is not in struct)")


def test_a_failed_run_of_a_multirun_leaves_error_txt(tmp_path, caplog):
    import traceback

    caplog.set_level("INFO", logger="train")
    out = tmp_path / "sweep" / "3"
    try:
        raise ValueError("bad\nvalue")
    except ValueError as exc:
        assert math.isnan(failures.record_failure(out, exc, with_traceback=True))
        trace = "".join(traceback.format_exception(exc))
    assert (out / "error.txt").read_text() == "ValueError: bad value\n\n" + trace
    assert trace.startswith("Traceback (most recent call last):\n") and trace.endswith("ValueError: bad\nvalue\n")
    assert math.isnan(failures.record_failure(out, UserError("model.lr=-1 is\ninvalid"), with_traceback=False))
    assert (out / "error.txt").read_text() == "UserError: model.lr=-1 is invalid\n"
    assert [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records] == [
        ("ERROR", "run failed: bad value", True), ("ERROR", "run failed: model.lr=-1 is invalid", False)]


def test_run_job_sorts_each_failure_into_the_policy(tmp_path, capsys):
    out = lambda: tmp_path / "job"  # noqa: E731

    def raises(exc):
        def job():
            raise exc
        return job

    assert failures.run_job(lambda: 0.75, multirun=False, out_dir=out) == 0.75
    assert failures.run_job(lambda: None, multirun=True, out_dir=out) is None
    assert not (tmp_path / "job").exists()
    assert math.isnan(failures.run_job(raises(UserError("data.root='/x': no such folder")), multirun=True, out_dir=out))
    assert (tmp_path / "job" / "error.txt").read_text() == "UserError: data.root='/x': no such folder\n"
    assert math.isnan(failures.run_job(raises(RuntimeError("a bug")), multirun=True, out_dir=out))
    assert "Traceback" in (tmp_path / "job" / "error.txt").read_text()
    with pytest.raises(SystemExit) as caught:
        failures.run_job(raises(UserError("seed=-1 is invalid")), multirun=False, out_dir=out)
    assert caught.value.code == 1 and capsys.readouterr().err == "error: seed=-1 is invalid\n"
    with pytest.raises(RuntimeError, match="a bug"):
        failures.run_job(raises(RuntimeError("a bug")), multirun=False, out_dir=out)


def test_run_entry_checks_first_and_reports_user_and_hydra_errors_in_one_line(monkeypatch, capsys):
    from hydra.errors import ConfigCompositionException, OverrideParseException

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    calls = []
    failures.run_entry(lambda: calls.append("main"), before=lambda: calls.append("before"))
    assert calls == ["before", "main"] and os.environ["HYDRA_FULL_ERROR"] == "1"
    failures.run_entry(lambda: calls.append("main again"))  # no check given: none needed
    assert calls[-1] == "main again"
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    failures.run_entry(lambda: None)
    assert os.environ["HYDRA_FULL_ERROR"] == "0"  # the user's setting stays

    def raising(exc):
        def main():
            raise exc
        return main

    for exc, line in [(UserError("ckpt_path='x': no such\nfile"), "error: ckpt_path='x': no such file\n"),
                      (ConfigCompositionException("Could not override 'x'"), "error: Could not override 'x'\n"),
                      (OverrideParseException(override="a=[", message="bad"), "error: cannot read the override 'a=[': bad\n")]:
        with pytest.raises(SystemExit) as caught:
            failures.run_entry(raising(exc))
        assert caught.value.code == 1 and capsys.readouterr().err == line
    with pytest.raises(SystemExit):
        failures.run_entry(lambda: None, before=raising(ConfigError("hparams_search=x needs ...")))
    assert capsys.readouterr().err == "error: hparams_search=x needs ...\n"
    with pytest.raises(KeyError):
        failures.run_entry(raising(KeyError("a bug")))


# --- results ---------------------------------------------------------------------------------

class _Strategy:
    root_device = torch.device("cpu")


class _Trainer:
    strategy, current_epoch, global_step, world_size, precision = _Strategy(), 3, 120, 2, "32-true"


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.out = torch.nn.Linear(2, 3), torch.nn.Linear(3, 1, bias=False)


class _Module:
    study, net, engine = "grid", _Net(), "by hand"
    hparams = {"hidden_units": 3, "lr": 0.1}

    def test_summary(self):
        return {"test_acc": 1.0, "updates": 500}


class _Data:
    data_source, train_set, test_set = "bundled sample", list(range(9)), list(range(4))


class _Measured:
    def results(self):
        return {"gate_table": [1, 2], "test_acc": 0.5}  # a callback's numbers come after the module's


def test_results_json_holds_what_every_run_reports(tmp_path):
    from callbacks.timer import TrainTimer
    from orchestration.results import collect_results, device_name

    timer = TrainTimer()
    timer.seconds, timer.samples = 2.50049, 1001
    cfg = OmegaConf.create({"name": "check_sig", "seed": 7})
    r = collect_results(cfg, _Trainer(), _Module(), _Data(), [object(), timer, _Measured()], "last.ckpt", tmp_path)
    expected = {
        "experiment": "check_sig", "study": "grid", "model": "_Net", "engine": "by hand", "params": 2 * 3 + 3 + 3 * 1, "seed": 7,
        "epochs": 3, "global_step": 120, "test_acc": 0.5, "updates": 500, "train_seconds": 2.5,  # rounded to 3 decimals
        "train_samples_per_second": 400.3, "hparams": {"hidden_units": 3, "lr": 0.1}, "data_source": "bundled sample",  # 1001 / 2.50049 = 400.32
        "train_size": 9, "test_size": 4, "device": device_name(_Trainer()), "world_size": 2, "precision": "32-true",
        "resumed_from": "last.ckpt", "run_dir": str(tmp_path), "gate_table": [1, 2], "updates_per_second": 200.0,  # 500 / 2.50049 = 199.96
    }
    assert {k: r[k] for k in expected} == expected
    assert isinstance(r["train_seconds"], float) and isinstance(r["updates_per_second"], float)
    assert [(row["layer"], row["params"]) for row in r["parameter_table"]] == [("net.hidden", 2 * 3 + 3), ("net.out", 3)]  # a row per layer
    assert set(r) == set(expected) | {"parameter_table", "finished_at"}
    assert device_name(_Trainer()) == f"cpu ({platform.processor() or platform.machine()})"

    class NoSource:  # a data module without a test set at all
        train_set = [0] * 5

    timer.seconds = 0.0
    r = collect_results(cfg, _Trainer(), _Module(), NoSource(), [timer], None, tmp_path)
    assert "data_source" not in r and (r["train_size"], r["test_size"]) == (5, None)
    assert "updates_per_second" not in r and r["train_samples_per_second"] == 0.0
    timer.seconds = 0.5
    assert collect_results(cfg, _Trainer(), _Module(), NoSource(), [timer], None, tmp_path)["updates_per_second"] == 1000.0


def test_device_name_of_a_gpu(monkeypatch):
    from orchestration.results import device_name

    class OnGPU:
        class strategy:
            root_device = torch.device("cuda", 1)

    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: asked.append(d) or "NVIDIA H200")
    assert device_name(OnGPU()) == "cuda (NVIDIA H200)" and asked == [torch.device("cuda", 1)]


# --- studies ---------------------------------------------------------------------------------

def grid_results(**changes):
    r = {
        "study": "grid", "model": "GridNet", "hidden_units": 2, "activation": "sigmoid", "weight_scale": 1.0,
        "weights": {"hidden_weight": [[1.0, -2.0], [0.5, 0.0]], "hidden_bias": [0.25, -1.0], "output_weight": [[3.0, -3.0]], "output_bias": [0.0]},
        "point_table": [
            {"x": 0.0, "y": 1.0, "target": 1, "hidden": [0.1234, 0.9], "output": 0.98765, "pred": 1, "correct": True},
            {"x": 2.0, "y": 0.0, "target": 0, "hidden": [0.5, 0.25], "output": 0.6, "pred": 1, "correct": False},
        ],
        "test_correct": 8, "test_total": 9, "test_acc": 8 / 9, "test_loss": 0.12345,
        "dividing_lines": [{"unit": "h0", "equation": "y = 0.5x + 0.125", "on": "below"}, {"unit": "h1", "equation": None, "on": "everywhere"}],
        "attempts": [{"attempt": 1, "seed": 3, "updates": 20000, "first_perfect_update": None, "outcome": "stuck"},
                     {"attempt": 2, "seed": 4, "updates": 4772, "first_perfect_update": 4500, "outcome": "succeeded"}],
    }
    r.update(changes)
    return r


def test_grid_printout():
    from orchestration.studies import grid_printout

    assert grid_printout(grid_results()).splitlines() == [
        "Final weights (2 sigmoid hidden units):",
        "  hidden_weight = [[ 1. , -2. ],",
        "                   [ 0.5,  0. ]]",
        "  hidden_bias   = [ 0.25, -1.  ]",
        "  output_weight = [[ 3., -3.]]",
        "  output_bias   = [0.]",
        "",
        "  x  y  target |     h0     h1 |  output  pred",
        "  " + "-" * 50,
        "  0  1       1 |  0.123  0.900 |  0.9877     1",
        "  2  0       0 |  0.500  0.250 |  0.6000     1  <- wrong",
        "",
        "Final accuracy: 8/9 (88.9%), loss 0.1235",
        "",
        "Dividing lines (where each hidden unit crosses 0.5; 'on' = the side where it is >= 0.5):",
        "  h0: y = 0.5x + 0.125         on below",  # the equation in 24 columns
        "  h1: no line (both input weights 0) on everywhere",
        "",
        "Attempt 1 (seed 3): 20,000 updates, never 100%; stuck",
        "Attempt 2 (seed 4): 4,772 updates, 100% first at update 4,500; succeeded",
    ]
    fine = grid_printout(grid_results(weights={"hidden_weight": [[0.12345, 2.0]], "hidden_bias": [1.0, 1e-5], "output_weight": [[1.0]], "output_bias": [0.5]}))
    assert fine.splitlines()[1:3] == ["  hidden_weight = [[0.123, 2.   ]]", "  hidden_bias   = [1., 0.]"]  # 3 decimals; 1e-5 beside 1 is 0
    scaled = grid_printout(grid_results(weight_scale=10.0, attempts=[]))
    assert scaled.splitlines()[0] == "Final weights (2 sigmoid hidden units, every weight x 10):"
    assert scaled.splitlines()[-1] == "  h1: no line (both input weights 0) on everywhere"


def test_kmnist_printout():
    from orchestration.studies import kmnist_printout

    r = {"confusion_matrix": [[5, 1], [0, 4]], "test_loss": 0.5, "test_correct": 9, "test_total": 10}
    lines = kmnist_printout(r).splitlines()
    assert lines[:3] == ["[[5 1]", " [0 4]]", ""]
    assert lines[3] == "Test set: Average loss: 0.5000, Accuracy: 9/10 (90%)"
    assert len(lines) == 4
    r |= {"data_source": "files", "train_size": 5000, "test_size": 1284}
    assert kmnist_printout(r).splitlines()[-1] == "Trained on: KMNIST files with 5,000 training images (not the full 60,000); tested on 1,284 images"
    r |= {"data_source": "bundled", "train_size": 6284}
    assert kmnist_printout(r).splitlines()[-1] == "Trained on: bundled sample, 6,284 training images; tested on 1,284 images"
    wide = kmnist_printout(r | {"confusion_matrix": [[1000] * 20]})
    assert wide.splitlines()[0] == "[[" + " ".join(["1000"] * 20) + "]]"  # a row of 102 characters stays on one line
    widest = kmnist_printout(r | {"confusion_matrix": [[10] * 66]})  # 201 characters: more than the 200 allowed
    assert len(widest.splitlines()[0]) <= 200 and widest.splitlines()[1].strip().startswith("10")


def recurrent_results(**changes):
    r = {"study": "recurrent", "error": 0.01234, "acc": 0.99, "solved": False}
    r.update(changes)
    return r


def test_recurrent_printout():
    from orchestration.studies import recurrent_printout

    assert recurrent_printout(recurrent_results()) == "Test: error 0.0123 (the reference's measure), acc 0.9900 (not solved)"
    r = recurrent_results(solved=True, error_exact=0.5, max_n_generalised=12, tested_up_to=20, lengths_right=list(range(1, 15)),
                          attempts=[{"attempt": 1, "seed": 0, "updates": 3000, "start_update": 0, "first_solved_update": None, "outcome": "stuck"},
                                    {"attempt": 2, "seed": 1, "updates": 12345, "start_update": 3000, "first_solved_update": 9000, "outcome": "succeeded"}],
                          first_solved_update=9000, first_solved_seconds=2.345)
    assert recurrent_printout(r).splitlines() == [
        "Test: error 0.0123 (the reference's measure), error_exact 0.5000, acc 0.9900 (solved); "
        "every block length up to n = 12 right (tested up to 20, 14 of 20 lengths right)",
        "Attempt 1 (seed 0): 3,000 updates from update 0, never solved; stuck",
        "Attempt 2 (seed 1): 12,345 updates from update 3,000, first solved at update 9,000; succeeded",
        "First solved after 9,000 updates (2.3 s)",
    ]
    no_lengths = recurrent_printout(recurrent_results(max_n_generalised=4, tested_up_to=8))
    assert no_lengths.endswith("(not solved); every block length up to n = 4 right (tested up to 8)")
    assert recurrent_printout(recurrent_results(first_solved_update=0, first_solved_seconds=0.0)).endswith("First solved after 0 updates (0.0 s)")


def test_recurrent_printout_puts_the_tables_before_the_metrics():
    from analysis.recurrent import GATE_KEYS, format_gate_table, format_probe, format_step_table
    from orchestration.studies import recurrent_printout

    step = [{"input": "A", "next": "B", "determined": True, "hidden": [0.1, 0.2], "probs": [0.3, 0.7]}]
    gates = [{"phase": "A", "positions": 4, **{g: [0.5, 0.25] for g in GATE_KEYS}}]
    probe = {"phases": [{"phase": "A", "r2": 0.99, "counter": 1, "units": [{"unit": 1, "per_symbol": 0.5, "r2": 0.98}]}], "state": "cell"}
    parts = [format_step_table(step, "Block length n = 3:"),
             format_step_table(step, "A whole test sequence from the initial state (A' = the A that starts a new block):"),
             format_gate_table(gates), format_probe(probe["phases"], probe["state"])]
    r = recurrent_results(step_tables={"3": step}, sequence_table=step, gate_table=gates, probe=probe)
    assert recurrent_printout(r) == "\n\n".join(parts) + "\n\n" + recurrent_printout(recurrent_results())
    two = recurrent_printout(recurrent_results(step_tables={"3": step, "5": step}))
    assert two == "\n\n".join([parts[0], format_step_table(step, "Block length n = 5:"), recurrent_printout(recurrent_results())])
    assert parts[3].splitlines()[1] == "  A      R^2 0.990; counter c1; c1: +0.500/symbol (R^2 0.98)"
    empty = recurrent_results(probe={"phases": [], "state": "cell"}, gate_table=[], sequence_table=[], step_tables={})
    assert recurrent_printout(empty) == recurrent_printout(recurrent_results())


def population_results(**changes):
    r = {"population": 3, "seeds": [{"seed": 10, "outcome": "succeeded"}, {"seed": 11, "outcome": "stuck"}, {"seed": 12, "outcome": "succeeded"}],
         "success": {"succeeded": 2, "of": 3, "rate": 2 / 3, "interval95": [0.2077, 0.9385]},
         "updates_to_success": {"succeeded": 2, "median": 4500.0, "q1": 4000.4, "q3": 5000.6, "min": 3500, "max": 5500, "censored": 1},
         "analysed_seed": 10}
    r.update(changes)
    return r


def test_population_printout():
    from orchestration.studies import population_printout

    assert population_printout(population_results()).splitlines() == [
        "Population of 3 seeds (10..12): 2/3 succeeded (67%, 95% interval 21%-94%)",
        "Updates to first success: median 4,500 (quartiles 4,000-5,001, range 3,500-5,500); 1 never succeeded",
        "Seeds that failed: 11",
        "The tables above show seed 10 (analyse_seed=<seed> shows another).",
    ]
    everyone = population_results(seeds=[{"seed": s, "outcome": "succeeded"} for s in (0, 1)], population=2,
                                  updates_to_success={"succeeded": 2, "median": 10, "q1": 10, "q3": 10, "min": 10, "max": 10, "censored": 0},
                                  max_n_generalised_counts={"4": 1, "5": 1}, fraction_lengths_right_median=0.5, fraction_lengths_right_best=0.75, tested_up_to=20)
    assert population_printout(everyone).splitlines()[1:4] == [
        "Updates to first success: median 10 (quartiles 10-10, range 10-10)",
        "max_n_generalised over the seeds (value: seeds): 4: 1, 5: 1",
        "Block lengths right of n = 1..20: median 50% over the seeds, best seed 75%",
    ]
    assert "Seeds that failed" not in population_printout(everyone)
    twenty = population_results(seeds=[{"seed": s, "outcome": "stuck"} for s in range(20)])
    assert population_printout(twenty).splitlines()[2] == "Seeds that failed: " + ", ".join(map(str, range(20)))  # all of them: no "..."
    none = population_results(updates_to_success={"succeeded": 0}, seeds=[{"seed": s, "outcome": "stuck"} for s in range(21)])
    lines = population_printout(none).splitlines()
    assert not any(line.startswith("Updates") for line in lines)
    assert lines[1] == "Seeds that failed: " + ", ".join(map(str, range(20))) + " ..."


def test_each_study_knows_its_objective_success_and_printout():
    from orchestration.studies import STUDIES, grid_printout, population_printout, study_of

    grid, recurrent, kmnist = STUDIES["grid"], STUDIES["recurrent"], STUDIES["kmnist"]
    assert (grid.objective, recurrent.objective, kmnist.objective) == ("test_acc", "acc", "test_acc")
    assert (grid.first_success, recurrent.first_success, kmnist.first_success) == ("first_perfect_update", "first_solved_update", None)
    assert grid.success({"test_acc": 1.0}) is True and grid.success({"test_acc": 8 / 9}) is False
    assert recurrent.success({"solved": 1}) is True and recurrent.success({"solved": 0}) is False
    assert kmnist.success is None and (grid.population, recurrent.population, kmnist.population) == (True, True, False)
    assert grid.objective_of({"population": 10}) == "success_rate" and grid.objective_of({}) == "test_acc"
    assert recurrent.objective_of({"population": None}) == "acc"
    both = grid_results() | population_results()
    assert grid.print_results(both) == grid_printout(both) + "\n\n" + population_printout(both)
    assert grid.print_results(grid_results()) == grid_printout(grid_results())
    assert study_of({"study": "recurrent"}) is recurrent
    with pytest.raises(UserError) as caught:
        study_of({"study": "mnist", "run_dir": "outputs/x"})
    assert str(caught.value) == ("outputs/x: study='mnist' is not a known study; allowed: kmnist, grid, recurrent "
                                 "(a results.json from an older version has none: run it again)")
    with pytest.raises(UserError, match=r"^a results.json: study=None is not a known study"):
        study_of({})


def test_printout_ends_with_the_parameter_table():
    from orchestration.studies import grid_printout, printout

    rows = [{"layer": "net.hidden", "type": "Linear", "shapes": [[2, 2], [2]], "params": 6}]
    r = grid_results(parameter_table=rows)
    assert printout(r).splitlines()[-6:] == [
        "GridNet: trainable parameters",
        "layer       type    shapes   params",
        "-" * 35,
        "net.hidden  Linear  2x2 + 2       6",
        "-" * 35,
        "Total                             6",
    ]
    assert printout(r) == grid_printout(r) + "\n\n" + "\n".join(printout(r).splitlines()[-6:])


# --- the checkpoint check, line by line (the nets at two sizes: tests/test_config.py) ----------

class Pickled:
    """Not a tensor or a plain container: reading it would run code from the file."""


def _save(path, **ckpt):
    torch.save(ckpt, path)
    return str(path)


def test_the_checkpoint_check_error_lines(tmp_path, monkeypatch):
    model = torch.nn.Linear(2, 1)
    model.hparams = {"hidden_units": 1}
    missing = str(tmp_path / "none.ckpt")
    with pytest.raises(UserError) as caught:
        config.check_checkpoint(missing, model)
    assert str(caught.value) == f"ckpt_path={missing!r}: no such file (give the path of a checkpoint, e.g. <run>/checkpoints/last.ckpt)"
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError) as caught:
        config.check_checkpoint(str(junk), model)
    assert str(caught.value).startswith(f"ckpt_path={str(junk)!r} is not a readable checkpoint: ") and "\n" not in str(caught.value)
    code = _save(tmp_path / "code.ckpt", state_dict=model.state_dict(), epoch=0, extra=Pickled())
    with pytest.raises(UserError, match=r"is not a readable checkpoint: Weights only load failed"):
        config.check_checkpoint(code, model)  # refused, not unpickled
    plain = _save(tmp_path / "plain.ckpt", weights=model.state_dict())
    with pytest.raises(UserError) as caught:
        config.check_checkpoint(plain, model)
    assert str(caught.value) == f"ckpt_path={plain!r} is not a Lightning checkpoint (no state_dict/epoch in it)"
    other = _save(tmp_path / "other.ckpt", state_dict=torch.nn.Linear(3, 1).state_dict(), epoch=0)  # no hyper_parameters saved
    with pytest.raises(UserError) as caught:
        config.check_checkpoint(other, model)
    assert str(caught.value) == f"ckpt_path={other!r} holds a different model (saved with {{}}); this run builds {{'hidden_units': 1}}"
    same = _save(tmp_path / "same.ckpt", state_dict=model.state_dict(), epoch=3)
    assert config.check_checkpoint(tmp_path / "same.ckpt", model) == same  # a Path is read as its text

    def silent(*args, **kwargs):
        raise RuntimeError("")

    monkeypatch.setattr(torch, "load", silent)
    with pytest.raises(UserError) as caught:
        config.check_checkpoint(same, model)
    assert str(caught.value) == f"ckpt_path={same!r} is not a readable checkpoint: RuntimeError"  # no message: the exception's name


def test_the_printout_of_a_selected_net():
    from orchestration.studies import population_printout, recurrent_printout

    selection = {"lengths": [11, 12, 13], "sequences": "one block per length", "update": 2500, "selection_fraction_right": 2 / 3,
                 "acc": 1.0, "max_n_generalised": 57, "lengths_right": list(range(1, 58)) + [60], "tested_up_to": 100}
    last = recurrent_printout(recurrent_results(selection=selection)).splitlines()[-1]
    assert last == ("Selected on one string per n = 11..13: the net of update 2,500, 67% of them right; on the test: acc 1.0000, "
                    "every block length up to n = 57 right (58 of 100 lengths right)")
    odd = recurrent_printout(recurrent_results(selection=selection | {"lengths": [15, 11], "update": None, "selection_fraction_right": None}))
    assert odd.splitlines()[-1].startswith("Selected on one string per n in [15, 11]: no evaluation: the final net; on the test:")
    pop = population_printout(population_results(selected_max_n_generalised_counts={"20": 2, "57": 1}, selected_fraction_lengths_right_median=0.25))
    assert "max_n_generalised of the selected nets (value: seeds): 20: 2, 57: 1; block lengths right: median 25%" in pop.splitlines()
