"""Serving manifests: every format on both targets validates strictly against the real CRD schemas;
typos, bad label values and Seldon webhook violations are rejected with the manifest and path named."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelhaul.config import ModelConfig
from modelhaul.errors import DeployError
from modelhaul.serving import initializer, kserve, layouts, seldon, validate
from modelhaul.serving.deploy import build_manifests, check_name, default_name
from modelhaul.serving.model import ServedModel

CRD_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "crds"
VENDOR_SCRIPT = Path(__file__).resolve().parents[1] / "devtools" / "vendor_crd_schemas.py"
DIGEST = "sha256:" + "1" * 64
STABLE_DIGEST = "sha256:" + "2" * 64
RUN_ID = "0123456789abcdef0123456789abcdef"

# kind -> a config as the bundle writes it for such a model directory
CONFIGS: dict[str, dict[str, Any]] = {
    "onnx": {"format": "ONNX", "framework": "ONNX", "directoryStructure": ["model.onnx"]},
    "torchscript": {"format": "TorchScript", "framework": "PyTorch", "directoryStructure": ["model.pt"]},
    "savedmodel": {"format": "SavedModel", "framework": "TensorFlow",
                   "directoryStructure": ["saved_model.pb", "variables/variables.index"]},
    "mlflow": {"format": "SKLearn", "framework": "scikit-learn",
               "directoryStructure": ["MLmodel", "model.pkl", "requirements.txt"]},
    "sklearn": {"format": "SKLearn", "framework": "scikit-learn", "directoryStructure": ["model.joblib"]},
    "xgboost": {"format": "XGBoost", "framework": "XGBoost", "directoryStructure": ["model.bst"]},
}


def served(kind: str, digest: str = DIGEST, tag: str = "v2") -> ServedModel:
    cfg = ModelConfig.from_dict({**CONFIGS[kind], "provenance": {"mlflow": {"runId": RUN_ID}}})
    return ServedModel(f"registry.example:5000/team/iris:{tag}@{digest}", cfg)


@pytest.fixture(scope="session")
def crd_schemas() -> dict[str, dict[str, Any]]:
    """The compact schemas computed from the CRD files (parsed once per session)."""
    if not CRD_DIR.is_dir():
        pytest.skip("the shared CRD files are not beside the repository")
    return vendoring().schemas_from_crds(CRD_DIR)


def vendoring() -> Any:
    """devtools/vendor_crd_schemas.py, the hand-run tool that refreshes the vendored schemas."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("vendor_crd_schemas", VENDOR_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vendored_schemas_equal_the_crd_files(crd_schemas):
    for name, schema in crd_schemas.items():
        vendored = (validate.vendored_dir() / name).read_text(encoding="utf-8")
        assert vendored == vendoring().dumps_schema(schema), f"{name} is stale: regenerate it"


def test_regenerating_script_reports_the_vendored_copy_current(crd_schemas):
    r = subprocess.run([sys.executable, str(VENDOR_SCRIPT), str(CRD_DIR), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_vendored_schema_keeps_fields_named_description():
    # "description" is stripped as a schema keyword, never as a field name
    crd = {"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
        "description": "x", "type": "object",
        "properties": {"description": {"type": "string", "description": "y"}}}}}]}}
    assert vendoring().compact_schema(crd, "v1") == {"type": "object", "properties": {"description": {
        "type": "string"}}}


@pytest.mark.parametrize("kind", sorted(CONFIGS))
@pytest.mark.parametrize("target", ["seldon", "kserve"])
@pytest.mark.parametrize("canary", [False, True])
def test_every_format_and_target_validates_strictly(kind, target, canary):
    stable = served("sklearn", STABLE_DIGEST, "v1") if canary else None
    manifests = build_manifests(served(kind), target=target, name="iris", namespace="models", stable=stable,
                                canary_percent=25 if canary else None)
    for m in manifests:
        assert validate.errors(m) == []
    main = manifests[-1]
    uris = json.dumps(main)
    assert f"modelhaul://registry.example:5000/team/iris@{DIGEST}?" in uris
    assert ":v2@" not in uris.split("modelhaul://", 1)[1].split('"')[0]  # the URI names the digest only
    assert main["metadata"]["annotations"]["modelhaul.io/digest"] == DIGEST
    assert main["metadata"]["annotations"]["modelhaul.io/mlflow-run-id"] == RUN_ID
    assert main["metadata"]["labels"]["modelhaul.io/digest"] == "1" * 12
    assert main["metadata"]["labels"]["modelhaul.io/mlflow-run"] == RUN_ID


