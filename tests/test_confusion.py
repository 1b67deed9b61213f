"""The module's confusion matrix, accuracy and loss against a case worked by hand, and the
ranking of the largest confusions."""

import math

import pytorch_lightning as pl
import torch
from torch import nn

from analysis.kmnist import reference_test_line, top_confusions
from datamodules.tensor_batches import TensorBatches, batch_loader
from lightning_modules import KMNISTClassifier, NetLin


class Scripted(nn.Module):
    """Returns the log-probabilities stored in the first 3 pixels of each 'image'."""

    def forward(self, x):
        return x[:, 0, 0, :3]


def _logp(p_rows):
    return torch.tensor(p_rows, dtype=torch.float32).log()


# 3 classes, 6 images. True labels and (made-up) predicted distributions:
TARGETS = torch.tensor([0, 0, 1, 1, 2, 2])
PROBS = [
    [0.7, 0.2, 0.1],  # true 0 -> 0
    [0.2, 0.5, 0.3],  # true 0 -> 1
    [0.1, 0.8, 0.1],  # true 1 -> 1
    [0.6, 0.3, 0.1],  # true 1 -> 0
    [0.1, 0.6, 0.3],  # true 2 -> 1
    [0.2, 0.2, 0.6],  # true 2 -> 2
]
# rows = true, columns = predicted
HAND_MATRIX = [[1, 1, 0], [1, 1, 0], [0, 1, 1]]
HAND_LOSS = -(math.log(0.7) + math.log(0.2) + math.log(0.8) + math.log(0.3) + math.log(0.3) + math.log(0.6)) / 6


def _images():
    x = torch.zeros(6, 1, 28, 28)
    x[:, 0, 0, :3] = _logp(PROBS)
    return x


def test_confusion_loss_and_accuracy_match_hand_computation():
    model = KMNISTClassifier(net=NetLin(num_classes=3))
    model.net = Scripted()
    loader = batch_loader(TensorBatches(_images(), TARGETS), batch_size=4)  # two batches: 4 + 2
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    for _ in range(2):  # a second pass must not accumulate onto the first
        trainer.test(model, dataloaders=loader, verbose=False)
        summary = model.test_summary()
        assert summary["confusion_matrix"] == HAND_MATRIX
        assert summary["test_correct"] == 3 and summary["test_total"] == 6
        assert summary["test_acc"] == 0.5
        assert math.isclose(summary["test_loss"], HAND_LOSS, rel_tol=1e-5)
        assert math.isclose(trainer.callback_metrics["hp/acc_test"].item(), 0.5, rel_tol=1e-6)


def test_top_confusions_orders_by_count_and_names_classes():
    cm = torch.tensor([[50, 3, 9], [9, 40, 0], [1, 12, 30]])
    top = top_confusions(cm, 3, ["o", "ki", "su"])
    assert [(t["true"], t["pred"], t["count"]) for t in top] == [(2, 1, 12), (0, 2, 9), (1, 0, 9)]
    assert top[0]["true_name"] == "su" and top[0]["pred_name"] == "ki"
    # never more cells than there are non-empty off-diagonal ones; the diagonal never counts
    assert top_confusions(torch.diag(torch.tensor([5, 6])), 5) == []
    assert len(top_confusions(cm, 10)) == 5


def test_reference_test_line_format():
    assert reference_test_line(0.52431, 8413, 10000) == "Test set: Average loss: 0.5243, Accuracy: 8413/10000 (84%)"


def test_confused_examples_figure_every_n_epochs_and_always_after_the_test():
    from types import SimpleNamespace

    from callbacks import ConfusedExamplesCallback

    shown = []
    for n in (2, 0):
        cb = ConfusedExamplesCallback(every_n_epochs=n)
        cb._show = lambda trainer, module, stage, n=n: shown.append((n, trainer.current_epoch, stage))
        for epoch in range(4):
            cb.on_validation_end(SimpleNamespace(current_epoch=epoch), None)
        cb.on_test_end(SimpleNamespace(current_epoch=3), None)
    assert shown == [(2, 1, "val"), (2, 3, "val"), (2, 3, "test"), (0, 3, "test")]
