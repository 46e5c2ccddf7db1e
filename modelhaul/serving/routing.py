"""Can this cluster split traffic for a canary? Asked before a canary is applied.

* Seldon Core v1 splits traffic between predictors only through Istio (a VirtualService with one
  weighted route per predictor) or Ambassador. Without them (the chart's default) each predictor
  gets its own Service and ``status.address.url`` is the first predictor's: the canary serves only
  who calls its Service directly. modelhaul warns (the stable model keeps all the traffic, so
  nothing breaks) when the cluster has neither Istio's VirtualService nor Ambassador's Mapping.
* KServe splits ``canaryTrafficPercent`` only in Serverless mode (Knative revisions). In Standard
  (raw) mode it rolls the one Deployment to the candidate, which then takes every request: that is
  refused, as is Serverless mode without Knative (KServe rejects it: ``ServerlessModeRejected``).

What the cluster does not let us read (RBAC) is not guessed at: the canary goes ahead.
"""

from __future__ import annotations

import json
from typing import Any

from modelhaul.errors import DeployError

SELDON_ROUTERS = {"virtualservices.networking.istio.io": "Istio", "mappings.getambassador.io": "Ambassador"}
KNATIVE = "services.serving.knative.dev"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
KSERVE_CONFIG = (("kserve", "inferenceservice-config"), ("kubeflow", "inferenceservice-config"))
SPLITTING_MODES = {"Serverless"}


def _crds(api: Any, request: Any) -> set[str] | None:
    try:
        data = request(api, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", retries=1)
    except Exception:  # not allowed, or not a real API server: unknown
        return None
    return {(i.get("metadata") or {}).get("name") for i in data.get("items") or []}


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


def check_canary(manifest: dict[str, Any], *, kubeconfig: str | None, context: str | None,
                 in_cluster: bool) -> list[str]:
    """Warnings about a canary that will not split; :class:`DeployError` when it would do harm."""
    from modelhaul.serving.kube import _request, connect

    kind, meta = manifest.get("kind"), manifest.get("metadata") or {}
    where = f"{kind} {meta.get('namespace')}/{meta.get('name')}"
    with connect(kubeconfig, context, in_cluster) as api:
        crds = _crds(api, _request)
        if kind == "SeldonDeployment":
            if crds is None or crds & set(SELDON_ROUTERS):
                return []
            return [f"{where}: the canary gets no traffic split: without Istio or Ambassador Seldon Core v1 "
                    "makes one Service per predictor and its address is the stable one's (install Istio and "
                    "set ISTIO_ENABLED=true in the Seldon operator to split traffic)"]
        mode = kserve_mode(api, _request, manifest)
    if mode and mode not in SPLITTING_MODES:
        raise DeployError(
            f"{where}: KServe runs it in {mode} mode, where canaryTrafficPercent rolls the one Deployment to the "
            "candidate instead of splitting traffic; deploy without canary_percent (--canary), or use "
            "Serverless mode (Knative Serving) for canaries")
    if crds is not None and KNATIVE not in crds:
        raise DeployError(f"{where}: a KServe canary needs Serverless mode, and Knative Serving ({KNATIVE}) is "
                          "not installed in this cluster; deploy without canary_percent (--canary)")
    return []
