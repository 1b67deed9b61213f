"""The floors of the code: every import points down (base < analysis < datamodules |
lightning_modules | callbacks < orchestration < train.py, report.py, benchmarks, docs).

The contract lives in ``pyproject.toml`` (``[tool.importlinter]``) and is run here with
import-linter, the field's tool for it; a copy of the code with one import pointing up shows that
the check can fail."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGES = ("base", "analysis", "datamodules", "lightning_modules", "callbacks", "orchestration")
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache", "--no-logo", str(root / "pyproject.toml")], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(root), "PATH": str(LINT.parent)})


def test_every_import_points_down():
    proc = lint(REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_an_import_pointing_up_breaks_the_contract(tmp_path):
    for name in PACKAGES:
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("*.gz", "__pycache__"))
    shutil.copyfile(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    errors = tmp_path / "base" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom analysis.kmnist import top_confusions  # noqa: E402 - points up\n")
    proc = lint(tmp_path)
    assert proc.returncode == 1 and "0 kept, 1 broken" in proc.stdout
    assert "base.errors -> analysis.kmnist" in proc.stdout


def test_nothing_imports_the_entry_scripts():
    """train.py, report.py, benchmarks/ and docs/ are the roof: no package imports them."""
    roof = {"train", "report", "benchmarks", "docs"}
    for name in PACKAGES:
        for path in (REPO / name).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                assert not any(m.split(".")[0] in roof for m in modules), f"{path.relative_to(REPO)} imports {modules}"
