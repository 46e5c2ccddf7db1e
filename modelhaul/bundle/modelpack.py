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
from pathlib import Path, PurePosixPath
from typing import Any

from modelhaul import oci
from modelhaul.bundle.source import ModelFile
from modelhaul.config import ModelConfig, format_name, rfc3339
from modelhaul.errors import ConfigError
from modelhaul.origin import KeptLayer, Origin, authors_of, overlay

#: the ModelConfig label that carries ModelPack's ``descriptor.family`` (a model family such as llama3)
FAMILY_LABEL = "family"
ANNOTATION_UNTESTED = "org.cncf.model.file.mediatype.untested"

_CODE = {".py", ".sh", ".ipynb", ".r", ".jl"}
_CODE_NAMES = {"requirements.txt", "conda.yaml", "python_env.yaml", "environment.yml", "Dockerfile"}
_DOC = {".md", ".rst", ".pdf", ".html"}
_DOC_PREFIXES = ("readme", "license", "licence", "notice", "model_card")
_TABULAR = {".csv", ".parquet", ".jsonl", ".tsv", ".arrow"}
_ARRAYS = {".npy", ".npz"}
_DATA_DIRS = {"data", "dataset", "datasets"}
_DATASET_NAMES = {"input_example.json", "serving_input_example.json"}
_WEIGHT_CONFIG_NAMES = {"MLmodel", "config.json", "generation_config.json", "tokenizer.json",
                        "tokenizer_config.json", "special_tokens_map.json", "config.pbtxt",
                        "model-settings.json", "registered_model_meta", "vocab.txt", "merges.txt",
                        "tokenizer.model", "ormbfile.yaml", "Kitfile"}


def classify(relpath: str, path: Path | None = None) -> tuple[str, bool]:
    """(kind, known) of a file: weight | weight.config | doc | code | dataset.

    ``known`` is False for a guess from the name alone (it then travels as
    ``org.cncf.model.file.mediatype.untested``). A file one of the format parsers recognises by its
    content (a LightGBM ``model.txt``, an XGBoost ``model.json``, a pickle, an ONNX graph ...) is a
    weight whatever its name.
    """
    p = PurePosixPath(relpath)
    name, suffix = p.name, p.suffix.lower()
    if name in _WEIGHT_CONFIG_NAMES:
        return "weight.config", True
    if name in _CODE_NAMES or suffix in _CODE:
        return "code", True
    if name in _DATASET_NAMES:
        return "dataset", True
    if path is not None and path.is_file():
        from modelhaul.formats import sniff

        if sniff(path):
            return "weight", True
    if "variables" in p.parts[:-1]:  # a SavedModel's variables
        return "weight", True
    if suffix in _DOC or name.lower().startswith(_DOC_PREFIXES):
        return "doc", True
    if suffix in _TABULAR:
        return "dataset", False
    if suffix in _ARRAYS:  # arrays beside a model are usually its tensors; under data/ they are data
        return ("dataset" if _DATA_DIRS & {d.lower() for d in p.parts[:-1]} else "weight"), False
    if suffix == ".txt":
        return "doc", False
    if suffix in {".yaml", ".yml", ".json"}:
        return "weight.config", False
    return "weight", False


def layer_kind(relpath: str, path: Path | None = None) -> str:
    """weight | weight.config | doc | code | dataset — what a file is (see :func:`classify`)."""
    return classify(relpath, path)[0]


def layer_media_type(relpath: str, path: Path | None = None) -> str:
    return f"{oci.MODELPACK_LAYER_PREFIX}{layer_kind(relpath, path)}.v1.raw"


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


# a KitOps layer type -> the ModelPack kind of its files
_KIT_KINDS = {"model": "weight", "modelpart": "weight", "code": "code", "dataset": "dataset", "docs": "doc"}
_KINDS = ("weight.config", "weight", "doc", "code", "dataset")


def kind_of_media_type(media_type: str) -> str | None:
    """weight | weight.config | doc | code | dataset for a ModelPack, CNAI or KitOps layer type."""
    for prefix in (oci.MODELPACK_LAYER_PREFIX, oci.CNAI_LAYER_PREFIX):
        if media_type.startswith(prefix):
            kind = media_type[len(prefix):].split(".v1.", 1)[0]
            return kind if kind in _KINDS else None
    if media_type.startswith(oci.KITOPS_LAYER_PREFIX):
        return _KIT_KINDS.get(media_type[len(oci.KITOPS_LAYER_PREFIX):].split(".v1.", 1)[0])
    return None


def _under(relpath: str, path: str) -> bool:
    path = path.strip("/")
    return path in ("", ".") or relpath == path or relpath.startswith(path + "/")


def origin_kind(origin: Origin | None, relpath: str) -> str | None:
    """The kind the tool that wrote the artifact gave this file (its layer, or the Kitfile entry
    holding it: a ``code:`` entry stays code), the most specific path first; None when it said none."""
    if origin is None:
        return None
    found: list[tuple[int, str]] = []
    for path, kept in origin.layers.items():
        kind = kind_of_media_type(kept.media_type or "")
        if kind and _under(relpath, path):
            found.append((len(path.strip("/")), kind))
    if origin.kitfile:
        from modelhaul.bundle.kitops import entries

        for entry in entries(origin.kitfile):
            if _under(relpath, entry.path):
                kind = "weight.config" if "config" in str(entry.data.get("type", "")) else _KIT_KINDS[entry.kind]
                found.append((len(entry.path.strip("/").lstrip(".")), kind))
    return max(found)[1] if found else None