@pytest.mark.parametrize("kind,impl,server", [
    ("onnx", "TRITON_SERVER", "triton"), ("torchscript", "TRITON_SERVER", "triton"),
    ("savedmodel", "TRITON_SERVER", "triton"), ("mlflow", "MLFLOW_SERVER", "mlflow"),
    ("sklearn", "SKLEARN_SERVER", "sklearn"), ("xgboost", "XGBOOST_SERVER", "xgboost"),
])
def test_seldon_implementation_follows_the_format(kind, impl, server):
    [sdep] = build_manifests(served(kind), target="seldon", name="iris", initializer_image="reg/init:1")
    assert sdep["spec"]["protocol"] == "v2"
    [pred] = sdep["spec"]["predictors"]
    graph = pred["graph"]
    assert (pred["name"], pred["traffic"]) == ("main", 100)
    assert graph["implementation"] == impl
    assert graph["storageInitializerImage"] == "reg/init:1"
    ref, params = initializer.parse_uri(graph["modelUri"])
    assert ref == f"registry.example:5000/team/iris@{DIGEST}"
    assert params == {"server": server, "name": "iris"}
    assert "envSecretRefName" not in graph  # anonymous pull unless told otherwise


@pytest.mark.parametrize("kind,fmt,runtime", [
    ("onnx", "onnx", None), ("torchscript", "pytorch", "kserve-tritonserver"),
    ("savedmodel", "tensorflow", "kserve-tritonserver"), ("mlflow", "mlflow", None),
    ("sklearn", "sklearn", None), ("xgboost", "xgboost", None),
])
def test_kserve_model_format_follows_the_format(kind, fmt, runtime):
    csc, isvc = build_manifests(served(kind), target="kserve", name="iris")
    model = isvc["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": fmt}
    assert model.get("runtime") == runtime
    assert model["storageUri"].startswith(initializer.PREFIX)
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]
    assert csc["spec"]["supportedUriFormats"] == [{"prefix": "modelhaul://"}]
    assert csc["spec"]["container"]["image"] == initializer.DEFAULT_IMAGE
    assert "namespace" not in csc["metadata"]  # cluster-scoped


def test_seldon_canary_is_two_predictors_summing_to_100():
    stable = served("onnx", STABLE_DIGEST, "v1")
    [sdep] = build_manifests(served("sklearn"), target="seldon", name="iris", stable=stable, canary_percent=10)
    preds = {p["name"]: p for p in sdep["spec"]["predictors"]}
    assert preds["main"]["traffic"] == 90 and preds["canary"]["traffic"] == 10
    assert preds["main"]["graph"]["implementation"] == "TRITON_SERVER"
    assert STABLE_DIGEST in preds["main"]["graph"]["modelUri"]
    assert preds["canary"]["graph"]["implementation"] == "SKLEARN_SERVER"
    assert DIGEST in preds["canary"]["graph"]["modelUri"]
    assert preds["main"]["graph"]["name"] == preds["canary"]["graph"]["name"]  # same inference path
    assert sdep["metadata"]["annotations"]["modelhaul.io/stable-ref"] == stable.ref
    assert seldon.served_uris(sdep)["canary"] == preds["canary"]["graph"]["modelUri"]


def test_seldon_canary_without_stable_model_is_refused():
    with pytest.raises(DeployError, match="stable"):
        build_manifests(served("onnx"), target="seldon", name="iris", canary_percent=10)


def test_kserve_canary_uses_canary_traffic_percent():
    _, isvc = build_manifests(served("onnx"), target="kserve", name="iris", canary_percent=30,
                              stable=served("onnx", STABLE_DIGEST, "v1"))
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 30
    assert DIGEST in kserve.served_uri(isvc)
    assert STABLE_DIGEST in isvc["metadata"]["annotations"]["modelhaul.io/stable-ref"]


def test_secret_is_rendered_only_from_explicit_credentials():
    secret, sdep = build_manifests(served("onnx"), target="seldon", name="iris", namespace="ns",
                                   username="robot", password="s3cr3t-pw")
    assert secret["kind"] == "Secret" and secret["metadata"]["namespace"] == "ns"
    assert secret["stringData"] == {"MODELHAUL_USERNAME": "robot", "MODELHAUL_PASSWORD": "s3cr3t-pw"}
    assert sdep["spec"]["predictors"][0]["graph"]["envSecretRefName"] == secret["metadata"]["name"]
    assert "s3cr3t-pw" not in json.dumps(sdep)
    # a named existing secret is referenced, not rendered
    [sdep] = build_manifests(served("onnx"), target="seldon", name="iris", registry_secret="team-pull")
    assert sdep["spec"]["predictors"][0]["graph"]["envSecretRefName"] == "team-pull"
    csc, isvc = build_manifests(served("onnx"), target="kserve", name="iris", registry_secret="team-pull")
    assert csc["spec"]["container"]["envFrom"][0] == {"secretRef": {"name": "team-pull", "optional": True}}
    with pytest.raises(DeployError, match="both"):
        build_manifests(served("onnx"), target="seldon", name="iris", username="robot")


