"""Can this cluster split traffic for a canary? Asked before a canary is applied.

* Seldon Core v1 splits traffic between predictors only through Istio (a VirtualService with one
  weighted route per predictor) or Ambassador. Without them (the chart's default) each predictor
  gets its own Service and ``status.address.url`` is the first predictor's: the canary serves only
  who calls its Service directly. modelhaul warns (the stable model keeps all the traffic, so
  nothing breaks) when the cluster has neither Istio's VirtualService nor Ambassador's Mapping.
* KServe splits ``canaryTrafficPercent`` only in Serverless mode (Knative revisions). In Standard
  (raw) mode it rolls the one Deployment to the candidate, which then takes every request: that is
  refused, as is Serverless mode without Knative (KServe rejects it: ``ServerlessModeRejected``).

What the cluster does not let us read (RBAC) is not guessed at: the canary goes ahead. Each target's
rules are its ``check_split`` (in ``seldon.py``, ``kserve.py``).
"""

from __future__ import annotations

from typing import Any

from modelhaul.serving import targets


def _crds(api: Any, request: Any) -> set[str] | None:
    try:
        data = request(api, "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", retries=1)
    except Exception:  # not allowed, or not a real API server: unknown
        return None
    return {(i.get("metadata") or {}).get("name") for i in data.get("items") or []}


def check_canary(manifest: dict[str, Any], *, kubeconfig: str | None, context: str | None,
                 in_cluster: bool) -> list[str]:
    """Warnings about a canary that will not split; :class:`DeployError` when it would do harm (the
    rules are the target's ``check_split``)."""
    from modelhaul.serving.kube import _request, connect

    row = targets.get(manifest.get("kind"))
    meta = manifest.get("metadata") or {}
    where = f"{row.kind} {meta.get('namespace')}/{meta.get('name')}"
    with connect(kubeconfig, context, in_cluster) as api:
        return row.check_split(api, _request, manifest, _crds(api, _request), where)
