"""Exchanges straight on http.client: every request of a transfer that needs nothing more.

A first push of a tokenizer-style directory (1000 files of 4 KiB) makes two requests per file.
Through requests each one costs ~0.5 ms of this process's CPU (preparing, merging settings,
urllib3's URL parsing and pool bookkeeping); on http.client it costs ~0.16 ms
(``benchmarks/RESULTS_whole.md``). On a 2-core machine the registry needs those cores too, so
the client's CPU is wall time. A large file goes up as a body with its length and a blob comes
down read as it arrives (:class:`WireStream`): a pull or publish loads requests (~40 ms of CPU)
only for a registry that hands out tokens (oras-py fetches them). One kept-alive connection per
thread and origin; a body of unknown length (sent chunked), a redirect, an encoded answer and a
proxied registry go through requests.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from modelhaul.registry.bodies import BODY_LIMIT, BodyTooLong, declared_length

REDIRECTS = {301, 302, 303, 307, 308}
# what sending on a kept-alive connection the server has closed meanwhile raises
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class WireResponse:
    """The parts of a ``requests.Response`` the registry client reads, for an answer read whole."""

    def __init__(self, status: int, headers: http.client.HTTPMessage, url: str, content: bytes):
        self.status_code, self.headers, self.url, self.content = status, headers, url, content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON (raises ValueError when it is not, as requests' ``json()`` does)."""
        import json

        return json.loads(self.content)

    def close(self) -> None:
        """Nothing to release: the body was read whole and the connection kept."""


class WireStream(WireResponse):
    """An answer whose body is read as it arrives (a blob), on the thread's kept-alive connection.

    It offers what the download code reads of a streamed ``requests.Response``: ``raw._fp`` (the
    zero-copy ``readinto``), ``raw.release_conn()``, ``iter_content`` for an error body, ``close``.
    Closed before its body was read to the end, it drops the connection: the rest of the body
    would otherwise be read as the next answer.
    """

    def __init__(self, wire: Wire, key: tuple[str, str], resp: http.client.HTTPResponse, url: str):
        super().__init__(resp.status, resp.headers, url, b"")
        self._wire, self._key, self._fp = wire, key, resp
        self.raw = self

    def release_conn(self) -> None:
        """Nothing to give back: the connection stays this thread's."""

    def iter_content(self, size: int) -> Any:
        while piece := self._fp.read(size):
            yield piece

    @property
    def _content(self) -> bytes:
        return self.content

    @_content.setter
    def _content(self, body: bytes) -> None:  # what bodies._read_bounded stores after reading an error body
        self.content = body

    def close(self) -> None:
        if not self._fp.isclosed() or self._fp.will_close:
            self._wire._drop(*self._key)


class Wire:
    """Kept-alive http.client connections, one per thread and origin, for in-memory exchanges."""

    def __init__(self, verify: bool | str, connect_timeout: float, read_timeout: float):
        self.verify = verify
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self._tls: ssl.SSLContext | None = None
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def exchange(self, method: str, url: str, headers: dict[str, str], body: Any,
                 what: str, limit: int = BODY_LIMIT) -> WireResponse:
        """Send one request and read its whole answer (at most ``limit`` bytes of it: else BodyTooLong).

        ``body`` is bytes, None, or a re-iterable of pieces with a length (``bodies._FileBody``),
        sent with that Content-Length. A kept-alive connection the server closed in the meantime
        is opened again once, at once: the body can be sent again. Transport errors propagate as
        http.client and the socket module raise them.
        """
        resp, key = self._request(method, url, headers, body)
        try:
            if method == "HEAD":  # no body, whatever its Content-Length says: reading it ends the answer
                resp.read()
                content = b""
            else:
                content = _read_whole(resp, what, limit)
        except BaseException:
            self._drop(*key)
            raise
        if resp.will_close:
            self._drop(*key)
        return WireResponse(resp.status, resp.headers, url, content)

    def open(self, method: str, url: str, headers: dict[str, str]) -> WireStream:
        """Send one request without a body and return its answer with the body still to read
        (a blob: see :class:`WireStream`). Failures as in :meth:`exchange`."""
        resp, key = self._request(method, url, headers, None)
        return WireStream(self, key, resp, url)

    def _request(self, method: str, url: str, headers: dict[str, str], body: Any
                 ) -> tuple[http.client.HTTPResponse, tuple[str, str]]:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        if body is not None and not isinstance(body, (bytes, bytearray)):
            headers = {**headers, "Content-Length": str(len(body))}  # not chunked: registries want a length
        for fresh in (False, True):
            conn, reused = self._connection(*key, fresh)
            try:
                conn.request(method, target, body=body, headers=headers)
                return conn.getresponse(), key
            except _STALE:
                self._drop(*key)
                if reused and not fresh:
                    continue
                raise
            except BaseException:
                self._drop(*key)
                raise
        raise AssertionError("unreachable")

    def _connection(self, scheme: str, netloc: str, fresh: bool) -> tuple[http.client.HTTPConnection, bool]:
        conns = self._local.__dict__.setdefault("conns", {})
        key = (scheme, netloc)
        if not fresh and key in conns:
            return conns[key], True
        if scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                netloc, timeout=self.connect_timeout, context=self._context())
        else:
            conn = http.client.HTTPConnection(netloc, timeout=self.connect_timeout)
        conn.connect()
        conn.sock.settimeout(self.read_timeout)  # connect under one timeout, wait for answers under the other
        conns[key] = conn
        with self._lock:
            self._all.append(conn)
        return conn, False

    def _drop(self, scheme: str, netloc: str) -> None:
        conn = self._local.__dict__.get("conns", {}).pop((scheme, netloc), None)
        if conn is not None:
            conn.close()
            with self._lock:
                self._all.remove(conn)

    def _context(self) -> ssl.SSLContext:
        """TLS as requests would verify it: the given CA file or directory, else certifi's bundle."""
        if self._tls is None:
            if self.verify is False:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            else:
                import os

                import certifi

                where = certifi.where() if self.verify is True else str(self.verify)
                ctx = (ssl.create_default_context(capath=where) if os.path.isdir(where)
                       else ssl.create_default_context(cafile=where))
            self._tls = ctx
        return self._tls

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()


def _read_whole(resp: http.client.HTTPResponse, what: str, limit: int) -> bytes:
    """The answer's body, refusing one above ``limit`` bytes (declared, or counted as it arrives)."""
    declared = declared_length(resp.headers)
    if declared is not None and declared > limit:
        raise BodyTooLong(what, declared, limit)
    body = bytearray()
    while piece := resp.read(min(64 * 1024, limit + 1 - len(body))):
        body += piece
        if len(body) > limit:
            raise BodyTooLong(what, None, limit)
    return bytes(body)
