"""Reaching a deployment again from the deploy step's result: serve another model there, move traffic."""

from __future__ import annotations

import os
from typing import Any

from modelhaul.declarations import DeploymentSettings, KubeTarget, step_arguments
from modelhaul.errors import ConfigError, DeployError
from modelhaul.reference import parse
from modelhaul.registry_options import RegistryOptions


def settings_of(deployment: dict[str, Any]) -> dict[str, Any]:
    """How to reach the deployment again, from the deploy step's result (plus any keys added to it).

    The deploy result names what it applied or rendered; where it does not carry the connection
    (``kubeconfig``/``context``/``in_cluster``, ``render_dir``, ``registry_secret``), they are taken
    from keys the caller added, or inferred from the rendered files and applied objects.
    """
    d = deployment
    if not d.get("name"):
        raise ConfigError("deployment: pass the result of the deploy step (it names the service)")
    # every deploy setting and the cluster, as declared (coerced; a missing one is its default)
    settings = step_arguments((*DeploymentSettings.PARAMS, *KubeTarget.PARAMS), d, complete=True)
    kube = {p.name: settings[p.name] for p in KubeTarget.PARAMS}
    applied = list(d.get("applied") or [])
    files = [str(f) for f in d.get("manifests") or [] if isinstance(f, str)]
    render_dir = settings["render_dir"]
    if applied and not render_dir and not any(kube.values()):
        raise ConfigError(
            f"deployment {d['name']!r} was applied to a cluster: add kubeconfig/context (or in_cluster) "
            "to the deployment dict so that traffic can move there"
        )
    if not applied and not any(kube.values()) and not render_dir and files:
        render_dir = os.path.dirname(files[0])
    secret = settings["registry_secret"]
    if not secret:
        for item in applied:  # "Secret/<namespace>/<name>"
            if item.startswith("Secret/"):
                secret = item.rsplit("/", 1)[-1]
        for f in files:  # "<dir>/secret-<name>.yaml"
            base = os.path.basename(f)
            if base.startswith("secret-") and base.endswith(".yaml"):
                secret = base[len("secret-"):-len(".yaml")]
    return {**settings, "render_dir": render_dir, "registry_secret": secret}


def redeploy(deployment: dict[str, Any], ref: str, options: RegistryOptions | None) -> dict[str, Any]:
    """Serve ``ref`` alone (one predictor, all traffic) where ``deployment`` runs."""
    from modelhaul.serving.deploy import deploy_model

    settings = settings_of(deployment)
    return deploy_model(ref, DeploymentSettings.of({**settings, "canary_percent": None, "stable_ref": None}),
                        KubeTarget.of(settings), options)


def shift_traffic(deployment: dict[str, Any], candidate: str, options: RegistryOptions | None
                   ) -> dict[str, Any]:
    """Canary to 100% (when one runs in a cluster), then the candidate as the only predictor."""
    s = settings_of(deployment)
    row = _row(s["target"])
    if deployment.get("canary_percent") and deployment.get("applied") and not s["render_dir"] and row:
        from modelhaul.serving.kube import set_traffic

        set_traffic(row.kind, s["name"], s["namespace"], to_digest=parse(candidate).digest or "",
                    kubeconfig=s["kubeconfig"], context=s["context"], in_cluster=s["in_cluster"],
                    wait=s["wait"], timeout=s["timeout"])
    return redeploy(deployment, candidate, options)


def _row(target: object) -> Any:
    """The serving target's row in :mod:`modelhaul.serving.targets`, or None for one it does not know."""
    from modelhaul.serving import targets

    try:
        return targets.get(target)
    except DeployError:
        return None


def access_targets(settings: dict[str, Any]) -> list[tuple[str, Any]]:
    """What moving traffic and redeploying touch, as ``(verb, ResourceId)``: the serving object
    (get, patch) and the other objects its manifests apply (KServe's ClusterStorageContainer)."""
    from modelhaul.serving.kube import ResourceId

    row = _row(settings.get("target"))
    if row is None:
        return []
    ns = str(settings.get("namespace") or "default")
    rid = ResourceId(row.api_version, row.kind, str(settings["name"]), ns)
    return [("get", rid), ("patch", rid)] + [
        ("patch", ResourceId(r.api_version, r.kind, r.name, ns if r.namespaced else None))
        for r in row.extra if r.name]


def preflight(deployment: dict[str, Any], doing: str) -> None:
    """Refuse (DeployError, nothing changed) when the deployment's cluster would refuse us later."""
    from modelhaul.serving.access import check_deployment

    settings = settings_of(deployment)
    check_deployment(settings, access_targets(settings), doing)
