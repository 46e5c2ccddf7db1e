"""KServe ``InferenceService`` for a model artifact, and the ``ClusterStorageContainer`` behind it.

KServe already owns ``oci://`` (modelcars), so modelhaul's artifacts travel as ``modelhaul://``
URIs; the cluster-wide ``ClusterStorageContainer`` named ``modelhaul`` claims that prefix and runs
modelhaul's initializer image with ``(storageUri, /mnt/models)``. Registry credentials reach it
through ``envFrom`` an *optional* Secret of a fixed name in the pod's namespace; a public key in
the optional ConfigMap ``modelhaul-verify`` (key ``MODELHAUL_VERIFY_KEY``) makes it verify each
model's signature before writing a file.

================  ===========================  ====================  ==================
kind              modelFormat                  runtime               initializer layout
================  ===========================  ====================  ==================
onnx              onnx                         (default: Triton)     triton
torchscript       pytorch                      kserve-tritonserver   triton
savedmodel        tensorflow                   kserve-tritonserver   triton
mlflow            mlflow                       (default: MLServer)   mlflow
sklearn           sklearn                      (default)             sklearn
xgboost           xgboost                      (default)             xgboost
================  ===========================  ====================  ==================

Every predictor speaks protocol ``v2``. A canary is KServe's own: the InferenceService is updated
to the candidate with ``canaryTrafficPercent`` and KServe keeps the last fully rolled-out revision
serving the rest (Serverless mode).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelhaul import format_table as table
from modelhaul.errors import DeployError
from modelhaul.serving.initializer import PREFIX
from modelhaul.serving.platform import (
    DEFAULT_SECRET,
    DIGEST_KEY,
    Crd,
    Resource,
    ServingTarget,
    condition_message,
    digest_in,
)

if TYPE_CHECKING:
    from modelhaul.serving.model import ServedModel

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
STORAGE_API_VERSION = "serving.kserve.io/v1alpha1"
STORAGE_KIND = "ClusterStorageContainer"
STORAGE_CONTAINER_NAME = "modelhaul"
RESOURCE = Resource(KIND, API_VERSION, "inferenceservices")
PROTOCOL = "v2"

# kind -> (modelFormat name, runtime or None for KServe's default, initializer layout), from the format table
FORMATS: dict[str, tuple[str, str | None, str]] = table.kserve_formats()


def inference_service(
    model: ServedModel,
    *,
    name: str,
    namespace: str,
    stable: ServedModel | None = None,
    canary_percent: int | None = None,
    plain_http: bool = False,
    insecure: bool = False,
) -> dict[str, Any]:
    """The InferenceService serving ``model``, with ``canaryTrafficPercent`` when a canary."""
    fmt, runtime, layout = FORMATS[model.kind]
    spec_model: dict[str, Any] = {"modelFormat": {"name": fmt}, "protocolVersion": PROTOCOL}
    if runtime:
        spec_model["runtime"] = runtime
    spec_model["storageUri"] = model.uri(server=layout, name=name, plain_http=plain_http, insecure=insecure)
    pred: dict[str, Any] = {}
    if canary_percent is not None:
        pred["canaryTrafficPercent"] = canary_percent
    pred.update({"labels": model.labels(), "annotations": model.annotations(), "model": spec_model})
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": model.object_metadata(name, namespace, stable=stable, canary_percent=canary_percent),
        "spec": {"predictor": pred},
    }


#: An optional ConfigMap whose ``MODELHAUL_VERIFY_KEY`` makes the initializer refuse unsigned models.
VERIFY_CONFIGMAP = "modelhaul-verify"


def cluster_storage_container(*, image: str, secret_name: str) -> dict[str, Any]:
    """The ClusterStorageContainer routing ``modelhaul://`` URIs to the initializer image."""
    return {
        "apiVersion": STORAGE_API_VERSION,
        "kind": STORAGE_KIND,
        "metadata": {"name": STORAGE_CONTAINER_NAME,
                     "labels": {"app.kubernetes.io/managed-by": "modelhaul"}},
        "spec": {
            "container": {
                "name": "storage-initializer",
                "image": image,
                "envFrom": [{"secretRef": {"name": secret_name, "optional": True}},
                            # MODELHAUL_VERIFY_KEY (a public key, PEM): serve only models it signed
                            {"configMapRef": {"name": VERIFY_CONFIGMAP, "optional": True}}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"memory": "1Gi"}},
            },
            "supportedUriFormats": [{"prefix": PREFIX}],
        },
    }


