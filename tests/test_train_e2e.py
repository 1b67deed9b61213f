"""``python train.py`` run exactly as a user runs it, on genuine KMNIST glyphs (the stand-in of
6,284 training images and the 10,000 test images), with every artefact read back."""

import io
import re

import numpy as np
import pytest
from PIL import Image

from conftest import error_line, load_results, quiet, run_train

pytestmark = pytest.mark.slow

RESULT_KEYS = {
    "experiment", "model", "params", "seed", "epochs", "test_loss", "test_acc", "test_correct", "test_total",
    "train_seconds", "train_samples_per_second", "confusion_matrix", "top_confusions",
}
PARAMS = {"kmnist_lin": 7_850, "kmnist_full": 75_535, "kmnist_conv": 206_922}
# One epoch on 6,284 images, seed 42. Measured: NetLin 57%, NetFull 51%, NetConv 35-42% over
# seeds 0-3. Chance is 10%.
MIN_ACC = {"kmnist_lin": 0.40, "kmnist_full": 0.40, "kmnist_conv": 0.25}


def read_tensorboard(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def decode_png(encoded: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(encoded)).convert("L"))


@pytest.mark.parametrize("experiment", ["kmnist_lin", "kmnist_full", "kmnist_conv"])
def test_one_epoch_end_to_end(experiment, kmnist_root, tmp_path):
    run = tmp_path / "run"
    proc = run_train(f"experiment={experiment}", f"data.root={kmnist_root}", "data.download=false", "trainer.max_epochs=1", *quiet(run))
    assert proc.returncode == 0, proc.stderr[-3000:]

    r = load_results(run)
    assert RESULT_KEYS <= r.keys()
    assert r["experiment"] == experiment and r["epochs"] == 1 and r["seed"] == 42
    assert r["params"] == PARAMS[experiment]
    assert r["test_total"] == 10_000 and r["train_size"] == 6_284
    assert r["test_acc"] >= MIN_ACC[experiment], r["test_acc"]
    assert r["test_loss"] < 2.0  # chance: ln 10 = 2.30
    cm = np.array(r["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 10_000 and np.trace(cm) == r["test_correct"]
    assert (cm.sum(axis=1) == 1_000).all()  # rows = true class: 1,000 test images per class
    top = r["top_confusions"]
    assert len(top) == 5 and all(cm[t["true"], t["pred"]] == t["count"] for t in top)
    assert top[0]["count"] == (cm - np.diag(np.diag(cm))).max() and top[0]["true_name"] in ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
    assert r["train_seconds"] > 0 and r["train_samples_per_second"] > 0
    # one update per batch of 64, though a step holds data.batches_per_step of them; every image counted once
    assert r["global_step"] == 99  # ceil(6,284 / 64)
    assert r["train_samples_per_second"] * r["train_seconds"] == pytest.approx(6_284, rel=0.02)  # train_seconds is rounded to ms

    # printed in the reference's format
    out = proc.stdout
    assert re.search(rf"Test set: Average loss: {r['test_loss']:.4f}, Accuracy: {r['test_correct']}/10000 \(\d+%\)", out)
    assert re.search(rf"^Total\s+{PARAMS[experiment]:,}$", out, re.M)
    assert "[[" in out  # the matrix

    # run folder
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert "seed: 42" in (run / "config.yaml").read_text() and "${" not in (run / "config.yaml").read_text()
    figures = {p.name for p in (run / "figures").iterdir()}
    assert "confusion_matrix.png" in figures
    top_pair = f"confused_1_{top[0]['true_name']}_as_{top[0]['pred_name']}.png"
    assert top_pair in figures

    # TensorBoard: the confusion matrix image (read back and decoded), scalars and HPARAMS
    tb = read_tensorboard(run / "tensorboard")
    tags = tb.Tags()
    assert {"confusion_matrix/test", "confusion_matrix/final_test", "confused/final_test_1"} <= set(tags["images"])
    image = decode_png(tb.Images("confusion_matrix/final_test")[-1].encoded_image_string)
    assert image.shape[0] > 300 and image.shape[1] > 300 and image.std() > 10  # a drawn matrix, not a blank
    assert {"loss/train", "loss/test", "acc/test", "hp/acc_test", "hp/loss_test"} <= set(tags["scalars"])
    assert abs(tb.Scalars("hp/acc_test")[-1].value - r["test_acc"]) < 1e-6
    assert "_hparams_/experiment" in tb.PluginTagToContent("hparams")


def test_resume_finishes_the_configured_epochs_like_an_uninterrupted_run(kmnist_root, tmp_path):
    common = ["experiment=kmnist_lin", f"data.root={kmnist_root}", "data.download=false"]
    straight, first, resumed = tmp_path / "straight", tmp_path / "first", tmp_path / "resumed"
    assert run_train(*common, "trainer.max_epochs=2", *quiet(straight)).returncode == 0
    assert run_train(*common, "trainer.max_epochs=1", *quiet(first)).returncode == 0
    proc = run_train(*common, "trainer.max_epochs=2", f"ckpt_path={first}/checkpoints/last.ckpt", *quiet(resumed))
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = load_results(straight), load_results(resumed)
    assert load_results(first)["epochs"] == 1 and b["epochs"] == 2
    assert b["resumed_from"].endswith("last.ckpt")
    # same seed, same per-epoch shuffles: the resumed run ends exactly where the straight one does
    assert b["confusion_matrix"] == a["confusion_matrix"]
    assert b["test_loss"] == pytest.approx(a["test_loss"], abs=1e-6)

    # a finished run folder is never overwritten
    again = run_train(*common, *quiet(straight))
    assert again.returncode == 1 and "already holds a finished run" in error_line(again)


def test_bad_checkpoints_are_one_line_errors(kmnist_root, tmp_path):
    common = [f"data.root={kmnist_root}", "data.download=false", "trainer.max_epochs=1"]
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"this is not a checkpoint")
    cases = [
        (tmp_path / "missing.ckpt", "no such file"),
        (junk, "not a readable checkpoint"),
    ]
    lin = tmp_path / "lin"
    assert run_train("experiment=kmnist_lin", *common, *quiet(lin)).returncode == 0
    cases.append((lin / "checkpoints" / "last.ckpt", "holds a different model"))  # NetLin into NetConv
    for i, (path, expected) in enumerate(cases):
        proc = run_train("experiment=kmnist_conv", *common, f"ckpt_path={path}", *quiet(tmp_path / f"r{i}"))
        assert proc.returncode == 1
        line = error_line(proc)
        assert expected in line and str(path) in line
        assert not (tmp_path / f"r{i}" / "results.json").exists()


def test_trainer_settings_lightning_refuses_are_one_line_errors(kmnist_root, tmp_path):
    # KMNIST makes several updates per step by manual optimisation, where Lightning refuses these
    for i, (setting, name) in enumerate([("+trainer.gradient_clip_val=1.0", "gradient_clip_val=1.0"), ("+trainer.accumulate_grad_batches=2", "accumulate_grad_batches=2")]):
        proc = run_train("experiment=kmnist_lin", f"data.root={kmnist_root}", "data.download=false", setting, *quiet(tmp_path / f"r{i}"))
        assert proc.returncode == 1
        assert name in error_line(proc) and "Traceback" not in proc.stderr
        assert not (tmp_path / f"r{i}" / "results.json").exists()


def test_offline_without_data_is_one_clear_error(tmp_path):
    run = tmp_path / "run"
    closed = "http://127.0.0.1:9"  # a closed local port: no download can succeed, online or not
    proc = run_train(
        f"data.root={tmp_path / 'data'}",
        "data.download=true",
        *quiet(run),
        env={"http_proxy": closed, "https_proxy": closed, "HTTP_PROXY": closed, "HTTPS_PROXY": closed},
    )
    assert proc.returncode == 1
    line = error_line(proc)
    assert str((tmp_path / "data" / "KMNIST" / "raw").resolve()) in line and "download failed" in line
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert name in line
    assert not (run / "results.json").exists() and not (run / "checkpoints").exists()
    assert "Traceback" not in proc.stderr


def test_truncated_data_file_is_one_clear_error(kmnist_root, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(kmnist_root, root)
    images = root / "KMNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:100_000])
    proc = run_train(f"data.root={root}", "data.download=false", *quiet(tmp_path / "run"))
    assert proc.returncode == 1
    line = error_line(proc)
    assert "truncated" in line and str(images) in line
    assert not (tmp_path / "run" / "results.json").exists()
