"""Extra links: the MLflow run, the artifact in its registry, the serving endpoint.

Airflow 3 computes a link in the worker when the task ends and stores it in XCom; the UI only reads
that XCom. So each link here is a pure function of the operator and the task's XCom: the step result
(``return_value``), else what the task pushed at execute time (``modelhaul_artifact_ref``,
``modelhaul_deployment_url``: a deferred task has no return value yet, and Airflow computes its links
when it defers too) and, for MLflow, the tracking server URL the train operator pushed beside it.
"""

from __future__ import annotations

from typing import Any

from modelhaul.operators._compat import BaseOperatorLink, conf

MLFLOW_URL_KEY = "mlflow_run_url"
# pushed while the task runs (before it defers), so links work while it waits in the triggerer
ARTIFACT_REF_KEY = "modelhaul_artifact_ref"
DEPLOYMENT_URL_KEY = "modelhaul_deployment_url"
# no link unless a registry UI is configured: the manifest API answers a browser with an error page
DEFAULT_REGISTRY_LINK = ""


def _xcom(ti_key: Any, key: str = "return_value") -> Any:
    try:
        from airflow.sdk.execution_time.xcom import XCom
    except ImportError:  # Airflow 2
        from airflow.models.xcom import XCom  # type: ignore[no-redef]
    return XCom.get_value(ti_key=ti_key, key=key)


def mlflow_run_url(tracking_uri: str | None, experiment_id: Any, run_id: str | None) -> str:
    """The MLflow UI page of a run; empty (the UI hides the link) when the tracking store is not a
    web server (a file or database the worker reads) or the run's experiment is unknown: the UI's
    run page is addressed by both, and a guessed experiment opens an error page."""
    if not tracking_uri or not run_id or experiment_id in (None, "") or not tracking_uri.startswith(
            ("http://", "https://")):
        return ""
    from modelhaul.errors import redact

    base = redact(tracking_uri).rstrip("/")
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def registry_artifact_url(ref: str | None) -> str:
    """A URL for a digest-pinned ref; the pattern is ``[modelhaul] registry_link_template``.

    Without a template there is no link (the UI hides it): a registry's own API answers a browser
    with ``MANIFEST_UNKNOWN``, not a page. Set it to the registry's UI (Harbor, GHCR, Quay...) with
    ``{scheme} {registry} {repository} {tag} {digest}``. Local layouts (``oci:PATH``) have no URL.
    """
    template = conf.get("modelhaul", "registry_link_template", fallback=DEFAULT_REGISTRY_LINK)
    if not ref or ref.startswith("oci:") or not template:
        return ""
    from modelhaul import steps

    r = steps.reference_parts(ref)
    if r is None:
        return ""
    host = r["registry"] or ""
    scheme = "http" if host.startswith(("localhost", "127.")) else "https"
    return template.format(scheme=scheme, registry=host, repository=r["repository"], tag=r["tag"] or "",
                           digest=r["digest"] or r["tag"] or "latest")


# the cluster's own DNS: a serving URL there answers only inside the cluster, never a person's browser
_IN_CLUSTER = (".svc", ".cluster.local")


def deployment_url(url: Any) -> str:
    """The serving URL a deploy reported, when a person can open it; else empty (the link is hidden).

    KServe reports ``status.url`` (the external host of its ingress, e.g. ``iris.models.example.com``)
    and ``status.address.url`` (``iris.models.svc.cluster.local``); Seldon only the in-cluster
    address. Rendered manifests are files on the worker, which a browser cannot open either.
    """
    from urllib.parse import urlsplit

    text = str(url or "")
    if not text.startswith(("http://", "https://")):
        return ""
    host = (urlsplit(text).hostname or "").rstrip(".")
    short = "." not in host and host != "localhost"  # a bare service name, resolved by the cluster's DNS
    return "" if not host or short or host.endswith(_IN_CLUSTER) else text


class MLflowRunLink(BaseOperatorLink):
    """The MLflow run that trained the model."""

    name = "MLflow run"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return _xcom(ti_key, MLFLOW_URL_KEY) or ""


class RegistryArtifactLink(BaseOperatorLink):
    """The artifact the task produced or acted on, pinned by digest."""

    name = "Model artifact"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        result = _xcom(ti_key)
        ref = result.get("ref") if isinstance(result, dict) else None
        return registry_artifact_url(ref or _xcom(ti_key, ARTIFACT_REF_KEY))


class DeploymentLink(BaseOperatorLink):
    """The serving endpoint of the deployment (when it was applied to a cluster that reports one)."""

    name = "Deployment"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        result = _xcom(ti_key)
        url = result.get("url") if isinstance(result, dict) else None
        return deployment_url(url or _xcom(ti_key, DEPLOYMENT_URL_KEY))


def persist_links(context: Any, result: dict[str, Any]) -> None:
    """Push what the artifact and deployment links need now, not only as the final return value."""
    ti = context.get("ti") if hasattr(context, "get") else None
    if ti is None:
        return
    if result.get("ref"):
        ti.xcom_push(key=ARTIFACT_REF_KEY, value=result["ref"])
    if result.get("url"):
        ti.xcom_push(key=DEPLOYMENT_URL_KEY, value=result["url"])
