"""Shared fixtures: the repository, the bundled KMNIST sample in a folder, running train.py as a user does, and a
logger that keeps what it is given."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# pytest-xdist runs one test process per core: each, and every train.py it starts, gets its share
# of the cores (torch takes them all by default; measured on 2 cores, two 2-thread processes ran a
# small RNN 10x slower than one, two 1-thread processes both at full speed).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _WORKERS))
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

import pytorch_lightning as pl  # noqa: E402 - after the thread count is set: torch reads it when it starts


def _hparams_under_mutmut() -> None:
    """Lightning's ``save_hyperparameters()`` reads the constructor's arguments from its frame and
    only from a frame named ``__init__``; mutation testing (mutmut, docs/mutation.md) runs every
    constructor as a copy named ``x<Class>__init____mutmut_<n>`` (or ``_orig``), so a module's
    hparams came out empty. Frames of such copies are read as Lightning reads ``__init__`` (its
    private ``_get_init_args``: the one reach, for the mutation runner only; no other frame
    changes)."""
    from pytorch_lightning.utilities import parsing

    original = parsing._get_init_args
    if getattr(original, "_reads_mutmut_copies", False):
        return

    def get_init_args(frame):
        if "__init____mutmut" not in frame.f_code.co_name:
            return original(frame)
        local_vars = frame.f_locals
        if "__class__" not in local_vars:
            return None, {}
        cls = local_vars["__class__"]
        self_var, args_var, kwargs_var = parsing.parse_class_init_keys(cls)
        local_args = {k: local_vars[k] for k in inspect.signature(cls.__init__).parameters}
        if kwargs_var:
            local_args.update(local_args.get(kwargs_var, {}))
        skip = {n for n in (self_var, args_var, kwargs_var) if n} | {"__class__", "frame", "frame_args"}
        return local_vars.get(self_var), {k: v for k, v in local_args.items() if k not in skip}

    get_init_args._reads_mutmut_copies = True
    parsing._get_init_args = get_init_args


_hparams_under_mutmut()


@pytest.fixture(scope="session")
def kmnist_root(tmp_path_factory) -> Path:
    """The bundled genuine sample (6,284 training images, the full test split of 10,000) written
    in torchvision's raw layout, for runs with ``data.source=files data.root=<it>``."""
    from datamodules import kmnist_sample

    return kmnist_sample.unpack(tmp_path_factory.mktemp("kmnist"))


@pytest.fixture(scope="session")
def kmnist_root_odd(tmp_path_factory) -> Path:
    """The sample with an odd test split (the first 1,001 genuine test images): two devices cannot
    split it evenly, so a sampler that pads would count an image twice."""
    from datamodules import kmnist_sample

    return kmnist_sample.unpack(tmp_path_factory.mktemp("kmnist_odd"), test_limit=1001)


class Logged(pl.loggers.Logger):
    """A logger that keeps each call's metrics and step: what TensorBoard would be given."""

    name, version = "logged", 0

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[dict, int]] = []

    def log_metrics(self, metrics, step=None):
        self.calls.append((dict(metrics), step))

    def log_hyperparams(self, params, *args, **kwargs):
        pass


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


def start_train(*overrides: str, run_dir: Path) -> subprocess.Popen:
    """``python train.py <overrides>`` started in the background (to be killed midway), quiet, in
    ``run_dir``; stdout is dropped, stderr kept for the assertion messages."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "train.py", *overrides, *quiet(run_dir)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


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


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture
def kmnist_mirror(tmp_path):
    """An HTTP server on the loopback address serving the bundled sample under the official
    names (``train-images-idx3-ubyte.gz``...), as a KMNIST mirror would. Yields ``(url, folder,
    checksums)``: damage a file in ``folder`` to serve a corrupt one; ``checksums`` (name -> MD5
    of what is served) is what ``data.checksums`` must say for this mirror."""
    from datamodules import kmnist_sample

    folder = tmp_path / "mirror"
    folder.mkdir()
    checksums = {}
    for raw_name, (bundled, md5) in kmnist_sample.FILES.items():
        shutil.copyfile(kmnist_sample.path(raw_name), folder / f"{raw_name}.gz")
        checksums[f"{raw_name}.gz"] = md5
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", folder, checksums
    finally:
        server.shutdown()
        server.server_close()


def checksums_override(checksums: dict) -> str:
    """``data.checksums={name:md5,...}`` as a command-line override."""
    return "data.checksums={" + ",".join(f"{k}:{v}" for k, v in checksums.items()) + "}"


# every proxy variable pointing at a closed local port: no download can succeed, online or not
OFFLINE = {k: "http://127.0.0.1:9" for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
