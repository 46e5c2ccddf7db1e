"""A cache of file digests keyed by (device, inode, size, mtime, ctime), like git's index.

Re-publishing an unchanged multi-GB model should not re-hash it: a ``stat`` per file is enough to
know its digest. Any change of size, mtime or ctime misses the cache and forces a re-hash, so a
stale digest is never trusted. ctime matters: ``cp -p``, ``rsync -t`` and ``tar -x`` rewrite a file
in place and put its old mtime back, but no user call can set ctime (any write or ``utime`` moves
it). Since Linux 6.13 ext4, xfs, btrfs and tmpfs give a write that follows a ``stat`` a fresh
fine-grained ctime, so a write during the hash is seen even within one clock tick. The cache is a
SQLite file under ``MODELHAUL_HOME`` (safe for several processes at once); when it cannot be
opened, hashing just happens every time.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from modelhaul import oci
from modelhaul.paths import modelhaul_home

_lock = threading.Lock()
_conn: sqlite3.Connection | None = None
_conn_path: Path | None = None
_Row = tuple[int, int, int, int, int, str]  # dev, ino, size, mtime_ns, ctime_ns, digest
_pending: dict[tuple[int, int], _Row] | None = None  # rows held by batch(), by (dev, ino)


_TABLE = "file_digests"  # was "digests", keyed without ctime: its rows are dropped, not trusted


def _key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def unchanged(before: os.stat_result, after: os.stat_result) -> bool:
    """True when two stats of one path show the same file with the same bytes (as far as stat can tell)."""
    return _key(before) == _key(after)


def _db() -> sqlite3.Connection | None:
    global _conn, _conn_path
    path = modelhaul_home() / "digests.sqlite"
    with _lock:
        if _conn is not None and _conn_path == path:
            return _conn
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=10, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a cache: no fsync per remembered file (WAL stays consistent)
            conn.execute("DROP TABLE IF EXISTS digests")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {_TABLE} (dev INTEGER, ino INTEGER, size INTEGER, "
                "mtime_ns INTEGER, ctime_ns INTEGER, digest TEXT, PRIMARY KEY (dev, ino))"
            )
        except sqlite3.Error:
            return None
        _conn, _conn_path = conn, path
        return conn


@contextlib.contextmanager
def database() -> Iterator[sqlite3.Connection | None]:
    """The cache's SQLite connection (None when it cannot be opened), held under this process's lock:
    other caches of what is known about unchanged files keep their tables in the same file."""
    db = _db()
    with _lock:
        yield db


def lookup(path: str | Path, st: os.stat_result | None = None) -> str | None:
    """The cached digest of ``path`` if the file is unchanged since it was hashed."""
    st = st or os.stat(path)
    key = _key(st)
    with _lock:
        held = _pending.get(key[:2]) if _pending is not None else None
    if held is not None:
        return held[5] if held[:5] == key else None
    db = _db()
    if db is None:
        return None
    with _lock, contextlib.suppress(sqlite3.Error):
        row = db.execute(
            f"SELECT digest FROM {_TABLE} WHERE dev=? AND ino=? AND size=? AND mtime_ns=? AND ctime_ns=?", key,
        ).fetchone()
        return row[0] if row else None
    return None


def remember(path: str | Path, digest: str, st: os.stat_result | None = None) -> None:
    row = (*_key(st or os.stat(path)), digest)
    with _lock:
        if _pending is not None:
            _pending[row[:2]] = row
            return
    _write([row])


@contextlib.contextmanager
def batch() -> Iterator[None]:
    """Digests remembered in the block (by any thread) are written in one transaction at its end.

    A first publish of a tokenizer-style directory remembers 1000 digests; one autocommit INSERT
    each cost ~13 system calls (file locks, WAL writes) and the GIL round trips that go with them.
    Nested blocks join the outermost one; what was remembered is written even when the block fails
    (each digest is of bytes that did not change while they were hashed).
    """
    global _pending
    with _lock:
        outermost = _pending is None
        if outermost:
            _pending = {}
    try:
        yield
    finally:
        if outermost:
            with _lock:
                rows, _pending = list((_pending or {}).values()), None
            _write(rows)


def _write(rows: list[_Row]) -> None:
    db = _db() if rows else None
    if db is None:
        return
    with _lock, contextlib.suppress(sqlite3.Error):
        if len(rows) == 1:
            db.execute(f"INSERT OR REPLACE INTO {_TABLE} VALUES (?,?,?,?,?,?)", rows[0])
            return
        db.execute("BEGIN")  # one transaction (the connection autocommits each statement otherwise)
        try:
            db.executemany(f"INSERT OR REPLACE INTO {_TABLE} VALUES (?,?,?,?,?,?)", rows)
        except sqlite3.Error:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def file_digest(path: str | Path) -> str:
    """sha256 of a file, from the cache when the file is unchanged, else hashed and remembered."""
    st = os.stat(path)
    cached = lookup(path, st)
    if cached:
        return cached
    digest = oci.sha256_file(path)
    st_after = os.stat(path)
    if unchanged(st, st_after):  # not modified while hashing
        remember(path, digest, st_after)
    return digest


def verify(path: str | Path, digest: str) -> bool:
    """True when ``path`` still holds the bytes named by ``digest`` (stat first, hash on doubt)."""
    return file_digest(path) == digest
