"""Two CPU processes (DDP over gloo), launched from a Hydra run exactly as a user would:
the confusion matrix counts every test image once, and rank 0 alone writes the results."""

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import load_results, quiet, run_train

pytestmark = pytest.mark.slow


def test_ddp_two_cpu_processes_match_one_device_totals(kmnist_root_odd, tmp_path):
    common = ["experiment=kmnist_full", f"data.root={kmnist_root_odd}", "data.source=files", "trainer.max_epochs=1", "trainer.limit_train_batches=10"]
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    proc = run_train(*common, *quiet(single))
    assert proc.returncode == 0, proc.stderr[-3000:]
    probe = ["+callbacks.weights_per_rank._target_=probes.WeightsPerRank", f"+callbacks.weights_per_rank.out_dir={tmp_path / 'weights'}"]
    proc = run_train(*common, "trainer=ddp_sim", *probe, *quiet(ddp), env={"PYTHONPATH": str(Path(__file__).parent)})
    assert proc.returncode == 0, proc.stderr[-3000:]

    # Ten updates, each on the rank's own batch: the ranks saw different images and still end with
    # the same weights, so every update's gradients were averaged over both processes.
    ranks = [torch.load(tmp_path / "weights" / f"weights_rank{r}.pt") for r in (0, 1)]
    assert ranks[0]["updates"] == ranks[1]["updates"] == 10
    assert torch.equal(ranks[0]["initial"], ranks[1]["initial"])
    assert not torch.allclose(ranks[0]["final"], ranks[0]["initial"])
    assert torch.allclose(ranks[0]["final"], ranks[1]["final"], atol=1e-6)

    one, two = load_results(single), load_results(ddp)
    assert two["world_size"] == 2 and one["world_size"] == 1
    # 1,001 test images cannot be split evenly over 2 processes: a padding sampler would count 1,002
    assert one["test_total"] == two["test_total"] == 1001
    assert np.array(two["confusion_matrix"]).sum() == 1001
    assert np.array(two["confusion_matrix"]).sum(axis=1).tolist() == np.array(one["confusion_matrix"]).sum(axis=1).tolist()
    assert two["test_correct"] == np.trace(np.array(two["confusion_matrix"]))

    # the second process really ran, in the same run folder, and wrote no results of its own
    assert (ddp / "train_ddp_process_1.log").is_file()
    assert sorted(p.name for p in ddp.rglob("results.json")) == ["results.json"]
    assert (ddp / "checkpoints" / "last.ckpt").is_file()
    assert (ddp / "figures" / "confusion_matrix.png").is_file()
    assert proc.stdout.count("Test set: Average loss") == 2  # once per epoch and once at the end, by rank 0 only


def test_ddp_two_cpu_processes_for_the_sequence_model(tmp_path):
    """The recurrent study splits its seeds over the processes: one network trains on process 0,
    the other process waits (nothing to average), and the results are those of one process."""
    runs = {}
    for name, trainer in (("one", []), ("two", ["trainer=ddp_sim"])):
        run = tmp_path / name
        proc = run_train("experiment=lstm_anb2nc3n", *trainer, "trainer.max_steps=300", "trainer.val_check_interval=100", *quiet(run))
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = load_results(run)
    r = runs["two"]
    assert r["world_size"] == 2 and runs["one"]["world_size"] == 1
    assert (r["error"], r["acc"], r["lengths_right"]) == (runs["one"]["error"], runs["one"]["acc"], runs["one"]["lengths_right"])
    # every test and generalisation sequence evaluated once
    assert r["test_sequences"] == 100 and r["tested_up_to"] == 40
    assert (run / "train_ddp_process_1.log").is_file() and sorted(p.name for p in run.rglob("results.json")) == ["results.json"]
    assert (run / "figures" / "cell_trajectories.png").is_file()
    assert proc.stdout.count("Test: error") == 1  # the report is printed by rank 0 only
