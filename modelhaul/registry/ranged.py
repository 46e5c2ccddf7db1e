"""A large blob over several connections at once, for links where one connection is slow.

:meth:`~modelhaul.registry.download.BlobDownloads.fetch_blob` times the first bytes of a large
blob on one connection and hands the rest here when they come slower than hashing could take
them (a long round trip, a per-connection cap); on a local network one connection brings it all.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from modelhaul.errors import DigestMismatch, NotFound
from modelhaul.meter import carrying
from modelhaul.registry.bodies import RECV_PIECE, _body_reader, _read_bounded, _release_if_read
from modelhaul.registry.http import RegistryClient, _interrupted, _NoRanges, _Transient
from modelhaul.registry.partial import _local_write_failed, _Partial

if TYPE_CHECKING:
    import requests


class RangedDownloads(RegistryClient):
    """Ranged GETs of one blob, written in place and hashed right behind the written prefix."""

    def _download_ranged(self, part: _Partial, digest: str, what: str) -> str:
        """Download a large blob over :attr:`range_parts` connections at once; returns the digest.

        The blob is cut into :attr:`range_chunk` pieces handed out in order, so the pieces in flight
        are always next to each other and the written prefix grows steadily: this thread hashes
        the file right behind it (the bytes are still in the page cache), and verification ends
        soon after the last byte arrives. (Four equal quarters would leave three of them to hash
        after the transfer.) Each piece is written in place (``pwrite``) and retried on its own.
        The first piece goes alone: a registry that ignores ``Range`` (answers 200) raises
        :class:`_NoRanges` before any other request. Any failure leaves the partial file empty,
        never with holes.
        """
        size, url = part.size, f"{self.base}/blobs/{digest}"
        step = max(self.range_chunk, -(-size // 256))
        spans = [(start, min(start + step, size)) for start in range(part.offset, size, step)]
        done = [start for start, _ in spans]  # bytes written so far, per piece (a frontier)
        cond = threading.Condition()
        accepted = threading.Event()  # the registry answered the first piece with 206
        failed: list[BaseException] = []
        handed_out = iter(range(len(spans)))
        fd = os.open(part.f.name, os.O_RDWR)

        def fetch(i: int) -> None:
            start, end = spans[i]

            def attempt() -> None:
                pos = done[i]
                if pos >= end:
                    return
                resp = self._send("GET", url, what=what, stream=True,
                                  headers={"Accept-Encoding": "identity", "Range": f"bytes={pos}-{end - 1}"})
                with contextlib.closing(resp):
                    if resp.status_code == 404:
                        raise NotFound(f"{what}: blob not found in the registry")
                    if resp.status_code == 200 and i == 0:
                        raise _NoRanges()
                    if resp.status_code != 206:
                        _read_bounded(resp, what)
                        raise self._error(resp, what)
                    got = resp.headers.get("Content-Range", "")
                    if got != f"bytes {pos}-{end - 1}/{size}":
                        raise DigestMismatch(f"{what}: asked for bytes {pos}-{end - 1} of {size}, the "
                                             f"registry sent {got or 'no Content-Range'}; refusing the blob")
                    accepted.set()
                    try:
                        self._receive_range(resp, fd, part.f.name, i, end, done, cond, failed, what)
                        _release_if_read(resp)
                    except (DigestMismatch, _Transient):
                        raise
                    except Exception as e:
                        raise _interrupted(e) from None

            self._retrying(attempt, what)

        def connection(first: bool) -> None:
            """One connection's share: the next piece not yet handed out, until none is left."""
            try:
                if first:
                    fetch(next(handed_out))
                else:
                    accepted.wait()  # the first piece tells whether the registry serves ranges at all
                while not failed:
                    with cond:
                        i = next(handed_out, None)
                    if i is None:
                        return
                    fetch(i)
            except BaseException as e:
                with cond:
                    failed.append(e)
                    cond.notify_all()
                accepted.set()  # release the waiting connections: they see ``failed`` and stop

        try:
            try:
                os.ftruncate(fd, size)
            except OSError as e:
                raise _local_write_failed(part.f.name, e) from None
            parts = min(self.range_parts, len(spans))
            with ThreadPoolExecutor(parts, thread_name_prefix="modelhaul-range") as pool:
                futures = [pool.submit(carrying(connection), n == 0) for n in range(parts)]
                try:
                    h = self._hash_following(fd, part.h, spans, done, cond, failed)
                except BaseException as e:  # stop the connections before the pool waits for them
                    with cond:
                        failed.append(e)
                        cond.notify_all()
                    accepted.set()
                for fut in futures:
                    fut.result()
            if failed:
                raise failed[0]
        except BaseException:
            part.reset()
            raise
        finally:
            os.close(fd)
        part.h, part.offset = h, size  # type: ignore[possibly-undefined]
        return f"{part.algo}:{h.hexdigest()}"

    def _receive_range(self, resp: requests.Response, fd: int, path: str, i: int, end: int, done: list[int],
                       cond: threading.Condition, failed: list[BaseException], what: str) -> None:
        """Write one range's body at its place in the file, advancing its frontier ``done[i]``."""
        readinto = _body_reader(resp)
        buf = bytearray(RECV_PIECE)
        view = memoryview(buf)
        while done[i] < end and not failed:
            n = readinto(view[: min(len(buf), end - done[i])])
            if not n:
                raise _Transient(f"connection closed at {done[i]} of range ending {end}")
            written = 0
            while written < n:
                try:
                    written += os.pwrite(fd, view[written:n], done[i] + written)
                except OSError as e:
                    raise _local_write_failed(path, e) from None
            with cond:
                done[i] += n
                cond.notify_all()
            if self.progress:
                self.progress(n)
        if not failed and readinto(memoryview(bytearray(1))):
            raise DigestMismatch(f"{what}: the registry sent more than the range asked for; refusing the blob")

    @staticmethod
    def _hash_following(fd: int, h: Any, spans: list[tuple[int, int]], done: list[int],
                        cond: threading.Condition, failed: list[BaseException]) -> Any:
        """Hash the pieces into ``h`` in order, waiting at each piece's frontier until it is written."""
        buf = bytearray(RECV_PIECE)
        view = memoryview(buf)
        for i, (start, end) in enumerate(spans):
            pos = start
            while pos < end:
                with cond:
                    while done[i] <= pos and not failed:
                        cond.wait()
                    if failed:
                        return h
                    ready = done[i]
                while pos < ready:
                    n = os.preadv(fd, [view[: min(len(buf), ready - pos)]], pos)
                    h.update(view[:n])
                    pos += n
        return h
