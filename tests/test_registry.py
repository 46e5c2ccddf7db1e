"""RegistryTarget against a real docker-registry: blobs, manifests, tags, uploads, downloads, retries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelhaul import oci
from modelhaul.errors import DigestMismatch, NotFound, RegistryError
from modelhaul.registry import RegistryTarget
from modelhaul.registry_options import RegistryOptions
from tests.fixtures.registry import Fault, faulty_proxy, unique_repo

MiB = 1 << 20
LAYER = "application/vnd.cncf.model.weight.v1.raw"


def make_blob(tmp_path: Path, size: int, name: str = "weights.bin") -> oci.Blob:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return oci.Blob(LAYER, oci.sha256_file(path), size, path=path,
                    annotations={oci.ANNOTATION_TITLE: name})


def manifest_for(layers: list[oci.Blob]) -> tuple[oci.Blob, bytes]:
    config = oci.Blob.from_bytes(oci.EMPTY_CONFIG, b"{}")
    data = oci.canonical_json({
        "schemaVersion": 2, "mediaType": oci.MANIFEST_V1, "artifactType": oci.MODELPACK_ARTIFACT,
        "config": config.descriptor(), "layers": [b.descriptor() for b in layers],
    })
    return config, data


def push(target: RegistryTarget, layers: list[oci.Blob], tag: str) -> str:
    """What a push does with a Target: blobs first (in parallel), the manifest last."""
    config, data = manifest_for(layers)
    target.put_blobs([config, *layers])
    return target.put_manifest(data, oci.MANIFEST_V1, tag)


def quick(target: RegistryTarget) -> RegistryTarget:
    """Retry fast in tests (the backoff schedule is not what is under test)."""
    target.backoff = 0.01
    return target


def blob_file(registry, digest: str) -> Path:
    hexd = digest.split(":", 1)[1]
    return registry.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


def test_push_and_pull_round_trip(registry, tmp_path):
    target = RegistryTarget(registry.host, unique_repo(), registry.options)
    layers = [make_blob(tmp_path, 3 * MiB + 17, "a.bin"), make_blob(tmp_path, 10, "b.txt")]
    digest = push(target, layers, "v1")

    manifest = target.get_manifest("v1")
    assert manifest.digest == digest == oci.sha256_bytes(manifest.data)
    assert manifest.media_type == oci.MANIFEST_V1
    assert [d["digest"] for d in manifest.layers] == [b.digest for b in layers]
    assert target.get_manifest(digest).data == manifest.data
    assert target.list_tags() == ["v1"]
    for layer in layers:
        out = tmp_path / "out" / layer.digest.replace(":", "-")
        target.fetch_blob(layer.digest, layer.size, out)
        assert out.read_bytes() == layer.path.read_bytes()
    assert sorted(os.listdir(tmp_path / "out")) == sorted(b.digest.replace(":", "-") for b in layers)
    assert target.blob_path(layers[0].digest) is None


def test_missing_things_raise_not_found_naming_the_reference(registry, tmp_path):
    repo = unique_repo()
    target = RegistryTarget(registry.host, repo, registry.options)
    with pytest.raises(NotFound, match=f"{registry.host}/{repo}:nope"):
        target.get_manifest("nope")
    with pytest.raises(NotFound, match=repo):
        target.list_tags()
    digest = oci.sha256_bytes(b"absent")
    assert not target.has_blob(digest)
    with pytest.raises(NotFound, match=digest):
        target.fetch_blob(digest, 6, tmp_path / "x")
    assert not (tmp_path / "x").exists() and os.listdir(tmp_path) == []


def test_existing_blobs_are_not_uploaded_again(registry, tmp_path):
    repo = unique_repo()
    layer = make_blob(tmp_path, 2 * MiB)
    with faulty_proxy(registry) as proxy:
        target = RegistryTarget(proxy.host, repo, proxy.options)
        push(target, [layer], "v1")
        assert len(proxy.seen("PUT", "/blobs/uploads/")) == 2  # config + layer
        push(target, [layer], "v2")
        assert len(proxy.seen("PUT", "/blobs/uploads/")) == 2  # nothing new went up
        assert len(proxy.seen("POST")) == 2
    assert sorted(RegistryTarget(registry.host, repo, registry.options).list_tags()) == ["v1", "v2"]


def test_blob_is_mounted_from_another_repository(registry, tmp_path):
    src, dst = unique_repo("src"), unique_repo("dst")
    layer = make_blob(tmp_path, 2 * MiB)
    RegistryTarget(registry.host, src, registry.options).put_blob(layer)
    with faulty_proxy(registry) as proxy:
        target = RegistryTarget(proxy.host, dst, proxy.options, mount_from=src)
        target.put_blob(layer)
        assert [r.status for r in proxy.seen("POST", "mount=")] == [201]
        assert proxy.seen("PUT") == [] and proxy.seen("PATCH") == []
    assert RegistryTarget(registry.host, dst, registry.options).has_blob(layer.digest)


def test_large_blob_goes_up_in_chunks_small_one_in_one_put(registry, tmp_path):
    small, large = make_blob(tmp_path, MiB, "small"), make_blob(tmp_path, 5 * MiB + 3, "large")
    with faulty_proxy(registry) as proxy:
        target = RegistryTarget(proxy.host, unique_repo(), proxy.options)
        target.chunk_threshold, target.chunk_size = 2 * MiB, 2 * MiB
        target.put_blob(small)
        target.put_blob(large)
        patches = proxy.seen("PATCH")
        assert [p.body_size for p in patches] == [2 * MiB, 2 * MiB, MiB + 3]
        assert [p.headers["Content-Range"] for p in patches] == [
            f"0-{2 * MiB - 1}", f"{2 * MiB}-{4 * MiB - 1}", f"{4 * MiB}-{5 * MiB + 2}"]
        puts = proxy.seen("PUT", "/blobs/uploads/")
        assert [p.body_size for p in puts] == [MiB, 0]  # small: whole body; large: closing PUT only
    out = tmp_path / "large.out"
    target.fetch_blob(large.digest, large.size, out)
    assert out.read_bytes() == large.path.read_bytes()


def test_registry_that_rejects_chunks_gets_one_streamed_put(registry, tmp_path):
    large = make_blob(tmp_path, 5 * MiB)
    with faulty_proxy(registry, Fault("PATCH", "/blobs/uploads/", "416", count=100)) as proxy:
        target = RegistryTarget(proxy.host, unique_repo(), proxy.options)
        target.chunk_threshold, target.chunk_size = 2 * MiB, 2 * MiB
        target.put_blob(large)
        assert [p.status for p in proxy.seen("PATCH")] == [416]
        assert [(p.status, p.body_size) for p in proxy.seen("PUT", "/blobs/uploads/")] == [(201, 5 * MiB)]
        assert target.has_blob(large.digest)
        target.put_blob(make_blob(tmp_path, 3 * MiB, "second"))  # remembered: no PATCH this time
        assert len(proxy.seen("PATCH")) == 1


def test_transient_failures_are_retried_to_a_complete_push(registry, tmp_path):
    repo = unique_repo()
    layers = [make_blob(tmp_path, 2 * MiB, "a"), make_blob(tmp_path, 3 * MiB, "b")]
    faults = [
        Fault("HEAD", "/blobs/", "503", count=2),
        Fault("POST", "/blobs/uploads/", "drop", count=1),
        Fault("PUT", "/blobs/uploads/", "drop", count=2),  # reset after the body was sent
        Fault("PUT", "/manifests/", "429", count=1),  # with Retry-After: 1
        Fault("PATCH", "/blobs/uploads/", "502", count=1),
    ]
    with faulty_proxy(registry, *faults) as proxy:
        target = quick(RegistryTarget(proxy.host, repo, proxy.options))
        target.chunk_threshold, target.chunk_size = 2 * MiB + 1, MiB
        digest = push(target, layers, "v1")
        assert all(f.hits == f.count for f in faults)
    direct = RegistryTarget(registry.host, repo, registry.options)
    assert direct.get_manifest("v1").digest == digest
    for layer in layers:
        out = tmp_path / f"{layer.path.name}.out"
        direct.fetch_blob(layer.digest, layer.size, out)
        assert out.read_bytes() == layer.path.read_bytes()


def test_persistent_failure_is_a_clear_error_and_leaves_no_tag(registry, tmp_path):
    repo = unique_repo()
    with faulty_proxy(registry, Fault("PUT", "/blobs/uploads/", "503", count=1000)) as proxy:
        target = quick(RegistryTarget(proxy.host, repo, proxy.options))
        target.attempts = 3
        with pytest.raises(RegistryError, match=rf"{proxy.host}/{repo}@sha256:.*HTTP 503.*3 attempts"):
            push(target, [make_blob(tmp_path, MiB)], "v1")
        assert proxy.seen("PUT", "/manifests/") == []
    with pytest.raises(NotFound):
        RegistryTarget(registry.host, repo, registry.options).get_manifest("v1")


def test_interrupted_download_resumes_with_range(registry, tmp_path):
    repo = unique_repo()
    layer = make_blob(tmp_path, 4 * MiB)
    RegistryTarget(registry.host, repo, registry.options).put_blob(layer)
    with faulty_proxy(registry, Fault("GET", "/blobs/sha256:", "truncate", count=1)) as proxy:
        target = quick(RegistryTarget(proxy.host, repo, proxy.options))
        out = tmp_path / "dl" / "blob"
        target.fetch_blob(layer.digest, layer.size, out)
        gets = proxy.seen("GET", "/blobs/sha256:")
        assert [g.headers.get("Range") for g in gets] == [None, f"bytes={2 * MiB}-"]
        assert out.read_bytes() == layer.path.read_bytes()
        assert os.listdir(out.parent) == ["blob"]


def test_a_download_cut_inside_a_piece_resumes_where_the_file_ends(registry, tmp_path):
    """Pieces are written as they arrive and hashed later: a cut between the two keeps both in step."""
    repo = unique_repo()
    layer = make_blob(tmp_path, 4 * MiB + 600 * 1024)  # cut at half: 300 KiB into the third MiB
    RegistryTarget(registry.host, repo, registry.options).put_blob(layer)
    with faulty_proxy(registry, Fault("GET", "/blobs/sha256:", "truncate", count=1)) as proxy:
        target = quick(RegistryTarget(proxy.host, repo, proxy.options))
        out = tmp_path / "dl" / "blob"
        target.fetch_blob(layer.digest, layer.size, out)
        ranges = [g.headers.get("Range") for g in proxy.seen("GET", "/blobs/sha256:")]
        assert ranges == [None, f"bytes={layer.size // 2}-"]  # resumed once, not started again
        assert out.read_bytes() == layer.path.read_bytes()


def test_download_given_up_is_resumed_by_the_next_call(registry, tmp_path):
    repo = unique_repo()
    layer = make_blob(tmp_path, 4 * MiB)
    RegistryTarget(registry.host, repo, registry.options).put_blob(layer)
    out = tmp_path / "dl" / "blob"
    with faulty_proxy(registry, Fault("GET", "/blobs/sha256:", "truncate", count=2)) as proxy:
        target = quick(RegistryTarget(proxy.host, repo, proxy.options))
        target.attempts = 2
        with pytest.raises(RegistryError, match="2 attempts"):
            target.fetch_blob(layer.digest, layer.size, out)
        assert not out.exists()
        target.fetch_blob(layer.digest, layer.size, out)  # a later run picks up where it stopped
        ranges = [g.headers.get("Range") for g in proxy.seen("GET", "/blobs/sha256:")]
        assert ranges == [None, f"bytes={2 * MiB}-", f"bytes={3 * MiB}-"]
    assert out.read_bytes() == layer.path.read_bytes()
    assert os.listdir(out.parent) == ["blob"]


def test_corrupt_blob_in_registry_raises_and_leaves_nothing(registry, tmp_path):
    repo = unique_repo()
    layer = make_blob(tmp_path, 2 * MiB)
    target = RegistryTarget(registry.host, repo, registry.options)
    target.put_blob(layer)
    stored = blob_file(registry, layer.digest)
    data = bytearray(stored.read_bytes())
    data[1000] ^= 0xFF
    stored.write_bytes(bytes(data))
    dest = tmp_path / "dl" / "blob"
    with pytest.raises(DigestMismatch, match=layer.digest):
        target.fetch_blob(layer.digest, layer.size, dest)
    assert os.listdir(dest.parent) == []


def test_file_edited_after_packing_is_refused(registry, tmp_path):
    target = RegistryTarget(registry.host, unique_repo(), registry.options)
    layer = make_blob(tmp_path, MiB)
    layer.path.write_bytes(os.urandom(MiB))  # same size, other bytes: the registry sees it
    with pytest.raises(DigestMismatch, match="changed since it was packed"):
        target.put_blob(layer)
    layer.path.write_bytes(b"short")
    with pytest.raises(DigestMismatch, match="changed since it was packed"):
        target.put_blob(layer)
    assert not target.has_blob(layer.digest)


def test_delete_by_tag_and_tags_listing(registry, tmp_path):
    target = RegistryTarget(registry.host, unique_repo(), registry.options)
    layer = make_blob(tmp_path, 1000)
    d1 = push(target, [layer], "v1")
    push(target, [layer, make_blob(tmp_path, 10, "other")], "v2")
    assert sorted(target.list_tags()) == ["v1", "v2"]
    target.delete("v1")
    assert target.list_tags() == ["v2"]
    with pytest.raises(NotFound):
        target.get_manifest(d1)
    with pytest.raises(NotFound, match=":v1"):
        target.delete("v1")


def test_parallel_upload_of_many_blobs(registry, tmp_path):
    layers = [make_blob(tmp_path, 256 * 1024 + i, f"f{i}") for i in range(12)]
    target = RegistryTarget(registry.host, unique_repo(), registry.options)
    digest = push(target, layers, "v1")
    fresh = RegistryTarget(registry.host, target.repository, registry.options)
    assert fresh.get_manifest("v1").digest == digest
    assert all(fresh.has_blob(b.digest) for b in layers)


def test_unreachable_registry_is_a_clear_error(tmp_path):
    from tests.fixtures.registry import free_port

    host = f"127.0.0.1:{free_port()}"
    target = quick(RegistryTarget(host, "x/y", RegistryOptions(plain_http=True)))
    # nothing listens: one retry, not the whole retry budget
    with pytest.raises(RegistryError, match=rf"{host}/x/y:v1: cannot connect to {host}: connection refused;"):
        target.get_manifest("v1")
    with pytest.raises(RegistryError, match="cannot resolve no-such-registry.invalid"):
        RegistryTarget("no-such-registry.invalid", "x/y", RegistryOptions(plain_http=True)).list_tags()


def test_upload_file_hashes_while_sending_and_survives_a_reset(registry, tmp_path):
    src = tmp_path / "new.bin"
    src.write_bytes(os.urandom(5 * MiB + 1))
    with faulty_proxy(registry, Fault("PATCH", "/blobs/uploads/", "drop", count=1)) as proxy:
        target = quick(RegistryTarget(proxy.host, unique_repo(), proxy.options))
        target.chunk_size = 2 * MiB
        blob = target.upload_file(src, LAYER, {oci.ANNOTATION_TITLE: "new.bin"})
        assert blob.digest == oci.sha256_file(src) and blob.size == 5 * MiB + 1
        assert blob.descriptor()["annotations"] == {oci.ANNOTATION_TITLE: "new.bin"}
        assert [p.status for p in proxy.seen("PATCH")] == [-1, 202, 202, 202]  # session restarted
    target.fetch_blob(blob.digest, blob.size, tmp_path / "back")
    assert (tmp_path / "back").read_bytes() == src.read_bytes()


def test_upload_file_falls_back_when_chunks_are_refused(registry, tmp_path):
    src = tmp_path / "new.bin"
    src.write_bytes(os.urandom(3 * MiB))
    with faulty_proxy(registry, Fault("PATCH", "/blobs/uploads/", "416", count=100)) as proxy:
        target = RegistryTarget(proxy.host, unique_repo(), proxy.options)
        blob = target.upload_file(src)
        assert blob.digest == oci.sha256_file(src)
        assert [(p.status, p.body_size) for p in proxy.seen("PUT", "/blobs/uploads/")] == [(201, 3 * MiB)]
    assert RegistryTarget(registry.host, target.repository, registry.options).has_blob(blob.digest)


def test_progress_counts_every_byte_moved(registry, tmp_path):
    moved: list[int] = []
    target = RegistryTarget(registry.host, unique_repo(), registry.options, progress=moved.append)
    layer = make_blob(tmp_path, 3 * MiB + 5)
    target.put_blob(layer)
    assert sum(moved) == layer.size
    moved.clear()
    target.fetch_blob(layer.digest, layer.size, tmp_path / "back")
    assert sum(moved) == layer.size


def test_a_proxy_named_in_the_environment_carries_every_request(registry, tmp_path, monkeypatch):
    """HTTP_PROXY is honoured by every request, also the small exchanges that skip requests elsewhere."""
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    repo = unique_repo()
    layers = [make_blob(tmp_path, 10, "small.txt"), make_blob(tmp_path, 2 * MiB, "large.bin")]
    with faulty_proxy(registry) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.host}")
        target = RegistryTarget(registry.host, repo, registry.options)
        digest = push(target, layers, "v1")
        for b in layers:
            target.fetch_blob(b.digest, b.size, tmp_path / "out" / b.annotations[oci.ANNOTATION_TITLE])
        assert target.get_manifest("v1").digest == digest
        target.close()
    assert [p.read_bytes() for p in sorted((tmp_path / "out").iterdir())] == [
        b.path.read_bytes() for b in sorted(layers, key=lambda b: b.annotations[oci.ANNOTATION_TITLE])]
    paths = [r.path for r in proxy.requests]
    assert len(proxy.seen("PUT", "/blobs/uploads/")) == 3  # config + both layers, all through the proxy
    assert len(proxy.seen("GET", "/blobs/")) == 2 and proxy.seen("GET", "/manifests/v1")
    assert all(p.startswith(f"http://{registry.host}/v2/") for p in paths)  # a proxy's absolute form


def test_a_connection_the_registry_closed_without_a_word_is_opened_again_at_once():
    """Registries and load balancers close idle kept-alive connections without saying so; the next
    request goes on a new connection at once, not through a failure and a retry's wait."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    ports: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: object) -> None:
            pass

        def do_HEAD(self) -> None:  # noqa: N802
            ports.append(self.client_address[1])
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.close_connection = True  # hang up after the answer, no "Connection: close"

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        target = RegistryTarget(f"127.0.0.1:{server.server_address[1]}", "x/y",
                                RegistryOptions(plain_http=True))
        target.attempts = 1  # a failed exchange would raise instead of being retried
        for i in range(3):
            assert target.has_blob(oci.sha256_bytes(f"blob {i}".encode()))
        target.close()
    finally:
        server.shutdown()
    assert len(ports) == len(set(ports)) == 3
