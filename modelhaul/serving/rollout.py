"""Is the spec modelhaul applied actually serving? The Deployments and pods the operator made for it.

A serving resource's own status can be older than its spec: Seldon Core v1 (1.17 to 1.19) never
writes ``status.observedGeneration``, so the ``Available`` of the previous model stays until the
operator's next pass, and KServe in Standard mode reports ``Ready`` while the new model's pod is
still Pending (the old ReplicaSet still answers). So readiness is also read where the serving
happens: for every model the spec serves (each Seldon predictor, the KServe predictor), the
Deployment the operator owns whose pod template carries that model's digest
(``modelhaul.io/digest``) must be rolled out the way ``kubectl rollout status`` means it
(``observedGeneration``, every replica updated and available, no old replica left).

Pods of those Deployments that cannot start are a failure at once, not a timeout: a container or
the initializer in CrashLoopBackOff or ImagePullBackOff, an initializer that exited non-zero, a pod
the scheduler cannot place, a ReplicaSet the API refused; also Warning events on the serving
resource that mean it never will be (KServe's ``ServerlessModeRejected``).

A cluster that does not let us list Deployments (an API emulator, RBAC without ``apps``), or a
serving resource that owns no Deployment at all (a controller that serves some other way), is read
from the status alone, as before. The real operators create a resource's Deployments before they
report it ready and keep the old ones until the new ones serve, so a stale status always has a
Deployment beside it to be checked against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelhaul.serving import targets
from modelhaul.serving.platform import DIGEST_KEY

# waiting reasons of a container that will not start by itself
STUCK = {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError",
         "CreateContainerError", "RunContainerError", "ErrImageNeverPull"}
# Warning events on the serving resource that mean it will not become ready
FATAL_EVENTS = {"ServerlessModeRejected"}


@dataclass
class Rollout:
    """What the operator's Deployments say: ``ready``, else ``failure`` (give up) or ``waiting``."""

    ready: bool
    failure: str | None = None
    waiting: str = ""


def _short(digest: str | None) -> str:
    return (digest or "").split(":", 1)[-1][:12]


def rolled_out(dep: dict[str, Any]) -> str | None:
    """None when the Deployment is rolled out, else what it still waits for."""
    spec, st = dep.get("spec") or {}, dep.get("status") or {}
    want = int(spec.get("replicas", 1) or 0)
    gen, seen = (dep.get("metadata") or {}).get("generation"), st.get("observedGeneration")
    updated, total, available = (int(st.get(k) or 0) for k in ("updatedReplicas", "replicas", "availableReplicas"))
    if gen is not None and (seen is None or int(seen) < int(gen)):
        return "its controller has not seen the latest spec"
    if updated < want:
        return f"{updated} of {want} replicas updated"
    if total > updated:
        return f"{total - updated} old replica(s) still running"
    if available < updated:
        return f"{available} of {updated} updated replicas available"
    return None


def deployment_failure(dep: dict[str, Any]) -> str | None:
    """A Deployment condition that will not clear by waiting (the API refused its pods, deadline)."""
    for c in (dep.get("status") or {}).get("conditions") or []:
        if c.get("type") == "ReplicaFailure" and str(c.get("status")) == "True":
            return f"{c.get('reason')}: {c.get('message')}"
        if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
            return f"ProgressDeadlineExceeded: {c.get('message')}"
    return None


