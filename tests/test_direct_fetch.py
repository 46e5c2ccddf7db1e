"""Export straight from a registry (issue 15): verified, each byte written once, the store untouched.

``fetch`` (CLI ``export REF DIR`` of a model not in the store, and every step that checks a model
out) downloads the blobs into the export's own temp directory beside ``DIR`` and renames raw
layers into place, instead of pulling into the store and copying out of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelhaul import artifacts, oci
from modelhaul.errors import DigestMismatch
from tests.fixtures.imports import threads_when_config_loads
from tests.fixtures.registry import Fault, faulty_proxy, unique_repo

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[1]


def model(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "model" / "copies").mkdir(parents=True)
    weights = os.urandom(3 * MiB)
    (src / "model" / "weights.bin").write_bytes(weights)
    (src / "model" / "copies" / "weights.bin").write_bytes(weights)  # same bytes, one blob, two files
    (src / "model" / "vocab.txt").write_text("a\nb\n")
    (src / "ormbfile.yaml").write_text("author: direct\nformat: ONNX\n")
    return src


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_from_a_registry_fills_the_destination_and_not_the_store(registry, tmp_path, home):
    src = model(tmp_path)
    ref = registry.ref(unique_repo("direct"), "v1")
    published = artifacts.publish(src, ref, options=registry.options)

    out = artifacts.fetch(ref, tmp_path / "out", options=registry.options)

    assert out["digest"] == published["digest"]
    got = files_under(tmp_path / "out" / "model")
    assert got == files_under(src / "model")  # both copies of the shared blob are there
    exported = tmp_path / "out" / "model" / "weights.bin"
    assert exported.stat().st_mode & 0o200  # the user's file: writable, not a read-only store blob
    assert not list(home.rglob("blobs/sha256/*"))  # nothing went through the store
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "out", "src"]  # no temp dir left behind


def test_export_starts_downloading_before_the_config_code_loads(registry, tmp_path, home):
    # was: the export command imported the config code (~0.12 s of pydantic) before asking for a blob
    ref = artifacts.publish(model(tmp_path), f"{registry.host}/{unique_repo()}:v1", options=registry.options)["ref"]
    threads = threads_when_config_loads("export", ref, str(tmp_path / "out"), "--plain-http")
    assert any(t.startswith("modelhaul-early") for t in threads), threads
    assert files_under(tmp_path / "out" / "model") == files_under(tmp_path / "src" / "model")


def test_export_follows_a_registry_that_redirects_its_blobs(registry, tmp_path, home):
    ref = artifacts.publish(model(tmp_path), f"{registry.host}/{unique_repo()}:v1", options=registry.options)["ref"]
    weights = oci.sha256_file(tmp_path / "src" / "model" / "weights.bin")
    with faulty_proxy(registry, Fault("GET", f"/blobs/{weights}", mode="redirect", count=10)) as proxy:
        artifacts.fetch(ref.replace(registry.host, proxy.host), tmp_path / "out", options=proxy.options)
        redirected = proxy.seen("GET", f"/blobs/{weights}")
    assert redirected and {r.status for r in redirected} == {307}  # the bytes came from where it was sent
    assert files_under(tmp_path / "out" / "model") == files_under(tmp_path / "src" / "model")


def test_export_uses_the_blobs_the_store_already_has(registry, tmp_path, home):
    from modelhaul.cli import main

    src = model(tmp_path)
    ref = registry.ref(unique_repo("direct"), "v1")
    artifacts.publish(src, ref, options=registry.options)
    with faulty_proxy(registry) as proxy:
        pref = ref.replace(registry.host, proxy.host)
        assert main(["pull", pref, "--plain-http", "--include", "*vocab.txt"]) == 0
        before = len(proxy.seen("GET", "/blobs/sha256:"))
        artifacts.fetch(pref, tmp_path / "out", options=proxy.options)
        fetched = [s.path.rsplit("/", 1)[-1] for s in proxy.seen("GET", "/blobs/sha256:")[before:]]
    assert fetched == [oci.sha256_file(src / "model" / "weights.bin")]  # vocab.txt came from the store
    assert files_under(tmp_path / "out" / "model") == files_under(src / "model")


@pytest.mark.parametrize("name", ["weights.bin", "notes.txt"])  # streamed to a partial file; read whole
def test_a_corrupt_blob_leaves_no_export_and_no_temp_files(registry, tmp_path, home, name):
    from tests.test_registry import blob_file

    src = model(tmp_path)
    (src / "model" / "notes.txt").write_text(os.urandom(16).hex())
    ref = registry.ref(unique_repo("direct"), "v1")
    artifacts.publish(src, ref, options=registry.options)
    digest = oci.sha256_file(src / "model" / name)  # random bytes: no other test shares this blob
    stored = blob_file(registry, digest)
    stored.write_bytes(bytes([stored.read_bytes()[0] ^ 1]) + stored.read_bytes()[1:])

    with pytest.raises(DigestMismatch, match=digest):
        artifacts.fetch(ref, tmp_path / "out", options=registry.options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "src"]


def one_file_model(registry, tmp_path: Path, size: int) -> str:
    """A model of one random file of ``size`` bytes, published; its reference."""
    (tmp_path / "src" / "model").mkdir(parents=True)
    (tmp_path / "src" / "model" / "model.bin").write_bytes(os.urandom(size))
    (tmp_path / "src" / "ormbfile.yaml").write_text("format: ONNX\n")  # ormb's layout: the files under model/
    ref = registry.ref(unique_repo("direct"), "v1")
    artifacts.publish(tmp_path / "src", ref, options=registry.options)
    return ref


def test_each_byte_is_written_once(registry, tmp_path):
    """The kernel's count of bytes the process wrote (``wchar``: write, pwrite, copy_file_range)."""
    size = 32 * MiB
    ref = one_file_model(registry, tmp_path, size)
    script = (
        "import json, sys\n"
        "from modelhaul import artifacts\n"
        "from modelhaul.registry_options import RegistryOptions\n"
        "artifacts.fetch(sys.argv[1], sys.argv[2], options=RegistryOptions(plain_http=True))\n"
        "io = dict(line.split(': ') for line in open('/proc/self/io').read().splitlines())\n"
        "print(json.dumps({k: int(v) for k, v in io.items()}))\n"
    )
    env = dict(os.environ, MODELHAUL_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", script, ref, str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, check=True)
    written = json.loads(done.stdout.strip().splitlines()[-1])["wchar"]
    assert size <= written < 1.2 * size  # through the store it was twice the model
    assert (tmp_path / "out" / "model" / "model.bin").stat().st_size == size


def test_without_renameat2_the_move_still_refuses_a_second_write(registry, tmp_path, home, monkeypatch):
    """Where the C library has no ``renameat2`` the move is a new link plus an unlink: same guarantees."""
    from modelhaul import fscopy
    from modelhaul.errors import UnsafeArchive
    from tests.test_safety_extract import _layout

    monkeypatch.setattr(fscopy, "_renameat2", lambda: None)
    src = model(tmp_path)
    ref = registry.ref(unique_repo("direct"), "v1")
    artifacts.publish(src, ref, options=registry.options)
    artifacts.fetch(ref, tmp_path / "out", options=registry.options)
    assert files_under(tmp_path / "out" / "model") == files_under(src / "model")
    assert all(p.stat().st_nlink == 1 for p in (tmp_path / "out").rglob("*") if p.is_file())

    from modelhaul.reference import parse
    from modelhaul.store import LayoutTarget
    from modelhaul.transfer import copy

    _layout(tmp_path / "twice", "modelpack", None, raw=[("m.onnx", b"one"), ("m.onnx", b"two")])
    ref2 = registry.ref(unique_repo("direct"), "v1")
    copy(LayoutTarget(tmp_path / "twice"), "v1", artifacts.open_target(parse(ref2), registry.options), "v1")
    with pytest.raises(UnsafeArchive, match="written twice"):
        artifacts.fetch(ref2, tmp_path / "out2", options=registry.options)
    assert not (tmp_path / "out2").exists()


def test_a_full_disk_is_said_at_once_and_not_retried_as_a_network_failure(registry, tmp_path):
    """A write that fails here (the file-size limit stands in for a full disk) is one line, one GET."""
    ref = one_file_model(registry, tmp_path, 20 * MiB)
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))\n"
        "from modelhaul.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = dict(os.environ, MODELHAUL_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    with faulty_proxy(registry) as proxy:
        done = subprocess.run([sys.executable, "-c", script, "export", ref.replace(registry.host, proxy.host),
                               str(tmp_path / "out"), "--plain-http"], env=env, capture_output=True, text=True,
                              timeout=120)
        gets = proxy.seen("GET", "/blobs/sha256:")
    assert done.returncode == 1, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "writing the download failed (File too large)" in done.stderr and str(tmp_path) in done.stderr
    assert len(gets) == 1  # not retried as if the registry had failed
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "src"]


