"""Sign and verify model artifacts with the OpenSSF model signing format (``model-signing``).

**What is signed**: the files of the ``model/`` directory that ``modelhaul export REF DIR`` writes
(``DIR/model``), hashed the way ``model_signing`` hashes a directory by default (sha256 per file,
git metadata files ignored). So ``model_signing verify key --signature BUNDLE --public_key PUB
DIR/model`` checks an exported model with nobody's code but OpenSSF's. ``ormbfile.yaml`` is not in
that set: the config is covered by the provenance attestation, whose subject is the manifest digest
(which covers config and layers).

Both go into the registry as OCI referrers of the model manifest (:mod:`modelhaul.referrers`):
the Sigstore bundle (``application/vnd.dev.sigstore.bundle.v0.3+json``) and the DSSE-signed SLSA
provenance (``application/vnd.in-toto+json``).

Verification needs no second hash of a ModelPack model: each file is a ``.raw`` layer whose digest
*is* the file's sha256, so the signed statement is compared with the manifest's layers (and the
layer bytes are checked against those digests when they are pulled). Other bundle formats (ormb's
single tar, ModelPack directory layers) are exported to a scratch directory and hashed.

``model_signing`` is imported lazily: it is the ``sign`` extra.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhaul import oci, provenance, referrers
from modelhaul.errors import ConfigError, ModelhaulError, SignatureError
from modelhaul.paths import scratch_dir
from modelhaul.registry_options import RegistryOptions

BUNDLE_TYPE = referrers.BUNDLE_TYPE
ATTESTATION_TYPE = referrers.ATTESTATION_TYPE
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")  # what model_signing skips by default


@dataclass
class Verified:
    """What a successful verification established."""

    ref: str
    digest: str
    key_id: str
    files: list[str]
    provenance: dict[str, Any] | None = None
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "digest": self.digest, "verified": True, "key_id": self.key_id,
                "files": len(self.files), "provenance": self.summary, "line": self.line()}

    def line(self) -> str:
        return (f"{self.ref}: signed by key {self.key_id[:16]}, {len(self.files)} file(s) verified; "
                f"provenance: {self.summary}")


def _import_model_signing() -> Any:
    try:
        import model_signing  # noqa: F401
    except ImportError:
        raise ConfigError("signing needs the model-signing package: pip install 'modelhaul[sign]'") from None
    return model_signing


@contextlib.contextmanager
def key_file(key: str, what: str) -> Iterator[Path]:
    """A file holding the PEM ``key`` (given as a path or as the PEM text itself)."""
    if not key.strip():
        raise ConfigError(f"no {what} given: pass a PEM file (or its text)"
                          + ("; or set MODELHAUL_SIGNING_KEY" if what == "signing key" else ""))
    if "-----BEGIN" in key:
        with tempfile.TemporaryDirectory(prefix="modelhaul-key-") as d:
            p = Path(d) / "key.pem"
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(key)
            yield p
        return
    p = Path(key).expanduser()
    if not p.is_file():
        raise ConfigError(f"{what} {key!r}: no such file (give a PEM file or the PEM text)")
    yield p


def load_private_key(path: Path, password: str | None) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        k = serialization.load_pem_private_key(path.read_bytes(), password.encode() if password else None)
    except TypeError as exc:
        if "not encrypted" in str(exc):
            raise ConfigError(f"signing key {path.name}: a password was given but the key is not encrypted"
                              ) from None
        raise ConfigError(f"signing key {path.name}: it is password-protected; pass its password") from None
    except ValueError:
        raise ConfigError(f"signing key {path.name}: not a PEM private key, or the password is wrong") from None
    if not isinstance(k, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"signing key {path.name}: expected an elliptic-curve key (P-256 or P-384)")
    return k


def load_public_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        k = serialization.load_pem_public_key(path.read_bytes())
    except ValueError:
        raise ConfigError(f"public key {path.name}: not a PEM public key") from None
    if not isinstance(k, ec.EllipticCurvePublicKey):
        raise ConfigError(f"public key {path.name}: expected an elliptic-curve public key")
    return k


def _open(ref: str, options: RegistryOptions | None) -> tuple[Any, oci.Target, oci.Manifest]:
    from modelhaul.artifacts import open_target
    from modelhaul.reference import parse

    r = parse(ref)
    target = open_target(r, options)
    return r, target, target.get_manifest(r.reference)


def sign_model(ref: str, key: str, *, password: str | None = None,
               options: RegistryOptions | None = None) -> dict[str, Any]:
    """Sign the model at ``ref`` and attach the signature and its SLSA provenance as referrers.

    Returns ``{ref, digest, key_id, files, signature, attestation}`` (the two referrer digests).
    """
    from modelhaul import artifacts
    from modelhaul.bundle import read_config

    _import_model_signing()
    from model_signing import hashing, signing

    r, target, manifest = _open(ref, options)
    pinned = str(r.with_digest(manifest.digest))
    cfg = read_config(manifest, target)
    with key_file(key, "signing key") as kp, scratch_dir(prefix="modelhaul-sign-") as tmp:
        private = load_private_key(kp, password)
        artifacts.fetch(pinned, tmp / "x", options=options)
        model_dir = tmp / "x" / "model"
        files = sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("*") if p.is_file())
        bundle_path = tmp / "model.sig"
        try:
            (signing.Config().set_hashing_config(hashing.Config())
             .use_elliptic_key_signer(private_key=kp, password=password.encode() if password else None)
             .sign(model_dir, bundle_path))
        except (ValueError, TypeError) as exc:
            raise SignatureError(f"signing {pinned} failed: {' '.join(str(exc).split())}") from None
        bundle = bundle_path.read_bytes()
    kid = provenance.key_id(private.public_key())
    annotations = {oci.ANNOTATION_CREATED: _now(), "io.modelhaul.signing.key-id": kid}
    sig_digest = referrers.attach(target, manifest, BUNDLE_TYPE,
                                  oci.Blob.from_bytes(BUNDLE_TYPE, bundle), annotations)
    stmt = provenance.statement(r.name, manifest.digest, cfg)
    env = provenance.sign_envelope(stmt, private)
    att_digest = referrers.attach(target, manifest, ATTESTATION_TYPE,
                                  oci.Blob.from_bytes(ATTESTATION_TYPE, env), annotations)
    return {"ref": pinned, "digest": manifest.digest, "key_id": kid, "files": len(files),
            "signature": sig_digest, "attestation": att_digest}


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def layer_digests(manifest: oci.Manifest) -> dict[str, str] | None:
    """``{model-relative path: sha256 hex}`` from a ModelPack manifest whose files are all ``.raw``
    layers (a file's layer digest is its sha256), else None (the files must be hashed)."""
    out: dict[str, str] = {}
    for layer in manifest.layers:
        mt = layer.get("mediaType", "")
        path = (layer.get("annotations") or {}).get(oci.ANNOTATION_FILEPATH)
        if not mt.startswith(oci.MODELPACK_LAYER_PREFIX) or not mt.endswith(".raw") or not path:
            return None
        if not layer.get("digest", "").startswith("sha256:"):
            return None
        out[path] = layer["digest"].split(":", 1)[1]
    return out


def _signed_files(expected: Any) -> dict[str, str]:
    out = {}
    for rd in expected.resource_descriptors():
        if rd.digest.algorithm != "sha256":
            raise SignatureError(f"the signature hashes with {rd.digest.algorithm}; modelhaul checks sha256")
        out[rd.identifier] = rd.digest.digest_hex
    return out


def _compare(signed: dict[str, str], actual: dict[str, str], pinned: str) -> list[str]:
    actual = {p: d for p, d in actual.items() if not any(p == g or p.startswith(g + "/") for g in GIT_PATHS)}
    for path in sorted(set(signed) | set(actual)):
        if path not in actual:
            raise SignatureError(f"{pinned}: file {path!r} is signed but missing from the model")
        if path not in signed:
            raise SignatureError(f"{pinned}: file {path!r} is not covered by the signature; refusing")
        if signed[path] != actual[path]:
            raise SignatureError(f"{pinned}: file {path!r} does not match its signature (tampered)")
    return sorted(signed)


def _hash_dir(model_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(model_dir)): oci.sha256_file(p).split(":", 1)[1]
            for p in sorted(model_dir.rglob("*")) if p.is_file()}


