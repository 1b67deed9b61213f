"""The views as a user sees them: a real TensorBoard server on the loopback address over the logs
of real runs (KMNIST, the LSTM, the grid), asked through its HTTP API for the projector's config
and tensors, the histograms, the PR curves and the custom-scalars layout."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.conftest import quiet, run_train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, kmnist_root):
    """Three short runs under one folder, and TensorBoard serving it; yields ``get(path)``."""
    from tensorboard import program

    root = tmp_path_factory.mktemp("views")
    runs = {
        "kmnist": ["experiment=kmnist_lin", "trainer.max_epochs=1", "data.source=files", f"data.root={kmnist_root}", "callbacks.histograms.every_updates=40"],
        "lstm": ["experiment=lstm_anb2nc3n", "trainer.max_steps=300", "trainer.val_check_interval=100", "callbacks.histograms.every_updates=100"],
        "grid": ["experiment=check_sig", "trainer.max_steps=2000"],
    }
    for name, overrides in runs.items():
        proc = run_train(*overrides, *quiet(root / name))
        assert proc.returncode == 0, proc.stderr[-3000:]
    tb = program.TensorBoard()
    tb.configure(argv=[None, "--logdir", str(root), "--host", "127.0.0.1", "--port", "0", "--load_fast", "false"])
    url = tb.launch().rstrip("/")

    def get(path: str, raw: bool = False):
        body = urllib.request.urlopen(url + path, timeout=60).read()
        return body if raw else json.loads(body)

    return get


def _plugins(get, *names, wait=30.0):
    """The plugins listing, once ``names`` are all active (the projector finds its runs in a thread)."""
    end = time.monotonic() + wait
    while True:
        listing = get("/data/plugins_listing")
        if all(listing[n]["enabled"] for n in names) or time.monotonic() > end:
            return listing
        time.sleep(0.5)


def test_the_projector_serves_each_studys_points_with_their_metadata(server):
    listing = _plugins(server, "projector")
    assert listing["projector"]["enabled"]
    runs = server("/data/plugin/projector/runs")
    assert set(runs) == {"kmnist/tensorboard", "lstm/tensorboard", "grid/tensorboard"}
    expected = {"kmnist/tensorboard": {"NetLin_features": (10_000, 10)}, "lstm/tensorboard": {"hidden_states": (None, 3), "cell_states": (None, 3)},
                "grid/tensorboard": {"hidden_units": (41 * 41 + 9, None)}}
    for run, tensors in expected.items():
        info = server(f"/data/plugin/projector/info?run={run}")
        embeddings = {e["tensorName"].split(":")[0]: e for e in info["embeddings"]}
        assert set(embeddings) == set(tensors), run
        for name, (points, dims) in tensors.items():
            e = embeddings[name]
            body = server(f"/data/plugin/projector/tensor?run={run}&name={e['tensorName']}", raw=True)  # float32, row after row
            n_values = len(body) // 4
            if points is not None:
                assert n_values % points == 0 and (dims is None or n_values == points * dims), (run, name, n_values)
            else:
                assert n_values % dims == 0 and n_values // dims >= 100, (run, name, n_values)
    sprite = {e["tensorName"].split(":")[0]: e.get("sprite") for e in server("/data/plugin/projector/info?run=kmnist/tensorboard")["embeddings"]}
    assert sprite["NetLin_features"]["singleImageDim"] == [28, 28]


def test_the_projectors_metadata_names_each_points_class_or_count(server):
    _plugins(server, "projector")
    for run, name, header in (("kmnist/tensorboard", "NetLin_features", "true\tpredicted\tcorrect\ttrue name\tpredicted name"),
                              ("lstm/tensorboard", "cell_states", "symbol\tphase\tposition\tcount\tn\tsequence"),
                              ("grid/tensorboard", "hidden_units", "x\ty\toutput\tclass\tpoint")):
        info = server(f"/data/plugin/projector/info?run={run}")
        tensor = next(e["tensorName"] for e in info["embeddings"] if e["tensorName"].startswith(name))
        body = server(f"/data/plugin/projector/metadata?run={run}&name={tensor}", raw=True).decode()
        assert body.splitlines()[0] == header, run


def test_histograms_of_weights_gradients_and_gates(server):
    tags = server("/data/plugin/histograms/tags")
    kmnist = set(tags["kmnist/tensorboard"])
    assert {"weights/fc.weight", "weights/fc.bias", "gradients/fc.weight", "gradients/fc.bias"} <= kmnist
    lstm = set(tags["lstm/tensorboard"])
    assert {"weights/weight_ih", "gradients/weight_hh", "gates/input", "gates/forget", "gates/output"} <= lstm
    assert {"weights/hidden_weight", "weights/output_bias"} <= set(tags["grid/tensorboard"])
    assert [e[1] for e in server("/data/plugin/histograms/histograms?run=lstm/tensorboard&tag=gates/forget")] == [0, 100, 200]


def test_pr_curves_of_every_kmnist_class_and_the_custom_scalars_layout(server):
    tags = server("/data/plugin/pr_curves/tags")["kmnist/tensorboard"]
    assert sorted(tags) == ["pr_curve/0_o", "pr_curve/1_ki", "pr_curve/2_su", "pr_curve/3_tsu", "pr_curve/4_na", "pr_curve/5_ha",
                            "pr_curve/6_ma", "pr_curve/7_ya", "pr_curve/8_re", "pr_curve/9_wo"]
    layout = server("/data/plugin/custom_scalars/layout")
    charts = {c["title"]: c["multiline"]["tag"] for cat in layout["category"] for c in cat["chart"]}
    assert charts["loss, training and test"] == ["loss/train", "loss/test"]
    assert charts["error and error_exact (validation)"] == ["error/val", "error_exact/val"]
