"""The GPU path (one device, mixed precision). Skipped cleanly where there is no CUDA device."""

import pytest
import torch

from conftest import load_results, quiet, run_train

pytestmark = [pytest.mark.gpu, pytest.mark.slow, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


# 16-mixed: the GradScaler scales and unscales each of a step's 32 updates (manual optimisation)
@pytest.mark.parametrize(
    "precision, extra",
    [("32-true", []), ("bf16-mixed", []), ("16-mixed", []), ("32-true", ["data.on_device=true"])],
    ids=["32", "bf16", "16", "on_device"],
)
def test_kmnist_conv_on_gpu(precision, extra, kmnist_root, tmp_path):
    run = tmp_path / "run"
    proc = run_train("experiment=kmnist_conv", f"data.root={kmnist_root}", "data.source=files", "trainer=gpu", f"trainer.precision={precision}", "trainer.max_epochs=1", *extra, *quiet(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = load_results(run)
    assert r["device"].startswith("cuda") and r["precision"] == precision
    assert r["test_total"] == 10_000 and r["test_acc"] > 0.25
    assert r["global_step"] == 99  # one update per batch of 64: ceil(6,284 / 64), in steps of 32