def pod_failure(pod: dict[str, Any]) -> str | None:
    """One line naming the pod, container, reason and last message, when the pod cannot start."""
    name = (pod.get("metadata") or {}).get("name")
    st = pod.get("status") or {}
    for c in st.get("conditions") or []:
        if c.get("type") == "PodScheduled" and str(c.get("status")) == "False" and c.get("reason") == "Unschedulable":
            return f"pod {name} cannot be scheduled (Unschedulable): {c.get('message') or 'no reason given'}"
    for init, key in ((True, "initContainerStatuses"), (False, "containerStatuses")):
        for cs in st.get(key) or []:
            state, last = cs.get("state") or {}, (cs.get("lastState") or {}).get("terminated") or {}
            waiting, term = state.get("waiting") or {}, state.get("terminated") or {}
            what = f"pod {name}, {'init container' if init else 'container'} {cs.get('name')}"
            if waiting.get("reason") in STUCK:
                said = last.get("message") or waiting.get("message") or ""
                code = f" (last exit code {last['exitCode']})" if last.get("exitCode") not in (None, 0) else ""
                return f"{what}: {waiting['reason']}{code}: {_line(said) or 'no message'}"
            if init and term and term.get("exitCode") not in (None, 0):
                said = _line(term.get("message")) or "no message"
                return f"{what}: exited {term['exitCode']} ({term.get('reason')}): {said}"
    return None


def _line(text: Any) -> str:
    lines = [s.strip() for s in str(text or "").splitlines() if s.strip()]
    return lines[-1] if lines else ""


def inspect(api: Any, obj: dict[str, Any], request: Any) -> Rollout:
    """How far the operator's Deployments for ``obj``'s current spec are; ``request`` is kube's."""
    from kubernetes.client.rest import ApiException

    row, meta = targets.of_kind(obj.get("kind")), obj.get("metadata") or {}
    ns, name, uid = meta.get("namespace"), meta.get("name"), meta.get("uid")
    if row is None or not ns:
        return Rollout(ready=True)
    try:
        fatal = _fatal_event(request, api, ns, uid)
        if fatal:
            return Rollout(ready=False, failure=fatal)
        if row.by_revisions(obj):
            return _by_revisions(api, request, obj, row)
        deps = request(api, "GET", f"/apis/apps/v1/namespaces/{ns}/deployments",
                       query=[("labelSelector", f"{row.owner_label}={name}")], retries=1).get("items") or []
    except ApiException as exc:
        if exc.status in (401, 403, 404):  # cannot see Deployments here: the status alone decides
            return Rollout(ready=True)
        raise
    owned = [d for d in deps
             if any(o.get("uid") == uid for o in (d.get("metadata") or {}).get("ownerReferences") or [])]
    if not owned:  # a controller that serves without Deployments of its own: the status alone decides
        return Rollout(ready=True)
    waiting = []
    for what, digest in row.expected(obj):
        mine = [d for d in owned if row.serves(d, what) and (digest is None
                or (((d.get("spec") or {}).get("template") or {}).get("metadata") or {}).get(
                    "annotations", {}).get(DIGEST_KEY) == digest)]
        if not mine:
            waiting.append(f"{what}: no Deployment for digest {_short(digest)} yet")
            continue
        for d in mine:
            dname = d["metadata"]["name"]
            bad = deployment_failure(d)
            if bad:
                return Rollout(ready=False, failure=f"Deployment {dname} ({what}): {bad}")
            pending = rolled_out(d)
            if pending and "not seen" in pending:  # Seldon keeps re-updating its Deployments
                pending = _replicasets_rolled_out(api, request, ns, d)
            if pending:
                failure = _pods_failure(api, request, ns, d, digest)
                if failure:
                    return Rollout(ready=False, failure=f"{what}: {failure}")
                waiting.append(f"Deployment {dname} ({what}): {pending}")
    return Rollout(ready=not waiting, waiting="; ".join(waiting))


def revision_waiting(obj: dict[str, Any]) -> str:
    """What a Serverless predictor still waits for: its latest created revision to be the ready one."""
    comp = ((obj.get("status") or {}).get("components") or {}).get("predictor") or {}
    created, ready = comp.get("latestCreatedRevision"), comp.get("latestReadyRevision")
    if not created:
        return "predictor: no revision created yet"
    return "" if created == ready else f"predictor: revision {created} not ready yet (ready: {ready or 'none'})"