def _actual_files(target: oci.Target, manifest: oci.Manifest, pinned: str, options: RegistryOptions | None,
                  model_dir: Path | None) -> dict[str, str]:
    """``{path: sha256 hex}`` of the model's files as they would be served.

    ModelPack ``.raw`` layers: the layer digests, after the bytes are pulled and checked against
    them (``model_dir``, when given, was made from such checked bytes). Anything else: hashed.
    """
    from modelhaul.errors import DigestMismatch

    known = layer_digests(manifest)
    if model_dir is not None:
        return known if known is not None else _hash_dir(model_dir)
    if known is None:
        from modelhaul import artifacts

        with scratch_dir(prefix="modelhaul-verify-") as tmp:
            artifacts.fetch(pinned, tmp / "x", options=options)
            return _hash_dir(tmp / "x" / "model")
    from modelhaul.transfer import pull_to_layout

    try:
        with pull_to_layout(target, manifest.digest) as (layout, _):
            for layer in manifest.layers:
                if layout.blob_path(layer["digest"]) is None:
                    raise SignatureError(f"{pinned}: layer {layer['digest']} is missing")
    except DigestMismatch as exc:
        raise SignatureError(f"{pinned}: a layer's bytes do not match its digest (tampered): {exc}") from None
    return known


def verify_model(ref: str, public_key: str, *, options: RegistryOptions | None = None,
                 model_dir: Path | None = None) -> Verified:
    """Check that the model at ``ref`` is signed by ``public_key`` and that its files match.

    ``model_dir``: the model's files already pulled (the initializer's scratch copy), hashed
    instead of read from the manifest. Raises SignatureError (unsigned, other key, tampered).
    """
    _import_model_signing()
    from model_signing._signing import sign_ec_key, sign_sigstore_pb

    with key_file(public_key, "public key") as kp:
        load_public_key(kp)  # a misconfigured key is the first thing to report
    r, target, manifest = _open(ref, options)
    pinned = str(r.with_digest(manifest.digest))
    bundles = referrers.find(target, manifest.digest, BUNDLE_TYPE)
    if not bundles:
        raise SignatureError(f"{pinned}: no signature is attached; sign it with `modelhaul sign`")
    with key_file(public_key, "public key") as kp:
        pub = load_public_key(kp)
        verifier = sign_ec_key.Verifier(kp)
        kid = provenance.key_id(pub)
        expected, reasons = None, []
        for desc in bundles:
            try:
                _, data = referrers.read_layer(target, desc["digest"], manifest.digest)
                with tempfile.TemporaryDirectory(prefix="modelhaul-sig-") as d:
                    (Path(d) / "b").write_bytes(data)
                    expected = verifier.verify(sign_sigstore_pb.Signature.read(Path(d) / "b"))
                break
            except (ValueError, KeyError, TypeError, ModelhaulError) as exc:
                reasons.append(" ".join(str(exc).split())[:160])
        if expected is None:
            raise SignatureError(f"{pinned}: no attached signature verifies with key {kid[:16]} "
                                 f"({len(bundles)} tried: {reasons[0] if reasons else 'unreadable'})")
        signed = _signed_files(expected)
        files = _compare(signed, _actual_files(target, manifest, pinned, options, model_dir), pinned)
        stmt, summary = None, "none attached"
        for desc in referrers.find(target, manifest.digest, ATTESTATION_TYPE):
            try:
                _, data = referrers.read_layer(target, desc["digest"], manifest.digest)
                stmt = provenance.open_envelope(data, pub, manifest.digest)
                summary = provenance.describe(stmt)
                break
            except (ModelhaulError, ValueError):
                continue
    return Verified(ref=pinned, digest=manifest.digest, key_id=kid, files=files, provenance=stmt,
                    summary=summary)
