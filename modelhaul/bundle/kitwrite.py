"""Writing KitOps ModelKits as kit v1.7 writes them, so ``kit pull/unpack/info/list`` accept them.

One tar per Kitfile entry, in kit's layer order, holding what ``kit pack`` puts in it: the entry's
path and everything below it, its parent directories, minus what other entries hold (kit's
string-prefix rule) and the Kitfile itself; entries in the order of kit's directory walk; USTAR
headers as Go's ``archive/tar`` writes them with kit's sanitised fields (uid 1000, gid 0, no names,
time zero), no padding past the two end blocks. Modes are 0644/0755 (kit copies the file's, which
is the same under the usual umask 022) so the bytes do not depend on the machine. ``none``
compression (kit's default) gives the same layer bytes as ``kit pack``; ``gzip`` the same tar in a
gzip stream (set ``MODELHAUL_KITOPS_COMPRESSION=gzip``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from modelhaul import digestcache, oci
from modelhaul.bundle.kitops import IGNORE_FILE, KITFILE_NAMES, Entry
from modelhaul.bundle.source import ModelFile, ModelSource
from modelhaul.config import ModelConfig
from modelhaul.errors import ConfigError

COMPRESSIONS = ("none", "gzip")
_BLOCK = 512
_UID = 1000  # kit's sanitizeTarHeader


def compression() -> str:
    """``MODELHAUL_KITOPS_COMPRESSION`` (none, the default as with ``kit pack``, or gzip)."""
    value = os.environ.get("MODELHAUL_KITOPS_COMPRESSION", "").strip() or "none"
    if value not in COMPRESSIONS:
        raise ConfigError(f"MODELHAUL_KITOPS_COMPRESSION={value!r}: expected one of {', '.join(COMPRESSIONS)}")
    return value


def media_type(kind: str, how: str) -> str:
    return f"{oci.KITOPS_LAYER_PREFIX}{kind}.v1.tar" + ("" if how == "none" else f"+{how}")


def _clean(path: str) -> str:
    return os.path.normpath(path.strip()) if path.strip() else "."


def _same_tree(a: str, b: str) -> bool:
    """kit's sameDirTree: one path is the other or below it."""
    def under(x: str, y: str) -> bool:
        return y == "." or x == y or x.startswith(y + "/")
    return under(a, b) or under(b, a)


@dataclass
class KitIgnore:
    """kit's ignore file (``.kitignore``, Docker's pattern rules) plus the Kitfile names it always adds:
    ``**`` crosses directories, ``*``/``?`` do not, ``!`` re-includes, the last matching pattern wins,
    and a path matches when it or one of its parent directories does."""

    patterns: list[tuple[re.Pattern[str], bool]]

    @classmethod
    def read(cls, text: str) -> KitIgnore:
        rules = []
        for line in [*text.splitlines(), *KITFILE_NAMES, IGNORE_FILE]:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            pattern = os.path.normpath(line[1:].strip() if exclusion else line)
            rules.append((re.compile(_regex(pattern.lstrip("/") or pattern)), exclusion))
        return cls(rules)

    @property
    def has_exclusions(self) -> bool:
        return any(exclusion for _, exclusion in self.patterns)

    def matches(self, path: str) -> bool:
        parts = PurePosixPath(path).parts
        candidates = [PurePosixPath(*parts[:i]).as_posix() for i in range(1, len(parts) + 1)]
        matched = False
        for regex, exclusion in self.patterns:
            if any(regex.match(c) for c in candidates):
                matched = not exclusion
        return matched


def _regex(pattern: str) -> str:
    """moby/patternmatcher's translation of one pattern to a regular expression."""
    out, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
            out += ".*" if i >= len(pattern) else "(.*/)?"
            continue
        if ch == "\\" and i + 1 < len(pattern):
            out += re.escape(pattern[i + 1])
            i += 2
            continue
        out += "[^/]*" if ch == "*" else "[^/]" if ch == "?" else ch if ch in "[]^-!" else re.escape(ch)
        i += 1
    return f"^{out}$"


def _ignored(path: str, base: str, layer_paths: list[str], ignore: KitIgnore) -> bool:
    """kit's ignore rule: the ignore file (with the Kitfile), and paths another entry holds (string prefix)."""
    if ignore.matches(path):
        return True
    for layer in layer_paths:
        if base.startswith(layer):  # an entry above this one: its paths are this one's too
            continue
        if path.startswith(layer):
            return True
    return False


def members(entry: Entry, entries: list[Entry], files: list[ModelFile], ignore: KitIgnore | None = None
            ) -> list[tuple[str, ModelFile | None]]:
    """(name, file) in the tar of ``entry`` (file None for a directory), in kit's walk order."""
    ignore = ignore or KitIgnore.read("")
    base = _clean(entry.path)
    layer_paths = [_clean(e.path) for e in entries]
    dirs = {PurePosixPath(*PurePosixPath(f.relpath).parts[:i]).as_posix()
            for f in files for i in range(1, len(PurePosixPath(f.relpath).parts))}
    candidates: list[tuple[str, ModelFile | None]] = [(d, None) for d in dirs] + [(f.relpath, f) for f in files]
    skipped: list[str] = []
    out = []
    for name, f in sorted(candidates, key=lambda c: PurePosixPath(c[0]).parts):
        if any(name.startswith(s + "/") for s in skipped) or not _same_tree(base, name):
            continue
        if _ignored(name, base, layer_paths, ignore):
            if f is None and not ignore.has_exclusions:
                skipped.append(name)  # kit skips the whole directory (unless a pattern may re-include)
            continue
        out.append((name, f))
    return out


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) as Go's splitUSTARPath splits a long name, or None when it cannot."""
    if len(name) <= 100:
        return b"", name
    for i in range(min(len(name) - 1, 155), 0, -1):
        if name[i:i + 1] == b"/" and len(name) - i - 1 <= 100 and i <= 155:
            return name[:i], name[i + 1:]
    return None