def _by_revisions(api: Any, request: Any, obj: dict[str, Any], row: Any) -> Rollout:
    """A predictor served by Knative revisions: ready when its latest revision is; a pod of it that
    cannot start fails."""
    meta = obj["metadata"]
    waiting = revision_waiting(obj)
    if waiting:
        digest = row.expected(obj)[0][1]
        pods = request(api, "GET", f"/api/v1/namespaces/{meta['namespace']}/pods",
                       query=[("labelSelector", f"{row.owner_label}={meta['name']}")],
                       retries=1).get("items") or []
        for pod in pods:
            if ((pod.get("metadata") or {}).get("annotations") or {}).get(DIGEST_KEY) in (None, digest):
                failure = pod_failure(pod)
                if failure:
                    return Rollout(ready=False, failure=f"predictor: {failure}")
    return Rollout(ready=not waiting, waiting=waiting)


def _replicasets_rolled_out(api: Any, request: Any, ns: str, dep: dict[str, Any]) -> str | None:
    """Rolled out by its ReplicaSets, when the Deployment's own status lags its spec: the ReplicaSet
    of exactly the current pod template has every replica available and no other has any.

    Seldon Core v1 re-updates a Deployment it changed over and over (upstream behaviour: only its
    ``seldon.io/last-applied`` annotation differs), so ``observedGeneration`` may never catch up
    while nothing rolls."""
    labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    uid, want = dep["metadata"].get("uid"), int((dep.get("spec") or {}).get("replicas", 1) or 0)
    sets = [r for r in request(api, "GET", f"/apis/apps/v1/namespaces/{ns}/replicasets",
                               query=[("labelSelector", selector)], retries=1).get("items") or []
            if any(o.get("uid") == uid for o in (r.get("metadata") or {}).get("ownerReferences") or [])]
    template = (dep.get("spec") or {}).get("template") or {}
    current = [r for r in sets if _without_hash((r.get("spec") or {}).get("template") or {}) == template]
    if not current:
        return "no ReplicaSet for its current pod template yet"
    available = int((current[0].get("status") or {}).get("availableReplicas") or 0)
    old = sum(int((r.get("status") or {}).get("replicas") or 0) for r in sets if r is not current[0])
    if available < want:
        return f"{available} of {want} replicas of the current pod template available"
    return f"{old} old replica(s) still running" if old else None


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    import copy

    t = copy.deepcopy(template)
    ((t.get("metadata") or {}).get("labels") or {}).pop("pod-template-hash", None)
    return t


def _pods_failure(api: Any, request: Any, ns: str, dep: dict[str, Any], digest: str | None) -> str | None:
    labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not labels:
        return None
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    pods = request(api, "GET", f"/api/v1/namespaces/{ns}/pods", query=[("labelSelector", selector)],
                   retries=1).get("items") or []
    for pod in pods:
        if digest and ((pod.get("metadata") or {}).get("annotations") or {}).get(DIGEST_KEY) not in (None, digest):
            continue  # a pod of the model being replaced
        failure = pod_failure(pod)
        if failure:
            return failure
    return None


def _fatal_event(request: Any, api: Any, ns: str, uid: str | None) -> str | None:
    if not uid:
        return None
    items = request(api, "GET", f"/api/v1/namespaces/{ns}/events",
                    query=[("fieldSelector", f"involvedObject.uid={uid},type=Warning")], retries=1).get("items") or []
    for e in items:
        if e.get("reason") in FATAL_EVENTS:
            return f"{e.get('reason')}: {e.get('message')}"
    return None


def serving_status(api: Any, obj: dict[str, Any], request: Any) -> dict[str, Any]:
    """:func:`read_status`, then what the operator's Deployments and pods for this spec say
    (:func:`inspect`): a status older than the spec is not ready, a pod that
    cannot start fails."""
    from modelhaul.serving.status import read_status

    st = read_status(obj)
    if st["failed"] or st["state"] in ("Stale", "Pending") or targets.of_kind(obj.get("kind")) is None:
        return st
    roll = inspect(api, obj, request)
    if roll.failure:
        return {**st, "state": "Failed", "ready": False, "failed": True, "message": roll.failure}
    if not roll.ready:
        said = "; ".join(m for m in (st["message"], roll.waiting) if m)
        return {**st, "state": "RollingOut" if st["ready"] else st["state"], "ready": False, "message": said}
    return st
