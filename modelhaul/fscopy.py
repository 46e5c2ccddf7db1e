"""Copying files so that the copy owns its bytes: reflink where the filesystem has one, else a kernel copy.

A hardlink looks free but shares the inode: rewriting the source in place would change the
copy too (a saved version destroyed, a user's original edited through an export). Every place
that puts a file somewhere else — the store on ``save``/``pull``, ``export``, serving layouts —
goes through :func:`copy_file`. A reflink (``FICLONE``: btrfs, XFS, bcachefs...) shares blocks
copy-on-write and costs nothing; otherwise ``copy_file_range`` copies in the kernel in MiB pieces
(no bytes through Python), with ``sendfile`` and a plain read/write loop as fallbacks. Each piece
is reported to :func:`modelhaul.meter.moved` (one call per piece, not per byte), so a ``save`` or an
``export`` from the store shows its bytes as they move and Ctrl-C stops it within a piece; a reflink
reports the whole file at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import threading
from pathlib import Path
from typing import Any

from modelhaul import meter

CHUNK = 8 << 20
_FICLONE = 0x40049409  # _IOW(0x94, 9, int), linux/fs.h


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()


def default_mode(executable: bool = False) -> int:
    """What a new file gets from ``open()`` under the process umask (0644 / 0755 usually)."""
    return (0o777 if executable else 0o666) & ~UMASK


def copy_fd(src_fd: int, dst_fd: int) -> str:
    """Copy everything readable from ``src_fd`` into ``dst_fd``; returns ``reflink`` or ``copy``."""
    try:
        fcntl.ioctl(dst_fd, _FICLONE, src_fd)
        meter.moved(os.fstat(src_fd).st_size)
        return "reflink"
    except OSError:
        pass
    for kernel_copy in (_copy_file_range, _sendfile):
        try:
            kernel_copy(src_fd, dst_fd)
            return "copy"
        except OSError:
            # not supported between these files (e.g. some FUSE or old kernels): start over
            os.lseek(src_fd, 0, os.SEEK_SET)
            os.lseek(dst_fd, 0, os.SEEK_SET)
            os.ftruncate(dst_fd, 0)
    while chunk := os.read(src_fd, CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst_fd, view):]
        meter.moved(len(chunk))
    return "copy"


def _copy_file_range(src_fd: int, dst_fd: int) -> None:
    while n := os.copy_file_range(src_fd, dst_fd, CHUNK):
        meter.moved(n)


def _sendfile(src_fd: int, dst_fd: int) -> None:
    offset = 0
    while sent := os.sendfile(dst_fd, src_fd, offset, CHUNK):
        offset += sent
        meter.moved(sent)


def copy_file(src: str | Path, dst: str | Path, *, mode: int | None = None) -> str:
    """Put a copy of ``src`` at ``dst`` (temp file + rename: ``dst`` appears whole or not at all).

    ``mode`` defaults to the umask's 0644/0755 (keeping the source's executable bit); the store
    passes 0444. Returns how the bytes were copied (``reflink`` or ``copy``).
    """
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        with open(src, "rb") as s:
            if mode is None:
                mode = default_mode(bool(os.fstat(s.fileno()).st_mode & 0o111))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                how = copy_fd(s.fileno(), fd)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return how


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


@functools.cache
def _renameat2() -> Any:
    """glibc's ``renameat2`` (2.28+), or None."""
    import ctypes

    return getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)


def rename_noreplace(src: str | Path, dst_name: str, dst_dir_fd: int) -> None:
    """Rename ``src`` to ``dst_name`` in the directory ``dst_dir_fd``; FileExistsError if anything is there.

    ``renameat2(RENAME_NOREPLACE)`` where the kernel and filesystem have it. Renaming over an
    existing file instead would make ext4 (``auto_da_alloc``) flush the whole file to disk first:
    ~0.4 s per GiB on this kind of machine for a pull that is otherwise in the page cache.
    Elsewhere: a new hard link, then the old name is removed (the file keeps one name).
    """
    import ctypes

    renameat2 = _renameat2()
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(src), dst_dir_fd, os.fsencode(dst_name), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), dst_name)
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), str(src))
    os.link(src, dst_name, dst_dir_fd=dst_dir_fd, follow_symlinks=False)
    os.unlink(src)
