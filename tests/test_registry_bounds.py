"""A hostile or broken registry cannot exhaust time, disk or memory (issue 10, point 6).

A small HTTP server in a thread plays the registry: it streams more than a blob's descriptor says,
a 300 MB manifest (generated on the fly, never held in memory), a tag list whose ``Link`` loops,
and a connection it accepts but never answers. Each case must end in one clear modelhaul error,
with nothing left on disk and only a bounded number of bytes taken from the socket.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

import pytest

from modelhaul.errors import ConfigError, DigestMismatch, RegistryError
from modelhaul.registry import RegistryTarget
from modelhaul.registry_options import RegistryOptions
from tests.fixtures.hostile import Hostile, Route, hostile_registry

MiB = 1 << 20
PIECE = b"\0" * (256 * 1024)


def stream(handler: BaseHTTPRequestHandler, state: Hostile, total: int, content_type: str) -> None:
    """Send ``total`` zero bytes with no Content-Length, counting what the socket accepted."""
    handler.send_response(200)
    handler.send_header("Content-Type", content_type)
    handler.end_headers()
    while state.sent < total:
        handler.wfile.write(PIECE)
        state.sent += len(PIECE)


def options(**kw: float) -> RegistryOptions:
    return RegistryOptions(plain_http=True, **kw)


def target(host: str, **kw: float) -> RegistryTarget:
    t = RegistryTarget(host, "x/y", options(**kw))
    t.backoff = 0.01
    return t


def test_a_blob_stream_is_cut_at_its_descriptor_size(tmp_path):
    size = 1000
    digest = "sha256:" + hashlib.sha256(b"\0" * size).hexdigest()
    dest = tmp_path / "out" / "blob"
    with hostile_registry(lambda h, s: stream(h, s, 200 * MiB, "application/octet-stream")) as (host, state):
        with pytest.raises(DigestMismatch, match=r"sent more than the descriptor's 1000 bytes"):
            target(host).fetch_blob(digest, size, dest)
        assert state.sent < 32 * MiB  # the socket's buffers, not the 200 MB on offer
    assert list((tmp_path / "out").iterdir()) == []  # neither the blob nor a partial file


def test_a_blob_announced_longer_than_its_descriptor_is_refused_before_writing(tmp_path):
    def announce(h: BaseHTTPRequestHandler, s: Hostile) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(200 * MiB))
        h.end_headers()
        h.wfile.write(PIECE)
        s.sent += len(PIECE)

    dest = tmp_path / "out" / "blob"
    with hostile_registry(announce) as (host, _), \
            pytest.raises(DigestMismatch, match=r"announces 209715200 bytes, the descriptor says 1000"):
        target(host).fetch_blob("sha256:" + "a" * 64, 1000, dest)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_blob_of_the_right_size_still_arrives(tmp_path):
    """The control: the same server sending exactly the descriptor's bytes is accepted."""
    size = 3 * MiB + 5
    digest = "sha256:" + hashlib.sha256(b"\0" * size).hexdigest()
    # the server sends whole 256 KiB pieces: 3 MiB + 256 KiB, i.e. more than ``size``
    with hostile_registry(lambda h, s: stream(h, s, size, "application/octet-stream")) as (host, _), \
            pytest.raises(DigestMismatch, match="sent more than"):
        target(host).fetch_blob(digest, size, tmp_path / "blob")
    exact = 3 * MiB
    digest = "sha256:" + hashlib.sha256(b"\0" * exact).hexdigest()
    with hostile_registry(lambda h, s: stream(h, s, exact, "application/octet-stream")) as (host, _):
        target(host).fetch_blob(digest, exact, tmp_path / "blob")
    assert (tmp_path / "blob").stat().st_size == exact


