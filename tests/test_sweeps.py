"""Hydra multiruns: the summary written when a sweep ends, failed runs, the joblib launcher,
DDP refused inside a sweep, and the SLURM and Optuna configs."""

import csv
import json
import subprocess
import sys

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import REPO, error_line
from orchestration.config import register_resolvers
from base.errors import ConfigError
from orchestration.launch import check_multirun_devices, joblib_parallelism, processes_per_job
from analysis.population import wilson
from orchestration.sweep import collect_sweep, summarise, write_summary


def fake_job(sweep, num, overrides, results=None, error=None):
    job = sweep / str(num)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if results is not None:
        (job / "results.json").write_text(json.dumps(results))
    if error is not None:
        (job / "error.txt").write_text(error + "\nTraceback ...")


def grid_result(seed, acc, first=None):
    return {"study": "grid", "seed": seed, "params": 21, "test_acc": acc, "test_loss": 0.1, "train_seconds": 1.5, "point_table": [], "updates": 20000, "first_perfect_update": first, "attempts": [{}]}


def test_summary_of_a_seed_sweep_with_a_failure(tmp_path):
    sweep = tmp_path / "sweep"
    fake_job(sweep, 0, ["experiment=check_sig", "seed=0"], grid_result(0, 1.0, 4772))
    fake_job(sweep, 1, ["experiment=check_sig", "seed=4"], grid_result(4, 8 / 9))
    fake_job(sweep, 2, ["experiment=check_sig", "seed=7"], grid_result(7, 1.0, 9000))
    fake_job(sweep, 3, ["experiment=check_sig", "seed=9"], error="ConfigError: something bad")
    fake_job(sweep, 10, ["experiment=check_sig", "seed=11"])  # interrupted: neither results nor error
    data = collect_sweep(sweep)
    assert data["swept"] == ["seed"] and [r["job"] for r in data["rows"]] == ["0", "1", "2", "3", "10"]
    summary = write_summary(sweep)
    assert summary["runs"] == 5 and summary["finished"] == 3 and summary["failed"] == 2
    assert summary["success"]["succeeded"] == 2 and summary["success"]["of"] == 3
    assert summary["test_acc"]["mean"] == pytest.approx((2 + 8 / 9) / 3)
    assert summary["updates_to_success"]["mean"] == pytest.approx((4772 + 9000) / 2)
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert [r["seed"] for r in rows] == ["0", "4", "7", "9", "11"]
    assert rows[3]["status"] == "failed" and rows[3]["failure"] == "ConfigError: something bad"
    assert "stopped before the end" in rows[4]["failure"]
    md = (sweep / "summary.md").read_text()
    assert "success rate: 2/3 = 67%" in md and "| 3 | 9 | failed |" in md
    assert (sweep / "summary.png").stat().st_size > 5000


def test_srn_error_metric_and_failure_are_separate_columns(tmp_path):
    """The SRN reports a metric called ``error``; a failure must not overwrite it in the CSV."""
    sweep = tmp_path / "sweep"
    fake_job(sweep, 0, ["experiment=srn_anb2n", "seed=0"], {"study": "recurrent", "params": 18, "acc": 1.0, "error": 0.0087, "solved": True, "train_seconds": 3.0})
    fake_job(sweep, 1, ["experiment=srn_anb2n", "seed=1"], error="RuntimeError: boom")
    write_summary(sweep)
    header = next(csv.reader(open(sweep / "summary.csv")))
    assert len(header) == len(set(header)) and "error" in header and "failure" in header
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert rows[0]["error"] == "0.0087" and rows[1]["failure"] == "RuntimeError: boom"


def test_wilson_interval():
    lo, hi = wilson(10, 10)
    assert hi == 1.0 and 0.69 < lo < 0.73  # 10/10 still leaves room below 100%
    lo, hi = wilson(0, 5)
    assert lo == 0.0 and hi < 0.5


def test_hidden_units_sweep_is_summarised_against_the_swept_value(tmp_path):
    sweep = tmp_path / "sweep"
    for i, h in enumerate([10, 160, 40]):
        fake_job(sweep, i, ["experiment=kmnist_full", f"model.hidden_units={h}"], {"study": "kmnist", "params": 795 * h + 10, "test_acc": 0.5 + h / 1000, "test_loss": 1.0, "train_seconds": 2.0})
    data = collect_sweep(sweep)
    assert data["swept"] == ["model.hidden_units"] and [r["swept"]["model.hidden_units"] for r in data["rows"]] == [10, 160, 40]
    summary = summarise(data)
    assert "success" not in summary and summary["main_metric"] == "test_acc"


