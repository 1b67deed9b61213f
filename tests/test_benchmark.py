"""The speed benchmark runs end to end and writes every workload (tiny settings; no timing is
asserted: speed is reported by the benchmark itself, see README, Speed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO


def run_speed(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmarks/speed.py", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_benchmark_covers_every_workload(kmnist_root, tmp_path):
    out = tmp_path / "speed.json"
    proc = run_speed("--nets", "lin,conv", "--epochs", "2", "--repeats", "1", "--updates", "20", "--grid-updates", "3000",
                     "--grid-hand-updates", "100", "--population-seeds", "3", "--busy", "srn_anb2n", "--data-root", str(kmnist_root), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    names = [r["workload"] for r in result["rows"]]
    assert names == ["kmnist_lin", "kmnist_conv", "check_sig (H=5)", "srn_anb2n", "lstm_anb2nc3n", "srn_anb2n_reference",
                     "check_sig seeds=3", "srn_anb2n seeds=3", "lstm_anb2nc3n seeds=3"]
    for r in result["rows"]:
        assert r["project_s"] > 0 and r["hand_s"] > 0 and r["project_over_hand"] == r["project_s"] / r["hand_s"]
    kmnist = result["rows"][0]
    assert kmnist["updates_per_unit"] == -(-6284 // 64) and kmnist["reference_s"] > 0  # the bundled sample: 6,284 images
    assert result["kmnist_data"].startswith("6,284 training images (not the 60,000") and result["machine"]["cpus"] >= 1
    assert "| kmnist_conv | epoch (99 updates of 64) |" in proc.stdout
    # the busy machine: a single SRN and a population, with the study's threads and torch's default
    busy = result["busy"]
    others = [str(os.cpu_count())] if os.cpu_count() > 1 else []  # "1" is the study's own choice
    assert [(r["workload"], r["threads"].split()[0]) for r in busy] == [(w, t) for w in ("srn_anb2n seeds=1", "srn_anb2n seeds=3") for t in ("auto", *others)]
    assert all(r["alone_s"] > 0 and r["busy_over_alone"] == r["busy_s"] / r["alone_s"] for r in busy)
    assert busy[0]["threads"] == "auto (1)" and "beside one busy process" in proc.stdout


def test_benchmark_rejects_bad_arguments():
    proc = run_speed("--only", "kmnist,speech")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == "error: --only speech is invalid; allowed: kmnist, grid, recurrent, population, busy"
    proc = run_speed("--epochs", "1")
    assert proc.returncode == 2 and "--epochs 1 is invalid; allowed: 2 or more" in proc.stderr


def test_benchmark_without_data_uses_the_bundled_sample(tmp_path):
    proc = run_speed("--only", "kmnist", "--nets", "lin", "--epochs", "2", "--repeats", "1", "--data-root", str(tmp_path / "none"),
                     "--out", str(tmp_path / "speed.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "speed.json").read_text())
    assert result["kmnist_data"].startswith("6,284 training images (not the 60,000 of the full set)")
    assert result["rows"][0]["updates_per_unit"] == 99


def test_population_profile_counts_the_operations_of_an_update():
    proc = subprocess.run([sys.executable, "benchmarks/profile_population.py", "--seeds", "2", "--updates", "3", "--rows", "3"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    head = proc.stdout.splitlines()[0]
    assert head.startswith("lstm_anb2nc3n seeds=2, 3 updates, 1 thread(s): ")
    operations = int(head.split(" ATen operations an update")[0].rsplit(", ", 1)[1].replace(",", ""))
    assert operations > 1000  # about 100 an LSTM time step, forward and backward
    shares = [int(line.rsplit(": ", 1)[1].split("%")[0]) for line in proc.stdout.splitlines()[1:4]]
    assert len(shares) == 3 and 0 < sum(shares) <= 100


def test_the_engine_benchmark_rejects_bad_arguments_in_one_line():
    script = str(REPO / "benchmarks" / "engines.py")
    proc = subprocess.run([sys.executable, script, "--only", "srn_anb2n,speech"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: --only speech is invalid; allowed: kmnist_lin, ")
    proc = subprocess.run([sys.executable, script, "--only", "srn_anb2n", "--baseline", "no-such-revision"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: --baseline no-such-revision cannot be checked out: ")
