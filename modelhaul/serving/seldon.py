"""Seldon Core v1 ``SeldonDeployment`` for a model artifact (optionally beside a stable one, as a canary).

Every model runs on a prepackaged server chosen from its format, all on the open inference
protocol ``v2`` so that the predictors of a canary answer the same requests at the same path
(``/v2/models/<name>/infer``) whatever their formats:

========================  ===============  ==================
kind                      implementation   initializer layout
========================  ===============  ==================
onnx, torchscript,        TRITON_SERVER    triton
savedmodel
mlflow                    MLFLOW_SERVER    mlflow
sklearn                   SKLEARN_SERVER   sklearn (model.joblib)
xgboost                   XGBOOST_SERVER   xgboost (model.bst)
========================  ===============  ==================

SavedModel goes to Triton rather than TENSORFLOW_SERVER because the latter speaks only the
``tensorflow`` protocol, which a canary beside a v2 model could not share. The graph's name is the
model's name inside the server, so clients call the same path on either predictor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelhaul.serving.model import ServedModel

API_VERSION = "machinelearning.seldon.io/v1"
KIND = "SeldonDeployment"
PROTOCOL = "v2"
MAIN = "main"  # the predictor of the stable model (the only one without a canary)
CANARY = "canary"  # the predictor of the candidate during a canary

IMPLEMENTATION = {
    "onnx": "TRITON_SERVER",
    "torchscript": "TRITON_SERVER",
    "savedmodel": "TRITON_SERVER",
    "mlflow": "MLFLOW_SERVER",
    "sklearn": "SKLEARN_SERVER",
    "xgboost": "XGBOOST_SERVER",
}
LAYOUT = {"TRITON_SERVER": "triton", "MLFLOW_SERVER": "mlflow", "SKLEARN_SERVER": "sklearn",
          "XGBOOST_SERVER": "xgboost"}


def predictor(
    model: ServedModel,
    *,
    predictor_name: str,
    model_name: str,
    traffic: int,
    image: str,
    secret_name: str | None,
    plain_http: bool = False,
    insecure: bool = False,
) -> dict[str, Any]:
    """One predictor whose single graph node serves ``model`` from its modelhaul:// URI."""
    impl = IMPLEMENTATION[model.kind]
    graph: dict[str, Any] = {
        "name": model_name,
        "type": "MODEL",
        "implementation": impl,
        "modelUri": model.uri(server=LAYOUT[impl], name=model_name, plain_http=plain_http,
                              insecure=insecure),
        "storageInitializerImage": image,
    }
    if secret_name:
        graph["envSecretRefName"] = secret_name
    graph["children"] = []
    return {
        "name": predictor_name,
        "traffic": traffic,
        "labels": model.labels(),
        "annotations": model.annotations(),
        "graph": graph,
    }


def seldon_deployment(
    model: ServedModel,
    *,
    name: str,
    namespace: str,
    image: str,
    secret_name: str | None = None,
    stable: ServedModel | None = None,
    canary_percent: int | None = None,
    plain_http: bool = False,
    insecure: bool = False,
) -> dict[str, Any]:
    """The SeldonDeployment serving ``model``; with ``stable`` and ``canary_percent``, a canary.

    Without a canary the candidate is the ``main`` predictor with all the traffic. With one, the
    stable model keeps ``main`` at ``100 - canary_percent`` and the candidate runs as ``canary``.
    """
    common = {"model_name": name, "image": image, "secret_name": secret_name, "plain_http": plain_http,
              "insecure": insecure}
    if stable is not None and canary_percent is not None:
        predictors = [
            predictor(stable, predictor_name=MAIN, traffic=100 - canary_percent, **common),
            predictor(model, predictor_name=CANARY, traffic=canary_percent, **common),
        ]
    else:
        predictors = [predictor(model, predictor_name=MAIN, traffic=100, **common)]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": model.object_metadata(name, namespace, stable=stable, canary_percent=canary_percent),
        "spec": {"name": name, "protocol": PROTOCOL, "predictors": predictors},
    }


def served_uris(manifest: dict[str, Any]) -> dict[str, str]:
    """``{predictor name: modelUri}`` of a SeldonDeployment (to find the model a predictor serves)."""
    return {p.get("name"): (p.get("graph") or {}).get("modelUri")
            for p in (manifest.get("spec") or {}).get("predictors") or []}
