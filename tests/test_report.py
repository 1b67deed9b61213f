"""report.py on runs made by train.py in this test: every number in REPORT.md comes from the
runs, figures sit beside it, and experiments without a run are listed as missing."""

import json
import subprocess
import sys

import pytest

from conftest import REPO, run_train
from orchestration.report import kmnist_paragraph

pytestmark = pytest.mark.slow


def _latest(outputs, experiment):
    return json.loads(sorted((outputs / experiment).glob("*/results.json"))[-1].read_text())


def test_report_from_runs(kmnist_root, tmp_path):
    outputs = tmp_path / "outputs"
    common = [f"paths.log_dir={outputs}", "callbacks.progress_bar.refresh_rate=0"]
    for args in (
        ["experiment=kmnist_lin", f"data.root={kmnist_root}", "data.source=files", "trainer.max_epochs=1"],
        ["experiment=kmnist_conv", "data.source=bundled", "trainer.max_epochs=1", "trainer.limit_train_batches=20"],
        ["experiment=check_step_manual"],
        ["experiment=check_sig_manual", "model.weight_scale=1"],
        ["experiment=lstm_anb2nc3n", "trainer.max_steps=500", "eval.max_n=8"],
    ):
        proc = run_train(*args, *common)
        assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = subprocess.run([sys.executable, "train.py", "-m", "experiment=check_sig", "seed=0,4", "trainer.max_steps=20000", *common],
                           cwd=REPO, capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stderr[-3000:]

    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "report.py", str(outputs), "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    md = (out / "REPORT.md").read_text()

    lin, conv = _latest(outputs, "kmnist_lin"), _latest(outputs, "kmnist_conv")
    assert f"| kmnist_lin | NetLin | 7,850 | {100 * lin['test_acc']:.2f}% ({lin['test_correct']:,}/10,000) | {lin['test_loss']:.4f}" in md
    assert "| kmnist_conv | NetConv | 206,922 |" in md
    # the data each network trained on, in the table and in the note under it
    assert " | 1 | KMNIST files with 6,284 training images (not the full 60,000) | " in md.split("| kmnist_lin |")[1].splitlines()[0]
    assert " | 1 | bundled sample, 6,284 training images | " in md.split("| kmnist_conv |")[1].splitlines()[0]
    assert "kmnist_conv (bundled sample, 6,284 training images) trained on fewer than the 60,000 training images" in md
    assert kmnist_paragraph([lin, conv]) in md
    top = conv["top_confusions"][0]
    assert f"| {top['true']} {top['true_name']} | {top['pred']} {top['pred_name']} | {top['count']} |" in md

    sig1 = _latest(outputs, "check_sig_manual")
    assert "### check_sig_manual: 4 sigmoid hidden units" in md and f"Accuracy {sig1['test_correct']}/9" in md
    section = md.split("### check_sig_manual")[1].split("\n### ")[0]
    assert section.count("| **no** |") == 9 - sig1["test_correct"] == 4
    assert "- h0: y = -1.00 x + 0.50 (on above)" in md
    assert "seed sweep" in md and "1 of 2 runs succeeded (50%" in md  # seed 4 sticks, seed 0 does not

    lstm = _latest(outputs, "lstm_anb2nc3n")
    assert f"| lstm_anb2nc3n | LSTM | 96 | {lstm['error']:.4f} | {lstm['error_exact']:.4f} | {lstm['acc']:.4f} |" in md
    assert "Mean gate values by phase" in md and "| reset |" in md and "Block length n = 4:" in md
    assert f"tested up to {lstm['tested_up_to']}" in md

    # missing experiments are listed, never filled in
    missing = md.split("## Missing experiments")[1]
    for e in ("kmnist_full", "srn_anb2n", "srn_anb2n_reference", "lstm_anb2nc3n_reference"):
        assert f"- {e}: `python train.py experiment={e}`" in missing
    for e in ("kmnist_lin", "check_step_manual", "lstm_anb2nc3n"):
        assert f"- {e}:" not in missing
    assert "| kmnist_full |" not in md

    # every figure the report shows is beside it
    images = [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]
    assert len(images) >= 15
    assert all((out / img).is_file() and (out / img).stat().st_size > 5000 for img in images)
    assert (out / "figures" / "check_step_manual" / "hid_4_0.png").is_file()
    assert (out / "figures" / "lstm_anb2nc3n" / "cell_trajectories.png").is_file()


def test_report_refuses_a_missing_folder(tmp_path):
    proc = subprocess.run([sys.executable, "report.py", str(tmp_path / "nope")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1 and "is not a folder of runs" in proc.stderr