def storage_schema(crd_schema: Callable[[str, str], dict[str, Any]]) -> dict[str, Any]:
    """``serving.kserve.io/v1alpha1`` ClusterStorageContainer, from KServe's Go type (no CRD file).

    ``spec.container`` is a core Container: its schema is borrowed from the InferenceService CRD
    (``spec.predictor.initContainers.items``).
    """
    isvc = crd_schema(API_VERSION, KIND)
    container = isvc["properties"]["spec"]["properties"]["predictor"]["properties"]["initContainers"]["items"]
    return {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string", "enum": [STORAGE_API_VERSION]},
            "kind": {"type": "string", "enum": [STORAGE_KIND]},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["container", "supportedUriFormats"],
                "properties": {
                    "container": container,
                    "supportedUriFormats": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "object", "properties": {"prefix": {"type": "string"},
                                                                   "regex": {"type": "string"}}},
                    },
                    "workloadType": {"type": "string"},
                },
            },
        },
    }


STORAGE = Resource(STORAGE_KIND, STORAGE_API_VERSION, "clusterstoragecontainers", namespaced=False,
                   name=STORAGE_CONTAINER_NAME, schema=storage_schema)


def served_uri(manifest: dict[str, Any]) -> str | None:
    """The storageUri of an InferenceService's predictor."""
    pred = (manifest.get("spec") or {}).get("predictor") or {}
    return (pred.get("model") or {}).get("storageUri")


def build(model: ServedModel, *, name: str, namespace: str, image: str, secret_name: str | None,
          stable: ServedModel | None, canary_percent: int | None, plain_http: bool, insecure: bool
          ) -> list[dict[str, Any]]:
    """The ClusterStorageContainer (cluster-wide, so it always names a Secret), then the InferenceService."""
    return [cluster_storage_container(image=image, secret_name=secret_name or DEFAULT_SECRET),
            inference_service(model, name=name, namespace=namespace, stable=stable, canary_percent=canary_percent,
                              plain_http=plain_http, insecure=insecure)]


def stable_in(manifest: dict[str, Any]) -> tuple[str | None, str | None]:
    """During a canary the ``modelhaul.io/stable-ref`` annotation (the spec names the candidate),
    else the ``modelhaul.io/ref`` and storageUri of the one model."""
    from modelhaul.serving.model import ANNOTATION

    ann = (manifest.get("metadata") or {}).get("annotations") or {}
    if ((manifest.get("spec") or {}).get("predictor") or {}).get("canaryTrafficPercent") is not None:
        return ann.get(f"{ANNOTATION}stable-ref"), None
    return ann.get(f"{ANNOTATION}ref"), served_uri(manifest)


def read_state(status: dict[str, Any]) -> tuple[str, str, str | None]:
    """``Ready`` (conditions Ready, and PredictorReady/IngressReady when present, True), ``Failed``
    (a failed model load), else ``NotReady``; with the conditions' messages and the URL."""
    conds = {c.get("type"): c for c in status.get("conditions") or []}
    model = status.get("modelStatus") or {}
    states = model.get("states") or {}
    failure = model.get("lastFailureInfo") or {}
    url = status.get("url") or (status.get("address") or {}).get("url")
    if (model.get("transitionStatus") in ("BlockedByFailedLoad", "InvalidSpec")
            or "FailedToLoad" in (states.get("activeModelState"), states.get("targetModelState"))):
        msg = failure.get("message") or failure.get("reason") or condition_message(list(conds.values()))
        return "Failed", msg or model.get("transitionStatus", ""), url
    needed = [t for t in ("Ready", "PredictorReady", "IngressReady") if t == "Ready" or t in conds]
    if "Ready" in conds and all(str(conds[t].get("status")) == "True" for t in needed):
        return "Ready", "", url
    return "NotReady", condition_message(list(conds.values())), url


def route_all_to(spec: dict[str, Any], digest: str) -> bool:
    """``canaryTrafficPercent`` 100: the latest revision (the one naming ``digest``) is the canary."""
    pred = spec.get("predictor") or {}
    changed = pred.get("canaryTrafficPercent") not in (None, 100)
    if changed:
        pred["canaryTrafficPercent"] = 100
    return changed


def webhook_errors(manifest: dict[str, Any]) -> list[str]:
    """What KServe's InferenceService webhook checks beyond the schema, for the fields we render."""
    pred = (manifest.get("spec") or {}).get("predictor") or {}
    pct = pred.get("canaryTrafficPercent")
    if isinstance(pct, int) and not 0 <= pct <= 100:
        return [f"spec.predictor.canaryTrafficPercent: {pct} is not between 0 and 100"]
    return []