def test_devices_and_parallelism():
    cfg = OmegaConf.create
    assert processes_per_job(cfg({"devices": 2, "num_nodes": 1})) == 2
    assert processes_per_job(cfg({"devices": "0,1,2", "num_nodes": 2})) == 6
    assert processes_per_job(cfg({"devices": 1, "num_nodes": 1})) == 1
    with pytest.raises(ConfigError, match="Lightning issue 11300"):
        check_multirun_devices(cfg({"devices": 2, "num_nodes": 1}), "hydra._internal.core_plugins.basic_launcher.BasicLauncher")
    check_multirun_devices(cfg({"devices": 4, "num_nodes": 2}), "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher")
    check_multirun_devices(cfg({"devices": 1, "num_nodes": 1}), "joblib")
    assert (joblib_parallelism(-1, 2), joblib_parallelism(-2, 16), joblib_parallelism(3, 8)) == (2, 15, 3)


@pytest.mark.parametrize(
    "overrides, launcher, sweeper",
    [
        (["hydra/launcher=joblib"], "JoblibLauncher", "BasicSweeper"),
        (["hydra/launcher=submitit_slurm"], "SlurmLauncher", "BasicSweeper"),
        (["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"], "SlurmLauncher", "BasicSweeper"),
        (["hparams_search=kmnist_full_optuna", "experiment=kmnist_full"], "BasicLauncher", "OptunaSweeper"),
    ],
)
def test_launcher_and_sweeper_configs_compose(overrides, launcher, sweeper):
    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(launcher) and cfg.hydra.sweeper._target_.endswith(sweeper)
    if "hydra/launcher=slurm" in overrides:  # one SLURM task per device, as Lightning expects
        assert (cfg.hydra.launcher.tasks_per_node, cfg.hydra.launcher.nodes, cfg.hydra.launcher.gpus_per_node) == (4, 2, 4)
        check_multirun_devices(cfg.trainer, cfg.hydra.launcher._target_)
    if sweeper == "OptunaSweeper":
        assert set(cfg.hydra.sweeper.params) == {"model.optimizer.lr", "model.net.hidden_units"}


# ---- end to end ---------------------------------------------------------------------------------


