"""Model directories as users hand them to us: what files, and what config.

Accepted layouts (first match wins):

* ormb: ``ormbfile.yaml`` beside ``model/`` — config from the file, files from ``model/``;
* MLflow model directory (``MLmodel`` at its root) — config inferred from the flavors;
* KitOps directory (``Kitfile``) — config from the Kitfile's package section;
* a bare directory (or a single file) — config inferred from the file names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhaul import config as config_mod
from modelhaul.config import ModelConfig
from modelhaul.errors import BundleError, ConfigError
from modelhaul.model_files import ModelFile, files_root, list_files
from modelhaul.useryaml import MAX_MLMODEL_BYTES, read_yaml_file


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


def open_source(src: Path, overrides: ModelConfig | dict[str, Any] | None = None) -> ModelSource:
    """Read a model directory in any accepted layout, with ``overrides`` laid over its config."""
    src = Path(src)
    if not src.exists():
        raise BundleError(f"{src}: no such file or directory")
    root = files_root(src)  # the same files an early upload sends (see modelhaul.transfer.early_uploads)
    files = list_files(root)
    if root != src:
        cfg, layout = config_mod.load(src), "ormb"
    elif src.is_dir() and (src / "MLmodel").is_file():
        cfg, layout = ModelConfig(), "mlflow"
    elif src.is_dir() and (src / "Kitfile").is_file():
        cfg, layout = _kitfile_config(src / "Kitfile"), "kitops"
    else:
        cfg, layout = ModelConfig(), "bare"
        root = src if src.is_dir() else src.parent
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