def layer_blob(f: ModelFile, digest: str, origin: Origin | None = None) -> oci.Blob:
    """A file's raw layer. What another tool wrote for the same path is kept: its kind, and its
    annotations (its file metadata only while the file is unchanged)."""
    kept = origin.layers.get(f.relpath) if origin else None
    theirs = origin_kind(origin, f.relpath)
    kind, known = (theirs, True) if theirs else classify(f.relpath, f.path)
    annotations = _kept_annotations(kept, digest)
    annotations[oci.ANNOTATION_FILEPATH] = f.relpath
    annotations.setdefault(oci.ANNOTATION_FILE_METADATA, file_metadata(f))
    if not known:
        annotations[ANNOTATION_UNTESTED] = "true"
    return oci.Blob(
        media_type=f"{oci.MODELPACK_LAYER_PREFIX}{kind}.v1.raw",
        digest=digest,
        size=f.size,
        path=f.path,
        annotations=annotations,
    )


def _kept_annotations(kept: KeptLayer | None, digest: str) -> dict[str, str]:
    """Another tool's annotations of a file's layer, for a single-file layer (never a directory's)."""
    if kept is None or kept.annotations.get(oci.ORAS_UNPACK) == "true":
        return {}
    same = kept.digest == digest
    return {k: v for k, v in kept.annotations.items() if same or k != oci.ANNOTATION_FILE_METADATA}


def config_document(cfg: ModelConfig, diff_ids: list[str]) -> dict[str, Any]:
    """The ModelPack config JSON, mapped from the ModelConfig over the config the model was read
    from (``origin.modelpack``): every field another tool wrote is kept as written, modelhaul's
    changes are written over it (:func:`modelhaul.origin.overlay`).

    Everything here comes from the model's own content and metadata, never from where it is
    published: the same directory gives the same digest in any repository. ``descriptor.name``
    (optional in the schema) is the ``name`` label, else the MLflow registered model's name.
    """
    doc = _own_document(cfg)
    theirs = cfg.origin.modelpack if cfg.origin else None
    if theirs:
        doc = overlay(theirs, doc, _own_document(config_from_document(theirs)))
    return {**doc, "modelfs": {"type": "layers", "diffIds": diff_ids}}


def _own_document(cfg: ModelConfig) -> dict[str, Any]:
    descriptor: dict[str, Any] = {}
    mlflow = cfg.provenance.mlflow if cfg.provenance else None
    labels = cfg.labels
    kit_package = ((cfg.origin.kitfile or {}) if cfg.origin else {}).get("package") or {}
    name = labels.get("name") or labels.get("kitops.package.name") or (mlflow.registered_model if mlflow else None)
    if name:
        descriptor["name"] = name
    if cfg.created:
        descriptor["createdAt"] = rfc3339(cfg.created)
    if cfg.author:
        descriptor["authors"] = authors_of(cfg.author, cfg.origin)
    if cfg.description:
        descriptor["description"] = cfg.description
    if isinstance(kit_package, dict) and kit_package.get("license"):
        descriptor["licenses"] = [str(kit_package["license"])]
    git = cfg.training.git if cfg.training else None
    if git and git.repository:
        descriptor["sourceURL"] = git.repository
    if git and git.revision:
        descriptor["revision"] = git.revision
    version = labels.get("version") or labels.get("kitops.package.version") or (mlflow.version if mlflow else None)
    if version:
        descriptor["version"] = str(version)
    if cfg.labels.get(FAMILY_LABEL):  # a model family (llama3, bert), never the framework
        descriptor["family"] = cfg.labels[FAMILY_LABEL]
    datasets = [d.source for d in cfg.datasets if d.source]
    if datasets:
        descriptor["datasetsURL"] = datasets
    model_cfg: dict[str, Any] = {}
    if cfg.format:
        model_cfg["format"] = cfg.format
    return {"descriptor": descriptor, "config": model_cfg}


def config_from_document(doc: dict[str, Any]) -> ModelConfig:
    """A ModelConfig from a foreign ModelPack config (one with no modelhaul annotation); the config
    itself is kept whole in ``origin.modelpack``."""
    d = doc.get("descriptor") or {}
    c = doc.get("config") or {}
    if not isinstance(d, dict) or not isinstance(c, dict):
        raise ConfigError("ModelPack config: 'descriptor' and 'config' must be JSON objects")
    data: dict[str, Any] = {
        "origin": {"modelpack": {k: v for k, v in doc.items() if k != "modelfs"}},
        "author": ", ".join(d.get("authors") or []) or None,
        "created": d.get("createdAt"),
        "description": d.get("description") or d.get("title"),
        "format": format_name(c.get("format")),
        "labels": {k: str(v) for k, v in (("name", d.get("name")), ("version", d.get("version")),
                                          (FAMILY_LABEL, d.get("family"))) if v},
    }
    if d.get("sourceURL") or d.get("revision"):
        data["training"] = {"git": {"repository": d.get("sourceURL"), "revision": d.get("revision")}}
    return ModelConfig.from_dict({k: v for k, v in data.items() if v}, source="ModelPack config")
