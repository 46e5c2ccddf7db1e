"""Downloads: hashed while written beside the destination, verified, renamed; resumed and ranged for big blobs."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelhaul.errors import AuthError, DigestMismatch, NotFound
from modelhaul.meter import carrying
from modelhaul.registry.bodies import (
    BODY_LIMIT,
    IN_MEMORY_BODY,
    PIECE,
    RECV_PIECE,
    WRITE_PIECE,
    BodyTooLong,
    _body_reader,
    _read_bounded,
    _release_if_read,
    declared_length,
)
from modelhaul.registry.http import RegistryClient, _interrupted, _NoRanges, _Transient
from modelhaul.registry.partial import _Hasher, _local_write_failed, _Partial

if TYPE_CHECKING:
    import requests


class BlobDownloads(RegistryClient):
    """Getting blobs out of the repository."""

    def fetch_blob(self, digest: str, size: int, dest: Path) -> None:
        """Download to ``dest``: hash while writing ``dest``'s ``.partial`` sibling, verify, rename.

        A partial file left by an interrupted download (this call's retries, or an earlier process
        that gave up or was killed) is continued with a ``Range`` request. On a digest mismatch
        nothing is left at ``dest`` (nor a partial file).
        """
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        algo, _, hexdigest = digest.partition(":")
        what = f"{self.name}@{digest}"
        if algo not in hashlib.algorithms_available or not hexdigest:
            raise DigestMismatch(f"{what}: unsupported digest algorithm {algo!r}")
        if 0 <= size <= IN_MEMORY_BODY:
            return self._fetch_small(digest, size, dest, what)
        path = dest.with_name(f".{dest.name}.{hexdigest[:16]}.partial")
        while True:
            with open(path, "a+b") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # one writer per partial file, across processes
                try:
                    same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
                except FileNotFoundError:
                    same = False
                if not same:  # another process finished (or dropped) it while we waited
                    if dest.exists():
                        return
                    continue
                part = _Partial(f, algo, size)
                try:
                    resumed = part.offset > 0
                    got = None
                    if (not resumed and self._ranges_ok and self.ranges_help and self.range_parts > 1
                            and size >= self.range_threshold):
                        got = self._download_adaptive(part, digest, what)
                    if got is None:
                        got = self._retrying(functools.partial(self._download, part, digest, what), what)
                    if got != digest and resumed:  # a stale partial from elsewhere: start again once
                        part.reset()
                        got = self._retrying(functools.partial(self._download, part, digest, what), what)
                    if got != digest:
                        raise DigestMismatch(f"{what}: the downloaded bytes hash to {got}; the registry "
                                             "holds a corrupt blob (nothing was written)")
                    os.replace(path, dest)
                    return
                except (DigestMismatch, NotFound, AuthError):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                    raise

    def _download_adaptive(self, part: _Partial, digest: str, what: str) -> str | None:
        """A large blob: its first :attr:`range_probe` bytes on one connection, timed; then the rest.

        One connection that keeps up with hashing (:attr:`range_below` bytes per second or more, as
        on a local network, where more connections only compete for the CPU) brings the rest too:
        returns None and the caller continues from where the probe ended. A slower one (a long
        round trip, a per-connection cap) hands the rest to :meth:`_download_ranged`. A registry
        that answers the probe's ``Range`` with the whole blob has sent it all. Returns the digest
        once the whole blob is in.
        """
        t0 = time.monotonic()
        got = self._retrying(functools.partial(self._download, part, digest, what, stop=self.range_probe), what)
        if part.offset >= part.size:
            return got
        if part.offset / max(time.monotonic() - t0, 1e-6) >= self.range_below:
            return None
        try:
            return self._download_ranged(part, digest, what)
        except _NoRanges:
            self._ranges_ok = False
            return None

    def _download(self, part: _Partial, digest: str, what: str, stop: int | None = None) -> str:
        """Continue the download from the partial file's end; returns the digest of what it holds.

        With ``stop``, only up to that offset (a ranged GET; a registry that ignores ``Range`` sends
        the whole blob, which is then taken whole and remembered).
        """
        end = part.size if stop is None or part.size < 0 else min(stop, part.size)
        if part.size >= 0 and part.offset >= end:
            return part.digest()
        headers = {"Accept-Encoding": "identity"}
        if stop is not None:
            headers["Range"] = f"bytes={part.offset}-{end - 1}"
        elif part.offset:
            headers["Range"] = f"bytes={part.offset}-"
        resp = self._send("GET", f"{self.base}/blobs/{digest}", headers=headers, stream=True, what=what)
        with contextlib.closing(resp):
            if resp.status_code == 404:
                raise NotFound(f"{what}: blob not found in the registry")
            if resp.status_code == 416 and part.offset:
                part.reset()
                raise _Transient("range not satisfiable", 0)
            if resp.status_code == 200 and part.offset:  # the server ignored Range: start over
                part.reset()
            if resp.status_code == 200 and stop is not None:  # no ranges here: the whole blob comes
                self._ranges_ok, end = False, part.size
            elif resp.status_code == 206 and stop is not None:
                sent = resp.headers.get("Content-Range", "")
                if sent != f"bytes {part.offset}-{end - 1}/{part.size}":
                    raise DigestMismatch(f"{what}: asked for bytes {part.offset}-{end - 1} of {part.size}, the "
                                         f"registry sent {sent or 'no Content-Range'}; refusing the blob")
            elif resp.status_code == 206:
                start = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
                if not start or int(start.group(1)) != part.offset:
                    part.reset()
                    raise _Transient("unexpected Content-Range", 0)
            elif resp.status_code != 200:
                _read_bounded(resp, what)
                raise self._error(resp, what)
            self._check_length(resp, part, end, what)
            hasher = _Hasher(part) if end - part.offset > PIECE else None
            try:
                self._receive(resp, part, end, hasher, what)
            except Exception as e:
                raise _interrupted(e) from None
            _release_if_read(resp)
        if part.size >= 0 and part.offset < end:
            raise _Transient(f"connection closed at {part.offset} of {end} bytes")
        if part.size >= 0 and part.offset > part.size:
            raise DigestMismatch(f"{what}: the registry sent {part.offset} bytes, expected {part.size}")
        return part.digest()

    def _fetch_small(self, digest: str, size: int, dest: Path, what: str) -> None:
        """A small blob (most of a tokenizer directory): read whole in one lean exchange, verified in
        memory, then written once under a name of its own and renamed to ``dest``.

        Nothing at this size is worth resuming, so there is no partial file to lock, seek and re-hash:
        a third of the system calls of the large-blob path, and each one hands the GIL to the other
        downloading threads (~110 futex calls per blob were measured on that path, 1000 small files).
        """
        body = self._retrying(functools.partial(self._get_small, digest, size, what), what)
        algo, _, hexdigest = digest.partition(":")
        got = f"{algo}:{hashlib.new(algo, body).hexdigest()}"
        if got != digest:
            raise DigestMismatch(f"{what}: the downloaded bytes hash to {got}; the registry "
                                 "holds a corrupt blob (nothing was written)")
        tmp = dest.with_name(f".{dest.name}.{hexdigest[:16]}.{os.getpid()}-{threading.get_native_id()}.small")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666)
            try:
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, dest)
        except OSError as e:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise _local_write_failed(str(tmp), e) from None

    def _get_small(self, digest: str, size: int, what: str) -> bytes:
        """A small blob's body, read whole in one lean exchange (at most ``size`` bytes of it)."""
        try:
            resp = self._send("GET", f"{self.base}/blobs/{digest}", headers={"Accept-Encoding": "identity"},
                              what=what, limit=max(size, BODY_LIMIT))
        except BodyTooLong as e:
            raise _too_long(what, size, size, e.declared) from None
        if resp.status_code == 404:
            raise NotFound(f"{what}: blob not found in the registry")
        if resp.status_code != 200:
            raise self._error(resp, what)
        body = resp.content
        if len(body) > size:
            raise _too_long(what, size, size, declared_length(resp.headers))
        self.progress(len(body))
        if len(body) < size:
            raise _Transient(f"connection closed at {len(body)} of {size} bytes")
        return body

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

    @staticmethod
    def _check_length(resp: requests.Response, part: _Partial, end: int, what: str) -> None:
        """Refuse a body announced longer than asked for (at most the descriptor's size) before writing."""
        declared = declared_length(resp.headers)
        if part.size >= 0 and declared is not None and part.offset + declared > end:
            raise _too_long(what, end, part.size, part.offset + declared)

    def _receive(self, resp: requests.Response, part: _Partial, end: int, hasher: _Hasher | None,
                 what: str) -> None:
        """Receive the body into ``part`` up to offset ``end``, with ``hasher`` hashing on another thread.

        Reads never go past ``end`` (at most the descriptor's size): there, one more byte is asked
        for, and a registry that still has some is refused, so a lying registry cannot fill the disk.
        """
        received = part.offset
        own = bytearray(PIECE) if hasher is None else None
        readinto = _body_reader(resp)
        try:
            while True:
                buf = own if hasher is None else hasher.free.get()
                want = len(buf) if part.size < 0 else min(len(buf), end - received)
                if hasher is None:
                    n = readinto(memoryview(buf)[:want]) if want else 0
                    if n:
                        part.append(memoryview(buf)[:n])
                else:
                    n = _receive_written(readinto, part, memoryview(buf)[:want], hasher, buf)
                if not n:
                    if want == 0 and readinto(memoryview(bytearray(1))):
                        raise _too_long(what, end, part.size)
                    break
                received += n
                if self.progress:
                    self.progress(n)
        finally:  # a failed write is not retried (see _local_write_failed): nothing to re-hash
            if hasher is not None:
                hasher.close()


