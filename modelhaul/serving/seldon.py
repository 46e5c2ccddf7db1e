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

import json
from typing import TYPE_CHECKING, Any

from modelhaul import format_table as table
from modelhaul.errors import DeployError
from modelhaul.serving.platform import (
    DIGEST_KEY,
    Crd,
    Resource,
    ServingTarget,
    condition_message,
    contains,
    digest_in,
    no_revisions,
)

if TYPE_CHECKING:
    from modelhaul.serving.model import ServedModel

API_VERSION = "machinelearning.seldon.io/v1"
KIND = "SeldonDeployment"
RESOURCE = Resource(KIND, API_VERSION, "seldondeployments")
PROTOCOL = "v2"
MAIN = "main"  # the predictor of the stable model (the only one without a canary)
CANARY = "canary"  # the predictor of the candidate during a canary

# serving kind -> Seldon Core v1 prepackaged server, and server -> the initializer layout it reads
IMPLEMENTATION = table.seldon_implementations()
LAYOUT = {f.seldon: f.layout for f in table.FORMATS if f.seldon and f.layout}


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


def build(model: ServedModel, *, name: str, namespace: str, image: str, secret_name: str | None,
          stable: ServedModel | None, canary_percent: int | None, plain_http: bool, insecure: bool
          ) -> list[dict[str, Any]]:
    """The SeldonDeployment (a canary is a second predictor, so it needs the stable model)."""
    if canary_percent is not None and stable is None:
        raise DeployError(f"{name}: a Seldon canary needs the stable model; pass stable_ref")
    return [seldon_deployment(model, name=name, namespace=namespace, image=image, secret_name=secret_name,
                              stable=stable, canary_percent=canary_percent, plain_http=plain_http,
                              insecure=insecure)]


