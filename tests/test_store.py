"""The local store: it owns its bytes, a changed source is never trusted, GC never races a writer."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelhaul import artifacts, oci, transfer
from modelhaul.errors import RegistryError
from modelhaul.reference import parse
from modelhaul.store import LayoutTarget


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELHAUL_HOME", str(tmp_path / "home"))


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


def test_a_saved_blob_is_a_read_only_copy_not_the_users_inode(tmp_path):
    # was: the blob *was* the source's inode (a hardlink); the store must own its bytes (issue 10)
    (tmp_path / "m").mkdir()
    weights = tmp_path / "m" / "model.onnx"
    weights.write_bytes(os.urandom(1 << 20))
    artifacts.publish(tmp_path / "m", f"oci:{tmp_path}/l:v1")
    layout = LayoutTarget(tmp_path / "l")
    blob = layout.path_for(layout.get_manifest("v1").layers[0]["digest"])
    assert blob.stat().st_ino != weights.stat().st_ino
    assert blob.read_bytes() == weights.read_bytes()
    assert stat.S_IMODE(blob.stat().st_mode) == 0o444


def test_republishing_an_unchanged_model_does_not_rehash_it(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(os.urandom(8 << 20))
    first = artifacts.publish(tmp_path / "m", f"oci:{tmp_path}/l:v1")
    before = _rchar()
    again = artifacts.publish(tmp_path / "m", f"oci:{tmp_path}/l:v1")
    assert again["digest"] == first["digest"]
    assert _rchar() - before < 1 << 20  # a few stats and small files, not 8 MiB of weights


def test_a_source_rewritten_in_place_after_save_leaves_the_saved_version_intact(tmp_path, registry):
    # was: the rewrite destroyed the saved version (a hardlink); now the store has its own copy (issue 10)
    (tmp_path / "m").mkdir()
    weights = tmp_path / "m" / "model.onnx"
    weights.write_bytes(b"a" * 1000)
    saved = artifacts.publish(tmp_path / "m", f"oci:{tmp_path}/l:v1")
    with open(weights, "r+b") as f:  # in place: same inode, same size
        f.write(b"b" * 10)
    artifacts.fetch(saved["ref"], tmp_path / "out")
    assert (tmp_path / "out/model/model.onnx").read_bytes() == b"a" * 1000
    remote = artifacts.open_target(parse(registry.ref("store/inplace", "v1")), registry.options)
    assert transfer.copy(LayoutTarget(tmp_path / "l"), "v1", remote, "v1") == saved["digest"]
    artifacts.fetch(registry.ref("store/inplace", "v1"), tmp_path / "pulled", options=registry.options)
    assert (tmp_path / "pulled/model/model.onnx").read_bytes() == b"a" * 1000


def test_saved_pushed_and_exported_through_the_cli_nothing_shares_an_inode(tmp_path, registry):
    (tmp_path / "m").mkdir()
    weights = tmp_path / "m" / "model.onnx"
    weights.write_bytes(os.urandom(1 << 16))
    original = weights.read_bytes()
    ref = registry.ref("store/own", "v1")
    env = {**os.environ, "MODELHAUL_HOME": str(tmp_path / "home")}
    for args in (["save", str(tmp_path / "m"), ref], ["push", ref, "--plain-http"],
                 ["export", ref, str(tmp_path / "out")]):
        done = _cli(*args, env=env)
        assert done.returncode == 0, done.stderr
    with open(weights, "r+b") as f:
        f.write(b"source edit")
    exported = tmp_path / "out/model/model.onnx"
    with open(exported, "r+b") as f:  # the user's export is theirs to edit
        f.write(b"export edit")
    store_blobs = list((tmp_path / "home/store/blobs/sha256").iterdir())
    inodes = {p.stat().st_ino for p in store_blobs}
    assert weights.stat().st_ino not in inodes and exported.stat().st_ino not in inodes
    assert weights.read_bytes().startswith(b"source edit")  # the export edit did not reach the source
    assert _cli("export", ref, str(tmp_path / "again"), env=env).returncode == 0
    assert (tmp_path / "again/model/model.onnx").read_bytes() == original
    assert _cli("rm", ref, env=env).returncode == 0
    assert _cli("pull", ref, "--plain-http", env=env).returncode == 0
    assert _cli("export", ref, str(tmp_path / "pulled"), env=env).returncode == 0
    assert (tmp_path / "pulled/model/model.onnx").read_bytes() == original


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelhaul.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def _terminate_once_writing(args: list[str], env: dict[str, str], glob_root: Path, pattern: str
                            ) -> tuple[subprocess.Popen, str]:
    """Run ``modelhaul ARGS``, send SIGTERM once a file matching ``pattern`` passes 16 MiB; (process, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "modelhaul.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > (16 << 20) for p in glob_root.glob(pattern)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"nothing matching {pattern} was ever written"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc, err


def test_a_changed_file_is_never_pushed_under_its_old_digest(tmp_path, registry):
    (tmp_path / "m").mkdir()
    weights = tmp_path / "m" / "model.onnx"
    weights.write_bytes(b"a" * 1000)
    ref = registry.ref("store/edit", "v1")
    artifacts.publish(tmp_path / "m", ref, options=registry.options)
    weights.write_bytes(b"c" * 1000)  # same size, new content, new mtime
    res = artifacts.publish(tmp_path / "m", ref, options=registry.options)
    artifacts.fetch(res["ref"], tmp_path / "out", options=registry.options)
    assert (tmp_path / "out/model/model.onnx").read_bytes() == b"c" * 1000


def test_removing_a_tag_collects_unused_blobs(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(b"x" * 10)
    artifacts.publish(tmp_path / "m", f"oci:{tmp_path}/l:v1")
    artifacts.retag(f"oci:{tmp_path}/l:v1", "prod")
    artifacts.delete(f"oci:{tmp_path}/l:v1")
    assert artifacts.list_tags(f"oci:{tmp_path}/l:x") == ["prod"]
    artifacts.delete(f"oci:{tmp_path}/l:prod")
    assert [p for p in (tmp_path / "l/blobs/sha256").iterdir()] == []


def test_one_changed_file_of_ten_uploads_only_that_file(tmp_path, registry):
    (tmp_path / "m").mkdir()
    for i in range(10):
        (tmp_path / "m" / f"part-{i}.bin").write_bytes(os.urandom(4096))
    ref = registry.ref("store/ten", "v1")
    artifacts.publish(tmp_path / "m", ref, options=registry.options)
    (tmp_path / "m" / "part-3.bin").write_bytes(os.urandom(4096))
    blobs = registry.storage / "docker/registry/v2/blobs/sha256"
    before = {p.name for p in blobs.glob("*/*")}
    artifacts.publish(tmp_path / "m", registry.ref("store/ten", "v2"), options=registry.options)
    added = {p.name for p in blobs.glob("*/*")} - before
    assert len(added) == 3  # the changed file, the config blob, the manifest


def test_an_oci_layout_is_readable_by_other_users(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(b"onnx")
    old = os.umask(0o022)
    try:
        artifacts.publish(tmp_path / "m", f"oci:{tmp_path}/l:v1")
    finally:
        os.umask(old)
    layout = LayoutTarget(tmp_path / "l")
    manifest = layout.get_manifest("v1")
    for p in [tmp_path / "l/index.json", tmp_path / "l/oci-layout", layout.path_for(manifest.digest),
              layout.path_for(manifest.config["digest"])]:
        assert stat.S_IMODE(p.stat().st_mode) & 0o044 == 0o044, p  # was 0600 from mkstemp (issue 10)
    for d in [tmp_path / "l", tmp_path / "l/blobs", tmp_path / "l/blobs/sha256"]:
        assert stat.S_IMODE(d.stat().st_mode) & 0o055 == 0o055, d


def test_export_into_an_existing_empty_directory_keeps_that_directory(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(b"onnx")
    ref = artifacts.publish(tmp_path / "m", f"oci:{tmp_path}/l:v1")["ref"]
    dest = tmp_path / "out"
    dest.mkdir(mode=0o750)
    os.chmod(dest, 0o750)
    inode = dest.stat().st_ino
    artifacts.fetch(ref, dest)
    assert dest.stat().st_ino == inode and stat.S_IMODE(dest.stat().st_mode) == 0o750
    assert (dest / "model/model.onnx").read_bytes() == b"onnx"
    artifacts.fetch(ref, tmp_path / "new")  # a directory export creates is not mkdtemp's 0700
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o777 & ~_umask()
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_sigterm_during_an_ormb_save_leaves_no_temp_pack_behind(tmp_path):
    (tmp_path / "m").mkdir()
    with open(tmp_path / "m" / "model.onnx", "wb") as f:  # sparse: big to pack, cheap to make
        f.truncate(4 << 30)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, "MODELHAUL_HOME": str(tmp_path / "home"), "MODELHAUL_TMPDIR": str(scratch)}
    proc, err = _terminate_once_writing(["save", str(tmp_path / "m"), "localhost:5000/big/model:v1", "--format",
                                         "ormb"], env, scratch, "modelhaul-pack-*/*")
    assert proc.returncode == 143, err
    assert err.strip() == "error: terminated by SIGTERM"
    assert list(scratch.iterdir()) == []
    blobs = tmp_path / "home/store/blobs/sha256"
    assert not blobs.exists() or [p.name for p in blobs.iterdir() if p.name.startswith(".")] == []


_PAUSED_SAVE = """
import sys
from pathlib import Path
from modelhaul.bundle import pack
from modelhaul.store import user_store
from modelhaul.transfer import push_packed

def pause_after_first_blob(digest, size, state={"paused": False}):
    if not state["paused"]:
        state["paused"] = True
        print("first blob stored", flush=True)
        sys.stdin.readline()  # the test runs garbage collection now

with pack(Path(sys.argv[1])) as packed:
    print(push_packed(packed, user_store("localhost:5000/gc/new"), "v1", progress=pause_after_first_blob))
"""


def test_garbage_collection_waits_for_a_save_running_in_another_process(tmp_path):
    env = {**os.environ, "MODELHAUL_HOME": str(tmp_path / "home")}
    for name, size in (("old", 1000), ("new", 2000)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.onnx").write_bytes(os.urandom(size))
        (tmp_path / name / "weights.bin").write_bytes(os.urandom(size))
    assert _cli("save", str(tmp_path / "old"), "localhost:5000/gc/old:v1", env=env).returncode == 0
    writer = subprocess.Popen([sys.executable, "-c", _PAUSED_SAVE, str(tmp_path / "new")], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert writer.stdout.readline().strip() == "first blob stored", writer.stderr.read()
        gc = subprocess.Popen([sys.executable, "-m", "modelhaul.cli", "rm", "localhost:5000/gc/old:v1"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with contextlib.suppress(subprocess.TimeoutExpired):
            gc.wait(timeout=5)  # without a shared lock GC is done by now, the new blob collected
        out, err = writer.communicate("go\n", timeout=60)
        assert writer.returncode == 0, err
        assert gc.wait(timeout=60) == 0, gc.stderr.read()
    finally:
        writer.kill()
    done = _cli("export", "localhost:5000/gc/new:v1", str(tmp_path / "out"), env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out/model/weights.bin").read_bytes() == (tmp_path / "new/weights.bin").read_bytes()
    assert "localhost:5000/gc/old" not in _cli("list", env=env).stdout


def test_a_manifest_whose_blobs_are_missing_is_never_tagged(tmp_path):
    layout = LayoutTarget(tmp_path / "l")
    cfg = oci.Blob.from_bytes(oci.MODELPACK_CONFIG, b"{}")
    layout.put_blob(cfg)
    absent = oci.Blob.from_bytes("application/vnd.cncf.model.weight.v1.raw", b"never stored")
    manifest = oci.canonical_json({"schemaVersion": 2, "mediaType": oci.MANIFEST_V1, "config": cfg.descriptor(),
                                   "layers": [absent.descriptor()]})
    with pytest.raises(RegistryError, match="missing"):
        layout.put_manifest(manifest, oci.MANIFEST_V1, "v1")
    assert layout.list_tags() == []


def test_sigterm_during_an_export_leaves_no_partial_directory(tmp_path):
    (tmp_path / "m").mkdir()
    with open(tmp_path / "m" / "model.onnx", "wb") as f:
        f.truncate(3 << 30)
    env = {**os.environ, "MODELHAUL_HOME": str(tmp_path / "home")}
    ref = "localhost:5000/big/export:v1"
    assert _cli("save", str(tmp_path / "m"), ref, env=env).returncode == 0
    out = tmp_path / "exports" / "out"
    out.parent.mkdir()
    proc, err = _terminate_once_writing(["export", ref, str(out)], env, out.parent, ".out.partial-*/model/*")
    assert proc.returncode == 143, err
    assert list(out.parent.iterdir()) == []


def test_a_large_new_file_is_copied_into_the_store_while_it_is_hashed(tmp_path):
    """Files of 32 MiB and more go in through ``upload_file`` (hash and kernel copy at once)."""
    env = {**os.environ, "MODELHAUL_HOME": str(tmp_path / "home")}
    (tmp_path / "m").mkdir()
    weights = tmp_path / "m" / "model.bin"
    weights.write_bytes(os.urandom(40 << 20))
    done = _cli("save", str(tmp_path / "m"), "localhost:5000/big/m:v1", env=env)
    assert done.returncode == 0, done.stderr
    blobs = [p for p in (tmp_path / "home").rglob("blobs/sha256/*") if p.stat().st_size == 40 << 20]
    assert len(blobs) == 1 and oci.sha256_file(blobs[0]) == f"sha256:{blobs[0].name}"
    assert blobs[0].stat().st_ino != weights.stat().st_ino and stat.S_IMODE(blobs[0].stat().st_mode) == 0o444
    assert not [p for p in (tmp_path / "home").rglob("*.tmp")]  # the copy's temp file was renamed
    with open(weights, "r+b") as f:  # an in-place edit after the save does not reach the saved version
        f.write(b"edited")
    done = _cli("export", "localhost:5000/big/m:v1", str(tmp_path / "out"), env=env)
    assert done.returncode == 0, done.stderr
    assert oci.sha256_file(tmp_path / "out/model/model.bin") == f"sha256:{blobs[0].name}"
