"""Ask the cluster, before anything moves, whether this identity may do what a step is about to do.

``promote`` and ``rollback`` move a registry tag and then change the deployment. When the identity
cannot read or patch the deployment, finding out after the tag moved leaves the registry and the
cluster disagreeing. So they ask first, with ``SelfSubjectAccessReview`` (what ``kubectl auth
can-i`` asks): no side effect, and the answer names the verb and resource that are missing.
"""

from __future__ import annotations

from typing import Any

from modelhaul.errors import DeployError
from modelhaul.serving.kube import ResourceId, _api_message, _request, connect, plural


def whoami(api: Any) -> str:
    """The user name the cluster sees (``kubectl auth whoami``), via ``SelfSubjectReview``."""
    from kubernetes.client.rest import ApiException

    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    try:
        out = _request(api, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=body,
                       content_type="application/json", retries=1)
    except ApiException as exc:
        raise DeployError(f"cannot ask {api.configuration.host} who we are ({exc.status}): {_api_message(exc)}"
                          ) from None
    return str(((out.get("status") or {}).get("userInfo") or {}).get("username") or "")


def can_i(api: Any, verb: str, rid: ResourceId) -> bool:
    """Whether the current identity may ``verb`` ``rid`` (``kubectl auth can-i``)."""
    from kubernetes.client.rest import ApiException

    group = rid.api_version.split("/")[0] if "/" in rid.api_version else ""
    attrs = {"verb": verb, "group": group, "resource": plural(rid.kind), "name": rid.name}
    if rid.namespace:
        attrs["namespace"] = rid.namespace
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs}}
    try:
        out = _request(api, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=body,
                       content_type="application/json", retries=1)
    except ApiException as exc:
        if exc.status in (404, 405, 501):  # no authorization API to ask (a proxy, a stub): the request will tell
            return True
        raise DeployError(f"cannot ask {api.configuration.host} what we may do ({exc.status}): "
                          f"{_api_message(exc)}") from None
    return bool((out.get("status") or {}).get("allowed"))


def resource_name(rid: ResourceId) -> str:
    """``seldondeployments.machinelearning.seldon.io`` (kubectl's spelling of a resource)."""
    group = rid.api_version.split("/")[0] if "/" in rid.api_version else ""
    return plural(rid.kind) + (f".{group}" if group else "")


def require(targets: list[tuple[str, ResourceId]], *, doing: str, kubeconfig: str | None = None,
            context: str | None = None, in_cluster: bool = False) -> None:
    """DeployError naming the first (verb, object) the identity may not act on; nothing else happens.

    ``doing`` says what would have happened (``promote ... to production``) so the line reads as a
    refusal with nothing changed.
    """
    with connect(kubeconfig, context, in_cluster) as api:
        for verb, rid in targets:
            if not can_i(api, verb, rid):
                raise DeployError(_refusal(api, verb, rid, doing))


def check_apply(manifests: list[dict[str, Any]], *, doing: str, kubeconfig: str | None = None,
                context: str | None = None, in_cluster: bool = False) -> None:
    """Pre-flight for a deploy: every manifest may be applied (patch, and create where it does not
    exist yet), and a serving resource read back, so a refusal comes before the first object is
    written rather than after the Secret is already there."""
    from modelhaul.serving.kube import get_object
    from modelhaul.serving.targets import of_kind

    with connect(kubeconfig, context, in_cluster) as api:
        for m in manifests:
            rid = ResourceId.of(m)
            verbs = ["get"] if of_kind(rid.kind) else []
            verbs.append("patch")
            if not can_i(api, "get", rid) or get_object(api, rid) is None:
                verbs.append("create")
            for verb in verbs:
                if not can_i(api, verb, rid):
                    raise DeployError(_refusal(api, verb, rid, doing))


def _refusal(api: Any, verb: str, rid: ResourceId, doing: str) -> str:
    who = whoami_or_unknown(api)
    where = f" in namespace {rid.namespace}" if rid.namespace else ""
    return (f"{who} may not {verb} {resource_name(rid)} {rid.name!r}{where} on {api.configuration.host}: "
            f"nothing changed, {doing} refused (grant it, or pass --kubeconfig/--context of an identity that may)")


def whoami_or_unknown(api: Any) -> str:
    try:
        return whoami(api) or "this identity"
    except DeployError:
        return "this identity"


def check_deployment(settings: dict[str, Any], targets: list[tuple[str, ResourceId]], doing: str) -> None:
    """Pre-flight for promote/rollback: ``targets`` of the deployment in ``settings`` are allowed.

    Nothing to ask for a rendered deployment (a directory, no cluster).
    """
    if settings.get("render_dir") or not (settings.get("kubeconfig") or settings.get("context")
                                          or settings.get("in_cluster")):
        return
    require(targets, doing=doing, kubeconfig=settings.get("kubeconfig"),
            context=settings.get("context"), in_cluster=bool(settings.get("in_cluster")))

