"""Reproducible tars and safe extraction.

Reproducible: sorted entries, zeroed times, uid/gid 0, no user/group names, modes normalised to
0644/0755 — the same directory always gives the same bytes, hence the same digest. Gzip streams
carry no name and mtime 0 for the same reason.

Safe: extraction goes through tarfile's ``data`` filter (Python 3.11.4+), which resolves every
entry against what is already on disk; entries with ``..`` or absolute paths, links that point
outside the destination, writes through a symlink and device files are refused.
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

from modelhaul.errors import BundleError, UnsafeArchive

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


_REFUSALS: dict[type[tarfile.FilterError], str] = {
    tarfile.AbsolutePathError: "would be written outside the destination",
    tarfile.OutsideDestinationError: "would be written outside the destination",
    tarfile.AbsoluteLinkError: "links to an absolute path, outside the destination",
    tarfile.LinkOutsideDestinationError: "links outside the destination",
    tarfile.SpecialFileError: "is a device or fifo",
}


def _refusal(exc: tarfile.FilterError) -> UnsafeArchive:
    """One line naming the entry and why, from tarfile's filter error."""
    why = next((text for cls, text in _REFUSALS.items() if isinstance(exc, cls)), "is not allowed in a model archive")
    name = exc.tarinfo.name
    if exc.tarinfo.issym() or exc.tarinfo.islnk():
        name = f"{name} -> {exc.tarinfo.linkname}"
    return UnsafeArchive(f"archive entry {name!r} {why}; refusing the artifact")


def _through_symlink(dest: Path, rel: PurePosixPath) -> str | None:
    """The first existing parent of ``dest/rel`` that is a symlink (an entry must not write through one)."""
    here = dest
    for part in rel.parts[:-1]:
        here = here / part
        if here.is_symlink():
            return str(PurePosixPath(*here.relative_to(dest).parts))
        if not here.exists():
            return None
    return None


def _stripped(name: str, strip: str | None) -> str | None:
    parts = PurePosixPath(name).parts
    if strip:
        if not parts or parts[0] != strip:
            return None
        parts = parts[1:]
    if not parts or parts == (".",):
        return None
    return PurePosixPath(*parts).as_posix()


def _model_filter(dest: Path, strip: str | None, written: list[str], within: str | None = None):
    """tarfile's ``data`` filter, after dropping the ``strip`` directory, plus: nothing through a symlink.

    The ``data`` filter resolves each entry against what is already on disk (so a chain of links
    extracted earlier cannot climb out), refuses absolute and escaping links, hardlinks to outside
    and device files. Writing *through* a symlink an earlier entry made is refused outright: a model
    archive has no reason to, and it keeps the check independent of ``realpath`` corner cases.
    """

    def accept(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        raw = PurePosixPath(member.name)
        if member.name.startswith("/") or raw.is_absolute() or ".." in raw.parts:
            raise UnsafeArchive(f"archive entry {member.name!r} would be written outside the destination; refusing")
        name = _stripped(member.name, strip)
        if name is None:
            return None
        if within and not (name == within or name.startswith(within + "/")):
            raise UnsafeArchive(f"archive entry {member.name!r} is outside {within!r}, the directory the layer is "
                                "titled; refusing the artifact")
        changes: dict[str, str] = {"name": name}
        if member.islnk():  # a hardlink names its target from the archive root
            target = _stripped(member.linkname, strip)
            if target is None:
                raise UnsafeArchive(f"archive entry {member.name!r} links to {member.linkname!r}, "
                                    "outside the destination; refusing")
            changes["linkname"] = target
        # mtime None: exported files are dated when written, as before (our tars carry mtime 0)
        member = member.replace(**changes, mtime=None, deep=False)
        try:
            member = tarfile.data_filter(member, path)
        except tarfile.FilterError as exc:
            raise _refusal(exc) from None
        via = _through_symlink(dest, PurePosixPath(member.name))
        if via is not None:
            raise UnsafeArchive(f"archive entry {member.name!r} would be written through the symlink {via!r}; "
                                "refusing the artifact")
        if member.isfile():
            member = member.replace(mode=0o755 if member.mode & 0o111 else 0o644, deep=False)
            written.append(member.name)
        return member

    return accept


def extract_tar(path: Path, dest: Path, *, strip: str | None = None, within: str | None = None) -> list[str]:
    """Extract ``path`` into ``dest`` with tarfile's ``data`` filter; ``strip`` drops a leading directory,
    ``within`` is the directory every entry must be in.

    Returns the relative paths of the regular files written. Unsafe entries raise
    :class:`UnsafeArchive` naming the entry (the caller extracts into a temp directory and removes
    it on failure, so nothing half-written is left).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    try:
        with tarfile.open(path, mode="r:*") as tar:
            tar.extractall(dest, filter=_model_filter(dest, strip, written, within))
    except tarfile.FilterError as exc:
        raise _refusal(exc) from None
    except KeyError as exc:  # a hardlink to an entry the archive does not have
        raise UnsafeArchive(f"archive hardlink to nothing ({exc.args[0]}); refusing the artifact") from None
    except tarfile.TarError as exc:
        raise BundleError(f"{path.name}: not a readable tar archive ({exc}); refusing the artifact") from None
    return written


def decompress_zstd(path: Path, dest: Path) -> Path:
    """Write the zstd-compressed ``path`` out as ``dest`` (tarfile in Python 3.11 reads no zstd)."""
    import zstandard

    try:
        with open(path, "rb") as src, open(dest, "wb") as out:
            zstandard.ZstdDecompressor().copy_stream(src, out, read_size=CHUNK, write_size=CHUNK)
    except zstandard.ZstdError as exc:
        raise BundleError(f"{path.name}: not a valid zstd stream ({exc}); refusing") from None
    return dest