def multirun(*args, timeout=600):
    return subprocess.run([sys.executable, "train.py", "-m", *args, "callbacks.progress_bar.refresh_rate=0"], cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_sweep_goes_on_after_a_failed_run_and_summarises_it(kmnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = multirun("experiment=kmnist_full", "model.net.hidden_units=8,0,16", f"data.root={kmnist_root}", "data.source=files",
                    "trainer.max_epochs=1", "trainer.limit_train_batches=10", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1  # a run failed: the sweep says so, after the others and the summary
    assert "1 of 3 runs failed" in error_line(proc)
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert [(r["model.net.hidden_units"], r["status"]) for r in rows] == [("8", "ok"), ("0", "failed"), ("16", "ok")]
    assert "model.net.hidden_units=0 is invalid" in rows[1]["failure"]
    assert rows[2]["params"] == str(795 * 16 + 10) and float(rows[2]["test_acc"]) > 0.1
    assert (sweep / "2" / "results.json").is_file() and (sweep / "summary.png").is_file()


@pytest.mark.slow
def test_grid_seed_sweep_in_parallel_reports_the_success_rate(tmp_path):
    """Seed 4 never reaches 100% (measured); seed 0 does by update 4,772."""
    sweep = tmp_path / "sweep"
    proc = multirun("experiment=check_sig", "seed=0,4", "trainer.max_steps=20000", "hydra/launcher=joblib", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (sweep / "summary.md").read_text()
    assert "success rate: 1/2 = 50%" in md
    for job in ("0", "1"):  # each joblib job limited torch to its share of the cores
        log = (sweep / job / "train.log").read_text()
        assert "'torch_threads'" in log
    summary = json.loads((sweep / "summary.json").read_text())
    # Wilson at 1 of 2: centre 0.5, half-width 1.96 sqrt(0.125 + 0.2401) / 2.9208 = 0.4055
    assert summary["success"] == {"succeeded": 1, "of": 2, "rate": 0.5, "interval95": [0.095, 0.905]}


@pytest.mark.slow
def test_ddp_inside_a_sweep_is_refused_before_anything_runs(tmp_path):
    sweep = tmp_path / "sweep"
    proc = multirun("experiment=kmnist_lin", "trainer=ddp_sim", "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1
    line = error_line(proc)
    assert "Lightning issue 11300" in line and "hydra/launcher=submitit_slurm" in line
    assert not sweep.exists()


@pytest.mark.slow
def test_optuna_search_runs_and_is_summarised(kmnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = multirun("hparams_search=kmnist_full_optuna", "experiment=kmnist_full", "hydra.sweeper.n_trials=3", f"data.root={kmnist_root}",
                    "data.source=files", "trainer.max_epochs=1", "trainer.limit_train_batches=10", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert len(rows) == 3 and {"model.optimizer.lr", "model.net.hidden_units"} <= rows[0].keys()
    assert best["best_value"] == pytest.approx(max(float(r["test_acc"]) for r in rows), abs=1e-4)


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_sweep_through_submitit(tmp_path):
    """The SLURM path up to the scheduler: submitit pickles each job, submits it (here to its own
    local executor, not to SLURM), and collects the result; the summary sees every run."""
    sweep = tmp_path / "sweep"
    proc = multirun("hydra/launcher=submitit_local", "experiment=check_sig", "seed=0,1", "trainer.max_steps=3000", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(open(sweep / "summary.csv")))
    assert [r["seed"] for r in rows] == ["0", "1"] and all(r["status"] == "ok" for r in rows)
    assert list(sweep.glob(".submitit/*/*_submitted.pkl"))  # went through submitit's submission
    for job in ("0", "1"):
        r = json.loads((sweep / job / "results.json").read_text())
        assert r["experiment"] == "check_sig" and r["seed"] == int(job)


@pytest.mark.parametrize("override, extra", [
    ("hparams_search=kmnist_full_optuna", "optuna"), ("hydra/sweeper=optuna", "optuna"),
    ("hydra/launcher=slurm", "slurm"), ("hydra/launcher=submitit_local", "slurm"),
])
def test_a_feature_without_its_extra_is_one_line_naming_the_install(override, extra, monkeypatch):
    import importlib.util

    from orchestration.config import check_extras

    check_extras([override])  # installed here (.[dev] pulls every extra): no complaint
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("hydra_plugins.") else real(name, *a))
    with pytest.raises(ConfigError) as err:
        check_extras([override, "experiment=kmnist_full"])
    assert str(err.value) == f"{override} needs the optional extra '{extra}', which is not installed; install it with: pip install -e \".[{extra}]\""


def test_runs_of_several_studies_or_without_one_get_no_common_objective(tmp_path):
    sweep = tmp_path / "sweep"
    fake_job(sweep, 0, ["seed=0"], grid_result(0, 1.0, 100))
    fake_job(sweep, 1, ["seed=1"], {"study": "kmnist", "params": 7850, "test_acc": 0.6, "test_loss": 1.0, "train_seconds": 2.0})
    summary = summarise(collect_sweep(sweep))
    assert summary["main_metric"] is None and "success" not in summary and summary["finished"] == 2
    old = tmp_path / "old"  # a results.json written before runs named their study
    fake_job(old, 0, ["seed=0"], {k: v for k, v in grid_result(0, 1.0, 100).items() if k != "study"})
    summary = write_summary(old)
    assert summary["main_metric"] is None and "success" not in summary and (old / "summary.md").is_file()


# ---- the summary's files, word for word (in process) -----------------------------------------


def _seed_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    fake_job(sweep, 0, ["experiment=check_sig", "+seed=2"], grid_result(2, 1.0, 4772) | {"train_seconds": 1.5})
    fake_job(sweep, 1, ["experiment=check_sig", "seed=5"], grid_result(5, 0.8) | {"train_seconds": 2.5})
    fake_job(sweep, 2, ["experiment=check_sig", "seed=7"], error="ConfigError: model.lr=a|b is invalid")
    fake_job(sweep, 10, ["experiment=check_sig", "seed=9"])
    return sweep


def test_the_summary_files_of_a_seed_sweep(tmp_path, capsys):
    from orchestration.sweep import SweepSummary

    sweep = _seed_sweep(tmp_path)
    data = collect_sweep(sweep)
    assert [r["dir"] for r in data["rows"]] == [str(sweep / j) for j in ("0", "1", "2", "10")]
    assert [r["overrides"] for r in data["rows"]][:2] == [{"experiment": "check_sig", "seed": "2"}, {"experiment": "check_sig", "seed": "5"}]
    assert [r["status"] for r in data["rows"]] == ["ok", "ok", "failed", "failed"]
    summary = write_summary(sweep)
    assert summary == {
        "runs": 4, "finished": 2, "failed": 2, "main_metric": "test_acc",
        "test_acc": {"mean": pytest.approx(0.9), "std": pytest.approx(0.1414, abs=1e-4), "n": 2},
        "train_seconds": {"mean": 2.0, "std": pytest.approx(0.7071, abs=1e-4), "n": 2},
        "success": {"succeeded": 1, "of": 2, "rate": 0.5, "interval95": [0.095, 0.905]},
        "updates_to_success": {"mean": 4772.0, "std": 0.0, "n": 1},
    }
    header = "| job | seed | status | params | test_acc | test_loss | updates | first_perfect_update | attempts | train_seconds | failure |"
    assert (sweep / "summary.md").read_text() == "\n".join([
        f"# Sweep {sweep}", "", "2 of 4 runs finished; 2 failed.", "",
        "- test_acc: mean 0.9000, std 0.1414 over 2 runs",
        "- training time: mean 2.0 s, std 0.7 s",
        "- success rate: 1/2 = 50% (95% interval 10%-90%)",  # Wilson at 1 of 2: 0.095-0.905
        "- updates to first success: mean 4,772, std 0",
        "", header, "|" + " --- |" * 11,
        "| 0 | 2 | ok | 21 | 1 | 0.1 | 20000 | 4772 | 1 | 1.5 |  |",
        "| 1 | 5 | ok | 21 | 0.8 | 0.1 | 20000 |  | 1 | 2.5 |  |",
        "| 2 | 7 | failed |  |  |  |  |  |  |  | ConfigError: model.lr=a/b is invalid |",
        "| 10 | 9 | failed |  |  |  |  |  |  |  | no results.json (the run stopped before the end) |",
        "", "![main metric against the swept value](summary.png)",
    ]) + "\n"
    assert list(csv.reader(open(sweep / "summary.csv", newline=""))) == [
        header.strip("| ").split(" | "),
        ["0", "2", "ok", "21", "1", "0.1", "20000", "4772", "1", "1.5", ""],
        ["1", "5", "ok", "21", "0.8", "0.1", "20000", "", "1", "2.5", ""],
        ["2", "7", "failed", "", "", "", "", "", "", "", "ConfigError: model.lr=a|b is invalid"],
        ["10", "9", "failed", "", "", "", "", "", "", "", "no results.json (the run stopped before the end)"],
    ]
    assert "\r\n" in open(sweep / "summary.csv", newline="").read()  # the csv module's line ends, written as they are
    text = (sweep / "summary.json").read_text()
    assert json.loads(text) == summary and text.startswith('{\n  "runs": 4,\n') and text.endswith("}\n")
    with pytest.raises(SystemExit) as caught:
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    assert caught.value.code == 1
    out = capsys.readouterr()
    assert out.out == f"sweep summary: {sweep / 'summary.md'}\n"
    assert out.err == f"error: 2 of 4 runs failed; see {sweep / 'summary.md'}\n"
    ok = tmp_path / "ok"
    fake_job(ok, 0, ["seed=1"], grid_result(1, 1.0, 10))
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(ok)}}}))  # nothing failed: no exit
    assert capsys.readouterr().err == "" and (ok / "summary.md").is_file()


def test_a_sweep_with_no_finished_run_has_no_figure(tmp_path):
    sweep = tmp_path / "sweep"
    fake_job(sweep, 0, ["seed=1"], error="RuntimeError: boom")
    summary = write_summary(sweep)
    assert summary == {"runs": 1, "finished": 0, "failed": 1, "main_metric": None}
    assert not (sweep / "summary.png").exists() and "summary.png" not in (sweep / "summary.md").read_text()


def test_override_values_read_as_numbers_and_keys_without_their_prefix(tmp_path):
    from orchestration.sweep import _value

    assert [(_value(t), type(_value(t))) for t in ("10", "1e3", "2.0", "0.5", "abc", "-3")] == [
        (10, int), (1000, int), (2.0, float), (0.5, float), ("abc", str), (-3, int)]
    sweep = tmp_path / "sweep"
    fake_job(sweep, 0, ["+data.extra=k=v", "~trainer.logger", "seed=1"], grid_result(1, 1.0))
    fake_job(sweep, 1, ["+data.extra=k=v", "model.hidden_units=3"], grid_result(2, 1.0))
    fake_job(sweep, "x", ["seed=3"], grid_result(3, 1.0))  # not a number: after the numbered jobs
    fake_job(sweep, "a", ["seed=4"], grid_result(4, 1.0))
    data = collect_sweep(sweep)
    assert [r["job"] for r in data["rows"]] == ["0", "1", "a", "x"]
    assert data["rows"][0]["overrides"] == {"data.extra": "k=v", "trainer.logger": "", "seed": "1"}
    assert data["swept"] == ["data.extra", "model.hidden_units", "seed", "trainer.logger"]
    assert data["rows"][1]["swept"] == {"data.extra": "k=v", "model.hidden_units": 3, "seed": None, "trainer.logger": None}


def _population(hidden, rate, interval):
    return {"study": "recurrent", "population": 10, "params": 18, "success_rate": rate, "train_seconds": 30.0,
            "success": {"succeeded": int(10 * rate), "of": 10, "rate": rate, "interval95": interval}, "acc": 1.0}


def test_a_sweep_of_populations_is_judged_by_their_success_rates(tmp_path):
    from orchestration.sweep import summary_figure, table_rows

    sweep = tmp_path / "sweep"
    fake_job(sweep, 0, ["experiment=srn_anb2n", "model.hidden_units=2"], _population(2, 0.3, [0.108, 0.603]))
    fake_job(sweep, 1, ["experiment=srn_anb2n", "model.hidden_units=3"], error="RuntimeError: boom")
    data = collect_sweep(sweep)
    assert data["swept"] == ["model.hidden_units"]  # two values are a sweep
    summary = summarise(data)
    assert summary["main_metric"] == "success_rate" and summary["success_rate"] == {"mean": 0.3, "std": 0.0, "n": 1}
    assert "success" not in summary  # a mean of success rates is no success rate
    header, rows = table_rows(data)
    assert header[:7] == ["job", "model.hidden_units", "status", "params", "population", "success_rate", "success_interval95"]
    assert rows[0][:7] == ["0", "2", "ok", "18", "10", "0.3", "0.108-0.603"]
    fake_job(sweep, 2, ["experiment=srn_anb2n", "model.hidden_units=4"], _population(4, 0.9, [0.596, 0.982]))
    fig = summary_figure(collect_sweep(sweep), summarise(collect_sweep(sweep)))
    ax = fig.axes[0]
    (line,) = ax.get_lines()[:1]
    assert list(line.get_xdata()) == [2, 4] and list(line.get_ydata()) == [0.3, 0.9] and line.get_linestyle() == "-"
    bars = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    (segments,) = [lc.get_segments() for lc in bars[0].lines[2]]
    assert [(s[0][1], s[1][1]) for s in segments] == [pytest.approx((0.108, 0.603)), pytest.approx((0.596, 0.982))]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["95% interval (Wilson)"]
    assert ax.get_xscale() == "linear" and ax.get_ylabel() == "success_rate" and ax.get_xlabel() == "model.hidden_units"
    assert ax.get_title() == "2 of 3 runs finished"


def test_the_figure_of_a_seed_sweep_and_of_a_size_sweep(tmp_path):
    from orchestration.sweep import summary_figure

    sweep = _seed_sweep(tmp_path)
    fig = summary_figure(collect_sweep(sweep), summarise(collect_sweep(sweep)))
    ax = fig.axes[0]
    points, mean = ax.get_lines()
    assert list(points.get_xdata()) == [2, 5] and list(points.get_ydata()) == [1.0, 0.8]
    assert points.get_linestyle() == "None" and points.get_marker() == "o"  # seeds are not a scale: no line between them
    assert list(mean.get_ydata()) == [pytest.approx(0.9)] * 2 and mean.get_linestyle() == ":"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["mean 0.9"]
    assert ax.get_title() == "2 of 4 runs finished; 1/2 succeeded" and ax.title.get_fontsize() == 10
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_xscale()) == ("seed", "test_acc", "linear")
    assert ax.get_legend().get_texts()[0].get_fontsize() == 8
    assert tuple(fig.get_size_inches()) == (6, 4)
    sizes = tmp_path / "sizes"
    for i, h in enumerate([10, 160, 40]):
        fake_job(sizes, i, ["experiment=kmnist_full", f"model.hidden_units={h}", f"seed={i}"],
                 {"study": "kmnist", "params": 795 * h + 10, "test_acc": 0.5 + h / 1000, "test_loss": 1.0, "train_seconds": 2.0})
    ax = summary_figure(collect_sweep(sizes), summarise(collect_sweep(sizes))).axes[0]
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == [10, 40, 160] and line.get_linestyle() == "-"  # the size, not the seed, sorted
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "model.hidden_units"  # a range of 10x or more
    narrow = tmp_path / "narrow"
    for i, h in enumerate([10, 90]):
        fake_job(narrow, i, [f"model.hidden_units={h}"], {"study": "kmnist", "params": 1, "test_acc": 0.5, "test_loss": 1.0, "train_seconds": 2.0})
    assert summary_figure(collect_sweep(narrow), summarise(collect_sweep(narrow))).axes[0].get_xscale() == "linear"
    negative = tmp_path / "negative"
    for i, h in enumerate([-1, 100]):
        fake_job(negative, i, [f"model.lr={h}"], {"study": "kmnist", "params": 1, "test_acc": 0.5, "test_loss": 1.0, "train_seconds": 2.0})
    assert summary_figure(collect_sweep(negative), summarise(collect_sweep(negative))).axes[0].get_xscale() == "linear"


