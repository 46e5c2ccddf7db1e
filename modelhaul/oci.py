"""OCI vocabulary shared by the store, the registry client and the bundles.

A *target* is anything that holds manifests and blobs under a repository: a remote registry
(:class:`modelhaul.registry.RegistryTarget`) or a local OCI image layout directory
(:class:`modelhaul.store.LayoutTarget`). Push, pull and tag are all copies between targets.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

MANIFEST_V1 = "application/vnd.oci.image.manifest.v1+json"
INDEX_V1 = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
MANIFEST_TYPES = (MANIFEST_V1, DOCKER_MANIFEST_V2, INDEX_V1)

# ModelPack (CNCF model-spec v1)
MODELPACK_ARTIFACT = "application/vnd.cncf.model.manifest.v1+json"
MODELPACK_CONFIG = "application/vnd.cncf.model.config.v1+json"
MODELPACK_LAYER_PREFIX = "application/vnd.cncf.model."
ANNOTATION_FILEPATH = "org.cncf.model.filepath"
ANNOTATION_FILE_METADATA = "org.cncf.model.file.metadata+json"

# ModelPack before its CNCF rename; modctl still reads these
CNAI_ARTIFACT = "application/vnd.cnai.model.manifest.v1+json"
CNAI_CONFIG = "application/vnd.cnai.model.config.v1+json"
CNAI_LAYER_PREFIX = "application/vnd.cnai.model."
CNAI_ANNOTATION_FILEPATH = "org.cnai.model.filepath"

# what `oras push` writes: an empty or unknown config, layers named by their title annotation
UNKNOWN_CONFIG = "application/vnd.unknown.config.v1+json"
ORAS_FILE = "application/vnd.oci.image.layer.v1.tar"  # oras' default type for a *file* (not a tar)
ORAS_DIRECTORY = "application/vnd.oci.image.layer.v1.tar+gzip"  # a pushed directory, tar+gzip
ORAS_UNPACK = "io.deis.oras.content.unpack"

# ormb
ORMB_CONFIG = "application/vnd.caicloud.model.config.v1alpha1+json"
ORMB_LAYER = "application/tar+gzip"

# KitOps
KITOPS_CONFIG = "application/vnd.kitops.modelkit.config.v1+json"
KITOPS_LAYER_PREFIX = "application/vnd.kitops.modelkit."

# modelhaul's own annotations on every manifest it writes
ANNOTATION_CONFIG = "io.modelhaul.config"  # the full ModelConfig as JSON
ANNOTATION_FORMAT = "io.modelhaul.bundle-format"  # modelpack | ormb
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, bufsize: int = 4 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(bufsize)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return "sha256:" + h.hexdigest()

IGNORED_LAYER_TYPES = frozenset({"image/png"})  # thumbnails some tools attach; not part of the model


@dataclass
class Blob:
    """A blob to upload: its bytes live in ``path`` (streamed) or in ``data`` (small blobs)."""

    media_type: str
    digest: str
    size: int
    path: Path | None = None
    data: bytes | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    def descriptor(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d

    @classmethod
    def from_bytes(cls, media_type: str, data: bytes, annotations: dict[str, str] | None = None) -> Blob:
        return cls(media_type, sha256_bytes(data), len(data), data=data, annotations=annotations or {})


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON: sorted keys, no spaces (same object, same digest)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class Manifest:
    """A manifest as fetched: raw bytes (what the digest covers), parsed JSON, media type, digest."""

    data: bytes
    media_type: str
    digest: str

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.data)

    @property
    def layers(self) -> list[dict[str, Any]]:
        return list(self.json.get("layers", []))

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.json.get("config", {}))

    def blobs(self) -> list[dict[str, Any]]:
        """Config first, then layers: the order to copy them in."""
        return [self.config, *self.layers] if self.config else self.layers


class Target(Protocol):
    """What push/pull/tag need from a place that stores artifacts."""

    def has_blob(self, digest: str) -> bool: ...

    def put_blob(self, blob: Blob) -> None:
        """Store a blob whose digest is already known; the bytes come from ``blob.path`` or ``.data``."""

    def fetch_blob(self, digest: str, size: int, dest: Path) -> None:
        """Write a blob to ``dest``, verified against ``digest`` (temp file + rename)."""

    def blob_path(self, digest: str) -> Path | None:
        """A local file holding the blob, when the target is local (lets a copy read it directly)."""

    def get_manifest(self, reference: str) -> Manifest: ...

    def put_manifest(self, data: bytes, media_type: str, tag: str | None) -> str:
        """Store a manifest (under ``tag`` when given); returns its digest."""

    def list_tags(self) -> list[str]: ...

    def delete(self, reference: str) -> None: ...


def bundle_format_of_manifest(manifest: Manifest) -> str:
    """modelpack | ormb | kitops | oras | unknown, from the config media type (and layer annotations).

    ``oras``: files pushed with ``oras push`` — an empty, unknown or foreign config and layers that
    all carry a title; they are read as a model directory.
    """
    m = manifest.json
    mt = (m.get("config") or {}).get("mediaType", "")
    if mt in (MODELPACK_CONFIG, CNAI_CONFIG) or m.get("artifactType") in (
        MODELPACK_ARTIFACT, CNAI_ARTIFACT
    ):
        return "modelpack"
    if mt == ORMB_CONFIG:
        return "ormb"
    if mt == KITOPS_CONFIG:
        return "kitops"
    layers = m.get("layers") or []
    if layers and all(ANNOTATION_TITLE in (layer.get("annotations") or {}) for layer in layers):
        return "oras"
    return "unknown"


def label_of(desc: dict[str, Any]) -> str:
    """A layer as a person knows it (in progress bars and log lines): its file path, else a short digest."""
    notes = desc.get("annotations") or {}
    return (notes.get(ANNOTATION_FILEPATH) or notes.get(CNAI_ANNOTATION_FILEPATH)
            or notes.get(ANNOTATION_TITLE) or str(desc.get("digest", ""))[:19])
