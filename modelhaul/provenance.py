"""SLSA provenance v1 for a model artifact, as an in-toto Statement signed in a DSSE envelope.

The statement's subject is the model *manifest* (its digest covers the config and every layer),
and the build definition is what the ModelConfig already records: the MLflow run, parameters, git
repository and commit, datasets with digests, the parent artifact and the conversion's parity.
The envelope is signed with the same elliptic-curve key as the model signature (ECDSA, SHA-256
for P-256, SHA-384 for P-384), so one public key checks both.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from modelhaul.config import ModelConfig
from modelhaul.errors import SignatureError, redact

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE = "https://modelhaul.dev/model-build/v1"
BUILDER_ID = "https://modelhaul.dev/modelhaul"


def statement(name: str, manifest_digest: str, cfg: ModelConfig) -> dict[str, Any]:
    """The in-toto Statement v1 with a SLSA v1 predicate for the manifest ``manifest_digest``."""
    algo, _, hexd = manifest_digest.partition(":")
    prov = cfg.provenance
    ml = prov.mlflow if prov else None
    external: dict[str, Any] = {}
    if ml:
        external["mlflow"] = {k: v for k, v in {
            "tracking_uri": redact(ml.tracking_uri) if ml.tracking_uri else None,
            "experiment_id": ml.experiment_id, "experiment_name": ml.experiment_name,
            "run_id": ml.run_id, "run_name": ml.run_name, "model_uri": ml.model_uri,
            "registered_model": ml.registered_model, "version": ml.version,
        }.items() if v}
    if cfg.hyper_parameters:
        external["parameters"] = {p.name: p.value for p in cfg.hyper_parameters}
    git = cfg.training.git if cfg.training else None
    deps: list[dict[str, Any]] = []
    if git and git.repository:
        deps.append({"uri": redact(git.repository), "name": "training-code",
                     **({"digest": {"gitCommit": git.revision}} if git.revision else {})})
    for ds in cfg.datasets:
        entry: dict[str, Any] = {"name": ds.name or "dataset"}
        if ds.source:
            entry["uri"] = redact(ds.source)
        if ds.digest:
            entry["digest"] = {"mlflow": ds.digest}
        deps.append(entry)
    if prov and prov.parent:
        pa, _, ph = prov.parent.rpartition("@")[2].partition(":")
        deps.append({"uri": prov.parent, "name": "parent", "digest": {pa: ph}})
    internal: dict[str, Any] = {}
    if prov and prov.conversion:
        internal["conversion"] = prov.conversion.model_dump(mode="json", exclude_none=True)
    build_def: dict[str, Any] = {"buildType": BUILD_TYPE, "externalParameters": external,
                                 "resolvedDependencies": deps}
    if internal:
        build_def["internalParameters"] = internal
    run_details: dict[str, Any] = {"builder": {"id": BUILDER_ID}}
    if ml and ml.run_id:
        run_details["metadata"] = {"invocationId": ml.run_id}
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {algo: hexd}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"buildDefinition": build_def, "runDetails": run_details},
    }


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what the signature actually covers."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def _hash_for(key: Any) -> Any:
    from cryptography.hazmat.primitives import hashes

    return {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}[key.curve.key_size]


def key_id(public_key: Any) -> str:
    """sha256 of the PEM public key — the same hint model_signing puts in its bundles."""
    from cryptography.hazmat.primitives import serialization

    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def sign_envelope(stmt: dict[str, Any], private_key: Any) -> bytes:
    """A DSSE envelope (JSON bytes) around ``stmt``, signed with the EC ``private_key``."""
    from cryptography.hazmat.primitives.asymmetric import ec

    payload = json.dumps(stmt, sort_keys=True, separators=(",", ":")).encode()
    sig = private_key.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(_hash_for(private_key)))
    env = {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
           "signatures": [{"keyid": key_id(private_key.public_key()), "sig": base64.b64encode(sig).decode()}]}
    return json.dumps(env, sort_keys=True).encode()


def open_envelope(data: bytes, public_key: Any, manifest_digest: str) -> dict[str, Any]:
    """The statement inside a DSSE envelope, after checking its signature and subject."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        env = json.loads(data)
        payload = base64.b64decode(env["payload"])
        sigs = [base64.b64decode(s["sig"]) for s in env.get("signatures", [])]
        if env.get("payloadType") != PAYLOAD_TYPE:
            raise ValueError("payloadType")
    except (ValueError, KeyError, TypeError):
        raise SignatureError("the provenance attestation is not a DSSE envelope of an in-toto statement") from None
    for sig in sigs:
        try:
            public_key.verify(sig, pae(PAYLOAD_TYPE, payload), ec.ECDSA(_hash_for(public_key)))
        except InvalidSignature:
            continue
        stmt = json.loads(payload)
        algo, _, hexd = manifest_digest.partition(":")
        if not any((s.get("digest") or {}).get(algo) == hexd for s in stmt.get("subject", [])):
            raise SignatureError(f"the provenance attestation is about another artifact, not {manifest_digest}")
        return stmt
    raise SignatureError("the provenance attestation is not signed by this key")


def describe(stmt: dict[str, Any]) -> str:
    """One short phrase: where the model came from (run, commit, datasets, parent)."""
    bd = (stmt.get("predicate") or {}).get("buildDefinition") or {}
    ml = (bd.get("externalParameters") or {}).get("mlflow") or {}
    parts = []
    if ml.get("run_id"):
        parts.append(f"mlflow run {ml['run_id']}")
    for dep in bd.get("resolvedDependencies") or []:
        if dep.get("name") == "training-code":
            commit = (dep.get("digest") or {}).get("gitCommit", "")
            parts.append(f"git {dep.get('uri')}" + (f"@{commit[:12]}" if commit else ""))
        elif dep.get("name") == "parent":
            parts.append(f"from {dep.get('uri')}")
    datasets = [d for d in bd.get("resolvedDependencies") or [] if d.get("name") not in ("training-code", "parent")]
    if datasets:
        parts.append(f"{len(datasets)} dataset(s)")
    if (bd.get("internalParameters") or {}).get("conversion"):
        parts.append("converted with parity check")
    return ", ".join(parts) or "no build details recorded"