def test_plain_http_travels_in_the_uri():
    [sdep] = build_manifests(served("onnx"), target="seldon", name="iris", plain_http=True)
    _, params = initializer.parse_uri(sdep["spec"]["predictors"][0]["graph"]["modelUri"])
    assert params["plain_http"] == "true"


# -- strictness ----------------------------------------------------------------------------------


def _sdep() -> dict[str, Any]:
    return build_manifests(served("onnx"), target="seldon", name="iris", namespace="models")[0]


def _isvc() -> dict[str, Any]:
    return build_manifests(served("onnx"), target="kserve", name="iris")[1]


@pytest.mark.parametrize("where,field", [
    ("spec", "predictorz"),
    ("spec.predictors.0", "trafic"),
    ("spec.predictors.0.graph", "modelURI"),
    ("metadata", "lables"),
])
def test_typo_in_a_seldon_deployment_is_rejected(where, field):
    m = _sdep()
    node: Any = m
    for part in where.split("."):
        node = node[int(part)] if part.isdigit() else node[part]
    node[field] = "x"
    path = where.replace(".0", "[0]") + f".{field}"
    with pytest.raises(DeployError) as exc:
        validate.validate(m)
    assert "SeldonDeployment/models/iris" in str(exc.value)
    assert f"{path}: unknown field" in str(exc.value)


def test_typo_in_an_inference_service_and_storage_container_is_rejected():
    m = _isvc()
    m["spec"]["predictor"]["model"]["storageURI"] = m["spec"]["predictor"]["model"].pop("storageUri")
    assert validate.errors(m) == ["spec.predictor.model.storageURI: unknown field"]
    csc = build_manifests(served("onnx"), target="kserve", name="iris")[0]
    csc["spec"]["container"]["envFrom"][0]["secretRef"]["optinal"] = True
    assert validate.errors(csc) == ["spec.container.envFrom[0].secretRef.optinal: unknown field"]
    csc["spec"]["container"]["envFrom"][0]["secretRef"].pop("optinal")
    csc["metadata"]["namespace"] = "default"
    assert validate.errors(csc) == ["metadata.namespace: unknown field"]


def test_wrong_types_and_int_or_string_follow_the_schema():
    m = _isvc()
    m["spec"]["predictor"]["canaryTrafficPercent"] = "ten"
    assert validate.errors(m)[0].startswith("spec.predictor.canaryTrafficPercent:")
    csc = build_manifests(served("onnx"), target="kserve", name="iris")[0]
    res = csc["spec"]["container"]["resources"]
    res["limits"]["cpu"] = 2  # int-or-string: both forms are fine
    res["requests"]["cpu"] = "500m"
    assert validate.errors(csc) == []
    res["limits"]["cpu"] = [2]
    assert validate.errors(csc) and validate.errors(csc)[0].startswith("spec.container.resources.limits.cpu")


def test_preserve_unknown_fields_keeps_unknown_fields_and_int_or_string_is_any_of():
    schema = validate.strict({"type": "object", "properties": {
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                 "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}}},
        "port": {"x-kubernetes-int-or-string": True},
        "fixed": {"type": "object", "properties": {"b": {"type": "string"}}},
    }})
    import jsonschema

    v = jsonschema.Draft202012Validator(schema)
    assert not list(v.iter_errors({"free": {"anything": 1, "a": {"c": 2}}, "port": 80}))
    assert not list(v.iter_errors({"port": "http"}))
    assert list(v.iter_errors({"port": 1.5}))
    assert [e.validator for e in v.iter_errors({"fixed": {"c": 1}})] == ["additionalProperties"]
    assert [e.validator for e in v.iter_errors({"extra": 1})] == ["additionalProperties"]


@pytest.mark.parametrize("labels", [
    {"modelhaul.io/digest": DIGEST},  # ':' is not allowed in a label value
    {"modelhaul.io/ref": "x" * 64},  # longer than 63
    {"bad key!": "v"},
])
def test_invalid_label_is_rejected(labels):
    m = _sdep()
    m["metadata"]["labels"].update(labels)
    errs = validate.errors(m)
    assert errs and all(e.startswith("metadata.labels") for e in errs)


def test_manifest_of_unknown_kind_is_rejected():
    assert validate.errors({"apiVersion": "apps/v1", "kind": "Deployment"}) == [
        "(top level): unsupported apiVersion/kind apps/v1 Deployment"]


# -- Seldon's webhook rules ---------------------------------------------------------------------


def _canary_sdep() -> dict[str, Any]:
    return build_manifests(served("onnx"), target="seldon", name="iris", stable=served("onnx", STABLE_DIGEST),
                           canary_percent=20)[0]


