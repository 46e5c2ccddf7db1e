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

from typing import TYPE_CHECKING, Any

from modelhaul.serving.initializer import PREFIX

if TYPE_CHECKING:
    from modelhaul.serving.model import ServedModel

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
STORAGE_API_VERSION = "serving.kserve.io/v1alpha1"
STORAGE_KIND = "ClusterStorageContainer"
STORAGE_CONTAINER_NAME = "modelhaul"
PROTOCOL = "v2"

# kind -> (modelFormat name, runtime or None for KServe's default, initializer layout)
FORMATS: dict[str, tuple[str, str | None, str]] = {
    "onnx": ("onnx", None, "triton"),
    "torchscript": ("pytorch", "kserve-tritonserver", "triton"),
    "savedmodel": ("tensorflow", "kserve-tritonserver", "triton"),
    "mlflow": ("mlflow", None, "mlflow"),
    "sklearn": ("sklearn", None, "sklearn"),
    "xgboost": ("xgboost", None, "xgboost"),
}


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


def served_uri(manifest: dict[str, Any]) -> str | None:
    """The storageUri of an InferenceService's predictor."""
    pred = (manifest.get("spec") or {}).get("predictor") or {}
    return (pred.get("model") or {}).get("storageUri")
