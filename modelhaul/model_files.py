"""Which files a model directory hands over, found with the standard library alone.

Packing reads these files' bytes; a publish starts sending them before the code that builds the
config (pydantic, yaml) is loaded, so both must see the same files: the listing lives here, below
the config, and :func:`modelhaul.bundle.source.open_source` takes it from here too.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from modelhaul.errors import BundleError, ConfigError

ORMBFILE = "ormbfile.yaml"


@dataclass
class ModelFile:
    relpath: str  # POSIX path relative to the model root
    path: Path
    size: int
    executable: bool


def files_root(src: Path) -> Path:
    """Where the files of the model directory ``src`` lie: ``model/`` beside an ``ormbfile.yaml``
    (ormb's layout), else ``src`` itself (a directory or a single file).

    Raises :class:`BundleError` for a ``model/`` that is a symlink (modelhaul packs only what is
    really inside the source) and :class:`ConfigError` for an ``ormbfile.yaml`` without ``model/``.
    """
    if (src / "model").is_symlink():
        raise BundleError(f"{src / 'model'}: the model directory is a symlink; modelhaul packs only what is "
                          "really inside the source (replace the link with the directory itself)")
    if (src / ORMBFILE).is_file():
        if not (src / "model").is_dir():
            raise ConfigError(f"{src}: has an {ORMBFILE} but no model/ directory beside it")
        return src / "model"
    return src


def list_files(root: Path) -> list[ModelFile]:
    """Regular files below ``root``, sorted, with links and special files checked.

    Symlink policy: ``root`` itself may be a link (the user named it), but nothing below it may lead
    out of it: a link to a file inside the model directory is packed as that file's bytes, a link
    that resolves outside (``model.bin -> ~/.ssh/id_rsa``), a link to a directory or a dangling link
    is refused, naming the link and never reading its target.
    """
    if root.is_file():
        st = root.stat()
        return [ModelFile(root.name, root, st.st_size, bool(st.st_mode & 0o111))]
    out: list[ModelFile] = []
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                target = p.resolve()
                if not target.is_relative_to(real_root):
                    raise BundleError(f"{p}: symlink points outside the model directory; copy the file in")
                if target.is_dir():
                    raise BundleError(f"{p}: symlink to a directory; replace it with the directory itself")
                st = target.stat()
                p = target
            elif not stat.S_ISREG(st.st_mode):
                raise BundleError(f"{p}: not a regular file (device, socket or fifo); remove it")
            out.append(ModelFile(rel, p, st.st_size, bool(st.st_mode & 0o111)))
    out.sort(key=lambda f: f.relpath)
    return out
