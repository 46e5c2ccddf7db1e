"""publish / fetch / retag by reference through a real registry: what moves over the wire, and failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelhaul import artifacts, oci
from modelhaul.errors import DigestMismatch, NotFound, RegistryError
from modelhaul.registry import RegistryTarget
from tests.fixtures.registry import Fault, faulty_proxy, unique_repo

MiB = 1 << 20


@pytest.fixture(autouse=True)
def private_store(monkeypatch, tmp_path):
    monkeypatch.setenv("MODELHAUL_HOME", str(tmp_path / "home"))


def model_dir(root: Path, files: int = 3, size: int = MiB) -> Path:
    d = root / "model"
    d.mkdir(parents=True)
    for i in range(files):
        (d / f"part-{i}.onnx").write_bytes(os.urandom(size))
    (d / "README.md").write_text("a test model\n")
    return d


def blob_uploads(proxy) -> list:
    """Blob uploads that carried bytes (a closing PUT of a chunked upload carries none)."""
    return [r for r in proxy.seen("PUT", "/blobs/uploads/") + proxy.seen("PATCH") if r.body_size]


def test_publish_then_fetch_round_trip(registry, tmp_path):
    src = model_dir(tmp_path)
    ref = registry.ref(unique_repo("art"), "v1")
    res = artifacts.publish(src, ref, options=registry.options)
    assert res["ref"] == f"{ref}@{res['digest']}"
    out = artifacts.fetch(ref, tmp_path / "out", options=registry.options)
    assert out["digest"] == res["digest"]
    for f in src.iterdir():
        assert (tmp_path / "out" / "model" / f.name).read_bytes() == f.read_bytes()
    assert artifacts.list_tags(ref, options=registry.options) == ["v1"]


def test_same_directory_gives_the_same_digest_in_any_repository_or_layout(registry, tmp_path):
    """The digest depends on the files and their metadata only, never on where they are published."""
    src = model_dir(tmp_path, files=1, size=1024)
    repo_b = unique_repo("team/same-b")
    first = artifacts.publish(src, registry.ref(unique_repo("same-a"), "v1"), options=registry.options)
    second = artifacts.publish(src, registry.ref(repo_b, "v7"), options=registry.options)
    layout = artifacts.publish(src, f"oci:{tmp_path / 'layout'}/other-name:v1")
    assert first["digest"] == second["digest"] == layout["digest"]
    target = RegistryTarget(registry.host, repo_b, registry.options)
    config = target.get_manifest(second["digest"]).config
    target.fetch_blob(config["digest"], config["size"], tmp_path / "config.json")
    assert b"same-b" not in (tmp_path / "config.json").read_bytes()


def test_republish_unchanged_uploads_nothing_and_one_changed_file_uploads_one(registry, tmp_path):
    src = model_dir(tmp_path, files=10, size=MiB // 4)
    repo = unique_repo("art")
    with faulty_proxy(registry) as proxy:
        ref = f"{proxy.host}/{repo}:v1"
        first = artifacts.publish(src, ref, options=proxy.options)
        assert len(blob_uploads(proxy)) >= 11
        proxy.requests.clear()

        again = artifacts.publish(src, ref, options=proxy.options)
        assert again["digest"] == first["digest"]
        assert blob_uploads(proxy) == []

        (src / "part-3.onnx").write_bytes(os.urandom(MiB // 4))
        proxy.requests.clear()
        artifacts.publish(src, f"{proxy.host}/{repo}:v2", options=proxy.options)
        weights = [r for r in blob_uploads(proxy) if r.body_size == MiB // 4]
        assert len(weights) == 1  # only the changed file; config and metadata blobs are small


def test_a_publish_of_many_small_files_reuses_its_connections(registry, tmp_path):
    # was: every HEAD's answer was left unread, so its connection closed and each blob's upload opened new
    # ones (issue 26); a HEAD released unread made the next request on it fail with ResponseNotReady
    src = model_dir(tmp_path, files=40, size=1024)
    with faulty_proxy(registry) as proxy:
        artifacts.publish(src, f"{proxy.host}/{unique_repo('art')}:v1", options=proxy.options)
        requests = len(proxy.requests)
        connections = len({r.client_port for r in proxy.requests})
    assert requests >= 2 * 40  # a POST and a PUT per file
    assert connections <= 2 * 4  # a few per upload thread, not one or two per request


def test_a_pull_of_many_small_files_reuses_its_connections(registry, tmp_path):
    # was: each blob's body was read past urllib3, so closing the answer closed its connection and
    # every blob of a pull opened a new one (issue 26)
    src = model_dir(tmp_path, files=40, size=1024)
    ref = artifacts.publish(src, f"{registry.host}/{unique_repo('art')}:v1", options=registry.options)["ref"]
    with faulty_proxy(registry) as proxy:
        out = artifacts.fetch(ref.replace(registry.host, proxy.host), tmp_path / "out", options=proxy.options)
        gets = proxy.seen("GET", "/blobs/sha256:")
        connections = len({r.client_port for r in proxy.requests})
    got = Path(out["path"]) / "model"  # the bundle's files under model/, beside its ormbfile.yaml
    assert len(gets) >= 40 and sorted(p.name for p in got.iterdir()) == sorted(p.name for p in src.iterdir())
    assert connections <= 2 * 4  # a few per download thread, not one per blob



def test_a_first_push_of_small_files_asks_for_no_blob_and_a_later_one_asks_once_each(registry, tmp_path):
    # was: a HEAD per blob, asked twice (has_blob, then put_blob), even in a new repository where a
    # small blob costs as much to send as to ask for (issue 26)
    src = model_dir(tmp_path, files=40, size=1024)
    repo = unique_repo("art")
    with faulty_proxy(registry) as proxy:
        artifacts.publish(src, f"{proxy.host}/{repo}:v1", options=proxy.options)
        first = proxy.seen("HEAD", "/blobs/")
        (src / "part-0.onnx").write_bytes(os.urandom(1024))
        artifacts.publish(src, f"{proxy.host}/{repo}:v2", options=proxy.options)
        second = proxy.seen("HEAD", "/blobs/")[len(first):]
        sent = blob_uploads(proxy)
    assert first == []
    asked = [r.path.rsplit("/", 1)[1] for r in second]
    assert len(asked) == len(set(asked)) >= 41  # the repository has a tag now: every blob asked for once
    assert len(sent) == 42 + 2  # v1: 41 files and its config; v2: the changed file and its config


def test_retag_in_one_repository_moves_no_bytes_and_across_repositories_mounts(registry, tmp_path):
    src = model_dir(tmp_path)
    repo, other = unique_repo("art"), unique_repo("art")
    with faulty_proxy(registry) as proxy:
        res = artifacts.publish(src, f"{proxy.host}/{repo}:v1", options=proxy.options)
        proxy.requests.clear()
        tagged = artifacts.retag(f"{proxy.host}/{repo}:v1", "prod", options=proxy.options)
        assert tagged["digest"] == res["digest"]
        assert blob_uploads(proxy) == [] and proxy.seen("POST") == []

        proxy.requests.clear()
        moved = artifacts.retag(f"{proxy.host}/{repo}:v1", f"{proxy.host}/{other}:v1", options=proxy.options)
        assert moved["digest"] == res["digest"]
        assert blob_uploads(proxy) == []
        assert {r.status for r in proxy.seen("POST", "mount=")} == {201}
    assert artifacts.resolve(f"{registry.host}/{other}:v1", options=registry.options).endswith(res["digest"])


def test_publish_through_a_failing_registry_leaves_no_tag(registry, tmp_path):
    src = model_dir(tmp_path)
    repo = unique_repo("art")
    with faulty_proxy(registry, Fault("PUT", "/blobs/uploads/", "503", count=10_000)) as proxy:
        RegistryTarget.backoff, saved = 0.01, RegistryTarget.backoff
        try:
            with pytest.raises(RegistryError, match=f"{proxy.host}/{repo}.*HTTP 503"):
                artifacts.publish(src, f"{proxy.host}/{repo}:v1", options=proxy.options)
        finally:
            RegistryTarget.backoff = saved
        assert proxy.seen("PUT", "/manifests/") == []
    assert artifacts.try_resolve(f"{registry.host}/{repo}:v1", options=registry.options) is None


def test_publish_survives_transient_failures(registry, tmp_path):
    src = model_dir(tmp_path)
    repo = unique_repo("art")
    faults = [Fault("PUT", "/blobs/uploads/", "drop", count=2), Fault("POST", "/blobs/uploads/", "503", 1),
              Fault("PUT", "/manifests/", "502", count=1)]
    with faulty_proxy(registry, *faults) as proxy:
        RegistryTarget.backoff, saved = 0.01, RegistryTarget.backoff
        try:
            res = artifacts.publish(src, f"{proxy.host}/{repo}:v1", options=proxy.options)
        finally:
            RegistryTarget.backoff = saved
        assert all(f.hits == f.count for f in faults)
    out = artifacts.fetch(f"{registry.host}/{repo}:v1", tmp_path / "out", options=registry.options)
    assert out["digest"] == res["digest"]
    assert (tmp_path / "out" / "model" / "part-0.onnx").read_bytes() == (src / "part-0.onnx").read_bytes()


def test_fetch_of_a_corrupt_artifact_writes_nothing(registry, tmp_path):
    from tests.test_registry import blob_file

    src = model_dir(tmp_path, files=1)
    ref = registry.ref(unique_repo("art"), "v1")
    artifacts.publish(src, ref, options=registry.options)
    digest = oci.sha256_file(src / "part-0.onnx")
    stored = blob_file(registry, digest)
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0x01
    stored.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch, match=digest):
        artifacts.fetch(ref, tmp_path / "out", options=registry.options)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_fetch_of_a_missing_tag_names_it(registry, tmp_path):
    ref = registry.ref(unique_repo("art"), "missing")
    with pytest.raises(NotFound, match=ref.replace(".", r"\.")):
        artifacts.fetch(ref, tmp_path / "out", options=registry.options)