def header(name: str, size: int, mode: int, directory: bool) -> bytes:
    """One tar header as Go writes kit's sanitised header (USTAR; PAX when USTAR cannot hold it)."""
    raw = name.encode()
    split = _split_ustar(raw) if raw.isascii() and size < 8 << 30 else None
    if split is None:  # Go falls back to PAX for these; Python's PAX header reads the same in kit
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid, info.mtime = size, mode, _UID, 0, 0
        info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    prefix, short = split
    buf = bytearray(_BLOCK)
    for offset, value in ((0, short), (100, b"%07o\0" % mode), (108, b"%07o\0" % _UID), (116, b"%07o\0" % 0),
                          (124, b"%011o\0" % size), (136, b"%011o\0" % 0), (148, b" " * 8),
                          (156, b"5" if directory else b"0"), (257, b"ustar\x0000"), (329, b"%07o\0" % 0),
                          (337, b"%07o\0" % 0), (345, prefix)):
        buf[offset:offset + len(value)] = value
    buf[148:156] = b"%06o\0 " % sum(buf)
    return bytes(buf)


class _Hashing:
    def __init__(self, out: IO[bytes]):
        self.out, self.sha, self.size = out, hashlib.sha256(), 0

    def write(self, b: bytes) -> int:
        self.sha.update(b)
        self.size += len(b)
        return self.out.write(b)

    def flush(self) -> None:
        self.out.flush()


@dataclass
class Layer:
    blob: oci.Blob
    diff_id: str


def write_layer(entry: Entry, entries: list[Entry], files: list[ModelFile], dest: Path, how: str,
                ignore: KitIgnore | None = None) -> Layer:
    """The tar (gzipped for ``how == "gzip"``) of ``entry`` at ``dest``, with its digest and diffId."""
    with open(dest, "wb") as raw:
        outer = _Hashing(raw)
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=outer, mtime=0) if how == "gzip" else None  # type: ignore[arg-type]
        inner = _Hashing(gz) if gz is not None else outer  # type: ignore[arg-type]
        for name, f in members(entry, entries, files, ignore):
            if f is None:
                inner.write(header(name, 0, 0o755, True))
                continue
            inner.write(header(name, f.size, 0o755 if f.executable else 0o644, False))
            with open(f.path, "rb") as src:
                written = 0
                while chunk := src.read(4 << 20):
                    inner.write(chunk)
                    written += len(chunk)
            if written != f.size:
                raise ConfigError(f"{f.path}: changed size while being packed; pack it again")
            inner.write(b"\0" * (-f.size % _BLOCK))
        inner.write(b"\0" * (2 * _BLOCK))
        if gz is not None:
            gz.close()
    digest = "sha256:" + outer.sha.hexdigest()
    digestcache.remember(dest, digest)  # hashed while written: the store and the upload need not read it again
    blob = oci.Blob(media_type(entry.kind, how), digest, outer.size, path=dest)
    return Layer(blob, "sha256:" + inner.sha.hexdigest())


def pack_source(source: ModelSource, overrides: ModelConfig | dict[str, Any] | None, tmp: Path
                ) -> tuple[oci.Blob, list[oci.Blob]]:
    """:func:`pack_layers` of an opened model directory. Its own Kitfile is used as given: the
    caller's ``overrides`` over it, nothing inferred from the files added."""
    cfg = source.config
    given = source.layout == "kitops" and cfg.origin is not None and cfg.origin.kitfile is not None
    if given:
        from modelhaul.bundle.kitops import config_from_kitfile

        cfg = config_from_kitfile(cfg.origin.kitfile or {}).merged(overrides)  # type: ignore[union-attr]
    return pack_layers(source.files, cfg, tmp, given=given)


def pack_layers(files: list[ModelFile], cfg: ModelConfig, tmp: Path, *, given: bool) -> tuple[oci.Blob, list[oci.Blob]]:
    """The config blob (the Kitfile as JSON, with each entry's digest and diffId) and the layers.

    ``given``: the directory has its own Kitfile, used as given (kit packs only what it names).
    """
    from modelhaul.bundle import modelpack
    from modelhaul.bundle.kitops import entries, kitfile_for, kitfile_json

    kitignore = next((f for f in files if f.relpath == IGNORE_FILE), None)
    ignore = KitIgnore.read(kitignore.path.read_text(encoding="utf-8", errors="replace") if kitignore else "")
    packed = [f for f in files if not ignore.matches(f.relpath)]
    kinds = {f.relpath: modelpack.origin_kind(cfg.origin, f.relpath) or modelpack.layer_kind(f.relpath, f.path)
             for f in packed}
    kitfile = kitfile_for(cfg, kinds, given=given)
    found = entries(kitfile)
    how = compression()
    layers = []
    for i, entry in enumerate(found):
        if not any(_same_tree(_clean(entry.path), f.relpath) for f in packed):
            raise ConfigError(f"Kitfile {entry.kind} entry path {entry.path!r} names no file in the model directory; "
                              "fix the path or add the file")
        layer = write_layer(entry, found, packed, tmp / f"layer-{i}.tar", how, ignore)
        entry.data.update({"digest": layer.blob.digest, "diffId": layer.diff_id})
        layers.append(layer.blob)
    return oci.Blob.from_bytes(oci.KITOPS_CONFIG, kitfile_json(kitfile)), layers
