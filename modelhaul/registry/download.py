"""Downloads: hashed while written beside the destination, verified, renamed; resumed and ranged for big blobs."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import queue
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from modelhaul.errors import AuthError, DigestMismatch, NotFound
from modelhaul.registry.http import (
    PIECE,
    RECV_PIECE,
    MiB,
    RegistryClient,
    _body_reader,
    _interrupted,
    _NoRanges,
    _read_bounded,
    _Transient,
)


class _Writer:
    """Writes, then hashes, received pieces on two more threads, so both overlap the network.

    A fixed pool of three 2 MiB buffers (one per stage) bounds memory, also with four blobs
    downloading at once: the receiver waits when the pipeline falls behind. Received bytes land in
    these buffers once; the write thread writes a buffer while the hash thread hashes the one
    before (file writes and hashlib release the GIL).
    """

    def __init__(self, part: _Partial, buffers: int = 3):
        self.part = part
        self.error: BaseException | None = None
        self.free: queue.Queue[bytearray] = queue.Queue()
        self.work: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        self.written: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        for _ in range(buffers):
            self.free.put(bytearray(RECV_PIECE))
        self.threads = [threading.Thread(target=self._write, name="modelhaul-write", daemon=True),
                        threading.Thread(target=self._hash, name="modelhaul-hash", daemon=True)]
        for t in self.threads:
            t.start()

    def _write(self) -> None:
        while (item := self.work.get()) is not None:
            buf, n = item
            if self.error is None:
                try:
                    self.part.write(memoryview(buf)[:n])
                except BaseException as e:  # reported by close() on the receiving thread
                    self.error = e
            self.written.put(item)
        self.written.put(None)

    def _hash(self) -> None:
        while (item := self.written.get()) is not None:
            buf, n = item
            if self.error is None:
                self.part.h.update(memoryview(buf)[:n])
            self.free.put(buf)

    def close(self) -> None:
        """Wait until every received piece is written and hashed; re-raise a write error."""
        self.work.put(None)
        for t in self.threads:
            t.join()
        if self.error is not None:
            self.part.resync()
            raise self.error


class _Partial:
    """A download in progress: the open partial file and the hash of the bytes it holds."""

    def __init__(self, f: Any, algo: str, size: int):
        self.f, self.algo, self.size = f, algo, size if size is not None else -1
        self.h = hashlib.new(algo)
        end = f.seek(0, os.SEEK_END)
        if self.size >= 0 and end > self.size:
            self.reset()
            return
        self.resync()

    def resync(self) -> None:
        """Re-hash what the file holds (what an earlier attempt wrote: cheaper than downloading it again)."""
        self.f.flush()
        self.f.seek(0)
        self.h = hashlib.new(self.algo)
        buf = bytearray(4 * MiB)
        view = memoryview(buf)
        while n := self.f.readinto(buf):
            self.h.update(view[:n])
        self.offset = self.f.seek(0, os.SEEK_END)

    def reset(self) -> None:
        self.f.seek(0)
        self.f.truncate(0)
        self.h = hashlib.new(self.algo)
        self.offset = 0

    def append(self, data: memoryview) -> None:
        self.write(data)
        self.h.update(data)

    def write(self, data: memoryview) -> None:
        """Write without hashing (the caller hashes, in order)."""
        self.f.write(data)
        self.offset += len(data)

    def digest(self) -> str:
        self.f.flush()
        return f"{self.algo}:{self.h.hexdigest()}"



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
                    if not resumed and self._ranges_ok and self.range_parts > 1 and size >= self.range_threshold:
                        try:
                            got = self._download_ranged(part, digest, what)
                        except _NoRanges:
                            self._ranges_ok = False
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

    def _download(self, part: _Partial, digest: str, what: str) -> str:
        """Continue the download from the partial file's end; returns the digest of the whole file."""
        if part.size >= 0 and part.offset >= part.size:
            return part.digest()
        headers = {"Accept-Encoding": "identity"}
        if part.offset:
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
            elif resp.status_code == 206:
                start = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
                if not start or int(start.group(1)) != part.offset:
                    part.reset()
                    raise _Transient("unexpected Content-Range", 0)
            elif resp.status_code != 200:
                _read_bounded(resp, what)
                raise self._error(resp, what)
            self._check_length(resp, part, what)
            writer = _Writer(part) if part.size > PIECE else None
            try:
                self._receive(resp, part, writer, what)
            except Exception as e:
                raise _interrupted(e) from None
        if part.size >= 0 and part.offset < part.size:
            raise _Transient(f"connection closed at {part.offset} of {part.size} bytes")
        if part.size >= 0 and part.offset > part.size:
            raise DigestMismatch(f"{what}: the registry sent {part.offset} bytes, expected {part.size}")
        return part.digest()

    def _download_ranged(self, part: _Partial, digest: str, what: str) -> str:
        """Download a large blob as :attr:`range_parts` ranged GETs at once; returns the digest.

        Each range is written in place (``pwrite``) by its own thread and retried on its own; this
        thread hashes the file in order, following the ranges as they fill (the bytes are still in
        the page cache), so verification overlaps the transfer. The first range goes alone: a
        registry that ignores ``Range`` (answers 200) raises :class:`_NoRanges` before any other
        request. Any failure leaves the partial file empty, never with holes.
        """
        size, url = part.size, f"{self.base}/blobs/{digest}"
        step = -(-size // self.range_parts)
        spans = [(start, min(start + step, size)) for start in range(0, size, step)]
        done = [start for start, _ in spans]  # bytes written so far, per range (a frontier)
        cond = threading.Condition()
        accepted = threading.Event()  # the registry answered the first range with 206
        failed: list[BaseException] = []
        fd = os.open(part.f.name, os.O_RDWR)

        def fetch(i: int) -> None:
            start, end = spans[i]
            if i:
                accepted.wait()  # the first range tells whether the registry serves ranges at all
            if failed:
                return

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
                        self._receive_range(resp, fd, i, end, done, cond, failed, what)
                    except (DigestMismatch, _Transient):
                        raise
                    except Exception as e:
                        raise _interrupted(e) from None

            try:
                self._retrying(attempt, what)
            except BaseException as e:
                with cond:
                    failed.append(e)
                    cond.notify_all()
                accepted.set()  # release the waiting ranges: they see ``failed`` and stop

        try:
            os.ftruncate(fd, size)
            with ThreadPoolExecutor(len(spans), thread_name_prefix="modelhaul-range") as pool:
                futures = [pool.submit(fetch, i) for i in range(len(spans))]
                try:
                    h = self._hash_following(fd, part.algo, spans, done, cond, failed)
                except BaseException as e:  # stop the ranges before the pool waits for them
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

    def _receive_range(self, resp: requests.Response, fd: int, i: int, end: int, done: list[int],
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
                written += os.pwrite(fd, view[written:n], done[i] + written)
            with cond:
                done[i] += n
                cond.notify_all()
            if self.progress:
                self.progress(n)
        if not failed and readinto(memoryview(bytearray(1))):
            raise DigestMismatch(f"{what}: the registry sent more than the range asked for; refusing the blob")

    @staticmethod
    def _hash_following(fd: int, algo: str, spans: list[tuple[int, int]], done: list[int],
                        cond: threading.Condition, failed: list[BaseException]) -> Any:
        """Hash the file from its start, waiting at each range's frontier until the range is written."""
        h = hashlib.new(algo)
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
    def _check_length(resp: requests.Response, part: _Partial, what: str) -> None:
        """Refuse a body announced longer than the descriptor's size before writing any of it."""
        length = resp.headers.get("Content-Length", "")
        if part.size >= 0 and length.isdigit() and part.offset + int(length) > part.size:
            raise DigestMismatch(f"{what}: the registry announces {part.offset + int(length)} bytes, the "
                                 f"descriptor says {part.size}; refusing the blob (nothing was kept)")

    def _receive(self, resp: requests.Response, part: _Partial, writer: _Writer | None, what: str) -> None:
        """Receive the body into ``part``, with ``writer`` writing and hashing on another thread if given.

        Reads never go past the descriptor's size: at the size, one more byte is asked for, and a
        registry that still has some is refused, so a lying registry cannot fill the disk.
        """
        received = part.offset
        own = bytearray(PIECE) if writer is None else None
        readinto = _body_reader(resp)
        try:
            while writer is None or writer.error is None:
                buf = own if writer is None else writer.free.get()
                want = len(buf) if part.size < 0 else min(len(buf), part.size - received)
                if want == 0:
                    if writer is not None:
                        writer.free.put(buf)
                    if readinto(memoryview(bytearray(1))):
                        raise DigestMismatch(f"{what}: the registry sent more than the descriptor's "
                                             f"{part.size} bytes; refusing the blob (nothing was kept)")
                    break
                n = readinto(memoryview(buf)[:want])
                if not n:
                    if writer is not None:
                        writer.free.put(buf)
                    break
                received += n
                if writer is None:
                    part.append(memoryview(buf)[:n])
                else:
                    writer.work.put((buf, n))
                if self.progress:
                    self.progress(n)
        finally:
            if writer is not None:
                writer.close()