def test_the_figure_of_a_sweep_over_names(tmp_path):
    from orchestration.sweep import summary_figure

    sweep = tmp_path / "sweep"
    for i, name in enumerate(["kmnist_lin", "kmnist_full"]):
        fake_job(sweep, i, [f"experiment={name}"], {"study": "kmnist", "params": 1, "test_acc": 0.6 + i / 10, "test_loss": 1.0, "train_seconds": 2.0})
    ax = summary_figure(collect_sweep(sweep), summarise(collect_sweep(sweep))).axes[0]
    labels = ax.get_xticklabels()
    assert [t.get_text() for t in labels] == ["experiment=kmnist_lin", "experiment=kmnist_full"]
    assert (labels[0].get_rotation(), labels[0].get_fontsize(), labels[0].get_horizontalalignment()) == (45, 7, "right")
    assert list(ax.get_lines()[0].get_xdata()) == [0, 1] and list(ax.get_lines()[0].get_ydata()) == [0.6, 0.7]
    assert ax.get_xlabel() == ""


def _kmnist_job(sweep, i, overrides, acc=0.5):
    fake_job(sweep, i, overrides, {"study": "kmnist", "params": 1, "test_acc": acc, "test_loss": 1.0, "train_seconds": 2.0})


def _axes(sweep):
    from orchestration.sweep import summary_figure

    data = collect_sweep(sweep)
    return summary_figure(data, summarise(data)).axes[0]


