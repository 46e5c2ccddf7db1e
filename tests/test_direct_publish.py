"""``modelhaul push DIR REF``: publish straight from a directory (issue 15).

Through a counting proxy in front of the real registry: a new large file goes up once, hashed
while it is sent (no hash pass first, no store copy); re-publishing the unchanged directory costs
one HEAD of the manifest, nothing else (the tag already names it).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from modelhaul import artifacts, digestcache, meter, oci, transfer
from modelhaul.cli import main
from modelhaul.reference import parse
from tests.fixtures.imports import threads_when_config_loads
from tests.fixtures.registry import Fault, faulty_proxy, unique_repo

MiB = 1 << 20


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELHAUL_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(transfer, "STREAM_HASH_MIN", MiB)  # "large" here: above 1 MiB
    src = tmp_path / "src"
    (src / "model").mkdir(parents=True)
    (src / "model" / "weights.bin").write_bytes(os.urandom(3 * MiB))
    (src / "model" / "config.json").write_text('{"layers": 2}')
    (src / "ormbfile.yaml").write_text("author: direct\nformat: PyTorch\n")
    return src


def test_push_dir_uploads_new_bytes_once_and_republishes_with_heads(registry, model, tmp_path, capsys):
    with faulty_proxy(registry) as proxy:
        ref = f"{proxy.host}/{unique_repo()}:v1"
        assert main(["push", str(model), ref, "--plain-http", "--json"]) == 0
        first = json.loads(capsys.readouterr().out)
        sent = sum(r.body_size for r in proxy.requests if r.method in ("PATCH", "PUT") and "/blobs/" in r.path)
        assert 3 * MiB <= sent < 3 * MiB + 64 * 1024  # the weights once, plus config.json and the config blob
        assert not (tmp_path / "home" / "store").exists()  # no staging copy in the store
        before = len(proxy.requests)

        assert main(["push", str(model), ref, "--plain-http", "--json"]) == 0
        again = json.loads(capsys.readouterr().out)
        methods = sorted({(r.method, "/manifests/" in r.path) for r in proxy.requests[before:]})
    assert again["digest"] == first["digest"]
    assert methods == [("HEAD", True)]  # the tag already names the manifest: nothing else asked, nothing written
    back = artifacts.fetch(first["ref"].replace(proxy.host, registry.host), tmp_path / "out",
                           options=registry.options)
    assert (tmp_path / "out/model/weights.bin").read_bytes() == (model / "model/weights.bin").read_bytes()
    assert back["digest"] == first["digest"]


# -- the files go up while the config code loads (issue 26) --------------------------------------

def test_a_publish_starts_sending_files_before_the_config_code_loads(registry, model):
    # was: ~0.15 s of importing pydantic and building the config came before the first byte went up
    threads = threads_when_config_loads("push", str(model), f"{registry.host}/{unique_repo()}:v1", "--plain-http")
    assert any(t.startswith("modelhaul") for t in threads), threads  # the upload threads, already at work


def test_files_beside_ormbfile_outside_model_never_leave_the_machine(registry, model, tmp_path):
    notes = model / "notes.bin"  # ormb's layout packs model/ only: not this, large enough to be streamed
    notes.write_bytes(os.urandom(2 * MiB))
    ref = f"{registry.host}/{unique_repo()}:v1"
    with faulty_proxy(registry) as proxy:
        _push(model, ref.replace(registry.host, proxy.host))
        sent = sum(r.body_size for r in proxy.requests if r.method in ("PATCH", "PUT") and "/blobs/" in r.path)
    assert 3 * MiB <= sent < 3 * MiB + 64 * 1024


def test_a_config_that_does_not_parse_tags_nothing_and_leaves_no_upload_open(registry, model, capsys):
    (model / "ormbfile.yaml").write_text("author: [unclosed\n")
    for i in range(8):  # files going up while the config is read, and files waiting for a thread
        (model / "model" / f"shard-{i}.bin").write_bytes(os.urandom(2 * MiB))
    with faulty_proxy(registry) as proxy:
        assert main(["push", str(model), f"{proxy.host}/{unique_repo()}:v1", "--plain-http"]) != 0
        manifests = proxy.seen("PUT", "/manifests/")
        opened = len(proxy.seen("POST", "/blobs/uploads/"))
        closed = len([r for r in proxy.seen("PUT", "/blobs/uploads/") if r.status == 201])
        dropped = len(proxy.seen("DELETE", "/blobs/uploads/"))
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(said) == 1 and "ormbfile.yaml: not valid YAML at line 2" in said[0]  # the proxy logs the cut uploads
    assert manifests == []
    assert opened - closed == dropped  # every upload session it left open is deleted


def test_files_still_waiting_when_packing_fails_are_never_sent(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELHAUL_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(transfer, "PARALLEL", 4)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):  # new small files: each goes up unasked, a POST and a PUT
        (src / f"w{i}.bin").write_bytes(os.urandom(4096))
    with faulty_proxy(registry, Fault("POST", "/blobs/uploads/", mode="hold", count=100)) as proxy:
        target = artifacts.open_target(parse(f"{proxy.host}/{unique_repo()}:v1"), proxy.options)
        # the held uploads go on once the publish is cancelled (the pending ones must be dropped by then)
        threading.Thread(target=lambda: meter.CANCELLED.wait(10) and proxy.released.set(), daemon=True).start()
        with pytest.raises(ValueError, match="config"), \
                transfer.early_uploads(transfer.upload_digester(target), src, "modelpack"):
            while proxy.held < 4:  # four uploads under way, two waiting for a thread
                time.sleep(0.01)
            raise ValueError("the config does not parse")
        started = len(proxy.seen("POST", "/blobs/uploads/"))
    assert started == 4


def test_a_publish_remembers_every_digest_for_the_next_one(registry, model, tmp_path):
    for i in range(20):
        (model / "model" / f"token-{i}.txt").write_text(os.urandom(8).hex())
    _push(model, f"{registry.host}/{unique_repo()}:v1")
    with sqlite3.connect(tmp_path / "home" / "digests.sqlite") as db:  # what the next process finds
        known = set(db.execute("SELECT ino, digest FROM file_digests").fetchall())
    assert {(p.stat().st_ino, oci.sha256_file(p)) for p in (model / "model").iterdir()} <= known


def test_digests_remembered_in_a_failed_batch_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELHAUL_HOME", str(tmp_path / "home"))
    (tmp_path / "a.bin").write_bytes(b"a")
    with pytest.raises(KeyboardInterrupt), digestcache.batch():
        with digestcache.batch():  # joins the outer one
            digestcache.remember(tmp_path / "a.bin", "sha256:" + "a" * 64)
        assert digestcache.lookup(tmp_path / "a.bin") == "sha256:" + "a" * 64  # seen before it is written
        raise KeyboardInterrupt
    with sqlite3.connect(tmp_path / "home" / "digests.sqlite") as db:
        assert db.execute("SELECT digest FROM file_digests").fetchall() == [("sha256:" + "a" * 64,)]


def _rewrite_keeping_mtime(path, data: bytes) -> None:
    """What ``cp -p``, ``rsync -t`` or ``tar -x`` can do: new bytes in the same inode, same size, old mtime back."""
    st = path.stat()
    assert len(data) == st.st_size
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_ino, path.stat().st_size, path.stat().st_mtime_ns) == (st.st_ino, st.st_size,
                                                                                  st.st_mtime_ns)


@pytest.mark.parametrize("name, data", [("model/weights.bin", os.urandom(3 * MiB)),  # sent while hashed
                                        ("model/config.json", b'{"layers": 3}')])  # hashed, then HEAD
def test_a_file_rewritten_in_place_with_its_mtime_put_back_publishes_its_new_bytes(registry, model, tmp_path,
                                                                                     capsys, name, data):
    # was: the digest cache keyed on size and mtime only, so the old digest was published (issue 26)
    ref = f"{registry.host}/{unique_repo()}:v1"
    assert main(["push", str(model), ref, "--plain-http", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    _rewrite_keeping_mtime(model / name, data)
    assert main(["push", str(model), ref, "--plain-http", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["digest"] != first["digest"]
    artifacts.fetch(again["ref"], tmp_path / "out", options=registry.options)
    assert (tmp_path / "out" / name).read_bytes() == data


# -- re-publishing from the pack cache: nothing packing reads may change unseen -------------------


def _push(src, ref, *extra, home=None) -> dict:
    """``modelhaul push DIR REF --json`` in its own process (``home``: another MODELHAUL_HOME)."""
    env = dict(os.environ, **({"MODELHAUL_HOME": str(home)} if home else {}))
    out = subprocess.run([sys.executable, "-m", "modelhaul.cli", "push", str(src), ref, "--plain-http", "--json",
                          *extra], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _edit_file(src):
    (src / "model" / "weights.bin").write_bytes(os.urandom(3 * MiB))  # same size, new bytes


def _add_file(src):
    (src / "model" / "README.md").write_text("# a model\n")


def _remove_file(src):
    (src / "model" / "config.json").unlink()


def _rename_file(src):
    (src / "model" / "config.json").rename(src / "model" / "settings.json")


def _edit_ormbfile(src):
    (src / "ormbfile.yaml").write_text("author: someone else\nformat: PyTorch\n")


def _make_executable(src):
    (src / "model" / "config.json").chmod(0o755)


@pytest.mark.parametrize("change", [_edit_file, _add_file, _remove_file, _rename_file, _edit_ormbfile,
                                    _make_executable])
def test_a_change_to_what_packing_reads_packs_again(registry, model, tmp_path, change):
    ref = f"{registry.host}/{unique_repo()}:v1"
    first = _push(model, ref)
    assert _push(model, ref) == first  # unchanged: the remembered artifact, the same answer
    change(model)
    again = _push(model, ref)
    assert again["digest"] != first["digest"]
    assert again["digest"] == _push(model, ref, home=tmp_path / "fresh")["digest"]  # what no cache gives


def test_an_unchanged_republish_puts_back_a_tag_that_was_moved(registry, model, tmp_path):
    ref = f"{registry.host}/{unique_repo()}:v1"
    first = _push(model, ref)
    other = tmp_path / "other"
    (other / "model").mkdir(parents=True)
    (other / "model" / "weights.bin").write_bytes(b"another model")
    assert _push(other, ref)["digest"] != first["digest"]
    assert _push(model, ref) == first  # unchanged here, but the tag names another: written again
    assert artifacts.resolve(ref, options=registry.options).endswith(first["digest"])


def test_a_changed_config_file_packs_again(registry, model, tmp_path):
    ref = f"{registry.host}/{unique_repo()}:v1"
    cfg = tmp_path / "override.yaml"
    cfg.write_text("description: first\n")
    first = _push(model, ref, "--config", str(cfg))
    assert _push(model, ref, "--config", str(cfg)) == first
    cfg.write_text("description: second\n")
    again = _push(model, ref, "--config", str(cfg))
    assert again["digest"] != first["digest"]
    assert again["digest"] == _push(model, ref, "--config", str(cfg), home=tmp_path / "fresh")["digest"]
    assert _push(model, ref)["digest"] not in (first["digest"], again["digest"])  # and without --config


def test_a_remembered_artifact_goes_up_whole_to_a_repository_that_lacks_it(registry, model, tmp_path):
    first = _push(model, f"{registry.host}/{unique_repo()}:v1")
    other = _push(model, f"{registry.host}/{unique_repo()}:v1")  # HEADs miss: every blob is sent
    assert other["digest"] == first["digest"]
    artifacts.fetch(other["ref"], tmp_path / "out", options=registry.options)
    assert (tmp_path / "out/model/weights.bin").read_bytes() == (model / "model/weights.bin").read_bytes()


def test_a_cache_row_naming_a_file_outside_the_model_is_not_trusted(registry, model, tmp_path):
    first = _push(model, f"{registry.host}/{unique_repo()}:v1")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"not for the registry")
    with sqlite3.connect(tmp_path / "home" / "digests.sqlite") as db:
        assert db.execute("UPDATE packs SET paths=?", (json.dumps([str(secret)] * 2),)).rowcount == 1
    ref = f"{registry.host}/{unique_repo()}:v1"
    with faulty_proxy(registry) as proxy:
        assert _push(model, ref.replace(registry.host, proxy.host))["digest"] == first["digest"]
        sent = sum(r.body_size for r in proxy.requests if r.method in ("PATCH", "PUT") and "/blobs/" in r.path)
    assert sent >= 3 * MiB  # packed again from the directory, not from the row's paths
    artifacts.fetch(ref, tmp_path / "out", options=registry.options)
    assert (tmp_path / "out/model/weights.bin").read_bytes() == (model / "model/weights.bin").read_bytes()


HEAVY = ("pydantic", "yaml", "rich", "jsonschema", "modelhaul.config", "modelhaul.bundle", "requests", "urllib3")


def test_republishing_an_unchanged_model_builds_no_config_and_imports_no_http_library(registry, model):
    # was: requests and urllib3 were imported (~75 ms of a ~0.2 s command) to send HEADs (issue 26)
    ref = f"{registry.host}/{unique_repo()}:v1"
    first = _push(model, ref)
    code = ("import json, sys\nfrom modelhaul.cli import main\n"
            f"rc = main(['push', {str(model)!r}, {ref!r}, '--plain-http', '--json'])\n"
            f"sys.stderr.write(json.dumps([rc, sorted(m for m in {HEAVY!r} if m in sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    rc, heavy = json.loads(out.stderr.splitlines()[-1])
    assert rc == 0 and json.loads(out.stdout) == first
    assert heavy == []


@pytest.mark.parametrize("command", ["push", "export"])
def test_moving_a_large_file_loads_no_http_library_beyond_http_client(registry, model, tmp_path, command):
    # was: a file above 256 KiB went up and came down through requests (~40 ms of CPU to import it)
    ref = f"{registry.host}/{unique_repo()}:v1"
    if command == "export":
        ref = _push(model, ref)["ref"]
    argv = [command, str(model), ref] if command == "push" else [command, ref, str(tmp_path / "out")]
    code = ("import json, sys\nfrom modelhaul.cli import main\n"
            f"rc = main({[*argv, '--plain-http', '-q']!r})\n"
            "sys.stderr.write(json.dumps([rc, sorted(m for m in ('requests', 'urllib3') if m in sys.modules)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    rc, loaded = json.loads(out.stderr.splitlines()[-1])
    assert rc == 0 and loaded == []
    if command == "export":
        assert (tmp_path / "out/model/weights.bin").read_bytes() == (model / "model/weights.bin").read_bytes()
