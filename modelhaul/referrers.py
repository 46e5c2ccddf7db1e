"""OCI referrers: artifacts (signatures, attestations) attached to a model manifest by ``subject``.

A referrer is an OCI image manifest with an ``artifactType`` and a ``subject`` descriptor naming
the model manifest. Readers find them through the registry's referrers API
(``GET /v2/<repo>/referrers/<digest>``); registries without that API (distribution 2.8, and
``oci:`` layouts) are served by the OCI 1.1 *referrers tag schema*: the tag ``sha256-<hex>`` holds
an image index listing every referrer's descriptor. modelhaul always keeps that tag up to date, so
both kinds of reader (oras, cosign, skopeo-based tools) find what it attached.
"""

from __future__ import annotations

import contextlib
from typing import Any

from modelhaul import oci
from modelhaul.errors import ModelhaulError, NotFound, RegistryError

BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"  # a sigstore bundle (OpenSSF model signing)
ATTESTATION_TYPE = "application/vnd.in-toto+json"  # an in-toto statement (SLSA provenance)

EMPTY_JSON = b"{}"
MAX_REFERRER_BLOB = 4 << 20  # a signature bundle or an attestation is small; refuse anything bigger


def tag_for(digest: str) -> str:
    """The referrers tag-schema tag of a manifest digest (``sha256:abc`` -> ``sha256-abc``)."""
    algo, _, hexd = digest.partition(":")
    if not hexd or not algo.isalnum() or not hexd.isalnum():
        raise RegistryError(f"invalid digest {digest!r}")
    return f"{algo}-{hexd}"


def _subject(manifest: oci.Manifest) -> dict[str, Any]:
    return {"mediaType": manifest.media_type, "digest": manifest.digest, "size": len(manifest.data)}


def attach(target: oci.Target, subject: oci.Manifest, artifact_type: str, layer: oci.Blob,
           annotations: dict[str, str] | None = None) -> str:
    """Push ``layer`` as a referrer of ``subject`` and list it in the tag schema. Returns its digest."""
    empty = oci.Blob.from_bytes(oci.EMPTY_CONFIG, EMPTY_JSON)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": oci.MANIFEST_V1,
        "artifactType": artifact_type,
        "config": empty.descriptor(),
        "layers": [layer.descriptor()],
        "subject": _subject(subject),
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    for blob in (empty, layer):
        if not target.has_blob(blob.digest):
            target.put_blob(blob)
    data = oci.canonical_json(manifest)
    digest = target.put_manifest(data, oci.MANIFEST_V1, None)
    index_add(target, subject.digest, {
        "mediaType": oci.MANIFEST_V1, "digest": digest, "size": len(data), "artifactType": artifact_type,
        **({"annotations": dict(annotations)} if annotations else {}),
    })
    return digest


def index_add(target: oci.Target, subject_digest: str, desc: dict[str, Any]) -> None:
    """Add ``desc`` to the ``sha256-<hex>`` index (read, add, write: last writer wins, as the spec allows)."""
    tag = tag_for(subject_digest)
    index: dict[str, Any] = {"schemaVersion": 2, "mediaType": oci.INDEX_V1, "manifests": []}
    with contextlib.suppress(NotFound):
        index = target.get_manifest(tag).json
    entries = [e for e in index.get("manifests", []) if e.get("digest") != desc["digest"]]
    index["manifests"] = [*entries, desc]
    target.put_manifest(oci.canonical_json(index), oci.INDEX_V1, tag)


def find(target: oci.Target, subject_digest: str, artifact_type: str | None = None) -> list[dict[str, Any]]:
    """Descriptors of the referrers of ``subject_digest`` (API first, then the tag schema)."""
    found: dict[str, dict[str, Any]] = {}
    api = getattr(target, "get_referrers", None)
    if api is not None:
        for d in (api(subject_digest) or {}).get("manifests", []):
            found[d["digest"]] = d
    with contextlib.suppress(NotFound):
        for d in target.get_manifest(tag_for(subject_digest)).json.get("manifests", []):
            found.setdefault(d["digest"], d)
    out = list(found.values())
    if artifact_type:
        out = [d for d in out if d.get("artifactType") == artifact_type]
    return out


def read_layer(target: oci.Target, referrer_digest: str, subject_digest: str) -> tuple[dict[str, Any], bytes]:
    """The referrer manifest's JSON and its single layer's bytes (checked: subject, size, digest)."""
    import tempfile
    from pathlib import Path

    manifest = target.get_manifest(referrer_digest).json
    if (manifest.get("subject") or {}).get("digest") != subject_digest:
        raise RegistryError(f"referrer {referrer_digest} does not name {subject_digest} as its subject")
    layers = manifest.get("layers") or []
    if len(layers) != 1 or int(layers[0].get("size", 0)) > MAX_REFERRER_BLOB:
        raise RegistryError(f"referrer {referrer_digest}: expected one layer of at most {MAX_REFERRER_BLOB} bytes")
    layer = layers[0]
    local = target.blob_path(layer["digest"])
    if local is not None:
        data = local.read_bytes()
    else:
        with tempfile.TemporaryDirectory(prefix="modelhaul-ref-") as d:
            p = Path(d) / "blob"
            target.fetch_blob(layer["digest"], int(layer.get("size", 0)), p)
            data = p.read_bytes()
    if oci.sha256_bytes(data) != layer["digest"]:
        raise RegistryError(f"referrer {referrer_digest}: its layer does not match {layer['digest']}")
    return manifest, data


def summary(descs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What ``inspect`` shows of the referrers: digest, artifact type, annotations."""
    return [{"digest": d.get("digest"), "artifact_type": d.get("artifactType"),
             "annotations": d.get("annotations") or {}} for d in descs]


def attached(target: oci.Target, manifest: oci.Manifest) -> dict[str, Any]:
    """What ``inspect`` shows: signatures and attestations attached, and each provenance's summary."""
    import base64
    import json

    from modelhaul import provenance

    out: dict[str, Any] = {"signatures": [], "attestations": []}
    for desc in find(target, manifest.digest):
        item = {"digest": desc.get("digest"), "artifact_type": desc.get("artifactType"),
                "key_id": (desc.get("annotations") or {}).get("io.modelhaul.signing.key-id")}
        if desc.get("artifactType") == BUNDLE_TYPE:
            out["signatures"].append(item)
        elif desc.get("artifactType") == ATTESTATION_TYPE:
            with contextlib.suppress(ModelhaulError, ValueError, KeyError):
                _, data = read_layer(target, desc["digest"], manifest.digest)
                stmt = json.loads(base64.b64decode(json.loads(data)["payload"]))
                item["predicate_type"] = stmt.get("predicateType")
                item["provenance"] = provenance.describe(stmt) + " (not verified; use `modelhaul verify`)"
            out["attestations"].append(item)
    return out