def _too_long(what: str, end: int, size: int, declared: int | None = None) -> DigestMismatch:
    """A blob body longer than ``end`` bytes (the descriptor's ``size``, or the end of the range asked
    for): announced so in its Content-Length (``declared``), or found sending more."""
    if declared is not None and declared > end:
        said = "the descriptor says" if end == size else "asked for"
        return DigestMismatch(f"{what}: the registry announces {declared} bytes, {said} {end}; "
                              "refusing the blob (nothing was kept)")
    asked = f"the descriptor's {end} bytes" if end == size else f"the {end} bytes asked for"
    return DigestMismatch(f"{what}: the registry sent more than {asked}; refusing the blob (nothing was kept)")


def _receive_written(readinto: Any, part: _Partial, view: memoryview, hasher: _Hasher, buf: bytearray) -> int:
    """Fill ``view`` (of the pool's ``buf``), writing each :data:`WRITE_PIECE` as soon as it arrives;
    then hand what was written to the hashing thread, also when the connection fails half-way (a
    retry continues from the file's end, so every written byte must be in the hash)."""
    n = 0
    try:
        while n < len(view):
            got = readinto(view[n:min(n + WRITE_PIECE, len(view))])
            if not got:
                break
            part.write(view[n:n + got])
            n += got
    finally:
        if n:
            hasher.work.put((buf, n))
        else:
            hasher.free.put(buf)
    return n
