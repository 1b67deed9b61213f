"""KMNISTClassifier: one LightningModule for NetLin, NetFull and NetConv."""

from __future__ import annotations

from typing import Optional

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from analysis.kmnist import top_confusions
from base.errors import check, check_choice, check_int, check_positive, check_range
from lightning_modules.kmnist_nets import NETS, NetConv, NetFull, NetLin

# Where each stage's metrics are logged. The per-epoch evaluation ('val') runs on the test split,
# as the reference does after every epoch, so its curves are named */test. The final
# `trainer.test` pass goes under hp/ so that TensorBoard's HPARAMS tab can compare runs by it.
LOG_NAMES = {"val": {"loss": "loss/test", "acc": "acc/test"}, "test": {"loss": "hp/loss_test", "acc": "hp/acc_test"}}


class KMNISTClassifier(pl.LightningModule):
    """Model, NLL loss, SGD and metrics of the KMNIST study.

    Built from plain arguments (not an ``nn.Module``) so that checkpoints stay small and
    ``load_from_checkpoint`` works.

    Args:
        net: ``lin``, ``full`` or ``conv``.
        hidden_units: H of NetFull (required for ``full``, must be null for the others).
        lr, momentum, weight_decay: SGD settings (reference: 0.01, 0.5, 0).
        num_classes: 10 for KMNIST.
        channels_last: keep NetConv's weights and activations in channels-last memory layout
            (measured on a 2-core CPU: NetConv steps 1.4x-1.8x faster; the same losses to 5 decimals).
        compile: ``torch.compile`` the network in place (``nn.Module.compile``: parameter names
            and checkpoints stay the same as without it).

    Training uses Lightning's manual optimisation so that one step can make several updates:
    a training batch is a list of ``(images (N, 1, 28, 28), labels (N,))`` batches (see
    ``KMNISTDataModule.batches_per_step``) and each gets its own SGD update through
    ``manual_backward`` and the Lightning optimiser, which keep DDP's gradient all-reduce and
    mixed precision's loss scaling on every update. Lightning's gradient clipping and
    accumulation do not apply to manual optimisation (Lightning refuses them by name).

    After each evaluation epoch the module exposes ``last_eval[stage]`` (stage ``val`` or
    ``test``): ``{"loss": float, "acc": float, "confusion": LongTensor (C, C)}`` with rows = true
    class and columns = predicted, reduced over all devices. Callbacks draw from it.
    """

    study = "kmnist"  # results.json's family (orchestration.studies)
    # results.json's engine: what computes an update
    engine = "autograd and torch.optim.SGD, one update a batch, data.batches_per_step batches a Lightning step (manual optimisation)"

    def __init__(
        self,
        net: str = "conv",
        hidden_units: Optional[int] = None,
        lr: float = 0.01,
        momentum: float = 0.5,
        weight_decay: float = 0.0,
        num_classes: int = 10,
        channels_last: bool = False,
        compile: bool = False,
    ):
        super().__init__()
        check_choice("net", net, tuple(NETS))
        if net == "full":
            check_int("hidden_units", hidden_units, 1)
        else:
            check(hidden_units is None, "hidden_units", hidden_units, f"null (net={net} has no hidden layer size)")
        check_positive("lr", lr)
        check_range("momentum", momentum, 0, 1)
        check_range("weight_decay", weight_decay, 0)
        check_int("num_classes", num_classes, 2)
        check(isinstance(channels_last, bool), "channels_last", channels_last, "true or false")
        check(isinstance(compile, bool), "compile", compile, "true or false")
        self.save_hyperparameters()
        self.automatic_optimization = False

        self.net: nn.Module = NetFull(hidden_units, num_classes) if net == "full" else NETS[net](num_classes)
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        if compile:
            self.net.compile()
        # nan_strategy="disable": the default NaN check costs a host sync on every training step.
        # The epoch's training loss is the sum of (batch loss x batch size) over the sum of sizes:
        # MeanMetric(nan_strategy="disable") replaces the weights it is given by ones (torchmetrics
        # 1.9), which weighted an epoch's short last batch like a full one.
        self.train_loss = nn.ModuleDict({"sum": SumMetric(nan_strategy="disable"), "images": SumMetric(nan_strategy="disable")})
        self.eval_metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict(
                    {
                        "loss": MeanMetric(nan_strategy="disable"),
                        "acc": MulticlassAccuracy(num_classes, average="micro"),
                        "confusion": MulticlassConfusionMatrix(num_classes),
                    }
                )
                for stage in ("val", "test")
            }
        )
        self.last_eval: dict[str, dict] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) images -> (N, C) log-probabilities."""
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def training_step(self, batches, batch_idx):
        """One SGD update per ``(x, y)`` in ``batches``; stops inside the group at ``max_steps``.

        Returns ``loss`` (one per update, detached) and ``samples``, for callbacks.
        """
        opt = self.optimizers()
        max_steps = self.trainer.max_steps
        losses, sizes = [], []
        for x, y in batches:
            loss = F.nll_loss(self(x), y)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
            losses.append(loss.detach())
            sizes.append(y.shape[0])
            if 0 <= max_steps <= self.global_step:
                break
        losses = torch.stack(losses)
        # one metric update per step, not per batch: the epoch mean weights each batch by its size
        sizes_t = torch.tensor(sizes, dtype=losses.dtype, device=losses.device)
        self.train_loss["sum"].update((losses * sizes_t).sum())
        self.train_loss["images"].update(sizes_t.sum())
        return {"loss": losses, "samples": sum(sizes)}

    def on_train_epoch_end(self):
        loss = self.train_loss["sum"].compute() / self.train_loss["images"].compute()  # each reduced by compute(), see below
        self.log("loss/train", loss, sync_dist=True)
        for m in self.train_loss.values():
            m.reset()

    def _eval_step(self, batch, stage: str):
        x, y = batch
        logp = self(x)
        preds = logp.argmax(dim=1)
        metrics = self.eval_metrics[stage]
        metrics["loss"].update(F.nll_loss(logp, y, reduction="none"))  # mean over images = summed NLL / N
        metrics["acc"].update(preds, y)
        metrics["confusion"].update(preds, y)

    def _eval_epoch_end(self, stage: str):
        # compute() reduces across devices; it runs on every rank (never inside a rank-zero-only hook).
        metrics = self.eval_metrics[stage]
        loss, acc, confusion = (metrics[k].compute() for k in ("loss", "acc", "confusion"))
        for m in metrics.values():
            m.reset()
        # The values are already reduced over devices (equal on every rank); sync_dist=True only
        # averages equal numbers, and tells Lightning they are global.
        self.log(LOG_NAMES[stage]["loss"], loss, sync_dist=True)
        self.log(LOG_NAMES[stage]["acc"], acc, sync_dist=True)
        self.last_eval[stage] = {"loss": float(loss), "acc": float(acc), "confusion": confusion.long().cpu()}

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self):
        self._eval_epoch_end("val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def on_test_epoch_end(self):
        self._eval_epoch_end("test")

    def configure_optimizers(self):
        hp = self.hparams
        return torch.optim.SGD(self.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)

    def named_weights(self) -> dict[str, torch.Tensor]:
        """The net's parameters by name (``fc1.weight``, ...)."""
        return {name: p.detach() for name, p in self.net.named_parameters()}

    def named_gradients(self) -> dict[str, torch.Tensor]:
        """Their gradients in the update being made (this process's; DDP averages them in the step)."""
        return {name: p.grad.detach() for name, p in self.net.named_parameters() if p.grad is not None}

    def named_activations(self) -> dict[str, torch.Tensor]:
        return {}

    def _classes(self) -> list[str] | None:
        """The data's class names, when the module is attached to a Trainer with KMNIST data."""
        try:
            datamodule = self.trainer.datamodule
        except RuntimeError:  # not attached to a Trainer
            return None
        return getattr(datamodule, "classes", None)

    def test_summary(self) -> dict:
        """Final test figures for results.json (call after ``trainer.test``)."""
        ev = self.last_eval["test"]
        cm = ev["confusion"]
        correct, total = int(cm.trace()), int(cm.sum())
        return {
            "test_loss": ev["loss"],
            "test_acc": correct / total,  # exact; the logged torchmetrics value is the same in float32
            "test_correct": correct,
            "test_total": total,
            "confusion_matrix": cm.tolist(),
            # the 5 largest off-diagonal cells, named by the data's classes
            "top_confusions": top_confusions(cm, 5, self._classes()),
        }


__all__ = ["KMNISTClassifier", "NetLin", "NetFull", "NetConv"]
