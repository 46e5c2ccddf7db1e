"""The registry client: one repository of an OCI Distribution registry as a :class:`~modelhaul.oci.Target`.

Authentication goes through oras-py (bearer tokens, anonymous or with basic credentials, and the
docker config with its credential helpers, see :mod:`modelhaul.auth`). The transfer paths are
modelhaul's own, because oras-py's fall short for models:

* its monolithic upload reads the whole blob into memory (1 GB RSS for a 1 GiB file) and its
  chunked upload reads each chunk into memory and sends them one request at a time; here bodies
  stream from disk in MiB pieces (Python's default 8 KiB socket writes are the other slow path);
* its pull writes without verifying; here downloads hash while writing to a temp file beside the
  destination, verify, then rename, and resume an interrupted transfer with ``Range``;
* its retry sleeps 3**n seconds on any error, even a 404; here only transient failures (5xx,
  resets, 429 with ``Retry-After``) are retried, and an upload restarts its session.

Every read is bounded, so a hostile or broken registry cannot exhaust time, disk or memory: a
response body read whole (a manifest, a tag page, an error) is at most 4 MiB (containerd's manifest
limit), a blob stream is cut as soon as it exceeds its descriptor's size, tag pagination stops on
a repeated link or after :attr:`RegistryTarget.max_tag_pages` pages, and the connect timeout, read
timeout and total retry budget come from :class:`~modelhaul.registry_options.RegistryOptions`.

Thread safety: each thread gets its own ``requests.Session``; the auth state is shared under a lock,
so ``put_blob``/``fetch_blob`` may be called from a thread pool (see :meth:`RegistryTarget.put_blobs`).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hashlib
import http.client
import os
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

from modelhaul import oci
from modelhaul.errors import AuthError, DigestMismatch, NotFound, RegistryError, redact
from modelhaul.registry_options import RegistryOptions

MiB = 1 << 20
PIECE = MiB  # send granularity, and the read size of small downloads
RECV_PIECE = 2 * MiB  # read/hash/write granularity of large downloads (x3 buffers x 4 parallel blobs)
BODY_LIMIT = 4 * MiB  # the most read into memory from one response (containerd's manifest limit)
MANIFEST_ACCEPT = ", ".join([
    oci.MANIFEST_V1, oci.INDEX_V1, oci.DOCKER_MANIFEST_V2,
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
DOCKER_HUB_API = "registry-1.docker.io"


class _Transient(Exception):
    """A failure worth retrying; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class _NoRanges(Exception):
    """The registry answered a ranged GET with the whole blob: download it in one stream."""


class _ChunksRejected(Exception):
    """The registry refused a PATCH chunk: fall back to one streamed PUT."""


class _FileBody:
    """A re-iterable request body that streams ``length`` bytes of ``path`` from ``offset`` in MiB pieces.

    ``__len__`` lets requests send a Content-Length (not chunked transfer encoding); iterating again
    re-reads the file, so a retried request sends the same bytes. With ``hasher`` (a hashlib object
    holding the hash of the bytes before ``offset``), each pass hashes a copy of it and leaves the
    hash of everything sent so far in :attr:`hashed`: a retried pass never hashes bytes twice.
    """

    def __init__(self, path: Path, offset: int, length: int, progress: Callable[[int], None] | None,
                 hasher: Any = None):
        self.path, self.offset, self.length, self.progress = path, offset, length, progress
        self.hasher, self.hashed = hasher, None

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[memoryview]:
        # one buffer, refilled: urllib3 sends each piece (sendall) before it asks for the next one
        buf = bytearray(PIECE)
        view = memoryview(buf)
        left = self.length
        h = self.hasher.copy() if self.hasher is not None else None
        self.hashed = None
        with open(self.path, "rb", buffering=0) as f:
            f.seek(self.offset)
            while left > 0:
                n = f.readinto(view[: min(PIECE, left)])
                if not n:
                    raise RegistryError(f"{self.path}: file shrank while uploading; do not edit a model "
                                        "while it is being pushed")
                left -= n
                if h is not None:
                    h.update(view[:n])
                if self.progress:
                    self.progress(n)
                yield view[:n]
        self.hashed = h


def api_host(host: str) -> str:
    """Where a registry's API answers: Docker Hub's name differs from its reference name."""
    return DOCKER_HUB_API if host in ("docker.io", "index.docker.io") else host


