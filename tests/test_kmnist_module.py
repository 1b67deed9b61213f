"""The KMNIST LightningModule in process, against independent oracles: its updates (Lightning's
automatic optimisation, with and without gradient clipping and accumulation) against
``torch.optim.SGD`` in a plain loop over the same batches, its evaluation and test summary against
a direct count over the same images (seconds; the end-to-end runs are in test_train_e2e.py)."""

from __future__ import annotations

import copy
import functools

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from analysis.kmnist import top_confusions
from datamodules.kmnist import KMNISTDataModule
from lightning_modules.kmnist import KMNISTClassifier
from lightning_modules.kmnist_nets import NetConv, NetFull, NetLin

BATCH, STEPS, EVAL = 50, 6, 500


def _trainer(**kw):
    return pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0, **kw)


@pytest.fixture(scope="module")
def data():
    dm = KMNISTDataModule(source="bundled", batch_size=BATCH, eval_batch_size=EVAL, shuffle=False)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_the_defaults_are_the_references_settings():
    hp = KMNISTClassifier().hparams
    assert hp.net == {"_target_": "lightning_modules.kmnist_nets.NetConv", "num_classes": 10}
    assert (hp.optimizer, hp.scheduler, hp.channels_last, hp.compile) == ({"_target_": "torch.optim.SGD", "lr": 0.01, "momentum": 0.5}, None, False, False)
    assert KMNISTClassifier(net=NetFull(5, num_classes=7)).net.fc2.out_features == 7


