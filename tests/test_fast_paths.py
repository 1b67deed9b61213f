"""The fast paths change the speed, not the numbers: same seed, same training losses to 5 decimals.

- KMNIST: the project's in-memory tensor slices through Lightning against the reference's
  per-sample torchvision ``ToTensor`` + ``Normalize`` pipeline in a plain loop (whose network
  stays in the default memory layout); also with ``model.channels_last``, ``data.on_device`` and
  ``model.compile``.
- SRN/LSTM/GRU: the training step through Lightning (the fused ``nn.LSTM`` kernel of one LSTM,
  the one-step cell over the seeds for SRNs, GRUs and populations) against the textbook cell
  formulas written step by step under autograd in a plain loop.
- The grid's NumPy path against autograd + ``torch.optim.Adam`` is in ``test_grid.py``.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning import Callback

import functools

from datamodules import GrammarDataModule, KMNISTDataModule
from datamodules.grammar import SequenceStream
from lightning_modules import KMNISTClassifier, NetConv, NetFull, NetLin, SequencePredictor
from oracles import reference_logits, unpack

STEPS = 40


class LossRecorder(Callback):
    def __init__(self, per_update: bool = False):
        self.losses: list = []
        self.per_update = per_update

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # a KMNIST step makes one update and returns its loss; a recurrent step one update of
        # every seed: (1, seeds)
        if self.per_update:
            self.losses.extend(outputs["loss"].tolist())
        else:
            self.losses.extend(outputs["loss"].flatten().tolist())


def lightning_losses(model, datamodule, steps: int, per_update: bool = False) -> list:
    recorder = LossRecorder(per_update)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=steps, max_epochs=1, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder],
    )
    trainer.fit(model, datamodule=datamodule)
    assert len(recorder.losses) == steps == trainer.global_step
    return recorder.losses


def reference_kmnist_losses(net, root, steps: int, lr: float, momentum: float) -> list[float]:
    """The reference's loop: torchvision dataset, per-sample transforms, unshuffled, batch 64."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    loader = DataLoader(datasets.KMNIST(str(root), train=True, download=False, transform=transform), batch_size=64, shuffle=False)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    losses = []
    for (x, y), _ in zip(loader, range(steps)):
        opt.zero_grad()
        loss = F.nll_loss(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize(
    "net, options",
    [("lin", {}), ("conv", {}), ("conv", {"channels_last": True}), ("full", {"on_device": True}), ("lin", {"compile": True})],
    ids=["lin", "conv", "conv-channels_last", "full-on_device", "lin-compile"],
)
def test_kmnist_losses_match_the_reference_pipeline(kmnist_root, net, options):
    torch.manual_seed(0)
    made = {"lin": NetLin, "full": lambda: NetFull(95), "conv": NetConv}[net]()
    model = KMNISTClassifier(net=made, channels_last=options.get("channels_last", False), compile=options.get("compile", False))
    reference_net = copy.deepcopy(model.net).to(memory_format=torch.contiguous_format)
    dm = KMNISTDataModule(root=str(kmnist_root), source="files", shuffle=False, on_device=options.get("on_device", False))
    ours = lightning_losses(model, dm, STEPS)
    theirs = reference_kmnist_losses(reference_net, kmnist_root, STEPS, lr=0.01, momentum=0.5)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert np.mean(ours[-10:]) < np.mean(ours[:10])  # it trained: not a comparison of two flat lines


@pytest.mark.parametrize("cell, language, seeds", [("srn", "anb2n", 1), ("lstm", "anb2nc3n", 1), ("lstm", "anb2nc3n", 2)],
                         ids=["srn", "lstm-fused", "lstm-batched"])
def test_recurrent_training_matches_the_reference_cell_formulas(cell, language, seeds):
    """The project's training step (one LSTM: torch's fused kernel; an SRN, or LSTMs in a
    population: the one-step cell over the seeds and autograd) through Lightning, against
    the reference's formulas step by step under autograd and torch's Adam in a plain loop, on the
    sequences of the plain generator: the same losses to 5 decimals."""
    dm = GrammarDataModule(language=language, batch_size=4, seed=5, seeds=seeds)
    model = SequencePredictor(seeds=seeds, cell=cell, hidden_units=3, num_symbols=dm.language.num_symbols, init=0.3,
                              optimizer=functools.partial(torch.optim.Adam, lr=0.01, fused=True), init_seed=5)
    flat = model.seed_weights[0].detach().clone()
    ours = [row[0] for row in lightning_losses(model, dm, STEPS, per_update=True)]

    p = torch.nn.Parameter(flat)
    opt = torch.optim.Adam([p], lr=0.01)
    stream = iter(SequenceStream(dm.language, dm.hparams.blocks, 4, 5))
    theirs = []
    for _ in range(STEPS):
        batch = next(stream)
        logits = reference_logits(cell, unpack(cell, p, dm.language.num_symbols, 3), batch["inputs"])["logits"]
        loss = F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        theirs.append(loss.item())
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert np.mean(ours[-10:]) < np.mean(ours[:10])


@pytest.mark.parametrize("seeds", [1, 2], ids=["single", "population"])
@pytest.mark.parametrize("optimizer", [functools.partial(torch.optim.SGD, lr=0.1, momentum=0.5), functools.partial(torch.optim.Adam, lr=0.01),
                                       functools.partial(torch.optim.RMSprop, lr=0.01)], ids=["sgd", "adam", "rmsprop"])
def test_a_gru_with_an_l1_penalty_trains_as_the_textbook_formulas_under_autograd(optimizer, seeds):
    """The GRU and the L1 penalty came with no derivative code: a few updates of the module (the
    first seed of a population) against the textbook GRU (tests/oracles.py) and ``l1 * sum |w|``
    under autograd with the same torch optimiser in a plain loop: the same weights after each."""
    steps, l1 = 6, 1e-3
    dm = GrammarDataModule(language="anb2nc3n", batch_size=4, seed=5, seeds=seeds)
    model = SequencePredictor(seeds=seeds, cell="gru", hidden_units=3, num_symbols=3, init=0.3, optimizer=optimizer, init_seed=5, l1=l1)
    p = torch.nn.Parameter(model.seed_weights[0].detach().clone())
    lightning_losses(model, dm, steps, per_update=True)

    opt = optimizer([p])
    stream = iter(SequenceStream(dm.language, dm.hparams.blocks, 4, 5))
    for _ in range(steps):
        batch = next(stream)
        logits = reference_logits("gru", unpack("gru", p, 3, 3), batch["inputs"])["logits"]
        loss = F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten(), ignore_index=-100) + l1 * p.abs().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.testing.assert_close(model.seed_weights[0].detach(), p.detach(), atol=2e-6, rtol=1e-5)
    assert (p.detach() - model.seed_weights[0].detach()).abs().max() < (p.detach() - model._initial(5)).abs().max() / 100  # it moved, and the same way