# -- the cluster: rollout and traffic splitting ------------------------------------------------------

OWNER_LABEL = "serving.kserve.io/inferenceservice"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
KSERVE_CONFIG = (("kserve", "inferenceservice-config"), ("kubeflow", "inferenceservice-config"))
KNATIVE = "services.serving.knative.dev"
SPLITTING_MODES = {"Serverless"}


def expected(obj: dict[str, Any]) -> list[tuple[str, str | None]]:
    """The one predictor and the digest it serves."""
    pred = (obj.get("spec") or {}).get("predictor") or {}
    digest = (pred.get("annotations") or {}).get(DIGEST_KEY) or digest_in((pred.get("model") or {}).get("storageUri"))
    return [("predictor", digest)]


def serves(dep: dict[str, Any], what: str) -> bool:
    """The predictor's Deployment (not a transformer's or explainer's)."""
    template = (dep.get("spec") or {}).get("template") or {}
    return ((template.get("metadata") or {}).get("labels") or {}).get("component", "predictor") == "predictor"


def serverless(obj: dict[str, Any]) -> bool:
    """KServe serves this InferenceService with Knative revisions (its Deployments are the revisions')."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    mode = (obj.get("status") or {}).get("deploymentMode") or annotations.get(MODE_ANNOTATION)
    return mode == "Serverless"


def kserve_mode(api: Any, request: Any, manifest: dict[str, Any]) -> str | None:
    """The deployment mode KServe will use for ``manifest``: its annotation, else the cluster default."""
    mode = ((manifest.get("metadata") or {}).get("annotations") or {}).get(MODE_ANNOTATION)
    if mode:
        return str(mode)
    for ns, name in KSERVE_CONFIG:
        try:
            cm = request(api, "GET", f"/api/v1/namespaces/{ns}/configmaps/{name}", retries=1)
        except Exception:
            continue
        try:
            return str(json.loads((cm.get("data") or {}).get("deploy") or "{}").get("defaultDeploymentMode") or "")
        except ValueError:
            return None
    return None


def check_split(api: Any, request: Any, manifest: dict[str, Any], crds: set[str] | None, where: str) -> list[str]:
    """KServe splits ``canaryTrafficPercent`` only in Serverless mode (Knative revisions); in Standard
    (raw) mode the candidate would take every request, and Serverless without Knative is rejected."""
    mode = kserve_mode(api, request, manifest)
    if mode and mode not in SPLITTING_MODES:
        raise DeployError(
            f"{where}: KServe runs it in {mode} mode, where canaryTrafficPercent rolls the one Deployment to the "
            "candidate instead of splitting traffic; deploy without canary_percent (--canary), or use "
            "Serverless mode (Knative Serving) for canaries")
    if crds is not None and KNATIVE not in crds:
        raise DeployError(f"{where}: a KServe canary needs Serverless mode, and Knative Serving ({KNATIVE}) is "
                          "not installed in this cluster; deploy without canary_percent (--canary)")
    return []


# -- the ONNX runtime (serving/runtimes.py) ---------------------------------------------------------

ONNX_IMAGE = "nvcr.io/nvidia/tritonserver:23.05-py3"  # kserve v0.20.0 config/runtimes kserve-tritonserver
TRITON_RUNTIME = "kserve-tritonserver"


def cluster_onnx_image(api: Any, request: Any) -> str:
    """The image of the cluster's ``kserve-tritonserver`` ClusterServingRuntime."""
    rt = request(api, "GET", f"/apis/serving.kserve.io/v1alpha1/clusterservingruntimes/{TRITON_RUNTIME}", retries=1)
    return str(rt["spec"]["containers"][0]["image"])


TARGET = ServingTarget(
    name="kserve", resource=RESOURCE,
    crd=Crd("kserve-inferenceservices.yaml", "v1beta1", "inferenceservice-v1beta1.json"),
    build=build, canary_needs_stable=False, stable_in=stable_in, read_state=read_state,
    route_all_to=route_all_to, webhook_errors=webhook_errors, expected=expected, owner_label=OWNER_LABEL,
    serves=serves, by_revisions=serverless, check_split=check_split, extra=(STORAGE,),
    onnx_image=ONNX_IMAGE, cluster_onnx_image=cluster_onnx_image,
)
