"""Model directories as users hand them to us: what files, and what config.

Accepted layouts (first match wins):

* ormb: ``ormbfile.yaml`` beside ``model/`` — config from the file, files from ``model/``;
* MLflow model directory (``MLmodel`` at its root) — config inferred from the flavors;
* KitOps directory (``Kitfile``) — config from the Kitfile's package section;
* a bare directory (or a single file) — config inferred from the file names.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhaul import config as config_mod
from modelhaul.config import ModelConfig
from modelhaul.errors import BundleError, ConfigError
from modelhaul.useryaml import MAX_MLMODEL_BYTES, read_yaml_file


@dataclass
class ModelFile:
    relpath: str  # POSIX path relative to the model root
    path: Path
    size: int
    executable: bool


@dataclass
class ModelSource:
    root: Path
    files: list[ModelFile]
    config: ModelConfig
    layout: str  # ormb | mlflow | kitops | bare


def infer_format(files: list[ModelFile], root: Path | None = None, *, by_content: bool = True
                 ) -> tuple[str, str | None]:
    """(format, framework) from file names, then (``by_content``) what the format parsers recognise."""
    from modelhaul import format_table as table
    from modelhaul.formats.mlflow import framework_and_format

    names = {f.relpath for f in files}
    if root is not None and (root / "MLmodel").is_file():
        fw, fmt = framework_and_format(_mlflow_flavors(root / "MLmodel"), root)
        return fmt, fw
    if {"init_net.pb", "predict_net.pb"} <= {n.rsplit("/", 1)[-1] for n in names}:
        return "NetDef", "Caffe2"
    for row in table.FORMATS:
        if row.suffixes and any(n.endswith(row.suffixes) for n in names):
            return row.name, row.framework
    sniffed = _sniffed(files) if by_content else None
    if sniffed:
        return sniffed
    if any(n.endswith(".params") for n in names) and any(n.endswith(".json") for n in names):
        return "MXNetParams", "MXNet"
    if any(n.endswith(".pb") for n in names):
        return "GraphDef", "TensorFlow"
    return "Others", None


def _sniffed(files: list[ModelFile]) -> tuple[str, str | None] | None:
    """A format the parsers recognise by content where the name says nothing (XGBoost ``model.json``,
    LightGBM ``model.txt``)."""
    from modelhaul.formats import detect_file

    for f in files:
        if f.path.is_file():
            found = detect_file(f.path)
            if found:
                return found
    return None


def _mlflow_flavors(mlmodel: Path) -> dict[str, Any]:
    data = read_yaml_file(mlmodel, "MLflow MLmodel file", limit=MAX_MLMODEL_BYTES, error=BundleError) or {}
    return dict(data.get("flavors") or {}) if isinstance(data, dict) else {}


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


def open_source(src: Path, overrides: ModelConfig | dict[str, Any] | None = None) -> ModelSource:
    """Read a model directory in any accepted layout, with ``overrides`` laid over its config."""
    src = Path(src)
    if not src.exists():
        raise BundleError(f"{src}: no such file or directory")
    if (src / "model").is_symlink():
        raise BundleError(f"{src / 'model'}: the model directory is a symlink; modelhaul packs only what is "
                          "really inside the source (replace the link with the directory itself)")
    if (src / config_mod.ORMBFILE).is_file() and (src / "model").is_dir():
        cfg = config_mod.load(src)
        files = list_files(src / "model")
        root, layout = src / "model", "ormb"
    elif (src / config_mod.ORMBFILE).is_file():
        raise ConfigError(f"{src}: has an {config_mod.ORMBFILE} but no model/ directory beside it")
    elif src.is_dir() and (src / "MLmodel").is_file():
        files, root, layout = list_files(src), src, "mlflow"
        cfg = ModelConfig()
    elif src.is_dir() and (src / "Kitfile").is_file():
        files, root, layout = list_files(src), src, "kitops"
        cfg = _kitfile_config(src / "Kitfile")
    else:
        files, root, layout = list_files(src), (src if src.is_dir() else src.parent), "bare"
        cfg = ModelConfig()
    if not files:
        raise BundleError(f"{src}: no model files found; put the model's files in the directory")
    if overrides is not None:
        cfg = cfg.merged(overrides)
    if not cfg.format:
        fmt, fw = infer_format(files, root if layout == "mlflow" else None)
        cfg = cfg.model_copy(update={"format": fmt, "framework": cfg.framework or fw})
    cfg = cfg.model_copy(update={
        "size": sum(f.size for f in files),
        "directory_structure": [f.relpath for f in files],
    })
    return ModelSource(root=root, files=files, config=cfg, layout=layout)


def _kitfile_config(kitfile: Path) -> ModelConfig:
    kf = read_yaml_file(kitfile, "Kitfile")
    if not isinstance(kf, dict):
        raise ConfigError(f"{kitfile}: a Kitfile is a YAML mapping (manifestVersion, package, model...)")
    from modelhaul.bundle.kitops import config_from_kitfile

    return config_from_kitfile(kf)


def config_from_files(relpaths: list[str], root: Path | None = None) -> ModelConfig:
    """What an artifact with no model config says of itself: format and framework from its files
    (from their names alone until they are written out under ``root``)."""
    files = list_files(root) if root is not None else [ModelFile(r, Path(r), 0, False) for r in sorted(relpaths)]
    fmt, framework = infer_format(files, root, by_content=root is not None)
    return ModelConfig(format=fmt, framework=framework, directory_structure=[f.relpath for f in files])
