"""The ModelConfig of an artifact, read back: modelhaul's annotation, else mapped from the artifact's own
config blob (ModelPack, ormb, KitOps) or, for files pushed with ``oras push``, from their names.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from modelhaul import oci
from modelhaul.bundle import modelpack
from modelhaul.bundle.source import config_from_files
from modelhaul.config import ModelConfig
from modelhaul.errors import BundleError, ConfigError
from modelhaul.oci import bundle_format_of_manifest


def _read_small_blob(target: oci.Target, desc: dict[str, Any]) -> bytes:
    if int(desc.get("size", 0)) > 16 << 20:
        raise BundleError(f"config blob {desc.get('digest')} is larger than 16 MiB; not a model config")
    path = target.blob_path(desc["digest"])
    if path is not None:
        data = path.read_bytes()
        if oci.sha256_bytes(data) != desc["digest"]:
            raise BundleError(f"blob {desc['digest']} in the local store is corrupt; pull it again")
        return data
    with tempfile.TemporaryDirectory(prefix="modelhaul-cfg-") as d:
        p = Path(d) / "blob"
        target.fetch_blob(desc["digest"], int(desc.get("size", 0)), p)
        return p.read_bytes()


def config_blob_json(manifest: oci.Manifest, target: oci.Target) -> Any:
    """The artifact's config blob as JSON (a Kitfile, a ModelPack or ormb config), as written."""
    try:
        return json.loads(_read_small_blob(target, manifest.config) or b"{}")
    except json.JSONDecodeError:
        raise ConfigError(f"manifest {manifest.digest}: config blob is not JSON") from None


def read_config(manifest: oci.Manifest, target: oci.Target) -> ModelConfig:
    """The ModelConfig of an artifact: modelhaul's annotation, else mapped from its config blob.

    What other tools wrote (their config, manifest and layer annotations) comes along in
    ``origin`` (see :mod:`modelhaul.origin`), so whatever re-publishes the model keeps it.
    """
    ann = (manifest.json.get("annotations") or {}).get(oci.ANNOTATION_CONFIG)
    if ann:
        try:
            cfg = ModelConfig.from_dict(json.loads(ann), source=f"manifest {manifest.digest}")
        except json.JSONDecodeError:
            raise ConfigError(f"manifest {manifest.digest}: {oci.ANNOTATION_CONFIG} is not JSON") from None
        return _with_origin(cfg, manifest) if cfg.origin else cfg
    return _with_origin(_foreign_config(manifest, target), manifest)


def _with_origin(cfg: ModelConfig, manifest: oci.Manifest) -> ModelConfig:
    """``cfg`` with the manifest's foreign annotations and each file's layer in ``origin``."""
    from modelhaul.origin import Origin, kept_of_manifest

    annotations, layers = kept_of_manifest(manifest.json)
    origin = cfg.origin or Origin()
    return cfg.model_copy(update={"origin": origin.model_copy(update={
        "annotations": {**annotations, **origin.annotations}, "layers": layers})})


def _foreign_config(manifest: oci.Manifest, target: oci.Target) -> ModelConfig:
    """The ModelConfig mapped from a foreign artifact's own config blob (or its files' names)."""
    kind = bundle_format_of_manifest(manifest)
    if kind == "unknown":
        mt = manifest.config.get("mediaType")
        raise BundleError(f"manifest {manifest.digest}: config type {mt!r} is not a model (ModelPack, ormb, KitOps, "
                          "or files pushed with oras push)")
    if kind == "oras":
        return config_from_files([layer["annotations"][oci.ANNOTATION_TITLE] for layer in manifest.layers])
    doc = config_blob_json(manifest, target)
    if kind == "modelpack":
        return modelpack.config_from_document(doc)
    if kind == "ormb":
        return ModelConfig.from_ormb_dict(doc, source="ormb config")
    from modelhaul.bundle.kitops import config_from_kitfile

    return config_from_kitfile(doc)
