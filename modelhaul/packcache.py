"""Packed manifests remembered by the stats of the model directory they came from.

Packing reads ``ormbfile.yaml``, infers the format, classifies every file and builds the config:
that needs pydantic and yaml, most of what ``modelhaul push DIR REF`` spends before it sends a byte.
None of it changes while the directory does not, so after a publish the manifest, the config blob
and where each layer's bytes lie are kept here. Re-publishing the unchanged directory is then a
walk of it, a HEAD per blob and one manifest PUT.

The key is everything packing reads: the bundle format, the directory's real path, the config laid
over it, modelhaul's packing code, and (name, mode, device, inode, size, mtime, ctime) of every
entry below the directory, links with their targets. An added, removed, renamed, edited or
``chmod``-ed file (``ormbfile.yaml``, ``MLmodel`` and ``Kitfile`` included) changes the key and the
directory is packed again. ormb's tar+gzip layer (and its gzip level) is remembered by digest only:
it is no file that could be sent again, so it is trusted only where the target already holds it
(one HEAD); a target that lacks it gets the directory packed and streamed again. The rows live in
the digest cache's SQLite file; the newest :data:`KEEP` are kept. When the cache cannot be read,
publishing just packs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhaul import digestcache, oci

KEEP = 256
CACHED_FORMATS = ("modelpack", "ormb")
_PACKING_CODE = ("", "bundle", "formats")  # modelhaul's packages whose code decides what a directory packs to
_SCHEMA = ("CREATE TABLE IF NOT EXISTS packs (key TEXT PRIMARY KEY, manifest BLOB, media_type TEXT, "
           "config BLOB, paths TEXT, format TEXT, framework TEXT, packed INTEGER)")


@dataclass
class Known:
    """A remembered artifact: what :func:`modelhaul.transfer.push_packed` needs, and the result's fields."""

    manifest: bytes
    manifest_media_type: str
    blobs: list[oci.Blob]  # the config blob (its bytes), then each layer (the file that holds it, or none)
    format: str | None
    framework: str | None

    @property
    def size(self) -> int:
        return sum(b.size for b in self.blobs)

    def sendable_to(self, target: oci.Target) -> bool:
        """True when every blob is either at hand or already in ``target`` (ormb's layer: one HEAD)."""
        return all(b.path is not None or b.data is not None or target.has_blob(b.digest) for b in self.blobs)


@dataclass(frozen=True)
class Seen:
    """A source as a publish found it before packing; ``key`` is None when it cannot be cached."""

    src: Path
    bundle_format: str
    overrides: str
    key: str | None


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_mode, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _raise(exc: OSError) -> None:
    raise exc


def _entries(src: Path) -> list[list[Any]]:
    """Every entry below ``src`` (or ``src`` itself, a file), with what an edit of it changes."""
    if not stat.S_ISDIR(os.stat(src).st_mode):
        return [[".", *_stamp(os.stat(src))]]
    out: list[list[Any]] = []
    for dirpath, dirnames, filenames in os.walk(src, onerror=_raise):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, src)
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                out.append([rel, "dir"])
            elif stat.S_ISLNK(st.st_mode):
                out.append([rel, *_stamp(st), os.readlink(p), *_stamp(os.stat(p))])
            else:
                out.append([rel, *_stamp(st)])
    return out


def _code_stamp() -> list[Any]:
    """(name, size, mtime) of the packing code: an upgrade or an edit of modelhaul packs again."""
    here = Path(__file__).parent
    out: list[Any] = []
    for package in _PACKING_CODE:
        with os.scandir(here / package) as it:
            out += sorted([f"{package}/{e.name}", e.stat().st_size, e.stat().st_mtime_ns]
                          for e in it if e.name.endswith(".py"))
    return out


def _key(src: Path, bundle_format: str, overrides: str) -> str | None:
    if bundle_format not in CACHED_FORMATS:
        return None
    try:
        seen = [1, bundle_format, os.path.realpath(src), overrides, _code_stamp(), _entries(src),
                os.environ.get("MODELHAUL_GZIP_LEVEL", "").strip() if bundle_format == "ormb" else None]
    except OSError:  # gone, unreadable, a dangling link: packing says what is wrong
        return None
    return hashlib.sha256(json.dumps(seen).encode()).hexdigest()


def look(src: str | Path, bundle_format: str, overrides: Any = None) -> Seen:
    """What packing ``src`` depends on, now; ``overrides`` is the config laid over it (a dict or a ModelConfig)."""
    over = overrides.to_dict() if hasattr(overrides, "to_dict") else overrides
    text = json.dumps(over, sort_keys=True, default=str)
    return Seen(Path(src), bundle_format, text, _key(Path(src), bundle_format, text))


def lookup(seen: Seen) -> Known | None:
    """The artifact ``seen``'s source packed to, when nothing it depends on changed since."""
    if seen.key is None:
        return None
    row = None
    with contextlib.suppress(sqlite3.Error), digestcache.database() as db:
        if db is not None:
            db.execute(_SCHEMA)
            row = db.execute("SELECT manifest, media_type, config, paths, format, framework FROM packs WHERE key=?",
                             (seen.key,)).fetchone()
    if row is None:
        return None
    manifest, media_type, config, paths, fmt, framework = row
    try:
        doc = json.loads(manifest)
        cfg, layers = doc["config"], doc["layers"]
        files = [None if p is None else Path(p) for p in json.loads(paths)]
        inside = Path(os.path.realpath(seen.src))
        if (oci.sha256_bytes(config) != cfg["digest"] or len(files) != len(layers)
                or not all(p is None or p.is_relative_to(inside) for p in files)):
            return None
        blobs = [oci.Blob(cfg["mediaType"], cfg["digest"], len(config), data=config)]
        blobs += [oci.Blob(d["mediaType"], d["digest"], int(d["size"]), path=p)
                  for d, p in zip(layers, files, strict=True)]
    except (ValueError, KeyError, TypeError):  # a row this code did not write
        return None
    return Known(bytes(manifest), media_type, blobs, fmt, framework)


def remember(seen: Seen, packed: Any) -> None:
    """Keep a :class:`~modelhaul.bundle.Packed` of ``seen``'s source, unless the source changed while packing.

    A ModelPack layer is the file it came from; ormb's layer is a temp tar or was streamed: kept
    as a digest only (null path)."""
    cfg_blob, layers = packed.blobs[0], packed.blobs[1:]
    files = seen.bundle_format == "modelpack"
    if seen.key is None or cfg_blob.data is None or (files and any(b.path is None for b in layers)):
        return
    if _key(seen.src, seen.bundle_format, seen.overrides) != seen.key:
        return
    paths = json.dumps([os.path.abspath(b.path) if files else None for b in layers])
    row = (seen.key, packed.manifest, packed.manifest_media_type, cfg_blob.data, paths, packed.config.format,
           packed.config.framework, time.time_ns())
    with contextlib.suppress(sqlite3.Error), digestcache.database() as db:
        if db is not None:
            db.execute(_SCHEMA)
            db.execute("INSERT OR REPLACE INTO packs VALUES (?,?,?,?,?,?,?,?)", row)
            db.execute("DELETE FROM packs WHERE key NOT IN (SELECT key FROM packs ORDER BY packed DESC LIMIT ?)",
                       (KEEP,))
