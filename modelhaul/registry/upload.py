"""Uploads: blobs stream from disk in MiB pieces (monolithic, chunked or hashed while sent), mounts, parallel pushes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from modelhaul import oci
from modelhaul.errors import DigestMismatch, RegistryError
from modelhaul.registry.bodies import IN_MEMORY_BODY, MiB, _FileBody
from modelhaul.registry.http import RegistryClient, _ChunksRejected, _error_codes, _Transient

if TYPE_CHECKING:
    import requests


class _SinkAborted(Exception):
    """The upload stopped (the request failed): the producer stops writing."""


class _StreamSink:
    """A writable file object whose bytes become a request body, in MiB pieces, as they are written.

    The producer thread writes; the sending thread iterates :meth:`pieces`. A bounded queue keeps
    memory at a few pieces and makes the faster side wait for the slower.
    """

    def __init__(self, progress: Callable[[int], None] | None, piece: int = 2 * MiB, depth: int = 3):
        self.piece, self.progress = piece, progress
        self.buf = bytearray()
        self.queue: queue.Queue[bytes | None] = queue.Queue(depth)
        self.error: BaseException | None = None
        self.aborted = threading.Event()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        if self.aborted.is_set():
            raise _SinkAborted()
        self.buf += b
        while len(self.buf) >= self.piece:
            self._put(bytes(self.buf[: self.piece]))
            del self.buf[: self.piece]
        return len(b)

    def flush(self) -> None:
        pass

    def _put(self, item: bytes | None) -> None:
        while not self.aborted.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _SinkAborted()

    def close(self) -> None:
        if self.buf:
            self._put(bytes(self.buf))
            self.buf.clear()
        self._put(None)

    def fail(self, e: BaseException) -> None:
        self.error = e
        with contextlib.suppress(_SinkAborted):
            self._put(None)

    def abort(self) -> None:
        self.aborted.set()

    def pieces(self) -> Iterator[bytes]:
        while (item := self.queue.get()) is not None:
            if self.progress:
                self.progress(len(item))
            yield item
        if self.error is not None:  # the producer failed: cut the body short (the request fails)
            raise self.error



class BlobUploads(RegistryClient):
    """Putting blobs into the repository."""

    def skip_asking_if_new(self, digests: Iterable[str]) -> bool:
        """When the repository has no tag yet, upload ``digests`` without a HEAD each; True if so.

        For small blobs a HEAD costs a round trip as much as sending them, so a first push of many
        small files (a tokenizer directory) skips a third of its requests. One tag-list request
        decides; a registry that already held one of them only receives its bytes again.
        """
        try:
            resp = self._request("GET", f"{self.base}/tags/list?n=1", what=self.name)
        except RegistryError:  # listing refused (a push-only token): ask per blob, as before
            return False
        new = resp.status_code == 404 or (resp.status_code == 200 and not _tags_in(resp))
        if new:
            self._absent.update(d for d in digests if d not in self._present)
        return new

    def has_blob(self, digest: str) -> bool:
        if digest in self._present:  # callers often ask has_blob then put_blob: one HEAD is enough
            return True
        what = f"{self.name}@{digest}"
        resp = self._request("HEAD", f"{self.base}/blobs/{digest}", what=what)
        if resp.status_code == 200:
            self._is_present(digest)
            return True
        if resp.status_code == 404:
            self._absent.add(digest)  # the put_blob that usually follows need not ask again
            return False
        raise self._error(resp, what)

    def blob_path(self, digest: str) -> Path | None:
        return None

    def put_blob(self, blob: oci.Blob, mount_from: str | None = None) -> None:
        """Upload ``blob`` unless the registry has it; mount it from ``mount_from`` when possible."""
        if blob.data is None and blob.path is None:
            raise RegistryError(f"{blob.digest}: a blob to upload needs a path or data")
        if blob.data is None:
            actual = os.stat(blob.path).st_size  # type: ignore[arg-type]
            if actual != blob.size:
                raise DigestMismatch(f"{blob.path}: is {actual} bytes, expected {blob.size} for "
                                     f"{blob.digest}; the file changed since it was packed: pack it again")
        if blob.digest in self._absent:  # just asked (a stale answer only means uploading what is there)
            self._absent.discard(blob.digest)
        elif self.has_blob(blob.digest):
            return
        source = mount_from or self.mount_from
        if source == self.repository:
            source = None
        self._retrying(lambda: self._upload(blob, source), f"{self.name}@{blob.digest}")
        self._is_present(blob.digest)

    def mount_blob(self, digest: str, from_repository: str) -> bool:
        """Ask the registry to link ``digest`` from another of its repositories; True when it did."""
        what = f"{self.name}@{digest}"

        def attempt() -> bool:
            url = f"{self.base}/blobs/uploads/?mount={digest}&from={from_repository}"
            resp = self._send("POST", url, what=what, headers={"Content-Length": "0"})
            if resp.status_code == 201:
                return True
            if resp.status_code == 202 and resp.headers.get("Location"):  # not mounted: drop the session
                with contextlib.suppress(_Transient, RegistryError):
                    self._send("DELETE", urljoin(resp.url, resp.headers["Location"]), what=what).close()
                return False
            raise self._error(resp, what)

        if from_repository == self.repository:
            return self.has_blob(digest)
        mounted = bool(self._retrying(attempt, what))
        if mounted:
            self._is_present(digest)
        return mounted

    def put_blobs(self, blobs: Iterable[oci.Blob], parallel: int | None = None) -> None:
        """Upload several blobs at once (``parallel`` threads); the first failure stops the others."""
        unique = list({b.digest: b for b in blobs}.values())
        n = max(1, min(parallel or self.parallel, len(unique)))
        if n == 1:
            for b in unique:
                self.put_blob(b)
            return
        with ThreadPoolExecutor(n, thread_name_prefix="modelhaul-push") as pool:
            futures = [pool.submit(self.put_blob, b) for b in unique]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            for f in futures:
                if f.done() and not f.cancelled() and f.exception():
                    raise f.exception()  # type: ignore[misc]

    def _upload(self, blob: oci.Blob, mount_from: str | None) -> None:
        """One upload session: POST (mount or start), then PATCH chunks or one PUT. Raises _Transient."""
        what = f"{self.name}@{blob.digest}"
        url = f"{self.base}/blobs/uploads/"
        if mount_from:
            url += f"?mount={blob.digest}&from={mount_from}"
        resp = self._send("POST", url, what=what, headers={"Content-Length": "0"})
        if resp.status_code == 201 and mount_from:
            return  # mounted: no bytes moved
        location = self._location(resp, what)
        if blob.data is None and blob.size <= IN_MEMORY_BODY:
            body = _read_small(blob.path, blob.size, blob.digest)  # type: ignore[arg-type]
            self.progress(len(body))
        elif blob.data is None and blob.size > self.chunk_threshold and self._chunks_ok:
            try:
                location = self._patch_chunks(location, blob, what)
                body: Any = b""
            except _ChunksRejected:
                self._chunks_ok = False
                with contextlib.suppress(_Transient, RegistryError):
                    self._send("DELETE", location, what=what).close()
                resp = self._send("POST", f"{self.base}/blobs/uploads/", what=what,
                                  headers={"Content-Length": "0"})
                location = self._location(resp, what)
                body = _FileBody(blob.path, 0, blob.size, self.progress)  # type: ignore[arg-type]
        elif blob.data is not None:
            body = blob.data
        else:
            body = _FileBody(blob.path, 0, blob.size, self.progress)  # type: ignore[arg-type]
        sep = "&" if "?" in location else "?"
        resp = self._send("PUT", f"{location}{sep}digest={blob.digest}", body=body, what=what,
                          headers={"Content-Type": "application/octet-stream"})
        if resp.status_code in (201, 204):
            return
        if resp.status_code == 400 and "DIGEST_INVALID" in _error_codes(resp):
            raise DigestMismatch(f"{what}: the registry computed another digest for the bytes sent from "
                                 f"{blob.path or 'memory'}; the file changed since it was packed: "
                                 "pack it again")
        raise self._error(resp, what)

    def upload_small(self, path: Path, size: int, media_type: str = "application/octet-stream") -> oci.Blob:
        """Upload a small file whose digest is not known yet: read whole, hashed, sent without a HEAD.

        For a file this small (``size`` bytes when listed) a HEAD costs a round trip as much as
        sending it, and a file the digest cache does not know is new or changed, so the registry
        seldom has it. Reading it once for both the hash and the body, in the thread that would
        otherwise only hash it, overlaps a tokenizer directory's hashing with its upload.
        """
        data = _read_small(Path(path), size)
        blob = oci.Blob(media_type, oci.sha256_bytes(data), size, data=data)
        if blob.digest not in self._present:
            self.progress(size)
            self._retrying(lambda: self._upload(blob, None), f"{self.name} <- {Path(path).name}")
            self._is_present(blob.digest)
        return blob

    def upload_file(self, path: Path, media_type: str = "application/octet-stream",
                    annotations: dict[str, str] | None = None) -> oci.Blob:
        """Upload a file whose digest is not known yet, hashing the bytes as they are sent.

        Reading the file once instead of twice (hash, then upload) saves the hashing pass: ~0.7 s
        per GiB here, about a fifth of the registry's own time. The price is that no HEAD can skip
        the upload first, so use it for new or changed files (a digest-cache miss). The bytes go
        up in PATCH chunks and the digest comes on the closing PUT; where a registry refuses
        chunks this falls back to hashing first and one streamed PUT. Returns the uploaded blob.
        """
        path = Path(path)
        size = path.stat().st_size
        what = f"{self.name} <- {path.name}"
        if self._chunks_ok:
            try:
                digest = self._retrying(lambda: self._upload_hashing(path, size, what), what)
            except _ChunksRejected:
                self._chunks_ok = False
            else:
                self._is_present(digest)
                return oci.Blob(media_type, digest, size, path=path, annotations=dict(annotations or {}))
        blob = oci.Blob(media_type, oci.sha256_file(path), size, path=path, annotations=dict(annotations or {}))
        self.put_blob(blob)
        return blob

    def upload_stream(self, produce: Callable[[Any], tuple[str, int]], what: str = "") -> tuple[str, int] | None:
        """Upload bytes while ``produce`` writes them (a tar+gzip being built); returns ``(digest, size)``.

        ``produce(sink)`` writes the blob to ``sink`` and returns its digest and size, known only at
        the end: they go on the closing PUT of a chunked-transfer PATCH, so no temp file is written
        and each byte is produced, hashed and sent once. A transient failure produces the bytes
        again (``produce`` must be repeatable: modelhaul's tars are reproducible). Returns None when
        the registry refuses streamed PATCHes: the caller then writes a file and uploads that.
        """
        what = what or f"{self.name} <- stream"
        if not self._chunks_ok:
            return None
        try:
            digest, size = self._retrying(lambda: self._upload_streaming(produce, what), what)
        except _ChunksRejected:
            self._chunks_ok = False
            return None
        self._is_present(digest)
        return digest, size

    def _upload_streaming(self, produce: Callable[[Any], tuple[str, int]], what: str) -> tuple[str, int]:
        resp = self._send("POST", f"{self.base}/blobs/uploads/", what=what, headers={"Content-Length": "0"})
        location = self._location(resp, what)
        sink = _StreamSink(self.progress)
        result: list[tuple[str, int]] = []

        def run() -> None:
            try:
                result.append(produce(sink))
                sink.close()
            except BaseException as e:  # reported on the sending thread
                sink.fail(e)

        producer = threading.Thread(target=run, name="modelhaul-produce", daemon=True)
        producer.start()
        try:
            resp = self._send("PATCH", location, what=what, body=sink.pieces(),
                              headers={"Content-Type": "application/octet-stream"})
        finally:
            sink.abort()
            producer.join()
        if sink.error is not None and not isinstance(sink.error, _SinkAborted):
            raise sink.error
        if resp.status_code in (400, 413, 416):
            with contextlib.suppress(_Transient, RegistryError):
                self._send("DELETE", location, what=what).close()
            raise _ChunksRejected()
        location = self._location(resp, what)
        if not result:
            raise _Transient("the stream ended early")
        digest, size = result[0]
        sep = "&" if "?" in location else "?"
        resp = self._send("PUT", f"{location}{sep}digest={digest}", body=b"", what=what,
                          headers={"Content-Type": "application/octet-stream"})
        if resp.status_code not in (201, 204):
            if resp.status_code == 400 and "DIGEST_INVALID" in _error_codes(resp):
                raise DigestMismatch(f"{what}: the registry computed another digest for the streamed bytes")
            raise self._error(resp, what)
        return digest, size

    def _upload_hashing(self, path: Path, size: int, what: str) -> str:
        resp = self._send("POST", f"{self.base}/blobs/uploads/", what=what, headers={"Content-Length": "0"})
        location = self._location(resp, what)
        h = hashlib.sha256()
        offset = 0
        while offset < size:
            n = min(self.chunk_size, size - offset)
            body = _FileBody(path, offset, n, self.progress, hasher=h)
            resp = self._send("PATCH", location, what=what, body=body,
                              headers={"Content-Type": "application/octet-stream",
                                       "Content-Range": f"{offset}-{offset + n - 1}"})
            if resp.status_code in (400, 413, 416) and offset == 0:
                with contextlib.suppress(_Transient, RegistryError):
                    self._send("DELETE", location, what=what).close()
                raise _ChunksRejected()
            if resp.status_code != 202 or body.hashed is None:
                raise self._error(resp, what)
            location = self._location(resp, what)
            h = body.hashed
            offset += n
        digest = "sha256:" + h.hexdigest()
        sep = "&" if "?" in location else "?"
        resp = self._send("PUT", f"{location}{sep}digest={digest}", body=b"", what=what,
                          headers={"Content-Type": "application/octet-stream"})
        if resp.status_code not in (201, 204):
            raise self._error(resp, what)
        return digest

    def _patch_chunks(self, location: str, blob: oci.Blob, what: str) -> str:
        offset = 0
        while offset < blob.size:
            n = min(self.chunk_size, blob.size - offset)
            resp = self._send("PATCH", location, what=what,
                              body=_FileBody(blob.path, offset, n, self.progress),  # type: ignore[arg-type]
                              headers={"Content-Type": "application/octet-stream",
                                       "Content-Range": f"{offset}-{offset + n - 1}"})
            if resp.status_code in (400, 413, 416) and offset == 0:
                raise _ChunksRejected()
            if resp.status_code != 202:
                raise self._error(resp, what)
            location = self._location(resp, what)
            offset += n
        return location

    def _location(self, resp: requests.Response, what: str) -> str:
        if resp.status_code not in (201, 202) or not resp.headers.get("Location"):
            raise self._error(resp, what)
        return urljoin(resp.url, resp.headers["Location"])


def _read_small(path: Path, size: int, digest: str = "") -> bytes:
    """A small file read whole (its request then goes on the lean path, one ``sendall``), still ``size`` bytes.

    Three system calls (a buffered ``open`` makes seven): with four uploads at once each one is a
    hand-over of the GIL, and a tokenizer directory has a thousand such files."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, size + 1)
    finally:
        os.close(fd)
    if len(data) != size:
        raise DigestMismatch(f"{path}: is {len(data)} bytes, expected {size}{' for ' + digest if digest else ''}; "
                             "the file changed while it was being published: publish it again")
    return data


def _tags_in(resp: Any) -> list[str]:
    try:
        return list((resp.json() or {}).get("tags") or [])
    except ValueError:
        return ["?"]  # not a tag list: assume the repository is not new
