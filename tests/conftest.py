"""Shared fixtures: the repository, the real-glyph KMNIST stand-in, and running train.py as a user does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_KMNIST = Path(os.environ.get("KMNIST_SHARED_DIR", REPO.parent / "shared" / "data" / "kmnist"))


def _shared_or_skip() -> Path:
    """The genuine KMNIST files beside the repository (``../shared/data/kmnist``).

    A user's clone has no ``../shared``: the tests that need real glyphs skip there. CI sets
    ``KMNIST_REQUIRE_SHARED=1`` so that they fail instead of silently skipping.
    """
    if (SHARED_KMNIST / "t10k-images-idx3-ubyte.gz").is_file():
        return SHARED_KMNIST
    reason = f"genuine KMNIST files not found in {SHARED_KMNIST} (set KMNIST_SHARED_DIR); real-glyph tests need them"
    if os.environ.get("KMNIST_REQUIRE_SHARED") == "1":
        pytest.fail(reason + " and KMNIST_REQUIRE_SHARED=1")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kmnist_root(tmp_path_factory) -> Path:
    """Stand-in: the 6,284 genuine training images and the full genuine test split (10,000)."""
    from datamodules.kmnist_standin import build_standin

    return build_standin(tmp_path_factory.mktemp("kmnist"), _shared_or_skip())


@pytest.fixture(scope="session")
def kmnist_root_odd(tmp_path_factory) -> Path:
    """Stand-in with an odd test split (the first 1,001 genuine test images): two devices cannot
    split it evenly, so a sampler that pads would count an image twice."""
    from datamodules.kmnist_standin import build_standin

    return build_standin(tmp_path_factory.mktemp("kmnist_odd"), _shared_or_skip(), test_limit=1001)


def run_train(*overrides: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python train.py <overrides>`` from the repository root, exactly as a user types it."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "train.py", *overrides],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def quiet(run_dir: Path) -> list[str]:
    """Overrides that keep a test run's output short and inside ``run_dir``."""
    return [f"hydra.run.dir={run_dir}", "callbacks.progress_bar.refresh_rate=0"]


def load_results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line a failed run printed (asserting there is exactly one)."""
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, f"expected one error line, got:\nSTDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-3000:]}"
    return lines[0]
