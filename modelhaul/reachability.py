"""Is the service reachable, and does it take these credentials? One call each, for the "Test"
buttons of Airflow connections and ``modelhaul check``: about a registry, MLflow or a cluster, never
about a model (that is :mod:`modelhaul.promotion_gate` and :mod:`modelhaul.pipeline_run`).

Each check returns a one-line description of what answered, or raises a modelhaul error that says
what failed. Credentials never appear in either. Reached through :mod:`modelhaul.steps`
(``steps.check_registry(...)`` etc.), like every step.
"""

from __future__ import annotations

import os
from typing import Any

from modelhaul.declarations import REGISTRY_ACCESS, unknown
from modelhaul.errors import MLflowError, redact
from modelhaul.optional import needs_extras
from modelhaul.registry_options import RegistryOptions


def check_registry(*, host: str, **registry: Any) -> str:
    """``GET /v2/`` on ``host`` with these credentials (not the environment's; bearer tokens included)."""
    from modelhaul.registry import check_login

    unknown(REGISTRY_ACCESS, registry, "check_registry")
    options = RegistryOptions(**{k: v for k, v in registry.items() if v is not None})
    check_login(host, options)
    who = f" as {options.username}" if options.username else " anonymously"
    return f"registry {host} answers /v2/{who}"


def check_mlflow(*, tracking_uri: str | None) -> str:
    """A tracking server answers ``/health`` and an authenticated experiments search; any other
    store (``sqlite:///``, databricks) answers one search through MLflow's client.

    Credentials come from the environment MLflow's client reads (``MLFLOW_TRACKING_USERNAME`` /
    ``_PASSWORD`` / ``_TOKEN``, ``MLFLOW_TRACKING_INSECURE_TLS``).
    """
    if not tracking_uri:
        raise MLflowError("no tracking URI: set the connection's host or tracking_uri extra")
    shown = redact(tracking_uri)
    if tracking_uri.startswith(("http://", "https://")):
        import requests

        env = os.environ
        verify = (env.get("MLFLOW_TRACKING_INSECURE_TLS") or "").lower() != "true"
        headers = {"Authorization": f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"} \
            if env.get("MLFLOW_TRACKING_TOKEN") else {}
        auth = (env["MLFLOW_TRACKING_USERNAME"], env.get("MLFLOW_TRACKING_PASSWORD", "")) \
            if env.get("MLFLOW_TRACKING_USERNAME") else None
        base = tracking_uri.rstrip("/")
        try:
            health = requests.get(f"{base}/health", timeout=10, verify=verify)
            search = requests.get(f"{base}/api/2.0/mlflow/experiments/search", params={"max_results": 1},
                                  headers=headers, auth=auth, timeout=10, verify=verify)
        except requests.RequestException as exc:
            raise MLflowError(f"MLflow tracking server {shown} is unreachable ({type(exc).__name__})") from None
        if health.status_code != 200:
            raise MLflowError(f"MLflow tracking server {shown}: /health answered {health.status_code}")
        if search.status_code in (401, 403):
            raise MLflowError(f"MLflow tracking server {shown} refused the credentials ({search.status_code})")
        if search.status_code != 200:
            raise MLflowError(f"MLflow tracking server {shown}: experiments search answered {search.status_code}")
        return f"MLflow tracking server {shown} is healthy and answers an authenticated search"
    from modelhaul.tracking.client import _client

    try:
        _client(tracking_uri).search_experiments(max_results=1)
    except MLflowError:
        raise
    except Exception as exc:
        raise MLflowError(f"MLflow tracking store {shown}: {type(exc).__name__}: {redact(str(exc))[:200]}") from None
    return f"MLflow tracking store {shown} answers"


@needs_extras("checking a cluster")
def check_cluster(*, kubeconfig: str | None = None, context: str | None = None, in_cluster: bool = False) -> str:
    """The API server's version, through the same credentials a deploy would use."""
    from modelhaul.serving.kube import server_version

    return server_version(kubeconfig=kubeconfig, context=context, in_cluster=in_cluster)