def test_webhook_rejects_unknown_protocol():
    m = _sdep()
    m["spec"]["protocol"] = "grpc"
    assert validate.errors(m)[0] == "spec.protocol: 'grpc' is not one of seldon, tensorflow, kfserving, v2"


def test_webhook_rejects_traffic_not_summing_to_100():
    m = _canary_sdep()
    m["spec"]["predictors"][1]["traffic"] = 30
    with pytest.raises(DeployError, match=r"SeldonDeployment/default/iris.*sums to 110"):
        validate.validate(m)


def test_webhook_counts_only_non_shadow_traffic_and_allows_one_shadow():
    m = _canary_sdep()
    shadow = copy.deepcopy(m["spec"]["predictors"][1])
    shadow.update(name="shadow", shadow=True, traffic=0)
    m["spec"]["predictors"].append(shadow)
    assert validate.errors(m) == []
    second = copy.deepcopy(shadow)
    second["name"] = "shadow2"
    m["spec"]["predictors"].append(second)
    assert validate.errors(m) == ["spec.predictors: 2 shadow predictors; at most one is allowed"]


def test_webhook_rejects_duplicate_predictors_and_prepackaged_server_without_model_uri():
    m = _canary_sdep()
    m["spec"]["predictors"][1]["name"] = "main"
    del m["spec"]["predictors"][1]["graph"]["modelUri"]
    assert validate.errors(m) == [
        "spec.predictors[1].name: duplicate predictor name 'main'",
        "spec.predictors[1].graph.modelUri: required by implementation TRITON_SERVER",
    ]


def test_webhook_rejects_triton_on_another_protocol_and_kserve_canary_out_of_range():
    m = _sdep()
    m["spec"]["protocol"] = "seldon"
    assert validate.errors(m) == [
        "spec.predictors[0].graph.implementation: TRITON_SERVER needs spec.protocol v2 (or kfserving)"]
    m = _isvc()
    m["spec"]["predictor"]["canaryTrafficPercent"] = 120
    assert validate.errors(m) == ["spec.predictor.canaryTrafficPercent: 120 is not between 0 and 100"]


def test_single_predictor_may_leave_traffic_to_the_default():
    m = _sdep()
    del m["spec"]["predictors"][0]["traffic"]
    assert validate.errors(m) == []


# -- kinds, names, URIs --------------------------------------------------------------------------


def test_model_without_a_server_is_refused_with_advice():
    cfg = ModelConfig.from_dict({"format": "GGUF", "framework": "llama.cpp"})
    with pytest.raises(DeployError, match="convert"):
        layouts.model_kind(cfg)


@pytest.mark.parametrize("ref,name", [
    ("registry.example/team/iris_classifier:v1", "iris-classifier"),
    ("registry.example/team/2024.model:v1", "m-2024-model"),
    ("oci:/models/store:v1", "store"),
    ("registry.example/" + "a" * 80 + ":v1", "a" * 45),
])
def test_default_name_is_a_dns_label_from_the_repository(ref, name):
    assert default_name(ref) == name
    assert check_name(name) == name


@pytest.mark.parametrize("bad", ["Iris", "iris_v1", "-iris", "1iris", "a" * 46])
def test_invalid_explicit_name_is_refused(bad):
    with pytest.raises(DeployError, match="name"):
        check_name(bad)


def test_uri_round_trip_and_refusals():
    uri = initializer.build_uri(f"registry.example/team/iris:v1@{DIGEST}", server="triton", name="iris",
                                insecure=True)
    assert uri == (f"modelhaul://registry.example/team/iris@{DIGEST}?server=triton&name=iris&insecure=true")
    assert initializer.parse_uri(uri) == (f"registry.example/team/iris@{DIGEST}",
                                          {"server": "triton", "name": "iris", "insecure": "true"})
    assert initializer.parse_uri(f"oci:/m/store@{DIGEST}") == (f"oci:/m/store@{DIGEST}", {})
    with pytest.raises(DeployError, match="digest-pinned"):
        initializer.build_uri("registry.example/team/iris:v1", server="triton", name="iris")
    with pytest.raises(DeployError, match="not a modelhaul URI"):
        initializer.parse_uri(f"oci://registry.example/team/iris@{DIGEST}")
    with pytest.raises(DeployError, match="unknown URI parameter"):
        initializer.parse_uri(f"modelhaul://registry.example/team/iris@{DIGEST}?password=x")


def test_importing_the_steps_loads_neither_kubernetes_nor_jsonschema():
    code = ("import sys, modelhaul.steps, modelhaul.serving.deploy, modelhaul.serving.initializer; "
            "print(sorted(m for m in ('kubernetes', 'jsonschema') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