def test_the_figures_axis_is_the_swept_setting_other_than_the_seed_and_its_scale(tmp_path):
    both = tmp_path / "both"  # "seed" sorts before "trainer.max_steps": the other key is still the axis
    for i, (seed, steps) in enumerate([(0, 100), (1, 100), (0, 50)]):
        _kmnist_job(both, i, [f"seed={seed}", f"trainer.max_steps={steps}"], acc=[0.9, 0.8, 0.7][i])
    ax = _axes(both)
    line = ax.get_lines()[0]
    assert ax.get_xlabel() == "trainer.max_steps"
    assert list(line.get_xdata()) == [50, 100, 100] and list(line.get_ydata()) == [0.7, 0.9, 0.8]  # sorted by x only: equal x keep the jobs' order
    seeds = tmp_path / "seeds"
    for i, seed in enumerate([1, 20]):
        _kmnist_job(seeds, i, [f"seed={seed}"])
    assert _axes(seeds).get_xscale() == "linear"  # seeds 1 and 20 are no scale
    for name, values, scale in [("ten", [1, 10], "log"), ("zero", [0, 100], "linear"), ("half", [0.5, 10], "log")]:
        sweep = tmp_path / name
        for i, v in enumerate(values):
            _kmnist_job(sweep, i, [f"model.lr={v}"])
        assert _axes(sweep).get_xscale() == scale, name


