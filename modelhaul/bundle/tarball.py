"""Reproducible tars and safe extraction.

Reproducible: sorted entries, zeroed times, uid/gid 0, no user/group names, modes normalised to
0644/0755 — the same directory always gives the same bytes, hence the same digest. Gzip streams
carry no name and mtime 0 for the same reason.

Safe: entries with ``..`` or absolute paths, links that point outside the destination, and
device files are refused before anything is written.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import IO

from modelhaul.errors import UnsafeArchive

CHUNK = 4 << 20


class _HashingWriter(io.RawIOBase):
    """A file-like sink that hashes and counts what goes through it to ``out``."""

    def __init__(self, out: IO[bytes]):
        self.out, self.sha, self.size = out, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, b) -> int:  # type: ignore[override]
        self.sha.update(b)
        self.size += len(b)
        self.out.write(b)
        return len(b)


def _normalised(info: tarfile.TarInfo, executable: bool) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if (info.isdir() or executable) else 0o644
    return info


def write_tar(
    entries: Iterable[tuple[str, Path]], dest: Path | IO[bytes], *, gzip_level: int | None = None,
    dirs: Iterable[str] = (), diff_id: bool = False,
) -> tuple[str, int, str | None]:
    """Write ``(arcname, file)`` pairs (already sorted) into ``dest`` (a path, or a writable stream).

    Returns ``(digest, size, diff_id)``: the digest of the written bytes and, for gzip when asked,
    the digest of the uncompressed tar (the ``diffId`` OCI configs list; a second hash pass).
    """
    with open(dest, "wb") if isinstance(dest, (str, os.PathLike)) else contextlib.nullcontext(dest) as raw:
        outer = _HashingWriter(raw)
        gz = (
            gzip.GzipFile(filename="", mode="wb", fileobj=outer, mtime=0, compresslevel=gzip_level)
            if gzip_level is not None
            else None
        )
        inner: IO[bytes] = (_HashingWriter(gz) if diff_id else gz) if gz is not None else outer
        # plain "w" mode with MiB copies: stream mode ("w|") grows its buffer by concatenation,
        # which costs more than gzip itself on multi-GB files
        with tarfile.TarFile(fileobj=inner, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK) as tar:
            for d in dirs:
                info = tarfile.TarInfo(d.rstrip("/"))
                info.type = tarfile.DIRTYPE
                tar.addfile(_normalised(info, False))
            for arcname, path in entries:
                st = path.stat()
                info = tarfile.TarInfo(arcname)
                info.size = st.st_size
                info = _normalised(info, bool(st.st_mode & 0o111))
                with open(path, "rb") as f:
                    tar.addfile(info, f)
        if gz is not None:
            gz.close()
    digest = "sha256:" + outer.sha.hexdigest()
    inner_id = "sha256:" + inner.sha.hexdigest() if isinstance(inner, _HashingWriter) else None
    return digest, outer.size, inner_id


def _check_member(m: tarfile.TarInfo, dest: Path, strip: str | None) -> PurePosixPath | None:
    name = m.name
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith("/") or ".." in p.parts:
        raise UnsafeArchive(f"archive entry {name!r} would be written outside the destination; refusing")
    if m.isdev() or m.ischr() or m.isblk() or m.isfifo():
        raise UnsafeArchive(f"archive entry {name!r} is a device or fifo; refusing")
    if m.issym() or m.islnk():
        target = PurePosixPath(m.linkname)
        base = p.parent if m.issym() else PurePosixPath()
        resolved = os.path.normpath(str(base / target)) if not target.is_absolute() else "/"
        if target.is_absolute() or resolved.startswith("..") or resolved == "..":
            raise UnsafeArchive(
                f"archive entry {name!r} links to {m.linkname!r}, outside the destination; refusing"
            )
    parts = p.parts
    if strip:
        if not parts or parts[0] != strip:
            return None
        parts = parts[1:]
    if not parts or parts == (".",):
        return None
    return PurePosixPath(*parts)


def check_tar(path: Path, *, strip: str | None = None) -> None:
    """Refuse an unsafe archive before anything is extracted from it."""
    with tarfile.open(path, mode="r:*") as tar:
        for m in tar:
            _check_member(m, Path("."), strip)


def extract_tar(path: Path, dest: Path, *, strip: str | None = None) -> list[str]:
    """Extract ``path`` into ``dest`` (checked first); ``strip`` drops a leading directory name.

    Returns the relative paths of the regular files written.
    """
    check_tar(path, strip=strip)
    written: list[str] = []
    with tarfile.open(path, mode="r:*") as tar:
        for m in tar:
            rel = _check_member(m, dest, strip)
            if rel is None:
                continue
            out = dest.joinpath(*rel.parts)
            if m.isdir():
                out.mkdir(parents=True, exist_ok=True)
            elif m.isfile():
                out.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                assert src is not None
                with open(out, "wb") as f:
                    while chunk := src.read(CHUNK):
                        f.write(chunk)
                os.chmod(out, 0o755 if m.mode & 0o111 else 0o644)
                written.append(str(rel))
            elif m.issym():
                out.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(m.linkname, out)
            elif m.islnk():
                link_rel = _check_member(tarfile.TarInfo(m.linkname), dest, strip)
                if link_rel is None:
                    raise UnsafeArchive(f"archive entry {m.name!r} links outside the model; refusing")
                out.parent.mkdir(parents=True, exist_ok=True)
                os.link(dest.joinpath(*link_rel.parts), out)
    return written