def test_training_is_torch_sgds_update_after_update_and_the_evaluation_a_direct_count(data):
    torch.manual_seed(0)
    model = KMNISTClassifier(net=NetLin(), optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9, weight_decay=1e-3))
    oracle = copy.deepcopy(model.net)
    trainer = _trainer(limit_train_batches=STEPS, limit_val_batches=2)
    trainer.fit(model, datamodule=data)

    images, labels = data.train_set.tensors
    opt = torch.optim.SGD(oracle.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    losses = []
    for k in range(STEPS):  # the files' order, one update per batch
        x, y = images[k * BATCH : (k + 1) * BATCH], labels[k * BATCH : (k + 1) * BATCH]
        loss = F.nll_loss(oracle(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert trainer.global_step == STEPS
    for (name, mine), (_, want) in zip(model.net.named_parameters(), oracle.named_parameters()):
        torch.testing.assert_close(mine, want, rtol=1e-5, atol=1e-6, msg=name)
    assert trainer.callback_metrics["loss/train"].item() == pytest.approx(sum(losses) / len(losses), rel=1e-5)

    # the evaluation after the epoch: the first 2 x 500 test images under the trained weights
    tx, ty = data.test_set.tensors
    tx, ty = tx[: 2 * EVAL], ty[: 2 * EVAL]
    with torch.no_grad():
        logp = oracle(tx)
    pred = logp.argmax(1)
    ev = model.last_eval["val"]
    assert ev["loss"] == pytest.approx(F.nll_loss(logp, ty).item(), rel=1e-5)
    assert ev["acc"] == pytest.approx((pred == ty).float().mean().item(), abs=1e-6)
    want = torch.zeros(10, 10, dtype=torch.long)
    for t, p in zip(ty.tolist(), pred.tolist()):
        want[t, p] += 1
    assert torch.equal(ev["confusion"], want)
    assert trainer.callback_metrics["loss/test"].item() == pytest.approx(ev["loss"], rel=1e-6)
    assert trainer.callback_metrics["acc/test"].item() == pytest.approx(ev["acc"], abs=1e-6)

    trainer = _trainer(limit_test_batches=2)
    trainer.test(model, datamodule=data, verbose=False)
    summary = model.test_summary()
    assert summary["test_correct"] == int((pred == ty).sum()) and summary["test_total"] == 2 * EVAL
    assert summary["test_acc"] == summary["test_correct"] / summary["test_total"]
    assert summary["test_loss"] == pytest.approx(F.nll_loss(logp, ty).item(), rel=1e-5)
    assert summary["confusion_matrix"] == want.tolist()
    assert summary["top_confusions"] == top_confusions(want, 5, list(data.classes))
    assert len(summary["top_confusions"]) == 5 and {"true_name", "pred_name"} <= set(summary["top_confusions"][0])
    assert trainer.callback_metrics["hp/acc_test"].item() == pytest.approx(summary["test_acc"], abs=1e-6)


def test_channels_last_keeps_the_numbers_and_the_layout(data):
    torch.manual_seed(1)
    plain = KMNISTClassifier(net=NetConv())
    fast = KMNISTClassifier(net=NetConv(), channels_last=True)
    fast.net.load_state_dict(plain.net.state_dict())
    assert fast.net.conv2.weight.is_contiguous(memory_format=torch.channels_last) and not plain.net.conv2.weight.is_contiguous(memory_format=torch.channels_last)
    x = data.test_set.tensors[0][:20]
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("clip, accumulate", [(0.05, 1), (None, 3), (0.05, 2)])
def test_gradient_clipping_and_accumulation_are_lightnings_as_documented(data, clip, accumulate):
    """``trainer.gradient_clip_val`` clips the 2-norm of all gradients before each update
    (``torch.nn.utils.clip_grad_norm_``); ``trainer.accumulate_grad_batches=k`` sums the
    gradients of k batches' losses, each divided by k, into one update: the hand loop does both and
    gets the same weights, and ``global_step`` counts the updates."""
    torch.manual_seed(5)
    model = KMNISTClassifier(net=NetLin())
    oracle = copy.deepcopy(model.net)
    trainer = _trainer(limit_train_batches=6, limit_val_batches=0, gradient_clip_val=clip, accumulate_grad_batches=accumulate)
    trainer.fit(model, datamodule=data)
    images, labels = data.train_set.tensors
    opt = torch.optim.SGD(oracle.parameters(), lr=0.01, momentum=0.5)
    norms = []
    for k in range(6):
        loss = F.nll_loss(oracle(images[k * BATCH : (k + 1) * BATCH]), labels[k * BATCH : (k + 1) * BATCH]) / accumulate
        loss.backward()
        if (k + 1) % accumulate == 0:
            if clip is not None:
                norms.append(float(torch.nn.utils.clip_grad_norm_(oracle.parameters(), clip)))
            opt.step()
            opt.zero_grad()
    assert trainer.global_step == 6 // accumulate
    assert clip is None or min(norms) > clip  # the clipping bit on every update
    for (name, mine), (_, want) in zip(model.net.named_parameters(), oracle.named_parameters()):
        torch.testing.assert_close(mine, want, rtol=1e-5, atol=1e-6, msg=name)


def test_training_stops_at_max_steps_and_counts_what_it_did(data):
    """max_steps = 4: four updates; the epoch's loss is the mean of those 4 updates' losses and
    the timer counts their 200 images."""
    from callbacks.timer import TrainTimer

    torch.manual_seed(2)
    model = KMNISTClassifier(net=NetLin())
    oracle = copy.deepcopy(model.net)
    timer = TrainTimer()
    trainer = _trainer(max_steps=4, limit_val_batches=0, callbacks=[timer])
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 4 and timer.samples == 4 * BATCH
    images, labels = data.train_set.tensors
    opt = torch.optim.SGD(oracle.parameters(), lr=0.01, momentum=0.5)
    losses = []
    for k in range(4):
        loss = F.nll_loss(oracle(images[k * BATCH : (k + 1) * BATCH]), labels[k * BATCH : (k + 1) * BATCH])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert trainer.callback_metrics["loss/train"].item() == pytest.approx(sum(losses) / 4, rel=1e-5)
    for (name, mine), (_, want) in zip(model.net.named_parameters(), oracle.named_parameters()):
        torch.testing.assert_close(mine, want, rtol=1e-5, atol=1e-6, msg=name)


def test_the_lr_scheduler_steps_once_an_epoch(data):
    """``model.scheduler`` (StepLR, step_size 1, gamma 0.5): the learning rate halves after each epoch."""
    model = KMNISTClassifier(net=NetLin(), scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5))
    trainer = pl.Trainer(accelerator="cpu", max_epochs=3, limit_train_batches=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=data)
    assert trainer.global_step == 6 and trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.01 * 0.5**3)


def test_the_epochs_training_loss_weights_each_update_by_its_batch(data):
    """A whole epoch in batches of 1,000: six full batches and one of 284 images. The logged
    loss/train is the mean over images (each update's loss weighted by its batch size), not the
    mean of the seven updates."""
    torch.manual_seed(3)
    model = KMNISTClassifier(net=NetLin())
    oracle = copy.deepcopy(model.net)
    dm = KMNISTDataModule(source="bundled", batch_size=1000, shuffle=False)
    trainer = _trainer(limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    images, labels = dm.train_set.tensors
    opt = torch.optim.SGD(oracle.parameters(), lr=0.01, momentum=0.5)
    total, n = 0.0, 0
    for start in range(0, len(images), 1000):
        x, y = images[start : start + 1000], labels[start : start + 1000]
        loss = F.nll_loss(oracle(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total, n = total + loss.item() * len(y), n + len(y)
    assert trainer.global_step == 7 and n == 6284
    assert trainer.callback_metrics["loss/train"].item() == pytest.approx(total / n, rel=1e-5)


def test_a_diverging_kmnist_run_is_stopped_by_the_divergence_check(data):
    """The training step's outputs carry its losses to the divergence check: SGD with lr 1e6
    makes the loss infinite or NaN within a few updates, and the check ends the run."""
    from base.errors import UserError
    from callbacks.divergence import DivergenceCheck

    torch.manual_seed(4)
    model = KMNISTClassifier(net=NetFull(20), optimizer=functools.partial(torch.optim.SGD, lr=1e6))
    trainer = _trainer(limit_train_batches=20, limit_val_batches=0, callbacks=[DivergenceCheck(rise=10)])
    with pytest.raises(UserError, match="diverged|NaN|infinite"):
        trainer.fit(model, datamodule=data)
