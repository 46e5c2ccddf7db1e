"""HTTP to a registry: a session per thread, the auth flow, errors, and retries of what is transient."""

from __future__ import annotations

import http.client
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelhaul import oci
from modelhaul.errors import AuthError, RegistryError, redact
from modelhaul.meter import moved
from modelhaul.registry.auth_flow import _Auth
from modelhaul.registry.auth_messages import auth_error, credentials_source
from modelhaul.registry.bodies import BODY_LIMIT, MiB, _read_bounded
from modelhaul.registry.wire import REDIRECTS, Wire, WireResponse
from modelhaul.registry_options import RegistryOptions
from modelhaul.tagcheck import api_host

if TYPE_CHECKING:  # requests is imported where a request needs it: most exchanges go on http.client
    import requests

MANIFEST_ACCEPT = ", ".join([
    oci.MANIFEST_V1, oci.INDEX_V1, oci.DOCKER_MANIFEST_V2,
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class _Transient(Exception):
    """A failure worth retrying; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class _NoRanges(Exception):
    """The registry answered a ranged GET with the whole blob: download it in one stream."""


class _ChunksRejected(Exception):
    """The registry refused a PATCH chunk: fall back to one streamed PUT."""


class RegistryClient:
    """The HTTP side of one repository of a registry: sessions per thread, authentication, retries, errors."""

    chunk_threshold = 256 * MiB  # blobs above this go up in PATCH chunks (proxies cap request sizes)
    chunk_size = 128 * MiB
    attempts = 6  # tries per request or upload session before giving up
    backoff = 0.25  # first retry delay in seconds; doubles each time (capped at 8 s)
    parallel = 4
    max_tag_pages = 1000  # a tag list longer than this many pages is refused, not followed forever
    range_threshold = 512 * MiB  # blobs at least this big come down in parallel ranged GETs
    range_parts = 4  # how many connections such a blob comes down over
    range_chunk = 32 * MiB  # the ranged GETs' size: handed out in order, so hashing follows closely
    range_probe = 64 * MiB  # a large blob's first bytes, on one connection, timed to choose between
    range_below = 512 * MiB  # ... going on alone (this many bytes/s or more) and parallel ranges
    # ranges can help only across a network: on loopback one connection is never the limit, and a
    # probe slowed by a busy CPU would hand the rest to four connections that compete for it
    ranges_help = True

    def __init__(self, registry_host: str, repository: str, options: RegistryOptions | None = None,
                 *, mount_from: str | None = None, progress: Callable[[int], None] | None = None):
        self.host = registry_host
        self.repository = repository
        self.options = options or RegistryOptions.resolve()
        if _loopback(registry_host):
            self.ranges_help = False
        self.mount_from = mount_from
        self.progress = progress or moved  # every piece is counted (and stops the transfer once cancelled)
        self._uploads: dict[str, str] = {}  # upload session path -> its latest Location, until it ends
        self.label: str | None = None  # the user's reference, named in errors about the registry itself
        scheme = "http" if self.options.plain_http else "https"
        self.base = f"{scheme}://{api_host(registry_host)}/v2/{repository}"
        if self.options.plain_http:
            self.verify: bool | str = True
        elif self.options.insecure:
            self.verify = False
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        else:  # the CA bundle requests would take from the environment, read once (see _session)
            self.verify = (self.options.ca_file or os.environ.get("REQUESTS_CA_BUNDLE")
                           or os.environ.get("CURL_CA_BUNDLE") or True)
        self._auth = _Auth(registry_host, self.options, self.verify)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._wire: Wire | None = None  # http.client connections for lean exchanges (no proxy in the way)
        self._proxied: bool | None = None  # whether the environment names a proxy for the registry
        self._lock = threading.Lock()
        self._chunks_ok = True
        self._ranges_ok = True
        self._present: set[str] = set()  # digests known to be in the repository
        self._absent: set[str] = set()  # digests a HEAD just found missing (has_blob, then put_blob)

    def __repr__(self) -> str:
        return f"RegistryTarget({self.host}/{self.repository})"

    def _is_present(self, digest: str) -> None:
        """The repository holds ``digest`` now (a HEAD found it, or this client uploaded or mounted it)."""
        self._present.add(digest)
        self._absent.discard(digest)

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
        if self._wire is not None:
            self._wire.close()
        self._local = threading.local()

    # -- HTTP ---------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            from http.cookiejar import DefaultCookiePolicy

            import requests

            s = requests.Session()
            # the environment (proxies, CA bundle) read once per session, not on every request: requests
            # re-reads all of os.environ and ~/.netrc per request, ~0.5 ms each, 1.5 ms a small blob
            s.trust_env = False
            s.proxies = requests.utils.get_environ_proxies(self.base)  # honours NO_PROXY
            s.verify = self.verify
            s.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # Harbor's CSRF cookies
            s.headers["User-Agent"] = "modelhaul"
            self._local.session = s
            with self._lock:
                self._sessions.append(s)
        return s

    def _send(self, method: str, url: str, *, headers: dict[str, str] | None = None, body: Any = None,
              stream: bool = False, what: str = "", limit: int = BODY_LIMIT) -> requests.Response:
        """One request, answering auth challenges; transport failures, 5xx and 429 raise _Transient.

        Exchanges go straight on http.client (:mod:`modelhaul.registry.wire`) where they can (see
        :meth:`_exchange_lean`), else through requests. An answer not ``stream``-ed is read up to
        ``limit`` bytes; a longer one raises :class:`~modelhaul.registry.bodies.BodyTooLong`.
        """
        what = what or self.name
        for _round in range(3):
            h = dict(headers or {})
            sent = self._auth.header
            if sent:
                h["Authorization"] = sent
            resp = self._exchange_lean(method, url, h, body, stream, what, limit)
            if resp is None:
                resp = self._exchange(method, url, h, body, stream, what, limit)
            if resp.status_code in (401, 403):
                resp.close()
                if self._auth.answer(resp, sent, what):
                    continue
                raise self._auth_error(resp, what)
            if resp.status_code in TRANSIENT_STATUS:
                resp.close()
                raise _Transient(f"HTTP {resp.status_code}", _retry_after(resp))
            if "/blobs/uploads/" in url or "/blobs/uploads/" in resp.headers.get("Location", ""):
                self._track_upload(method, url, resp)
            return resp
        raise self._auth_error(resp, what)

    def _exchange(self, method: str, url: str, headers: dict[str, str], body: Any, stream: bool,
                  what: str, limit: int) -> requests.Response:
        """One request through requests; unless ``stream``, its answer read under the body limit."""
        import requests

        try:
            # verify passed per request too (the environment's CA bundle is already in it)
            resp = self._session().request(method, url, headers=headers, data=body, stream=True,
                                           timeout=(self.options.connect_timeout, self.options.read_timeout),
                                           verify=self.verify)
            if method == "HEAD":  # no body (its Content-Length is the blob's): reading the empty
                resp.content  # noqa: B018 - answer ends it, and the connection goes back to the pool
            elif not stream and resp.status_code not in TRANSIENT_STATUS:
                _read_bounded(resp, what, limit)
        except requests.exceptions.SSLError as e:
            raise RegistryError(self._tls_message(e)) from None
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
            raise self._transport_failure(e, what) from None
        return resp

    def _exchange_lean(self, method: str, url: str, headers: dict[str, str], body: Any, stream: bool,
                       what: str, limit: int) -> WireResponse | None:
        """One exchange on http.client; None when it must go through requests instead.

        The body is bytes, none, or a file streamed up (``_FileBody``, with its length); the answer is
        read whole under ``limit``, or with ``stream`` handed over unread (a blob coming down).
        requests takes it when the body is a stream of unknown length (sent chunked), when a
        proxy is configured for the registry (requests speaks to proxies), and when the registry
        answers with a redirect (requests follows it, dropping the credentials when the host
        changes). A pull or publish of large files then loads requests (~40 ms of CPU) only to fetch a token.
        """
        if body is not None and not isinstance(body, (bytes, bytearray)) and not hasattr(body, "__len__"):
            return None
        if self._wire is None:
            if self._proxied is None:
                self._proxied = _proxy_named_for(self.base)
            if self._proxied:
                return None
            with self._lock:
                self._wire = self._wire or Wire(self.verify, self.options.connect_timeout,
                                                self.options.read_timeout)
        sent = {"User-Agent": "modelhaul", **headers}
        try:
            resp = self._wire.open(method, url, sent) if stream else self._wire.exchange(method, url, sent, body,
                                                                                          what, limit)
        except ssl.SSLError as e:
            raise RegistryError(self._tls_message(e)) from None
        except (OSError, http.client.HTTPException) as e:
            raise self._transport_failure(e, what) from None
        encoded = stream and resp.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
        if resp.status_code in REDIRECTS or encoded:  # requests decodes a body the registry encoded anyway
            resp.close()
            return None
        return resp

    def _transport_failure(self, e: Exception, what: str) -> Exception:
        """What a failed connection becomes: a clear error for an unknown host, else a retry."""
        reason = _describe(e)
        if reason == "unknown host":
            return RegistryError(f"{what}: cannot resolve {self.host}; check the registry name")
        return _Transient(reason)

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
                if str(e) == "connection refused" and attempt:  # nothing listens there: one retry is enough
                    raise RegistryError(f"{self.label or what}: cannot connect to {self.host}: connection refused; "
                                        "check that the registry runs at that address") from None
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

    def _track_upload(self, method: str, url: str, resp: requests.Response) -> None:
        """Remember each open upload session (POST/PATCH answers), forget it once closed (PUT, DELETE)."""
        from urllib.parse import urljoin, urlsplit

        location = resp.headers.get("Location", "")
        with self._lock:
            if method in ("POST", "PATCH") and resp.status_code == 202 and location:
                location = urljoin(resp.url, location)
                self._uploads[urlsplit(location).path] = location
            elif method in ("PUT", "DELETE"):
                self._uploads.pop(urlsplit(url).path, None)

    def abandon_uploads(self) -> None:
        """Delete the upload sessions a failed or cancelled push left open (the registry would keep them).

        A PATCH cut short may still be draining into the session on the registry's side when the
        DELETE arrives (distribution then cancels it, and the drain re-creates it), so the DELETE is
        repeated until the registry no longer knows the session.
        """
        with self._lock:
            left, self._uploads = list(self._uploads.values()), {}
        import requests

        for location in left:
            for _ in range(4):
                try:
                    resp = self._session().request("DELETE", location, headers=self._auth_headers(), timeout=5,
                                                   verify=self.verify)
                except requests.RequestException:
                    break
                resp.close()
                if resp.status_code in (202, 204) or "BLOB_UPLOAD_UNKNOWN" in _error_codes(resp):
                    break
                time.sleep(0.25)

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": self._auth.header} if self._auth.header else {}

    def _auth_error(self, resp: requests.Response, what: str) -> AuthError:
        creds = self._auth.credentials()
        return auth_error(resp.status_code, self.label or what, self.host, creds,
                          credentials_source(self.options, creds))

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


def _loopback(host: str) -> bool:
    """True for a registry on this machine's loopback interface (``localhost``, 127.0.0.0/8, ``[::1]``)."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower()
    return name == "localhost" or name.startswith("127.") or name == "::1"


def _proxy_named_for(url: str) -> bool:
    """Whether the environment sends ``url`` through a proxy, as requests decides it (``NO_PROXY`` too).

    requests is loaded only when some ``*_proxy`` variable is set at all."""
    if not any(k.lower().endswith("_proxy") and k.lower() != "no_proxy" and v for k, v in os.environ.items()):
        return False
    import requests

    return bool(requests.utils.get_environ_proxies(url))


def _interrupted(e: Exception) -> Exception:
    """What a failure while receiving a body becomes: a retry (the transport broke) or itself."""
    import requests

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
    if isinstance(e, http.client.RemoteDisconnected):
        return "connection reset"
    if isinstance(e, TimeoutError):  # http.client's (socket.timeout), without loading requests
        return "timed out"
    import requests

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