def test_the_figures_marks_colours_and_layout(tmp_path):
    from matplotlib.colors import to_hex
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    from orchestration.sweep import summary_figure

    names = tmp_path / "names"
    for i, (e, m) in enumerate([("kmnist_lin", "net_lin"), ("kmnist_full", "net_full")]):
        _kmnist_job(names, i, [f"experiment={e}", f"model={m}"], acc=0.6 + i / 10)
    ax = _axes(names)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["experiment=kmnist_lin, model=net_lin", "experiment=kmnist_full, model=net_full"]
    points, mean = ax.get_lines()
    assert points.get_marker() == "o" and points.get_linestyle() == "None"
    assert mean.get_color() == "grey"
    sweep = tmp_path / "pop"
    fake_job(sweep, 0, ["model.hidden_units=2"], _population(2, 0.3, [0.108, 0.603]))
    fake_job(sweep, 1, ["model.hidden_units=4"], _population(4, 0.9, [0.596, 0.982]))
    data = collect_sweep(sweep)
    fig = summary_figure(data, summarise(data))
    assert isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)
    (bars,) = [c for c in fig.axes[0].containers if type(c).__name__ == "ErrorbarContainer"]
    data_line, caps, (segments,) = bars.lines
    assert data_line is None  # fmt="none": the bars only, the line is drawn once
    assert caps[0].get_markersize() == 2 * 4  # capsize 4
    assert to_hex(segments.get_colors()[0]) == to_hex("tab:blue")
    write_summary(sweep)
    from PIL import Image

    assert Image.open(sweep / "summary.png").size == (600, 400)  # 6 x 4 inches at 100 dpi


