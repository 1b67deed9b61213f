"""KMNISTClassifier: one LightningModule for NetLin, NetFull and NetConv."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from analysis.kmnist import top_confusions
from base.errors import check
from lightning_modules.kmnist_nets import Classifier, NetConv, NetFull, NetLin
from lightning_modules.optimizers import module_of, optimizer_factory, scheduler_factory

# the reference's net and optimiser, when a module is built with none (model=net_conv's defaults)
REFERENCE_NET = {"_target_": "lightning_modules.kmnist_nets.NetConv", "num_classes": 10}
REFERENCE_SGD = {"_target_": "torch.optim.SGD", "lr": 0.01, "momentum": 0.5}

# Where each stage's metrics are logged. The per-epoch evaluation ('val') runs on the test split,
# as the reference does after every epoch, so its curves are named */test. The final
# `trainer.test` pass goes under hp/ so that TensorBoard's HPARAMS tab can compare runs by it.
LOG_NAMES = {"val": {"loss": "loss/test", "acc": "acc/test"}, "test": {"loss": "hp/loss_test", "acc": "hp/acc_test"}}


class KMNISTClassifier(pl.LightningModule):
    """Model, NLL loss, optimiser and metrics of the KMNIST study, trained by Lightning's
    automatic optimisation: one batch, one update; ``trainer.gradient_clip_val``,
    ``trainer.accumulate_grad_batches`` and ``trainer.max_steps`` mean what Lightning documents.

    As in the lightning-hydra-template, the net and the optimiser are injected (``model.net``,
    ``model.optimizer``; ``model.scheduler`` optionally): the module holds them, it does not
    choose them. Each is accepted built (Hydra's or a Python user's objects) or as its
    description (a ``_target_`` mapping, what the checkpoint's hyperparameters keep, see
    ``lightning_modules.optimizers``), so ``load_from_checkpoint`` builds the same net.

    Args:
        net: a ``Classifier`` (``NetLin``, ``NetFull``, ``NetConv``) or its config.
        optimizer: a ``_partial_`` torch optimiser (reference: SGD lr 0.01, momentum 0.5).
        scheduler: a ``_partial_`` LR scheduler stepped once an epoch (``ReduceLROnPlateau``
            watches ``loss/test``, the per-epoch evaluation's loss); null: none.
        channels_last: keep NetConv's weights and activations in channels-last memory layout
            (measured on a 2-core CPU: NetConv steps 1.4x-1.8x faster; the same losses to 5 decimals).
        compile: ``torch.compile`` the network in place (``nn.Module.compile``: parameter names
            and checkpoints stay the same as without it).

    After each evaluation epoch the module exposes ``last_eval[stage]`` (stage ``val`` or
    ``test``): ``{"loss": float, "acc": float, "confusion": LongTensor (C, C)}`` with rows = true
    class and columns = predicted, reduced over all devices. Callbacks draw from it.
    """

    study = "kmnist"  # results.json's family (orchestration.studies)
    # results.json's engine: what computes an update
    engine = "autograd and the injected torch optimiser, Lightning's automatic optimisation (one batch, one update)"

    def __init__(
        self,
        net: Any = None,
        optimizer: Any = None,
        scheduler: Any = None,
        channels_last: bool = False,
        compile: bool = False,
    ):
        super().__init__()
        check(isinstance(channels_last, bool), "channels_last", channels_last, "true or false")
        check(isinstance(compile, bool), "compile", compile, "true or false")
        net, net_description = module_of(REFERENCE_NET if net is None else net, "net", Classifier)
        self._make_optimizer, optimizer_description = optimizer_factory(REFERENCE_SGD if optimizer is None else optimizer)
        self._make_scheduler, scheduler_description = scheduler_factory(scheduler)
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        # plain descriptions: checkpoints load with weights_only=True and rebuild the same objects
        self.hparams.update(net=net_description, optimizer=optimizer_description, scheduler=scheduler_description)

        self.net: Classifier = net
        num_classes = net.num_classes
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

    def training_step(self, batch, batch_idx):
        """The NLL of one batch ``(images (N, 1, 28, 28), labels (N,))``; Lightning makes the update.

        Returns ``loss`` (for Lightning) and ``samples`` (for the throughput callback)."""
        x, y = batch
        loss = F.nll_loss(self(x), y)
        # the epoch mean weights each batch by its size
        self.train_loss["sum"].update(loss.detach() * y.shape[0])
        self.train_loss["images"].update(y.shape[0])
        return {"loss": loss, "samples": y.shape[0]}

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
        optimizer = self._make_optimizer(self.parameters())
        if self._make_scheduler is None:
            return optimizer
        scheduler = self._make_scheduler(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "monitor": LOG_NAMES["val"]["loss"]}}

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