def test_a_300_mb_manifest_is_refused_after_4_mib():
    with hostile_registry(lambda h, s: stream(h, s, 300 * MiB, "application/vnd.oci.image.manifest.v1+json")
                          ) as (host, state):
        with pytest.raises(RegistryError, match=r"x/y:v1: .*at most 4 MiB") as err:
            target(host).get_manifest("v1")
        assert state.sent < 40 * MiB
    assert "\n" not in str(err.value)


def test_a_manifest_announced_above_4_mib_is_refused_before_reading():
    def announce(h: BaseHTTPRequestHandler, s: Hostile) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        h.send_header("Content-Length", str(300 * MiB))
        h.end_headers()
        h.wfile.write(PIECE)

    with hostile_registry(announce) as (host, _), \
            pytest.raises(RegistryError, match=r"answered with 314572800 bytes; .*at most 4 MiB"):
        target(host).get_manifest("v1")


def tag_page(next_link: Callable[[Hostile], str]) -> Route:
    def route(h: BaseHTTPRequestHandler, s: Hostile) -> None:
        body = b'{"name": "x/y", "tags": ["a"]}'
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Link", f'<{next_link(s)}>; rel="next"')
        h.end_headers()
        h.wfile.write(body)

    return route


def test_a_looping_tag_list_link_stops_with_an_error():
    with hostile_registry(tag_page(lambda s: "/v2/x/y/tags/list?n=1000")) as (host, state), \
            pytest.raises(RegistryError, match="links back to a page it already sent"):
        target(host).list_tags()
    assert len(state.paths) == 1


def test_a_tag_list_that_never_ends_stops_at_the_page_cap():
    with hostile_registry(tag_page(lambda s: f"/v2/x/y/tags/list?n=1&last={len(s.paths)}")) as (host, state):
        t = target(host)
        t.max_tag_pages = 5
        with pytest.raises(RegistryError, match="past 5 pages"):
            t.list_tags()
    assert len(state.paths) == 5


def test_a_registry_that_never_answers_fails_within_the_retry_budget():
    def silent(h: BaseHTTPRequestHandler, s: Hostile) -> None:
        s.release.wait(60)  # accept, read the request, say nothing

    with hostile_registry(silent) as (host, state):
        t = target(host, connect_timeout=1, read_timeout=0.3, retry_budget=1)
        start = time.monotonic()
        with pytest.raises(RegistryError, match=r"timed out.*retry budget 1s \(MODELHAUL_RETRY_BUDGET\)") as err:
            t.get_manifest("v1")
        assert time.monotonic() - start < 30  # a generous guard: without the budget this is 6 x 300 s
        assert 2 <= len(state.paths) <= t.attempts
    assert "\n" not in str(err.value)


def test_time_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MODELHAUL_TIMEOUT", "7")
    monkeypatch.setenv("MODELHAUL_CONNECT_TIMEOUT", "2.5")
    monkeypatch.setenv("MODELHAUL_RETRY_BUDGET", "0")
    opts = RegistryOptions.resolve()
    assert (opts.read_timeout, opts.connect_timeout, opts.retry_budget) == (7.0, 2.5, 0.0)
    assert RegistryOptions.resolve(read_timeout=3).read_timeout == 3.0  # an explicit value wins
    monkeypatch.setenv("MODELHAUL_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match=r"MODELHAUL_TIMEOUT='soon': expected a number of seconds"):
        RegistryOptions.resolve()


def test_a_head_of_a_blob_above_the_body_limit_is_not_a_body(registry, tmp_path):
    """HEAD answers carry the blob's Content-Length (here 5 MiB) and no body: not refused."""
    from modelhaul import oci
    from tests.fixtures.registry import unique_repo

    src = tmp_path / "big.bin"
    src.write_bytes(b"\1" * (5 * MiB))
    blob = oci.Blob("application/octet-stream", oci.sha256_file(src), 5 * MiB, path=src)
    t = RegistryTarget(registry.host, unique_repo(), registry.options)
    t.put_blob(blob)
    assert RegistryTarget(registry.host, t.repository, registry.options).has_blob(blob.digest)
