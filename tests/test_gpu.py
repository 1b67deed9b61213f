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


def test_the_divergence_check_keeps_its_state_on_the_gpu():
    """The first bad loss is found on the device (no host synchronisation per step): its state
    lives where the losses do, and the error still names the update."""
    from types import SimpleNamespace

    from base.errors import TrainingDiverged
    from callbacks.divergence import DivergenceCheck

    class Strategy:
        @staticmethod
        def reduce_boolean_decision(decision, all=True):
            return bool(decision)

    trainer, module = SimpleNamespace(global_step=3, strategy=Strategy()), SimpleNamespace(hparams={"lr": 0.1})
    check = DivergenceCheck(check_every=2)
    check.on_train_start(trainer, module)
    check.on_train_batch_end(trainer, module, {"loss": torch.tensor([1.0, float("nan"), 1.0], device="cuda")}, None, 0)
    assert check._bad.device.type == "cuda" and check._bad_update.device.type == "cuda" and check._bad_update.dtype == torch.long
    with pytest.raises(TrainingDiverged, match="at update 2 the training loss became nan"):
        check.on_train_batch_end(trainer, module, {"loss": torch.tensor([1.0, 1.0, 1.0], device="cuda")}, None, 1)