def test_a_recurrent_sweeps_per_length_rows_list_every_seed_of_every_finished_job():
    from orchestration.sweep import generalisation_rows

    population = {"lengths_right": [1, 2], "tested_up_to": 5, "max_n_generalised": 2, "seed": 1,
                  "seeds": [{"seed": 1, "lengths_right": [1, 2], "max_n_generalised": 2}, {"seed": 2, "lengths_right": [1, 3], "max_n_generalised": 1}]}
    single = {"lengths_right": [1, 2, 3], "tested_up_to": 4, "max_n_generalised": 3, "seed": 9}
    sweep = {"rows": [{"results": population}, {"results": None}, {"results": single}, {"results": {"test_acc": 0.5}}]}
    assert generalisation_rows(sweep) == [
        {"label": "seed 1", "lengths_right": [1, 2], "tested_up_to": 5, "max_n_generalised": 2},
        {"label": "seed 2", "lengths_right": [1, 3], "tested_up_to": 5, "max_n_generalised": 1},
        {"label": "seed 9", "lengths_right": [1, 2, 3], "tested_up_to": 4, "max_n_generalised": 3},
    ]
    assert generalisation_rows(sweep, kept=True) == []  # no run selected
    population["seeds"][1]["selected"] = {"lengths_right": [1, 2, 3, 4], "max_n_generalised": 4}
    single["selection"] = {"lengths_right": [1], "max_n_generalised": 1}
    assert generalisation_rows(sweep, kept=True) == [  # the kept nets, for the seeds that have one
        {"label": "seed 2", "lengths_right": [1, 2, 3, 4], "tested_up_to": 5, "max_n_generalised": 4},
        {"label": "seed 9", "lengths_right": [1], "tested_up_to": 4, "max_n_generalised": 1},
    ]


def test_a_recurrent_sweep_draws_the_kept_nets_only_where_the_runs_selected(tmp_path):
    def result(seed, selected):
        one = {"seed": seed, "lengths_right": [1, 2], "max_n_generalised": 2}
        if selected:
            one["selected"] = {"lengths_right": [1, 2, 3], "max_n_generalised": 3}
        return {"study": "recurrent", "params": 18, "acc": 1.0, "solved": True, "train_seconds": 3.0, "seed": seed,
                "lengths_right": [1, 2], "tested_up_to": 4, "max_n_generalised": 2, "seeds": [one, {**one, "seed": seed + 1}]}

    for selected in (False, True):
        sweep = tmp_path / str(selected)
        fake_job(sweep, 0, ["experiment=srn_anb2n", "seed=0"], result(0, selected))
        write_summary(sweep)
        md = (sweep / "summary.md").read_text()
        assert (sweep / "generalisation.png").is_file() and "](generalisation.png)" in md
        assert (sweep / "generalisation_kept.png").is_file() is selected and ("](generalisation_kept.png)" in md) is selected
