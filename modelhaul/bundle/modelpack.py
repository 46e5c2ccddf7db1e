"""The ModelPack (CNCF model-spec v1) bundle: one uncompressed layer per file.

Weights are never compressed (gzip would dominate every push) and never copied: a layer *is*
the file, streamed from where it lies, so its digest is the file's digest and a cache of file
digests makes re-publishing free. Each layer carries ``org.cncf.model.filepath`` and a normalised
``org.cncf.model.file.metadata+json`` (zeroed time, uid/gid 0) so the manifest is reproducible.
The config blob validates against the ModelPack schema, which allows no extra fields: modelhaul's
full ModelConfig travels in the manifest annotation ``io.modelhaul.config``.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from modelhaul import oci
from modelhaul.bundle.source import ModelFile
from modelhaul.config import ModelConfig, rfc3339

_CODE = {".py", ".sh", ".ipynb", ".r", ".jl"}
_CODE_NAMES = {"requirements.txt", "conda.yaml", "python_env.yaml", "environment.yml", "Dockerfile"}
_DOC = {".md", ".rst", ".txt", ".pdf", ".html"}
_DOC_PREFIXES = ("readme", "license", "licence", "notice", "model_card")
_DATASET = {".csv", ".parquet", ".jsonl", ".tsv", ".arrow", ".npy", ".npz"}
_DATASET_NAMES = {"input_example.json", "serving_input_example.json"}
_WEIGHT_CONFIG_NAMES = {"MLmodel", "config.json", "generation_config.json", "tokenizer.json",
                        "tokenizer_config.json", "special_tokens_map.json", "config.pbtxt",
                        "model-settings.json", "registered_model_meta"}


def layer_kind(relpath: str) -> str:
    """weight | weight.config | doc | code | dataset — what a file is, by its name."""
    p = PurePosixPath(relpath)
    name, suffix = p.name, p.suffix.lower()
    if name in _CODE_NAMES or suffix in _CODE:
        return "code"
    if name in _DATASET_NAMES or suffix in _DATASET:
        return "dataset"
    if name in _WEIGHT_CONFIG_NAMES or suffix in {".yaml", ".yml"} or (
        suffix == ".json" and "variables" not in p.parts
    ):
        return "weight.config"
    if suffix in _DOC or name.lower().startswith(_DOC_PREFIXES):
        return "doc"
    return "weight"


def layer_media_type(relpath: str) -> str:
    return f"{oci.MODELPACK_LAYER_PREFIX}{layer_kind(relpath)}.v1.raw"


def file_metadata(f: ModelFile) -> str:
    return json.dumps(
        {
            "name": f.relpath,
            "mode": 0o755 if f.executable else 0o644,
            "uid": 0,
            "gid": 0,
            "size": f.size,
            "mtime": "1970-01-01T00:00:00Z",
            "typeflag": 48,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def layer_blob(f: ModelFile, digest: str) -> oci.Blob:
    return oci.Blob(
        media_type=layer_media_type(f.relpath),
        digest=digest,
        size=f.size,
        path=f.path,
        annotations={oci.ANNOTATION_FILEPATH: f.relpath, oci.ANNOTATION_FILE_METADATA: file_metadata(f)},
    )


def config_document(cfg: ModelConfig, name: str, diff_ids: list[str]) -> dict[str, Any]:
    """The ModelPack config JSON: only the schema's fields, mapped from the ModelConfig."""
    descriptor: dict[str, Any] = {"name": name or "model"}
    if cfg.created:
        descriptor["createdAt"] = rfc3339(cfg.created)
    if cfg.author:
        descriptor["authors"] = [cfg.author]
    if cfg.description:
        descriptor["description"] = cfg.description
    git = cfg.training.git if cfg.training else None
    if git and git.repository:
        descriptor["sourceURL"] = git.repository
    if git and git.revision:
        descriptor["revision"] = git.revision
    mlflow = cfg.provenance.mlflow if cfg.provenance else None
    if mlflow and mlflow.version:
        descriptor["version"] = str(mlflow.version)
    if cfg.framework:
        descriptor["family"] = cfg.framework
    datasets = [d.source for d in cfg.datasets if d.source]
    if datasets:
        descriptor["datasetsURL"] = datasets
    model_cfg: dict[str, Any] = {}
    if cfg.format:
        model_cfg["format"] = cfg.format
    return {"descriptor": descriptor, "config": model_cfg, "modelfs": {"type": "layers", "diffIds": diff_ids}}


def config_from_document(doc: dict[str, Any]) -> ModelConfig:
    """A ModelConfig from a foreign ModelPack config (one with no modelhaul annotation)."""
    d = doc.get("descriptor") or {}
    c = doc.get("config") or {}
    data: dict[str, Any] = {
        "author": ", ".join(d.get("authors") or []) or None,
        "created": d.get("createdAt"),
        "description": d.get("description") or d.get("title"),
        "format": c.get("format"),
        "framework": d.get("family"),
        "labels": {k: str(v) for k, v in (("name", d.get("name")), ("version", d.get("version"))) if v},
    }
    if d.get("sourceURL") or d.get("revision"):
        data["training"] = {"git": {"repository": d.get("sourceURL"), "revision": d.get("revision")}}
    return ModelConfig.from_dict({k: v for k, v in data.items() if v}, source="ModelPack config")
