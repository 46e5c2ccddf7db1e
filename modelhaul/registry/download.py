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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelhaul.errors import AuthError, DigestMismatch, NotFound
from modelhaul.registry.bodies import (
    BODY_LIMIT,
    IN_MEMORY_BODY,
    PIECE,
    WRITE_PIECE,
    BodyTooLong,
    _body_reader,
    _read_bounded,
    _release_if_read,
    declared_length,
)
from modelhaul.registry.http import _interrupted, _NoRanges, _Transient
from modelhaul.registry.partial import _Hasher, _local_write_failed, _Partial
from modelhaul.registry.ranged import RangedDownloads

if TYPE_CHECKING:
    import requests


class BlobDownloads(RangedDownloads):
    """Getting blobs out of the repository."""

    def fetch_blob(self, digest: str, size: int, dest: Path) -> None:
        """Download to ``dest``: hash while writing ``dest``'s ``.partial`` sibling, verify, rename.

        A partial file left by an interrupted download (this call's retries, or an earlier process
        that gave up or was killed) is continued with a ``Range`` request. A blob of at most
        :data:`~modelhaul.registry.bodies.IN_MEMORY_BODY` bytes is verified in memory instead (see
        :meth:`_fetch_small`). On a digest mismatch nothing is left at ``dest`` (nor a partial file).
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
                        raise _corrupt(what, got)
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
            raise _corrupt(what, got)
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


def _corrupt(what: str, got: str) -> DigestMismatch:
    """The bytes of a whole blob hash to ``got``, not to the digest it was asked for by."""
    return DigestMismatch(f"{what}: the downloaded bytes hash to {got}; the registry holds a corrupt blob "
                          "(nothing was written)")


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
