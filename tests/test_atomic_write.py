"""results.json is written atomically: a writer killed at any moment, or a reader at any moment,
sees the previous whole file or none, never part of one (``base.files.write_json``, through ``replaced_atomically``)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# a writer that rewrites a ~3 MB results dict in a loop, each version numbered and with a
# checksum of its own entries, so that a reader can tell a whole file from a torn one. With
# "die-mid-write" it writes one version, then kills itself halfway through writing the next: every
# file it opens for writing from then on takes half of the first write and the process is killed
# (SIGKILL, as `kill -9` would) before the rest, wherever write_json writes.
WRITER = """
import builtins, io, os, signal, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from base.files import write_json
path = Path(sys.argv[1])
entries = [{{"seed": i, "weights": [i * 0.001 + k for k in range(40)]}} for i in range(2000)]

def dying_open(*args, **kwargs):
    f = real_open(*args, **kwargs)
    mode = args[1] if len(args) > 1 else kwargs.get("mode", "r")
    if "w" in mode or "a" in mode or "x" in mode:
        def write(data):
            real_write(data[: len(data) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        real_write = f.write
        f.write = write
    return f

version = 0
print("ready", flush=True)
while True:
    version += 1
    write_json(path, {{"version": version, "per_seed": entries, "check": version * 7919}})
    if sys.argv[2:] == ["die-mid-write"]:
        real_open = io.open
        io.open = builtins.open = dying_open
"""


def whole(path: Path) -> bool:
    """True if ``path`` holds one complete version the writer wrote."""
    data = json.loads(path.read_text())  # a torn file raises here
    return data["check"] == data["version"] * 7919 and len(data["per_seed"]) == 2000


@pytest.mark.parametrize("first_version", [False, True], ids=["killed-while-rewriting", "killed-while-writing-the-first"])
def test_a_killed_writer_leaves_a_whole_results_file_or_none(tmp_path, first_version):
    path = tmp_path / "results.json"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=str(REPO)))
    seen_whole = 0
    for attempt in range(6):
        if path.exists() and first_version:
            path.unlink()
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        if not first_version:
            deadline = time.monotonic() + 10
            while not path.exists() and time.monotonic() < deadline:  # at least one whole version first
                time.sleep(0.005)
        # kill at varying points of a write (one version takes tens of milliseconds)
        time.sleep(0.013 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if first_version and not path.exists():
            continue  # killed before the first rename: no results.json, as promised
        assert whole(path), f"attempt {attempt}: a killed writer left a partial results.json"
        seen_whole += 1
    if not first_version:
        assert seen_whole == 6


def test_a_reader_never_sees_half_a_results_file(tmp_path):
    path = tmp_path / "results.json"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=str(REPO)))
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        versions = set()
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            assert whole(path), "a reader saw a partial results.json"
            versions.add(json.loads(path.read_text())["version"])
        assert len(versions) > 1, "the writer wrote only one version while the reader read: nothing was tested"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_writer_killed_halfway_through_a_write_leaves_the_previous_version(tmp_path):
    """Deterministic: the writer dies with half of version 2 written (a write in place would leave
    that half in results.json)."""
    path = tmp_path / "results.json"
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(repo=str(REPO)))
    proc = subprocess.run([sys.executable, str(script), str(path), "die-mid-write"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert whole(path), "a writer killed mid-write left a partial results.json"
    assert json.loads(path.read_text())["version"] == 1
    assert (tmp_path / "results.json.part").stat().st_size > 0  # the half-written version went elsewhere


def test_a_torn_file_is_told_from_a_whole_one(tmp_path):
    """The check itself can fail: half of a version is not a whole file."""
    path = tmp_path / "results.json"
    text = json.dumps({"version": 1, "per_seed": [{"seed": i} for i in range(2000)], "check": 7919})
    path.write_text(text[: len(text) // 2])
    with pytest.raises(json.JSONDecodeError):
        whole(path)


def test_write_json_writes_indented_json_and_a_final_newline(tmp_path):
    from base.files import write_json

    path = tmp_path / "results.json"
    path.write_text("an older version")
    write_json(path, {"seed": 3, "per_seed": [{"ok": True}]})
    assert path.read_text() == '{\n  "seed": 3,\n  "per_seed": [\n    {\n      "ok": true\n    }\n  ]\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    from base.files import replaced_atomically, write_json

    path = tmp_path / "results.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        write_json(path, {"not json": object()})
    with pytest.raises(RuntimeError):
        with replaced_atomically(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed by an error mid-write")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_a_process_that_is_not_the_writer_leaves_both_files_alone(tmp_path):
    from base.files import replaced_atomically

    path, part = tmp_path / "last.ckpt", tmp_path / "last.ckpt.part"
    path.write_text("old")
    part.write_text("rank 0 is writing this")
    with replaced_atomically(path, writer=False) as tmp:
        assert tmp == part
    with pytest.raises(RuntimeError):
        with replaced_atomically(path, writer=False):
            raise RuntimeError
    assert path.read_text() == "old" and part.read_text() == "rank 0 is writing this"