class _Auth:
    """Authorization for one registry: basic credentials, or bearer tokens fetched through oras-py."""

    def __init__(self, host: str, options: RegistryOptions, verify: bool | str):
        self.host, self.options, self.verify = host, options, verify
        self.lock = threading.Lock()
        self.header: str | None = None  # the Authorization value to send pre-emptively
        self._creds: tuple[str, str] | None | bool = False  # False: not looked up yet

    def credentials(self) -> tuple[str, str] | None:
        if self._creds is False:
            if self.options.has_credentials:
                self._creds = (self.options.username or "", self.options.password or "")
            else:
                from modelhaul.auth import credentials_for

                self._creds = credentials_for(self.host)
        return self._creds  # type: ignore[return-value]

    def answer(self, resp: requests.Response, sent: str | None, what: str) -> bool:
        """Update :attr:`header` from a 401/403 challenge; False when there is nothing new to try."""
        challenge = resp.headers.get("Www-Authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        with self.lock:
            if self.header != sent:  # another thread already answered this challenge
                return True
            creds = self.credentials()
            if scheme == "basic":
                if not creds or sent and sent.startswith("Basic "):
                    return False
                self.header = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
                return True
            if scheme == "bearer":
                token = self._token(challenge, creds)
                if not token or self.header == f"Bearer {token}":
                    return False
                self.header = f"Bearer {token}"
                return True
        return False

    def _token(self, challenge: str, creds: tuple[str, str] | None) -> str | None:
        import oras.auth
        from oras.auth.utils import parse_auth_header

        h = parse_auth_header(challenge)
        if not h.realm:
            return None
        if h.scope and " " in h.scope:  # several scopes (a mount): token servers want one param each
            h.scope = h.scope.split()  # type: ignore[assignment]  # requests repeats list params
        backend = oras.auth.get_auth_backend("token", session=requests.Session(),
                                             insecure=self.options.plain_http, tls_verify=self.verify)
        backend._basic_auth = None
        try:
            if creds:
                backend.set_basic_auth(*creds)
                return backend.request_token(h)
            return backend.request_anonymous_token(h)
        except requests.RequestException:
            return None
        finally:
            backend.session.close()


class RegistryTarget:
    """One repository (``host/repository``) of a registry, with the :class:`~modelhaul.oci.Target` methods.

    ``mount_from`` names another repository of the same registry that may already hold the blobs
    (for example the source of a copy): :meth:`put_blob` then asks the registry to mount them
    instead of uploading. ``progress`` is called with byte counts as blob bytes move.
    """

    chunk_threshold = 256 * MiB  # blobs above this go up in PATCH chunks (proxies cap request sizes)
    chunk_size = 128 * MiB
    attempts = 6  # tries per request or upload session before giving up
    backoff = 0.25  # first retry delay in seconds; doubles each time (capped at 8 s)
    parallel = 4
    max_tag_pages = 1000  # a tag list longer than this many pages is refused, not followed forever
    range_threshold = 512 * MiB  # blobs at least this big come down in parallel ranged GETs
    range_parts = 4  # how many ranges (connections) such a blob is split into

    def __init__(self, registry_host: str, repository: str, options: RegistryOptions | None = None,
                 *, mount_from: str | None = None, progress: Callable[[int], None] | None = None):
        self.host = registry_host
        self.repository = repository
        self.options = options or RegistryOptions.resolve()
        self.mount_from = mount_from
        self.progress = progress
        scheme = "http" if self.options.plain_http else "https"
        self.base = f"{scheme}://{api_host(registry_host)}/v2/{repository}"
        if self.options.plain_http:
            self.verify: bool | str = True
        elif self.options.insecure:
            self.verify = False
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        else:
            self.verify = self.options.ca_file or True
        self._auth = _Auth(registry_host, self.options, self.verify)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._chunks_ok = True
        self._ranges_ok = True
        self._present: set[str] = set()  # digests known to be in the repository

    def __repr__(self) -> str:
        return f"RegistryTarget({self.host}/{self.repository})"

    @property
    def name(self) -> str:
        return f"{self.host}/{self.repository}"

    @property
    def registry(self) -> str:
        """The registry host, as in references (the transfer layer compares it to detect mounts)."""
        return self.host

    def close(self) -> None:
        with self._lock:
            for s in self._sessions:
                s.close()
            self._sessions.clear()
        self._local = threading.local()

    # -- HTTP ---------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            from http.cookiejar import DefaultCookiePolicy

            s = requests.Session()
            s.verify = self.verify
            s.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # Harbor's CSRF cookies
            s.headers["User-Agent"] = "modelhaul"
            self._local.session = s
            with self._lock:
                self._sessions.append(s)
        return s

    def _send(self, method: str, url: str, *, headers: dict[str, str] | None = None, body: Any = None,
              stream: bool = False, what: str = "") -> requests.Response:
        """One request, answering auth challenges; transport failures, 5xx and 429 raise _Transient."""
        what = what or self.name
        timeout = (self.options.connect_timeout, self.options.read_timeout)
        for _round in range(3):
            h = dict(headers or {})
            sent = self._auth.header
            if sent:
                h["Authorization"] = sent
            try:
                # verify passed per request: a session's value loses to REQUESTS_CA_BUNDLE
                resp = self._session().request(method, url, headers=h, data=body, stream=True,
                                               timeout=timeout, verify=self.verify)
                if not stream and method != "HEAD" and resp.status_code not in TRANSIENT_STATUS:
                    _read_bounded(resp, what)  # a HEAD's Content-Length is the blob's, with no body
            except requests.exceptions.SSLError as e:
                raise RegistryError(self._tls_message(e)) from None
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as e:
                reason = _describe(e)
                if reason == "unknown host":
                    raise RegistryError(f"{what}: cannot resolve {self.host}; check the registry name"
                                        ) from None
                raise _Transient(reason) from None
            if resp.status_code in (401, 403):
                resp.close()
                if self._auth.answer(resp, sent, what):
                    continue
                raise self._auth_error(resp, what)
            if resp.status_code in TRANSIENT_STATUS:
                resp.close()
                raise _Transient(f"HTTP {resp.status_code}", _retry_after(resp))
            return resp
        raise self._auth_error(resp, what)

    def _retrying(self, op: Callable[[], Any], what: str) -> Any:
        """Run ``op`` until it stops raising :class:`_Transient`, with exponential backoff and jitter.

        Gives up after :attr:`attempts` tries, or when the next try would start more than the
        options' ``retry_budget`` seconds after the first failure.
        """
        first_failure: float | None = None
        for attempt in range(self.attempts):
            try:
                return op()
            except _Transient as e:
                now = time.monotonic()
                first_failure = now if first_failure is None else first_failure
                delay = e.retry_after if e.retry_after is not None else self.backoff * 2 ** attempt
                delay = min(delay, 60.0 if e.retry_after is not None else 8.0) * random.uniform(1, 1.2)
                if attempt == self.attempts - 1 or now + delay - first_failure > self.options.retry_budget:
                    raise RegistryError(
                        f"{what}: the registry kept failing ({e}) after {attempt + 1} attempts "
                        f"in {now - first_failure:.0f}s of retry budget "
                        f"{self.options.retry_budget:g}s (MODELHAUL_RETRY_BUDGET); "
                        "check that it is up and retry") from None
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _request(self, method: str, url: str, *, what: str, **kw: Any) -> requests.Response:
        return self._retrying(lambda: self._send(method, url, what=what, **kw), what)

    def _auth_error(self, resp: requests.Response, what: str) -> AuthError:
        creds = self._auth.credentials()
        if resp.status_code == 403:
            return AuthError(f"{what}: access denied by {self.host}; the credentials in use lack "
                             f"permission (check them with `modelhaul login {self.host}`)")
        if creds:
            return AuthError(f"{what}: {self.host} refused the credentials; "
                             f"run `modelhaul login {self.host}` with valid ones")
        return AuthError(f"{what}: {self.host} requires authentication; run `modelhaul login {self.host}`")

    def _tls_message(self, e: Exception) -> str:
        text = str(e)
        hint = ("pass the registry's CA (ca_file / --ca-file), or --insecure to skip verification"
                if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower()
                else "if the registry speaks plain HTTP, pass --plain-http")
        reason = re.search(r"\[SSL[^\]]*\][^)'\"]*", text)
        why = reason.group(0).strip() if reason else "handshake"
        return redact(f"{self.host}: TLS failed ({why}); {hint}")

    def _error(self, resp: requests.Response, what: str) -> RegistryError:
        codes = _error_codes(resp)
        detail = f"HTTP {resp.status_code}" + (f" {','.join(codes)}" if codes else "")
        return RegistryError(redact(f"{what}: {self.host} answered {detail}"))

    # -- blobs --------------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        if digest in self._present:  # callers often ask has_blob then put_blob: one HEAD is enough
            return True
        what = f"{self.name}@{digest}"
        resp = self._request("HEAD", f"{self.base}/blobs/{digest}", what=what)
        if resp.status_code == 200:
            self._present.add(digest)
            return True
        if resp.status_code == 404:
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
        if self.has_blob(blob.digest):
            return
        source = mount_from or self.mount_from
        if source == self.repository:
            source = None
        self._retrying(lambda: self._upload(blob, source), f"{self.name}@{blob.digest}")
        self._present.add(blob.digest)

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
            self._present.add(digest)
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
        if blob.data is None and blob.size > self.chunk_threshold and self._chunks_ok:
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
                self._present.add(digest)
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
        self._present.add(digest)
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

    # -- manifests and tags -------------------------------------------------------------------

    def get_manifest(self, reference: str) -> oci.Manifest:
        what = self._what(reference)
        resp = self._request("GET", f"{self.base}/manifests/{reference}", what=what,
                             headers={"Accept": MANIFEST_ACCEPT})
        if resp.status_code == 404:
            raise NotFound(f"{what}: not found in the registry")
        if resp.status_code != 200:
            raise self._error(resp, what)
        data = resp.content
        digest = oci.sha256_bytes(data)
        claimed = resp.headers.get("Docker-Content-Digest")
        if claimed and claimed.startswith("sha256:") and claimed != digest:
            raise DigestMismatch(f"{what}: the manifest hashes to {digest}, the registry says {claimed}")
        if reference.startswith("sha256:") and reference != digest:
            raise DigestMismatch(f"{what}: the manifest received hashes to {digest}")
        media_type = (resp.headers.get("Content-Type") or "").split(";", 1)[0].strip()
        if media_type not in oci.MANIFEST_TYPES:
            try:
                media_type = oci.Manifest(data, "", digest).json.get("mediaType") or oci.MANIFEST_V1
            except ValueError:
                raise RegistryError(f"{what}: the registry returned a manifest that is not JSON") from None
        return oci.Manifest(data=data, media_type=media_type, digest=digest)

    def put_manifest(self, data: bytes, media_type: str, tag: str | None) -> str:
        digest = oci.sha256_bytes(data)
        ref = tag or digest
        what = self._what(ref)
        resp = self._request("PUT", f"{self.base}/manifests/{ref}", what=what, body=data,
                             headers={"Content-Type": media_type})
        if resp.status_code in (200, 201, 202):
            claimed = resp.headers.get("Docker-Content-Digest")
            if claimed and claimed.startswith("sha256:") and claimed != digest:
                raise DigestMismatch(f"{what}: the registry stored the manifest as {claimed}, not {digest}")
            return digest
        codes = _error_codes(resp)
        if "MANIFEST_BLOB_UNKNOWN" in codes or "BLOB_UNKNOWN" in codes:
            raise RegistryError(f"{what}: the registry is missing blobs this manifest names; push them first")
        raise self._error(resp, what)

    def list_tags(self) -> list[str]:
        tags: list[str] = []
        url: str | None = f"{self.base}/tags/list?n=1000"
        seen: set[str] = set()
        while url:
            if url in seen:
                raise RegistryError(f"{self.name}: the registry's tag list links back to a page it already "
                                    "sent (a looping Link header); stopped listing")
            if len(seen) >= self.max_tag_pages:
                raise RegistryError(f"{self.name}: the tag list goes on past {self.max_tag_pages} pages; "
                                    "stopped listing (is the registry's Link header looping?)")
            seen.add(url)
            resp = self._request("GET", url, what=self.name)
            if resp.status_code == 404:
                raise NotFound(f"{self.name}: repository not found in the registry")
            if resp.status_code != 200:
                raise self._error(resp, self.name)
            tags.extend(resp.json().get("tags") or [])
            link = re.search(r"<([^>]+)>\s*;\s*rel=\"?next\"?", resp.headers.get("Link", ""))
            url = urljoin(resp.url, link.group(1)) if link else None
        return tags

    def resolve(self, reference: str) -> str:
        """The manifest digest a tag points at (HEAD first, GET when the registry omits the header)."""
        if reference.startswith("sha256:"):
            return reference
        what = self._what(reference)
        resp = self._request("HEAD", f"{self.base}/manifests/{reference}", what=what,
                             headers={"Accept": MANIFEST_ACCEPT})
        if resp.status_code == 404:
            raise NotFound(f"{what}: not found in the registry")
        if resp.status_code == 200 and resp.headers.get("Docker-Content-Digest"):
            return resp.headers["Docker-Content-Digest"]
        return self.get_manifest(reference).digest

    def delete(self, reference: str) -> None:
        """Delete the manifest ``reference`` names (a tag is resolved first: every tag on it goes)."""
        digest = self.resolve(reference)
        what = self._what(reference)
        resp = self._request("DELETE", f"{self.base}/manifests/{digest}", what=what)
        if resp.status_code in (200, 202, 204):
            return
        if resp.status_code == 404:
            raise NotFound(f"{what}: not found in the registry")
        if resp.status_code == 405:
            raise RegistryError(f"{what}: {self.host} does not allow deleting (its storage.delete setting)")
        raise self._error(resp, what)

    def get_referrers(self, digest: str) -> dict | None:
        """The referrers API's index for ``digest``, or None when the registry has no such API."""
        what = f"{self.name}@{digest} referrers"
        resp = self._request("GET", f"{self.base}/referrers/{digest}", what=what,
                             headers={"Accept": oci.INDEX_V1})
        if resp.status_code in (404, 405, 400):
            return None
        if resp.status_code != 200:
            raise self._error(resp, what)
        if len(resp.content) > 4 << 20:
            raise RegistryError(f"{what}: the referrers index is larger than 4 MiB")
        try:
            return resp.json()
        except ValueError:
            return None

    def ping(self) -> None:
        """GET /v2/ with the configured credentials; raises AuthError when they are refused."""
        url = self.base.split("/v2/", 1)[0] + "/v2/"
        resp = self._request("GET", url, what=self.host)
        if resp.status_code != 200:
            raise self._error(resp, self.host)

    def _what(self, reference: str) -> str:
        return f"{self.name}@{reference}" if ":" in reference else f"{self.name}:{reference}"


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


def _read_bounded(resp: requests.Response, what: str) -> None:
    """Read a streamed response's body into ``resp.content``, refusing one above :data:`BODY_LIMIT`.

    A Content-Length above the limit is refused before any byte is read; a body without one (chunked)
    is counted as it arrives and cut one piece past the limit, so memory stays bounded either way.
    """
    def refuse(size: str) -> RegistryError:
        resp.close()
        return RegistryError(f"{what}: the registry answered with {size} bytes; modelhaul reads at most "
                             f"{BODY_LIMIT // MiB} MiB for a manifest, a tag page or an error (containerd's "
                             "manifest limit); check the registry")

    length = resp.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > BODY_LIMIT:
        raise refuse(length)
    body = bytearray()
    for piece in resp.iter_content(64 * 1024):
        body += piece
        if len(body) > BODY_LIMIT:
            raise refuse("more than that")
    resp._content = bytes(body)  # what requests' own .content would hold, read under a limit


def _body_reader(resp: requests.Response) -> Callable[[memoryview], int]:
    """The zero-copy ``readinto`` of an identity-encoded body: http.client's, under urllib3's.

    urllib3's own ``readinto`` reads into a temporary bytes object and copies it; a verified pull
    of 1 GiB then moves every byte through memory twice more than needed. http.client fills the
    buffer straight from the socket (and still honours Content-Length or chunked framing).
    """
    fp = getattr(resp.raw, "_fp", None)
    encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
    if fp is None or encoded or not hasattr(fp, "readinto"):
        return resp.raw.readinto
    return fp.readinto


def _interrupted(e: Exception) -> Exception:
    """What a failure while receiving a body becomes: a retry (the transport broke) or itself."""
    transport = (requests.RequestException, OSError, ValueError, http.client.HTTPException)
    if isinstance(e, transport) or e.__class__.__module__.startswith("urllib3"):  # urllib3's ProtocolError
        return _Transient(f"download interrupted ({type(e).__name__})")
    return e


def _describe(e: Exception) -> str:
    """A short, credential-free reason for a transport failure."""
    text = str(e)
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "unknown host"
    if "Connection refused" in text:
        return "connection refused"
    if "reset by peer" in text or "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection reset"
    if isinstance(e, requests.Timeout):
        return "timed out"
    return type(e).__name__


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _error_codes(resp: requests.Response) -> list[str]:
    try:
        return [str(e.get("code")) for e in resp.json().get("errors", []) if isinstance(e, dict)]
    except ValueError:
        return []


def check_login(host: str, options: RegistryOptions) -> None:
    """Raise :class:`AuthError` unless ``host`` accepts the credentials in ``options``."""
    target = RegistryTarget(host, "modelhaul-login-check", options)
    try:
        target.ping()
    finally:
        target.close()


def login(host: str, username: str, password: str, options: RegistryOptions | None = None,
          *, config_path: Path | None = None) -> Path:
    """Check the credentials against ``host``, then store them (a helper when one is configured).

    Returns the docker config path written. Raises :class:`AuthError` when the registry refuses them.
    """
    from dataclasses import replace

    from modelhaul.auth import normalize_host, store_credentials

    if not username or not password:
        raise AuthError(f"{host}: login needs a username and a password")
    check_login(normalize_host(host), replace(options or RegistryOptions(), username=username, password=password))
    return store_credentials(host, username, password, config_path=config_path)
