"""Where modelhaul keeps things on this machine: the ground floor every other module may import.

``MODELHAUL_HOME`` (else the user's cache directory) holds the local store and the digest cache;
``MODELHAUL_TMPDIR`` (else the system's) holds scratch directories.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def modelhaul_home() -> Path:
    """``MODELHAUL_HOME``, else the user's cache directory (``~/.cache/modelhaul`` on Linux)."""
    env = os.environ.get("MODELHAUL_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("modelhaul"))


def default_store_path() -> Path:
    """The user's local store (``modelhaul save`` / ``pull``)."""
    return modelhaul_home() / "store"


def tmp_root() -> str | None:
    """``MODELHAUL_TMPDIR`` when set (a disk big enough for models), else None: the system's."""
    return os.environ.get("MODELHAUL_TMPDIR") or None


@contextlib.contextmanager
def scratch_dir(prefix: str = "modelhaul-") -> Iterator[Path]:
    """A temporary directory removed afterwards (under ``MODELHAUL_TMPDIR`` when set)."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir=tmp_root()))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
