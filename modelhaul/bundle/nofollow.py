"""Writing an artifact's files under a directory without ever following a symlink.

An artifact is untrusted: a layer may name ``../x`` or lay a symlink where a later layer writes.
Every directory on the way is opened with ``O_NOFOLLOW`` relative to the one before, and each file
is created exclusively, so nothing lands outside the destination and no path is written twice.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path, PurePosixPath

from modelhaul.errors import UnsafeArchive


def _safe_relpath(relpath: str) -> PurePosixPath:
    p = PurePosixPath(relpath)
    if not relpath or p.is_absolute() or ".." in p.parts or relpath.startswith("/"):
        raise UnsafeArchive(f"layer file path {relpath!r} would be written outside the destination; refusing")
    return p


def _open_dir_inside(root: Path, parts: tuple[str, ...]) -> int:
    """An fd of ``root/parts...``, created as needed, never following a symlink on the way."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    fd = os.open(root, flags)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o777, dir_fd=fd)
            try:
                nxt = os.open(part, flags, dir_fd=fd)
            except OSError:  # ELOOP / ENOTDIR: a symlink or a file an earlier layer put there
                raise UnsafeArchive(
                    f"layer path component {part!r} is a symlink or a file, not a directory; refusing the artifact"
                ) from None
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_layer_file(blob: Path, root: Path, relpath: str) -> None:
    """Copy a raw layer's blob to ``root/relpath``, refusing to follow any symlink an earlier layer made."""
    from modelhaul import fscopy

    parts = _safe_relpath(relpath).parts
    dir_fd = _open_dir_inside(root, parts[:-1])
    try:
        try:
            out = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            raise UnsafeArchive(f"layer file path {relpath!r} is written twice by the artifact; refusing") from None
        try:
            with open(blob, "rb") as src:
                fscopy.copy_fd(src.fileno(), out)
            os.fchmod(out, fscopy.default_mode())
        finally:
            os.close(out)
    finally:
        os.close(dir_fd)


def move_layer_file(blob: Path, root: Path, relpath: str) -> None:
    """Move a verified blob this pull downloaded (same filesystem) to ``root/relpath``: no second copy.

    The directories are opened as :func:`write_layer_file` opens them (never through a link), and
    the rename refuses a name that exists (a path written twice, or a link an earlier layer made).
    """
    from modelhaul import fscopy

    parts = _safe_relpath(relpath).parts
    dir_fd = _open_dir_inside(root, parts[:-1])
    try:
        os.chmod(blob, fscopy.default_mode())
        fscopy.rename_noreplace(blob, parts[-1], dir_fd)
    except FileExistsError:
        raise UnsafeArchive(f"layer file path {relpath!r} is written twice by the artifact; refusing") from None
    finally:
        os.close(dir_fd)