def stable_in(manifest: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(modelhaul.io/ref, modelUri)`` of the ``main`` predictor: the stable model of a canary."""
    from modelhaul.serving.model import ANNOTATION

    preds = [p for p in (manifest.get("spec") or {}).get("predictors") or [] if p.get("name") == MAIN]
    if not preds:
        return None, None
    return (preds[0].get("annotations") or {}).get(f"{ANNOTATION}ref"), (preds[0].get("graph") or {}).get("modelUri")


def read_state(status: dict[str, Any]) -> tuple[str, str, str | None]:
    """``status.state`` (``Creating``/``Available``/``Failed``), its description, ``address.url``."""
    message = status.get("description") or condition_message(status.get("conditions") or [])
    return status.get("state") or "Unknown", message, (status.get("address") or {}).get("url")


def route_all_to(spec: dict[str, Any], digest: str) -> bool:
    """Traffic 100 on the predictor whose spec names ``digest``, 0 on the other non-shadow ones."""
    changed = False
    for p in [p for p in spec.get("predictors") or [] if not p.get("shadow")]:
        want = 100 if contains(p, digest) else 0
        changed |= p.get("traffic") != want
        p["traffic"] = want
    return changed


# -- admission: what Seldon Core v1's webhook enforces beyond the CRD schema ------------------------

PROTOCOLS = ("seldon", "tensorflow", "kfserving", "v2")
PREPACKAGED = ("SKLEARN_SERVER", "XGBOOST_SERVER", "TENSORFLOW_SERVER", "MLFLOW_SERVER",
               "TRITON_SERVER", "HUGGINGFACE_SERVER", "TEMPO_SERVER")


def webhook_errors(manifest: dict[str, Any]) -> list[str]:
    """Protocol values, unique predictor names, traffic summing to 100 over the non-shadow
    predictors, at most one shadow, a ``modelUri`` for prepackaged servers, Triton only on v2."""
    spec = manifest.get("spec") or {}
    errs = []
    protocol = spec.get("protocol")
    if protocol and protocol not in PROTOCOLS:
        errs.append(f"spec.protocol: {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    names: set[str] = set()
    shadows, traffic, serving = 0, 0, 0
    for i, p in enumerate(spec.get("predictors") or []):
        where = f"spec.predictors[{i}]"
        if p.get("name") in names:
            errs.append(f"{where}.name: duplicate predictor name {p.get('name')!r}")
        names.add(p.get("name"))
        if p.get("shadow"):
            shadows += 1
        else:
            serving += 1
            traffic += int(p.get("traffic") or 0)
        for path, unit in _units(p.get("graph") or {}, f"{where}.graph"):
            impl = unit.get("implementation")
            if impl in PREPACKAGED and not unit.get("modelUri"):
                errs.append(f"{path}.modelUri: required by implementation {impl}")
            if impl == "TRITON_SERVER" and protocol not in ("v2", "kfserving"):
                errs.append(f"{path}.implementation: TRITON_SERVER needs spec.protocol v2 (or kfserving)")
    if shadows > 1:
        errs.append(f"spec.predictors: {shadows} shadow predictors; at most one is allowed")
    single_default = serving == 1 and traffic == 0
    if serving and not single_default and traffic != 100:
        errs.append(f"spec.predictors: traffic of the non-shadow predictors sums to {traffic}, not 100")
    return errs


def _units(unit: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    out = [(path, unit)]
    for i, child in enumerate(unit.get("children") or []):
        out += _units(child, f"{path}.children[{i}]")
    return out


# -- the cluster: rollout and traffic splitting ------------------------------------------------------

OWNER_LABEL = "seldon-deployment-id"
ROUTERS = {"virtualservices.networking.istio.io": "Istio", "mappings.getambassador.io": "Ambassador"}


def expected(obj: dict[str, Any]) -> list[tuple[str, str | None]]:
    """``(predictor NAME, digest)`` of every predictor with replicas."""
    out = []
    for p in (obj.get("spec") or {}).get("predictors") or []:
        if p.get("replicas") == 0:
            continue
        digest = (p.get("annotations") or {}).get(DIGEST_KEY) or digest_in(
            (p.get("graph") or {}).get("modelUri"))
        out.append((f"predictor {p.get('name')}", digest))
    return out


def serves(dep: dict[str, Any], what: str) -> bool:
    """Is ``dep`` the Deployment of predictor ``what``? Its pods run the executor with ``--predictor
    NAME`` (a predictor being removed may still serve the same digest)."""
    template = (dep.get("spec") or {}).get("template") or {}
    name = what.removeprefix("predictor ")
    for c in (template.get("spec") or {}).get("containers") or []:
        args = c.get("args") or []
        if "--predictor" in args[:-1]:
            return bool(args[args.index("--predictor") + 1] == name)
    return ((template.get("metadata") or {}).get("labels") or {}).get("version", name) == name


def check_split(api: Any, request: Any, manifest: dict[str, Any], crds: set[str] | None, where: str) -> list[str]:
    """Seldon Core v1 splits traffic between predictors only through Istio or Ambassador; without
    them the canary serves only who calls its Service directly (a warning: nothing breaks)."""
    if crds is None or crds & set(ROUTERS):
        return []
    return [f"{where}: the canary gets no traffic split: without Istio or Ambassador Seldon Core v1 "
            "makes one Service per predictor and its address is the stable one's (install Istio and "
            "set ISTIO_ENABLED=true in the Seldon operator to split traffic)"]


# -- the ONNX runtime (serving/runtimes.py) ---------------------------------------------------------

ONNX_IMAGE = "nvcr.io/nvidia/tritonserver:21.08-py3"  # seldon-core-operator 1.17.1 values.yaml
SELDON_CONFIG = ("seldon-system", "seldon-config")


def cluster_onnx_image(api: Any, request: Any) -> str:
    """The Triton image the operator's ``seldon-config`` ConfigMap gives its v2 TRITON_SERVER."""
    cm = request(api, "GET", "/api/v1/namespaces/{}/configmaps/{}".format(*SELDON_CONFIG), retries=1)
    servers = json.loads((cm.get("data") or {}).get("predictor_servers") or "{}")
    v2 = servers[str(IMPLEMENTATION["onnx"])]["protocols"]["v2"]  # TRITON_SERVER
    return f"{v2['image']}:{v2['defaultImageVersion']}"


TARGET = ServingTarget(
    name="seldon", resource=RESOURCE,
    crd=Crd("seldon-v1-seldondeployments.yaml", "v1", "seldondeployment-v1.json"),
    build=build, canary_needs_stable=True, stable_in=stable_in, read_state=read_state,
    route_all_to=route_all_to, webhook_errors=webhook_errors, expected=expected, owner_label=OWNER_LABEL,
    serves=serves, by_revisions=no_revisions, check_split=check_split,
    onnx_image=ONNX_IMAGE, cluster_onnx_image=cluster_onnx_image,
)
