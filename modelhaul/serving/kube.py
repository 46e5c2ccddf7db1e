"""Apply manifests to a cluster and wait for the serving resource to become ready.

Server-side apply (``application/apply-patch+yaml``) with modelhaul's own field manager and
``force=True``: applying the same manifests again changes nothing and creates nothing, and fields
that other managers (controllers, ``kubectl edit``) set outside our manifests are left alone. Only
the ``kubernetes`` client's transport (``ApiClient.call_api``) is used, not its typed models, so
custom resources (SeldonDeployment, InferenceService, ClusterStorageContainer) need no discovery.

Readiness is read from the resource's status, and only once the controller has seen the current
spec (``status.observedGeneration == metadata.generation``; a status without ``observedGeneration``
is taken as current, as older operators never set it):

* Seldon Core v1 ``SeldonDeployment``: ``status.state`` ``Available`` (``Failed`` fails);
* KServe ``InferenceService``: conditions ``Ready`` (and ``PredictorReady``/``IngressReady`` when
  present) ``True``; a failed model load (``modelStatus``) fails.

Failures and timeouts raise :class:`DeployError` with the status message and recent events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from modelhaul.errors import DeployError
from modelhaul.serving import rollout, targets
from modelhaul.serving.platform import contains
from modelhaul.serving.status import read_status

FIELD_MANAGER = "modelhaul"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
RETRY_STATUSES = (409, 429, 500, 502, 503, 504)
# kind -> plural for the kinds that commonly sit beside the serving targets' (whose own plurals and
# scopes are in the targets table); others are guessed
PLURALS = {
    "ServingRuntime": "servingruntimes",
    "ClusterServingRuntime": "clusterservingruntimes",
    "Secret": "secrets",
    "ConfigMap": "configmaps",
    "ServiceAccount": "serviceaccounts",
    "Service": "services",
    "Namespace": "namespaces",
    "Deployment": "deployments",
    "Ingress": "ingresses",
    "NetworkPolicy": "networkpolicies",
}
CLUSTER_SCOPED = {"ClusterServingRuntime", "Namespace", "ClusterRole",
                  "ClusterRoleBinding", "CustomResourceDefinition", "StorageClass",
                  "PersistentVolume"}


# -- connection ----------------------------------------------------------------------------------


@contextmanager
def connect(kubeconfig: str | None = None, context: str | None = None, in_cluster: bool = False
            ) -> Iterator[Any]:
    """An ``ApiClient`` for the cluster kubectl would use with the same flags and environment.

    See :func:`modelhaul.serving.cluster.resolve`: ``--kubeconfig``, else the ``$KUBECONFIG`` list
    merged as kubectl merges it, else ``~/.kube/config``; or the pod's service account.
    """
    from kubernetes import client

    from modelhaul.serving.cluster import resolve

    found = resolve(kubeconfig, context, in_cluster)
    if found is None:
        raise DeployError("no Kubernetes cluster configured: set KUBECONFIG or create ~/.kube/config "
                          "(or pass --kubeconfig, --context, --in-cluster)")
    api = client.ApiClient(found[0])
    try:
        yield api
    finally:
        api.close()


# -- resource paths ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceId:
    """Where an object lives in the API: its collection path plus name."""

    api_version: str
    kind: str
    name: str
    namespace: str | None

    @classmethod
    def of(cls, manifest: dict[str, Any], default_namespace: str = "default") -> ResourceId:
        try:
            kind, api_version, name = manifest["kind"], manifest["apiVersion"], manifest["metadata"]["name"]
        except (KeyError, TypeError):
            raise DeployError("a manifest without apiVersion, kind or metadata.name cannot be applied") from None
        ns = (manifest["metadata"].get("namespace") or default_namespace) if namespaced(kind) else None
        return cls(api_version, kind, name, ns)

    @property
    def path(self) -> str:
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        ns = f"/namespaces/{self.namespace}" if self.namespace else ""
        return f"{base}{ns}/{plural(self.kind)}/{self.name}"

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


def namespaced(kind: str) -> bool:
    """Does an object of ``kind`` live in a namespace (the targets table's scope, else a known list)?"""
    known = targets.resource(kind)
    return known.namespaced if known else kind not in CLUSTER_SCOPED


def plural(kind: str) -> str:
    """The resource name of ``kind`` (``SeldonDeployment`` -> ``seldondeployments``)."""
    known = targets.resource(kind)
    if known:
        return known.plural
    if kind in PLURALS:
        return PLURALS[kind]
    k = kind.lower()
    if k.endswith("y") and k[-2:-1] not in "aeiou":
        return k[:-1] + "ies"
    return k + ("es" if k.endswith(("s", "x", "ch", "sh")) else "s")


# -- requests ------------------------------------------------------------------------------------


def _request(api: Any, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
             body: Any = None, content_type: str | None = None, retries: int = 5) -> dict[str, Any]:
    """One API call with JSON back; conflicts, throttling and 5xx are retried with backoff."""
    import urllib3
    from kubernetes.client.rest import ApiException

    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    delay = 0.1
    for attempt in range(retries + 1):
        try:
            resp = api.call_api(path, method, query_params=query or [], header_params=headers, body=body,
                                auth_settings=["BearerToken"], _preload_content=False,
                                _return_http_data_only=True, _request_timeout=30)
            return json.loads(resp.data or b"{}")
        except ApiException as exc:
            if exc.status in RETRY_STATUSES and attempt < retries:
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            raise
        except urllib3.exceptions.HTTPError as exc:
            host = api.configuration.host
            raise DeployError(f"cannot reach the Kubernetes API at {host}: {exc}") from None
    raise AssertionError("unreachable")


def _api_message(exc: Exception) -> str:
    """The API's own message: the Status JSON's ``message``, else the body as text (never ``b'...'``)."""
    body = getattr(exc, "body", None)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        return str(json.loads(body).get("message") or body).strip()
    except (TypeError, ValueError, AttributeError):
        return str(body or exc).strip()


def apply_object(api: Any, manifest: dict[str, Any], *, field_manager: str = FIELD_MANAGER
                 ) -> dict[str, Any]:
    """Server-side apply one manifest (forcing ownership of its fields); returns the live object."""
    from kubernetes.client.rest import ApiException

    rid = ResourceId.of(manifest)
    body = json.loads(json.dumps(manifest))  # a private copy; JSON is YAML, so the API reads it as is
    if rid.namespace:
        body["metadata"]["namespace"] = rid.namespace
    try:
        return _request(api, "PATCH", rid.path, body=body, content_type=APPLY_CONTENT_TYPE,
                        query=[("fieldManager", field_manager), ("force", "true")])
    except ApiException as exc:
        msg = _api_message(exc)
        if exc.status == 404:
            raise DeployError(f"cannot apply {rid}: {_not_found(rid, msg)}") from None
        if exc.status in (401, 403):
            raise DeployError(f"cannot apply {rid}: the cluster refused ({exc.status}): {msg}") from None
        raise DeployError(f"cannot apply {rid}: {exc.status} {exc.reason}: {msg}") from None


def _not_found(rid: ResourceId, msg: str) -> str:
    """Why a 404 came back, in words: no such resource type (CRD not installed), or no namespace."""
    where = f" namespace {rid.namespace!r} does not exist" if rid.namespace else ""
    if not msg or "page not found" in msg or "could not find the requested resource" in msg:  # no such type
        return (f"the cluster has no {plural(rid.kind)} resource of {rid.api_version} "
                f"(is its CustomResourceDefinition installed?)")
    if rid.namespace and msg.startswith("namespaces"):
        return f"not found:{where} (kubectl create namespace {rid.namespace})"
    return f"not found: {msg}"


def get_object(api: Any, rid: ResourceId) -> dict[str, Any] | None:
    """The live object, or None when it does not exist."""
    from kubernetes.client.rest import ApiException

    try:
        return _request(api, "GET", rid.path)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise DeployError(f"cannot read {rid}: {exc.status} {exc.reason}: {_api_message(exc)}") from None


def recent_events(api: Any, obj: dict[str, Any], limit: int = 5) -> list[str]:
    """The last ``limit`` events about ``obj`` itself (its kind, namespace and uid, not just its
    name: a SeldonDeployment and an InferenceService often share one), as ``"Type Reason (Kind):
    message"`` lines."""
    meta = obj.get("metadata") or {}
    ns, kind = meta.get("namespace"), obj.get("kind")
    if not (ns and kind and meta.get("name")):
        return []
    selector = [f"involvedObject.kind={kind}", f"involvedObject.name={meta['name']}",
                f"involvedObject.namespace={ns}"]
    if meta.get("uid"):
        selector.append(f"involvedObject.uid={meta['uid']}")
    try:
        data = _request(api, "GET", f"/api/v1/namespaces/{ns}/events",
                        query=[("fieldSelector", ",".join(selector))], retries=1)
    except Exception:  # events are a courtesy in an error message; never hide the real failure
        return []
    items = data.get("items") or []

    def when(e: dict[str, Any]) -> str:
        return str(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp") or "")

    items.sort(key=when)
    return [f"{e.get('type', 'Normal')} {e.get('reason', '')} ({kind}): {e.get('message', '')}".strip()
            for e in items[-limit:]]


# -- status --------------------------------------------------------------------------------------


def get_status(kind: str, name: str, namespace: str = "default", *, api_version: str | None = None,
               kubeconfig: str | None = None, context: str | None = None, in_cluster: bool = False
               ) -> dict[str, Any]:
    """One non-blocking look at a serving resource (what a deferrable trigger polls).

    ``kind``: a serving target's kind or name (``SeldonDeployment`` or ``seldon``); any other is
    refused in one line naming the targets. Returns ``{state, ready, failed, message, url,
    observed_generation, generation}``; ``state`` is ``NotFound`` when the object does not exist.
    Recent events are added to ``message`` on failure.
    """
    row = targets.get(kind)
    kind = row.kind
    rid = ResourceId(api_version or row.api_version, kind, name, namespace if namespaced(kind) else None)
    with connect(kubeconfig, context, in_cluster) as api:
        obj = get_object(api, rid)
        if obj is None:
            return {"kind": kind, "name": name, "state": "NotFound", "ready": False, "failed": False,
                    "message": f"{rid} does not exist", "url": None, "observed_generation": None,
                    "generation": None}
        st = rollout.serving_status(api, obj, _request)
        if st["failed"]:
            st["message"] = _with_events(st["message"], recent_events(api, obj))
        return st


def _with_events(message: str, events: list[str]) -> str:
    return message + ("; recent events: " + " | ".join(events) if events else "")


# -- apply and wait ------------------------------------------------------------------------------


def wait_ready(api: Any, rid: ResourceId, deadline: float,
               sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll ``rid`` until ready; DeployError on failure or at ``deadline`` (``time.monotonic``)."""
    interval = 0.05  # start fast (a quick controller), back off to 2 s (a slow rollout)
    last: dict[str, Any] = {}
    obj: dict[str, Any] | None = None
    while True:
        obj = get_object(api, rid) or obj
        if obj is not None:
            last = rollout.serving_status(api, obj, _request)
            if last["ready"]:
                return last
            if last["failed"]:
                raise DeployError(_with_events(f"{rid} failed: {last['message'] or 'no message'}",
                                               recent_events(api, obj)))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            events = recent_events(api, obj) if obj else []
            seen = (f"state {last.get('state')}, observedGeneration {last.get('observed_generation')} "
                    f"of generation {last.get('generation')}" if last else "the object was not found")
            # a message the controller wrote about an older generation says nothing about this one
            msg = f": {last['message']}" if last.get("message") and last.get("state") != "Stale" else ""
            raise DeployError(_with_events(f"{rid} not ready before the timeout ({seen}){msg}", events))
        sleep(min(interval, remaining))
        interval = min(interval * 1.5, 2.0)


def apply_and_wait(manifests: list[dict[str, Any]], *, kubeconfig: str | None = None,
                   context: str | None = None, in_cluster: bool = False, wait: bool = True,
                   timeout: float = 600.0) -> dict[str, Any]:
    """Apply ``manifests`` in order; with ``wait``, wait for each serving resource to be ready.

    Returns ``{applied: ["Kind/namespace/name", ...], state, url}`` (``Kind/name`` for a
    cluster-scoped object); ``state``/``url`` are those of the last serving resource, ``Applied``
    when there is none or ``wait`` is false.
    """
    deadline = time.monotonic() + timeout
    applied: list[str] = []
    serving: list[ResourceId] = []
    state, url = "Applied", None
    with connect(kubeconfig, context, in_cluster) as api:
        for m in manifests:
            live = apply_object(api, m)
            rid = ResourceId.of(live if live.get("metadata") else m)
            applied.append(str(rid))
            if targets.of_kind(rid.kind):
                serving.append(rid)
                url = read_status(live)["url"] or url
        if wait:
            for rid in serving:
                st = wait_ready(api, rid, deadline)
                state, url = st["state"], st["url"] or url
    return {"applied": applied, "state": state, "url": url}


# -- traffic -------------------------------------------------------------------------------------


def set_traffic(kind: str, name: str, namespace: str, *, to_digest: str, kubeconfig: str | None = None,
                context: str | None = None, in_cluster: bool = False, wait: bool = True,
                timeout: float = 600.0) -> dict[str, Any]:
    """Send 100% of traffic to the predictor serving ``to_digest``, keeping the others running.

    This is the first half of promoting a canary: its pods are already warm, so traffic moves
    before the old predictor goes away; how is the target's ``route_all_to`` (Seldon: ``traffic``
    100 on the predictor whose spec names the digest, 0 on the others; KServe:
    ``canaryTrafficPercent`` 100, the latest revision being the canary). ``kind``: a target's kind
    or name; any other is refused. The live spec is re-applied with modelhaul's field manager, so
    the next full apply of rendered manifests owns the same fields and cleanly replaces them. Returns
    ``{changed, state, url}``; ``changed`` is false when no predictor serves the digest or it
    already has all traffic.
    """
    row = targets.get(kind)
    kind = row.kind
    rid = ResourceId(row.api_version, kind, name, namespace)
    with connect(kubeconfig, context, in_cluster) as api:
        obj = get_object(api, rid)
        if obj is None or not contains(obj.get("spec"), to_digest):
            return {"changed": False, "state": "NotFound" if obj is None else "Unchanged", "url": None}
        spec = json.loads(json.dumps(obj["spec"]))
        changed = row.route_all_to(spec, to_digest)
        if not changed:
            return {"changed": False, "state": "Unchanged", "url": None}
        meta = obj.get("metadata") or {}
        manifest = {"apiVersion": obj["apiVersion"], "kind": kind,
                    "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta},
                    "spec": spec}
        apply_object(api, manifest)
        st = wait_ready(api, rid, time.monotonic() + timeout) if wait else {"state": "Applied", "url": None}
    return {"changed": True, "state": st["state"], "url": st["url"]}


def server_version(*, kubeconfig: str | None = None, context: str | None = None, in_cluster: bool = False) -> str:
    """``Kubernetes vX.Y.Z at SERVER``: proves the cluster answers and accepts the credentials."""
    from kubernetes.client.rest import ApiException

    with connect(kubeconfig, context, in_cluster) as api:
        try:
            data = _request(api, "GET", "/version", retries=1)
        except ApiException as exc:
            raise DeployError(f"Kubernetes API {api.configuration.host}: {_api_message(exc)}") from None
        return f"Kubernetes {data.get('gitVersion', '(unknown version)')} at {api.configuration.host}"