def test_a_pull_cut_by_a_full_disk_resumes_from_what_the_file_holds(registry, tmp_path):
    """``pull`` keeps its partial file in the store; the next process asks only for the rest."""
    size = 20 * MiB
    ref = one_file_model(registry, tmp_path, size)
    limit = 8 * MiB + 512 * 1024  # the 9th 1 MiB piece is written half
    script = (
        "import resource, signal, sys\n"
        "if sys.argv[1] == 'limited':\n"
        "    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
        "from modelhaul.cli import main\n"
        "sys.exit(main(sys.argv[2:]))\n"
    )
    env = dict(os.environ, MODELHAUL_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    with faulty_proxy(registry) as proxy:
        pref = ref.replace(registry.host, proxy.host)
        first = subprocess.run([sys.executable, "-c", script, "limited", "pull", pref, "--plain-http"], env=env,
                               capture_output=True, text=True, timeout=120)
        assert first.returncode == 1 and "writing the download failed" in first.stderr, first.stderr
        partial = [p for p in (tmp_path / "home").rglob("*.partial")]
        assert [p.stat().st_size for p in partial] == [limit]
        second = subprocess.run([sys.executable, "-c", script, "free", "pull", pref, "--plain-http"], env=env,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
        ranges = [s.headers.get("Range") for s in proxy.seen("GET", "/blobs/sha256:") if s.status != 404]
    assert f"bytes={limit}-" in ranges  # resumed where the file ends, the half piece kept
    done = subprocess.run([sys.executable, "-m", "modelhaul.cli", "export", pref, str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=120)  # from the store: the proxy is gone
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "model" / "model.bin").read_bytes() == (tmp_path / "src/model/model.bin").read_bytes()
