"""docs/analysis.md runs as written: its Python blocks, on checkpoints of runs made here, give
the tables those runs wrote into results.json."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, load_results, run_train

pytestmark = pytest.mark.slow


def test_analysis_page_recomputes_the_runs_tables(tmp_path):
    outputs = tmp_path / "outputs"
    for args in (["experiment=check_sig", "trainer.max_steps=6000"],
                 ["experiment=lstm_anb2nc3n", "trainer.max_steps=500", "eval.max_n=6"]):
        proc = run_train(*args, f"paths.log_dir={outputs}", "callbacks.progress_bar.refresh_rate=0")
        assert proc.returncode == 0, proc.stderr[-3000:]
    page = (REPO / "docs" / "analysis.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert len(blocks) == 2

    def run_block(code: str) -> str:
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    grid = load_results(next((outputs / "check_sig").iterdir()))
    out = run_block(blocks[0]).splitlines()
    lines = [f"{d['unit']}: {d['equation']}  (on {d['on']})" for d in grid["dividing_lines"]]
    assert out[: len(lines)] == lines
    rows = out[len(lines):]
    assert len(rows) == 9 and [r.endswith("right") for r in rows] == [p["correct"] for p in grid["point_table"]]
    for row, point in zip(rows, grid["point_table"]):  # the same activations, rounded alike
        assert f"{point['hidden']} {point['output']}" in row

    lstm = load_results(next((outputs / "lstm_anb2nc3n").iterdir()))
    from analysis.recurrent import format_gate_table, format_probe

    text = run_block(blocks[1])
    assert format_gate_table(lstm["gate_table"]) in text
    assert format_probe(lstm["probe"]["phases"], lstm["probe"]["state"]) in text
