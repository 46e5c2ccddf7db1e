"""Packing a model directory into an OCI artifact: the config blob, the layers and the manifest.

One function, :func:`pack`, for each bundle format modelhaul writes (ModelPack, KitOps, ormb). Whatever
the format, the full ModelConfig travels in the manifest annotation ``io.modelhaul.config``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from modelhaul import config as config_mod
from modelhaul import digestcache, oci
from modelhaul.bundle import modelpack
from modelhaul.bundle.source import open_source
from modelhaul.bundle.tarball import write_tar
from modelhaul.config import ModelConfig
from modelhaul.declarations import BUNDLE_FORMATS  # declared once, with the steps' choices
from modelhaul.errors import ConfigError
from modelhaul.meter import cancellable_pool


# ormb's single layer must be gzip, but weights barely compress and deflate runs at ~45 MB/s:
# stored (level 0) gzip blocks are valid gzip at disk speed. MODELHAUL_GZIP_LEVEL=1..9 to compress.
def ormb_gzip_level() -> int:
    """``MODELHAUL_GZIP_LEVEL`` (0-9, default 0), read when packing so a bad value is one clear line."""
    text = os.environ.get("MODELHAUL_GZIP_LEVEL", "").strip() or "0"
    if not (text.isascii() and text.isdigit() and 0 <= int(text) <= 9):
        raise ConfigError(f"MODELHAUL_GZIP_LEVEL={text!r}: expected a gzip level from 0 (stored, fastest) to 9")
    return int(text)


@dataclass
class Packed:
    """An artifact ready to push: blobs (config first) and the manifest that names them."""

    manifest: bytes
    manifest_media_type: str
    config: ModelConfig
    blobs: list[oci.Blob]
    bundle_format: str
    _tmp: Path | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return sum(b.size for b in self.blobs)

    @property
    def digest(self) -> str:
        return oci.sha256_bytes(self.manifest)


Digester = Callable[[Path], str]
# uploads what a producer writes to a stream, returning (digest, size), or None when it cannot
LayerStreamer = Callable[[Callable[[Any], tuple[str, int]]], "tuple[str, int] | None"]


def _hash_files(paths: list[Path], digester: Digester | None = None) -> list[str]:
    """File digests, from the digest cache where unchanged, else from ``digester`` (default: hash).

    A publish to a registry passes a digester that uploads a new file while hashing it, so the
    file is read once instead of twice (see :func:`modelhaul.transfer.upload_digester`).
    """
    fn = digester or digestcache.file_digest
    if len(paths) <= 1:
        return [fn(p) for p in paths]
    with cancellable_pool(min(4, len(paths))) as pool:  # Ctrl-C stops an upload under way too
        return list(pool.map(fn, paths))


def _manifest(cfg_blob: oci.Blob, layers: list[oci.Blob], cfg: ModelConfig, bundle_format: str,
              artifact_type: str | None) -> bytes:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": oci.MANIFEST_V1}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = cfg_blob.descriptor()
    doc["layers"] = [b.descriptor() for b in layers]
    kept = cfg.origin.annotations if cfg.origin else {}
    carried = cfg.model_copy(update={"origin": cfg.origin.without_layers()}) if cfg.origin else cfg
    doc["annotations"] = {  # other tools' annotations kept; the layers' own travel in the layers
        **kept,
        oci.ANNOTATION_CONFIG: carried.to_json().decode(),
        oci.ANNOTATION_FORMAT: bundle_format,
    }
    if cfg.created:
        doc["annotations"][oci.ANNOTATION_CREATED] = config_mod.rfc3339(cfg.created)
    return oci.canonical_json(doc)


def ormb_config_bytes(cfg: ModelConfig) -> bytes:
    """ormb's config blob: raw UTF-8 (its yaml.v2 parser rejects JSON's surrogate-pair escapes)."""
    return json.dumps(cfg.to_ormb_dict(), sort_keys=True, ensure_ascii=False).encode()


@contextlib.contextmanager
def pack(
    src: Path,
    *,
    bundle_format: str = "modelpack",
    config: ModelConfig | dict[str, Any] | None = None,
    digester: Digester | None = None,
    stream_layer: LayerStreamer | None = None,
) -> Iterator[Packed]:
    """Pack a model directory; the result is valid inside the ``with`` block (temp files for ormb).

    ``stream_layer`` (a registry's ``upload_stream``) sends ormb's tar+gzip layer while it is
    built, in one pass and without a temp file; the layer blob is then already in the registry.
    """
    if bundle_format not in BUNDLE_FORMATS:
        raise ConfigError(f"unknown bundle format {bundle_format!r}; use one of {', '.join(BUNDLE_FORMATS)}")
    source = open_source(Path(src), config)
    cfg = source.config
    if bundle_format == "modelpack":
        digests = _hash_files([f.path for f in source.files], digester)
        layers = [modelpack.layer_blob(f, d, cfg.origin) for f, d in zip(source.files, digests, strict=True)]
        doc = modelpack.config_document(cfg, [b.digest for b in layers])
        cfg_blob = oci.Blob.from_bytes(oci.MODELPACK_CONFIG, oci.canonical_json(doc))
        manifest = _manifest(cfg_blob, layers, cfg, bundle_format, oci.MODELPACK_ARTIFACT)
        yield Packed(manifest, oci.MANIFEST_V1, cfg, [cfg_blob, *layers], bundle_format)
        return
    tmp = Path(tempfile.mkdtemp(prefix="modelhaul-pack-", dir=os.environ.get("MODELHAUL_TMPDIR")))
    try:
        if bundle_format == "kitops":
            from modelhaul.bundle.kitwrite import pack_source

            cfg_blob, layers = pack_source(source, config, tmp)
            manifest = _manifest(cfg_blob, layers, cfg, bundle_format, None)
            yield Packed(manifest, oci.MANIFEST_V1, cfg, [cfg_blob, *layers], bundle_format, tmp)
            return
        tar_path = tmp / "model.tar.gz"
        dirs = sorted({"model/"} | {
            f"model/{PurePosixPath(*PurePosixPath(f.relpath).parts[:i]).as_posix()}/"
            for f in source.files for i in range(1, len(PurePosixPath(f.relpath).parts))
        })
        def tar_to(out: Path | Any) -> tuple[str, int]:
            digest, size, _ = write_tar(((f"model/{f.relpath}", f.path) for f in source.files), out,
                                        gzip_level=ormb_gzip_level(), dirs=dirs)
            return digest, size

        streamed = stream_layer(tar_to) if stream_layer is not None else None
        if streamed is not None:
            layer = oci.Blob(oci.ORMB_LAYER, *streamed)
        else:
            layer = oci.Blob(oci.ORMB_LAYER, *tar_to(tar_path), path=tar_path)
        cfg_blob = oci.Blob.from_bytes(oci.ORMB_CONFIG, ormb_config_bytes(cfg))
        manifest = _manifest(cfg_blob, [layer], cfg, bundle_format, None)
        yield Packed(manifest, oci.MANIFEST_V1, cfg, [cfg_blob, layer], bundle_format, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
