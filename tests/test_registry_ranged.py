"""Large blobs come down as parallel ranged GETs, verified as a whole (issue 15).

Against the real registry (through a counting proxy) the bytes must be exact and each range asked
for once; against a small hostile server, a corrupt or misplaced range must be refused with
nothing left behind, and a server that ignores ``Range`` must still give the blob in one stream.
"""

from __future__ import annotations

import hashlib
import os
import re
from http.server import BaseHTTPRequestHandler

import pytest

from modelhaul import oci
from modelhaul.errors import DigestMismatch
from modelhaul.registry import RegistryTarget
from modelhaul.registry_options import RegistryOptions
from tests.fixtures.hostile import Hostile, hostile_registry
from tests.fixtures.registry import Fault, faulty_proxy, unique_repo

MiB = 1 << 20


def ranged(target: RegistryTarget, parts: int = 3) -> RegistryTarget:
    target.range_threshold = MiB
    target.range_parts = parts
    target.range_chunk = MiB  # pieces of 1 MiB, handed out in order to ``parts`` connections
    target.range_probe = MiB  # after the first piece on one connection, ...
    target.range_below = float("inf")  # ... one connection is never fast enough: the rest in parallel
    target.ranges_help = True  # the test registry is on loopback, where ranges are otherwise not tried
    target.backoff = 0.01
    return target


@pytest.fixture
def pushed(registry, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(5 * MiB + 3))
    blob = oci.Blob("application/octet-stream", oci.sha256_file(src), src.stat().st_size, path=src)
    repo = unique_repo()
    RegistryTarget(registry.host, repo, registry.options).put_blob(blob)
    return repo, blob, src.read_bytes()


def test_a_large_blob_comes_in_parallel_ranges_with_the_exact_bytes(registry, pushed, tmp_path):
    repo, blob, data = pushed
    with faulty_proxy(registry) as proxy:
        ranged(RegistryTarget(proxy.host, repo, proxy.options)).fetch_blob(blob.digest, blob.size, tmp_path / "out")
        asked = sorted(r.headers.get("Range") for r in proxy.seen("GET", "/blobs/"))
    assert (tmp_path / "out").read_bytes() == data
    starts = range(0, blob.size, MiB)
    assert asked == sorted(f"bytes={s}-{min(s + MiB, blob.size) - 1}" for s in starts)  # each piece once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src.bin"]  # no partial file left


def test_a_range_cut_short_is_asked_for_again_and_the_result_is_exact(registry, pushed, tmp_path):
    repo, blob, data = pushed
    step = MiB
    with faulty_proxy(registry, Fault("GET", "/blobs/", "truncate", count=1)) as proxy:
        t = ranged(RegistryTarget(proxy.host, repo, proxy.options))
        t.fetch_blob(blob.digest, blob.size, tmp_path / "out")
        asked = [r.headers.get("Range") for r in proxy.seen("GET", "/blobs/")]
    assert (tmp_path / "out").read_bytes() == data
    assert len(asked) == 6 + 1  # the first piece twice: its second request starts where the cut left it
    resumed = [a for a in asked if a.startswith("bytes=") and a.endswith(f"-{step - 1}")]
    assert len(resumed) == 2 and resumed[1] != "bytes=0-" + str(step - 1)


def serve_ranges(data: bytes, corrupt_at: int | None = None, shift: int = 0, ranges: bool = True):
    """A route serving ``data`` with Range support (optionally flipping one byte, or misplacing ranges)."""
    body = bytearray(data)
    if corrupt_at is not None:
        body[corrupt_at] ^= 0xFF

    def route(h: BaseHTTPRequestHandler, s: Hostile) -> None:
        m = re.match(r"bytes=(\d+)-(\d+)", h.headers.get("Range", ""))
        if not ranges or not m:
            h.send_response(200)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        start, end = int(m.group(1)) + shift, int(m.group(2)) + shift
        end = min(end, len(body) - 1)
        h.send_response(206)
        h.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
        h.send_header("Content-Length", str(end - start + 1))
        h.end_headers()
        h.wfile.write(body[start:end + 1])

    return route


def hostile_target(host: str) -> RegistryTarget:
    return ranged(RegistryTarget(host, "x/y", RegistryOptions(plain_http=True)))


def test_a_corrupt_range_is_refused_and_nothing_is_left(tmp_path):
    data = os.urandom(4 * MiB)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with hostile_registry(serve_ranges(data, corrupt_at=3 * MiB)) as (host, state):
        with pytest.raises(DigestMismatch, match="the downloaded bytes hash to sha256:"):
            hostile_target(host).fetch_blob(digest, len(data), tmp_path / "out" / "blob")
        assert len(state.paths) == 4  # every piece once: the mismatch shows only in the whole
    assert list((tmp_path / "out").iterdir()) == []


def test_a_misplaced_range_is_refused_and_nothing_is_left(tmp_path):
    data = os.urandom(4 * MiB)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with hostile_registry(serve_ranges(data, shift=1)) as (host, _), \
            pytest.raises(DigestMismatch, match=r"asked for bytes 0-\d+ of 4194304, the registry sent bytes 1-"):
        hostile_target(host).fetch_blob(digest, len(data), tmp_path / "out" / "blob")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_registry_that_ignores_range_still_gives_the_blob_in_one_stream(tmp_path):
    data = os.urandom(3 * MiB)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with hostile_registry(serve_ranges(data, ranges=False)) as (host, state):
        t = hostile_target(host)
        t.fetch_blob(digest, len(data), tmp_path / "blob")
        assert [h.get("Range") for h in state.headers] == [f"bytes=0-{MiB - 1}"]  # and got it all in one
        t.fetch_blob(digest, len(data), tmp_path / "again")  # remembered: no ranged try this time
        assert [h.get("Range") for h in state.headers] == [f"bytes=0-{MiB - 1}", None]
    assert (tmp_path / "blob").read_bytes() == data == (tmp_path / "again").read_bytes()


def test_a_connection_that_keeps_up_brings_the_rest_alone(registry, pushed, tmp_path):
    """On a fast link more connections only compete for the CPU: after the probe, one GET for the rest."""
    repo, blob, data = pushed
    with faulty_proxy(registry) as proxy:
        target = ranged(RegistryTarget(proxy.host, repo, proxy.options))
        target.range_below = 0  # any rate keeps up
        target.fetch_blob(blob.digest, blob.size, tmp_path / "out")
        asked = [r.headers.get("Range") for r in proxy.seen("GET", "/blobs/")]
    assert asked == [f"bytes=0-{MiB - 1}", f"bytes={MiB}-"]
    assert (tmp_path / "out").read_bytes() == data


def test_a_registry_on_loopback_sends_a_large_blob_on_one_connection(registry, pushed, tmp_path):
    """No probe and no ranges on loopback: under a busy CPU a slow probe used to start four connections."""
    repo, blob, data = pushed
    with faulty_proxy(registry) as proxy:
        target = RegistryTarget(proxy.host, repo, proxy.options)
        target.range_threshold = MiB
        target.fetch_blob(blob.digest, blob.size, tmp_path / "out")
        asked = [r.headers.get("Range") for r in proxy.seen("GET", "/blobs/")]
    assert asked == [None]
    assert (tmp_path / "out").read_bytes() == data
