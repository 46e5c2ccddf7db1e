"""Request and response bodies: a file streamed up (re-iterable, hashed as sent), a response read
under a size limit, and a blob body received zero-copy, its connection given back once read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelhaul.errors import RegistryError

if TYPE_CHECKING:
    import requests

MiB = 1 << 20
PIECE = MiB  # send granularity, and the read size of small downloads
RECV_PIECE = MiB  # hash granularity of large downloads: the buffers handed to the hashing thread (x6 x 4 blobs)
WRITE_PIECE = 256 << 10  # each piece is written as soon as it is received, still in the core's cache: 1 MiB
# writes made the kernel's copy of a 4 GiB download into the page cache ~1.5 s of system time dearer here
IN_MEMORY_BODY = 256 << 10  # a blob up to this size goes up or comes down whole, on the lean path (wire.py)
BODY_LIMIT = 4 * MiB  # the most read into memory from one response (containerd's manifest limit)


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


class BodyTooLong(RegistryError):
    """An answer longer than what is read of it into memory; ``declared``: its Content-Length, if it said."""

    def __init__(self, what: str, declared: int | None, limit: int):
        self.declared, self.limit = declared, limit
        size = "more than that" if declared is None else str(declared)
        super().__init__(f"{what}: the registry answered with {size} bytes; modelhaul reads at most "
                         f"{BODY_LIMIT // MiB} MiB for a manifest, a tag page or an error (containerd's "
                         "manifest limit); check the registry")


def declared_length(headers: Any) -> int | None:
    length = headers.get("Content-Length") or ""
    return int(length) if length.isdigit() else None


def _read_bounded(resp: requests.Response, what: str, limit: int = BODY_LIMIT) -> None:
    """Read a streamed response's body into ``resp.content``, refusing one above ``limit`` bytes.

    A Content-Length above the limit is refused before any byte is read; a body without one (chunked)
    is counted as it arrives and cut one piece past the limit, so memory stays bounded either way.
    """
    declared = declared_length(resp.headers)
    if declared is not None and declared > limit:
        resp.close()
        raise BodyTooLong(what, declared, limit)
    body = bytearray()
    for piece in resp.iter_content(64 * 1024):
        body += piece
        if len(body) > limit:
            resp.close()
            raise BodyTooLong(what, None, limit)
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


def _release_if_read(resp: requests.Response) -> None:
    """Give the connection of a body read to its end by :func:`_body_reader` back to the pool.

    urllib3 never saw those reads, so closing the response would close the connection and the
    next blob would open a new one (a TCP handshake per small file). Only an answer read to its
    end (http.client closed it) is released: a half-read one would leave the next request on the
    connection reading the rest of this body.
    """
    fp = getattr(resp.raw, "_fp", None)
    if fp is not None and getattr(fp, "isclosed", lambda: False)():
        resp.raw.release_conn()
