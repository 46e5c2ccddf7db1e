"""Signed and attested models: OpenSSF model signing bundles and SLSA provenance stored as OCI referrers,
checked by `modelhaul verify`, the promote gate and the storage initializer, against the real registry
(distribution 2.8, no referrers API) and `oci:` layouts; the `model_signing` CLI is the outside reader."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("model_signing")

from modelhaul import artifacts, oci, referrers, signing, steps  # noqa: E402
from modelhaul.errors import SignatureError  # noqa: E402
from modelhaul.promote import promote_model  # noqa: E402
from modelhaul.reference import parse  # noqa: E402
from modelhaul.serving.initializer import build_uri  # noqa: E402
from tests.fixtures.registry import unique_repo  # noqa: E402
from tests.test_initializer import _onnx_model, one_line_error, run_initializer  # noqa: E402

BIN = Path(sys.executable).parent
PROVENANCE = {
    "training": {"git": {"repository": "https://github.com/acme/iris", "revision": "0123456789abcdef0123"}},
    "provenance": {"mlflow": {"run_id": "run42", "experiment_id": "7",
                              "tracking_uri": "https://alice:s3cret@mlflow.example.com"}},
    "datasets": [{"name": "iris", "digest": "d1g3st", "source": "s3://data/iris.csv"}],
    "hyper_parameters": [{"name": "C", "value": "0.5"}],
}


def _keypair(d: Path, name: str, password: bytes | None = None) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    priv, pub = d / f"{name}.key", d / f"{name}.pub"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "keys"
    d.mkdir()
    priv, pub = _keypair(d, "signer")
    _, other_pub = _keypair(d, "other")
    return {"private": priv, "public": pub, "other": other_pub}


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELHAUL_HOME", str(tmp_path / "home"))


def _model_dir(d: Path, extra: bytes = b"labels") -> Path:
    d.mkdir(parents=True)
    _onnx_model(d)
    (d / "labels.txt").write_bytes(extra)
    return d


def _publish(src: Path, ref: str, options=None, bundle_format: str = "modelpack") -> str:
    return artifacts.publish(src, ref, config=PROVENANCE, options=options, bundle_format=bundle_format)["ref"]


def _cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "modelhaul"), *args], capture_output=True, text=True, input=stdin,
                          env={**os.environ, **(env or {})}, timeout=120)


def _tampered(ref: str, tmp_path: Path, options=None, bundle_format: str = "modelpack") -> str:
    """A different model under the same tag that carries the original's signature and attestation
    (what an attacker with push rights would do): the referrers are re-attached to the new manifest."""
    r = parse(ref)
    target = artifacts.open_target(r, options)
    original = target.get_manifest(r.digest)
    bad = _publish(_model_dir(tmp_path / "evil", extra=b"labels, tampered"), str(r.unpinned()), options,
                   bundle_format)
    new = target.get_manifest(parse(bad).digest)
    for desc in referrers.find(target, original.digest):
        _, data = referrers.read_layer(target, desc["digest"], original.digest)
        referrers.attach(target, new, desc["artifactType"], oci.Blob.from_bytes(desc["artifactType"], data))
    return bad


# -- sign then verify ----------------------------------------------------------------------------


def test_sign_then_verify_on_the_registry(registry, keys, tmp_path: Path):
    ref = _publish(_model_dir(tmp_path / "m"), registry.ref(unique_repo("sign")), registry.options)
    signed = steps.sign(ref=ref, key=str(keys["private"]), plain_http=True)
    assert signed["digest"] == parse(ref).digest and signed["files"] == 2
    out = steps.verify(ref=ref, key=str(keys["public"]), plain_http=True)
    assert out["verified"] is True and out["files"] == 2 and out["key_id"] == signed["key_id"]
    assert "mlflow run run42" in out["provenance"] and "github.com/acme/iris@0123456789ab" in out["provenance"]

    # the attestation is a DSSE envelope of a SLSA v1 statement about the manifest, with no credential
    target = artifacts.open_target(parse(ref), registry.options)
    (att,) = referrers.find(target, signed["digest"], signing.ATTESTATION_TYPE)
    _, env = referrers.read_layer(target, att["digest"], signed["digest"])
    stmt = json.loads(base64.b64decode(json.loads(env)["payload"]))
    assert stmt["predicateType"] == "https://slsa.dev/provenance/v1"
    assert stmt["subject"][0]["digest"] == {"sha256": signed["digest"].split(":")[1]}
    bd = stmt["predicate"]["buildDefinition"]
    assert bd["externalParameters"]["parameters"] == {"C": "0.5"}
    assert {"name": "iris", "uri": "s3://data/iris.csv", "digest": {"mlflow": "d1g3st"}} in bd["resolvedDependencies"]
    assert b"s3cret" not in env and b"alice" not in base64.b64decode(json.loads(env)["payload"])


def test_referrers_are_found_through_the_tag_schema_on_distribution_2_8(registry, keys, tmp_path: Path):
    repo = registry.ref(unique_repo("schema"))
    ref = _publish(_model_dir(tmp_path / "m"), repo, registry.options)
    digest = parse(ref).digest
    steps.sign(ref=ref, key=str(keys["private"]), plain_http=True)
    target = artifacts.open_target(parse(ref), registry.options)
    assert target.get_referrers(digest) is None  # distribution 2.8 has no referrers API
    tag = "sha256-" + digest.split(":")[1]
    assert tag in target.list_tags()
    index = target.get_manifest(tag).json
    assert index["mediaType"] == oci.INDEX_V1
    assert sorted(d["artifactType"] for d in index["manifests"]) == sorted(
        [signing.BUNDLE_TYPE, signing.ATTESTATION_TYPE])
    for d in index["manifests"]:
        m = target.get_manifest(d["digest"]).json
        assert m["subject"]["digest"] == digest and m["artifactType"] == d["artifactType"]


def test_sign_and_verify_in_an_oci_layout_with_a_password_protected_key(tmp_path: Path):
    priv, pub = _keypair(tmp_path, "enc", password=b"correct horse")
    ref = _publish(_model_dir(tmp_path / "m"), f"oci:{tmp_path}/layout:v1")
    bad = _cli("sign", ref, "--key", str(priv), "--key-password-stdin", stdin="wrong\n")
    assert "password is wrong" in one_line_error(bad)
    assert _cli("sign", ref, "--key", str(priv), "--key-password-stdin", stdin="correct horse\n").returncode == 0
    ok = _cli("verify", f"oci:{tmp_path}/layout:v1", "--key", str(pub))
    assert ok.returncode == 0, ok.stderr
    assert "2 file(s) verified" in ok.stdout and "mlflow run run42" in ok.stdout
    shown = json.loads(_cli("inspect", f"oci:{tmp_path}/layout:v1", "--json").stdout)
    assert len(shown["signatures"]) == 1 and shown["attestations"][0]["predicate_type"].endswith("provenance/v1")
    assert "mlflow run run42" in shown["attestations"][0]["provenance"]


# -- refused: missing, wrong key, tampered ------------------------------------------------------


def test_verify_refuses_unsigned_wrong_key_and_tampered(registry, keys, tmp_path: Path):
    repo = registry.ref(unique_repo("refuse"))
    ref = _publish(_model_dir(tmp_path / "m"), repo, registry.options)
    err = one_line_error(_cli("verify", ref, "--key", str(keys["public"]), "--plain-http"))
    assert "no signature is attached" in err
    steps.sign(ref=ref, key=str(keys["private"]), plain_http=True)
    err = one_line_error(_cli("verify", ref, "--key", str(keys["other"]), "--plain-http"))
    assert "no attached signature verifies with key" in err
    bad = _tampered(ref, tmp_path, registry.options)
    err = one_line_error(_cli("verify", bad, "--key", str(keys["public"]), "--plain-http"))
    assert "'labels.txt' does not match its signature" in err
    assert _cli("verify", ref, "--key", str(keys["public"]), "--plain-http").returncode == 0


def test_a_tampered_blob_in_a_layout_is_refused(keys, tmp_path: Path):
    ref = _publish(_model_dir(tmp_path / "m"), f"oci:{tmp_path}/layout:v1")
    steps.sign(ref=ref, key=str(keys["private"]))
    m = artifacts.open_target(parse(ref)).get_manifest(parse(ref).digest)
    layer = next(x for x in m.layers if x["annotations"][oci.ANNOTATION_FILEPATH] == "labels.txt")
    blob = tmp_path / "layout" / "blobs" / "sha256" / layer["digest"].split(":")[1]
    os.chmod(blob, 0o644)
    blob.write_bytes(b"labelz")
    with pytest.raises(SignatureError, match="tampered"):
        signing.verify_model(ref, str(keys["public"]))


# -- copies keep their referrers; an outside reader verifies ----------------------------------------


def test_a_copy_to_another_repository_keeps_the_signature(registry, keys, tmp_path: Path):
    ref = _publish(_model_dir(tmp_path / "m"), registry.ref(unique_repo("src")), registry.options)
    steps.sign(ref=ref, key=str(keys["private"]), plain_http=True)
    other = registry.ref(unique_repo("dst"), "stable")
    moved = artifacts.retag(ref, other, registry.options)
    assert signing.verify_model(moved["ref"], str(keys["public"]), options=registry.options).files
    to_layout = artifacts.retag(ref, f"oci:{tmp_path}/copy:v1", registry.options)
    assert signing.verify_model(to_layout["ref"], str(keys["public"])).summary.startswith("mlflow run run42")


def test_model_signing_cli_verifies_an_exported_model_against_the_stored_bundle(registry, keys, tmp_path: Path):
    ref = _publish(_model_dir(tmp_path / "m"), registry.ref(unique_repo("interop")), registry.options)
    signed = steps.sign(ref=ref, key=str(keys["private"]), plain_http=True)
    out = tmp_path / "export"
    assert _cli("export", ref, str(out), "--plain-http").returncode == 0
    target = artifacts.open_target(parse(ref), registry.options)
    (desc,) = referrers.find(target, signed["digest"], signing.BUNDLE_TYPE)
    _, bundle = referrers.read_layer(target, desc["digest"], signed["digest"])
    (tmp_path / "model.sig").write_bytes(bundle)
    cmd = [str(BIN / "model_signing"), "verify", "key", "--signature", str(tmp_path / "model.sig")]
    ok = subprocess.run([*cmd, "--public_key", str(keys["public"]), str(out / "model")],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (out / "model" / "labels.txt").write_bytes(b"edited")
    bad = subprocess.run([*cmd, "--public_key", str(keys["public"]), str(out / "model")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0


# -- the promote gate ------------------------------------------------------------------------------


def test_the_promote_gate_requires_a_valid_signature(registry, keys, tmp_path: Path):
    repo = registry.ref(unique_repo("gate"))
    ref = _publish(_model_dir(tmp_path / "m"), repo, registry.options)
    pub = str(keys["public"])

    def production() -> str | None:
        return artifacts.try_resolve(str(parse(ref).with_tag("production").unpinned()), registry.options)

    out = promote_model(ref=ref, require_signature=pub, options=registry.options)
    assert out["promoted"] is False and "no signature is attached" in out["reason"] and production() is None
    steps.sign(ref=ref, key=str(keys["private"]), plain_http=True)
    out = promote_model(ref=ref, require_signature=str(keys["other"]), options=registry.options)
    assert out["promoted"] is False and "no attached signature verifies" in out["reason"] and production() is None
    bad = _tampered(ref, tmp_path, registry.options)
    out = promote_model(ref=bad, require_signature=pub, options=registry.options)
    assert out["promoted"] is False and "does not match its signature" in out["reason"] and production() is None
    cli = _cli("promote", ref, "--require-signature", pub, "--plain-http", "--json")
    assert json.loads(cli.stdout)["promoted"] is True
    assert parse(production()).digest == parse(ref).digest


# -- the storage initializer ---------------------------------------------------------------------------


def test_the_initializer_verifies_before_writing(registry, keys, tmp_path: Path):
    repo = registry.ref(unique_repo("init"))
    ref = _publish(_model_dir(tmp_path / "m"), repo, registry.options)
    env = {"MODELHAUL_HOME": str(tmp_path / "pod-home"), "MODELHAUL_VERIFY_KEY": keys["public"].read_text()}

    def run(pinned: str, dest: Path, **extra: str):
        uri = build_uri(pinned, server="triton", name="m", plain_http=True)
        return run_initializer(uri, str(dest), env={**env, **extra})

    assert "no signature is attached" in one_line_error(run(ref, tmp_path / "d1"))
    assert not (tmp_path / "d1").exists() or not any((tmp_path / "d1").iterdir())
    steps.sign(ref=ref, key=str(keys["private"]), plain_http=True)
    wrong = run(ref, tmp_path / "d2", MODELHAUL_VERIFY_KEY=str(keys["other"]))
    assert "no attached signature verifies" in one_line_error(wrong)
    assert not (tmp_path / "d2").exists() or not any((tmp_path / "d2").iterdir())
    bad = _tampered(ref, tmp_path, registry.options)
    assert "does not match its signature" in one_line_error(run(bad, tmp_path / "d3"))
    assert not (tmp_path / "d3").exists() or not any((tmp_path / "d3").iterdir())
    ok = run(ref, tmp_path / "d4")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "d4" / "m" / "1" / "model.onnx").is_file()


# -- the example DAG -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_example_dag_signs_what_it_deploys_when_given_a_key(airflow_home, demo_dir, keys, monkeypatch):
    from tests.test_airflow_dags import run, stored

    monkeypatch.setenv("MODELHAUL_SIGNING_KEY", str(keys["private"]))
    monkeypatch.setenv("MODELHAUL_VERIFY_KEY", str(keys["public"]))
    state, tasks, dr = run("retrain_and_redeploy")
    assert state == "success", tasks
    assert tasks["sign"] == "success" and tasks["promote"] == "success"
    signed = stored(dr)["sign"]["return_value"]
    assert signed["signed"] is True and signed["key_id"]
    production = f"oci:{demo_dir}/registry/models/iris:production"
    verified = signing.verify_model(production, str(keys["public"]))
    assert verified.digest == signed["digest"] and "mlflow run" in verified.summary
    assert str(keys["private"]) not in json.dumps(stored(dr)["sign"].get("rendered_fields", {}))


@pytest.mark.slow
@pytest.mark.filterwarnings(r"ignore:Task .* settings \['display_name'\] have no effect:UserWarning")
def test_the_pipeline_signs_what_it_deploys_when_given_a_key(registry, keys, tmp_path: Path, monkeypatch):
    import kfp.local

    from modelhaul.components.pipeline import build_pipeline
    from modelhaul.components.runtime import local

    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    monkeypatch.setenv("MODELHAUL_SIGNING_KEY", keys["private"].read_text())  # as the Secret gives it
    repository = f"{registry.host}/{unique_repo('kfp-sign')}"
    build_pipeline(local())(repository=repository, params={"dataset": "iris"},
                            tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", gate=["accuracy >= 0.9"],
                            render_dir=str(tmp_path / "manifests"), deployment_name="iris", canary_percent=20,
                            plain_http=True, verify_key=keys["public"].read_text())
    (run_dir,) = (tmp_path / "root").glob("*")
    # promote's result is its "promotion" artifact since issue 14 (a promotion is not a model)
    tasks = {p.parent.name: json.loads(p.read_text()) for p in run_dir.glob("*/*")
             if p.is_file() and p.name in ("model", "promotion")}
    assert tasks["sign"]["signed"] is True and tasks["promote"]["promoted"] is True
    verified = signing.verify_model(f"{repository}:production", str(keys["public"]), options=registry.options)
    assert verified.digest == tasks["sign"]["digest"] == tasks["convert"]["digest"]


# -- serving manifests ----------------------------------------------------------------------------------


def test_kserve_storage_container_takes_the_verify_key_from_a_configmap():
    from modelhaul.serving import kserve, validate

    csc = kserve.cluster_storage_container(image="modelhaul/initializer:0.1.0", secret_name="modelhaul-registry")
    assert validate.errors(csc) == []  # strictly, against the vendored CRD schema
    env_from = csc["spec"]["container"]["envFrom"]
    assert {"configMapRef": {"name": "modelhaul-verify", "optional": True}} in env_from
    env_from[-1]["configMapRef"]["optinal"] = True
    assert validate.errors(csc) == ["spec.container.envFrom[1].configMapRef.optinal: unknown field"]


# -- other bundle formats, hostile referrers, bad keys -----------------------------------------------------


@pytest.mark.parametrize("bundle_format", ["ormb", "kitops"])
def test_an_ormb_or_kitops_model_is_verified_by_hashing_its_files(keys, tmp_path: Path, bundle_format):
    layout = f"oci:{tmp_path}/layout"
    ref = artifacts.publish(_model_dir(tmp_path / "m"), f"{layout}:v1", bundle_format=bundle_format)["ref"]
    assert signing.layer_digests(artifacts.open_target(parse(ref)).get_manifest(parse(ref).digest)) is None
    steps.sign(ref=ref, key=str(keys["private"]))
    assert steps.verify(ref=ref, key=str(keys["public"]))["files"] == 2
    assert artifacts.resolve(ref) == ref  # signing attaches referrers: the model's manifest is untouched
    bad = _tampered(ref, tmp_path, bundle_format=bundle_format)
    assert artifacts.bundle_format_of(bad) == bundle_format and parse(bad).digest != parse(ref).digest
    with pytest.raises(SignatureError, match="does not match its signature"):
        signing.verify_model(bad, str(keys["public"]))


def test_garbage_and_oversized_referrers_are_refused_in_one_line(keys, tmp_path: Path):
    ref = _publish(_model_dir(tmp_path / "m"), f"oci:{tmp_path}/layout:v1")
    target = artifacts.open_target(parse(ref))
    subject = target.get_manifest(parse(ref).digest)
    referrers.attach(target, subject, signing.BUNDLE_TYPE, oci.Blob.from_bytes(signing.BUNDLE_TYPE, b"{not json"))
    big = oci.Blob.from_bytes(signing.BUNDLE_TYPE, b" " * (referrers.MAX_REFERRER_BLOB + 1))
    referrers.attach(target, subject, signing.BUNDLE_TYPE, big)
    r = _cli("verify", ref, "--key", str(keys["public"]))
    assert "no attached signature verifies" in one_line_error(r) and "2 tried" in r.stderr
    steps.sign(ref=ref, key=str(keys["private"]))  # a good one beside the garbage still verifies
    assert steps.verify(ref=ref, key=str(keys["public"]))["verified"] is True


def test_bad_keys_get_one_clear_line(keys, tmp_path: Path):
    ref = _publish(_model_dir(tmp_path / "m"), f"oci:{tmp_path}/layout:v1")
    assert "not a PEM private key" in one_line_error(_cli("sign", ref, "--key", str(keys["public"])))
    assert "no such file" in one_line_error(_cli("sign", ref, "--key", str(tmp_path / "missing.pem")))
    assert "not encrypted" in one_line_error(
        _cli("sign", ref, "--key", str(keys["private"]), "--key-password-stdin", stdin="pw\n"))
    assert "not a PEM public key" in one_line_error(_cli("verify", ref, "--key", str(keys["private"])))
    with pytest.raises(Exception, match="MODELHAUL_SIGNING_KEY"):
        steps.sign(ref=ref, key="")


def test_signing_a_modctl_artifact_keeps_it_as_modctl_wrote_it(registry, keys, tmp_path: Path):
    from tests.test_fidelity import modctl_written, sklearn_model

    ref = modctl_written(registry, sklearn_model(tmp_path / "src"))
    pinned = artifacts.resolve(ref, options=registry.options)
    steps.sign(ref=ref, key=str(keys["private"]), plain_http=True)
    assert steps.verify(ref=ref, key=str(keys["public"]), plain_http=True)["files"] == 2
    assert artifacts.resolve(ref, options=registry.options) == pinned  # nothing of modctl's rewritten
