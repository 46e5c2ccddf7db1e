"""What a serving resource's status says: state, readiness against the current spec, the message to show."""

from __future__ import annotations

from typing import Any

SERVING_KINDS = {
    "SeldonDeployment": "machinelearning.seldon.io/v1",
    "InferenceService": "serving.kserve.io/v1beta1",
}


def read_status(obj: dict[str, Any]) -> dict[str, Any]:
    """What the status of a serving resource says: ``{state, ready, failed, message, url, ...}``.

    ``state`` is Seldon's ``status.state`` (``Creating``/``Available``/``Failed``) or, for KServe,
    ``Ready``/``NotReady``/``Failed``; ``Stale`` while the controller has not yet seen the spec.
    """
    kind = obj.get("kind", "")
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    current = observed is None or generation is None or int(observed) >= int(generation)
    if kind == "InferenceService":
        state, message, url = _kserve_state(status)
    elif kind == "SeldonDeployment":
        state = status.get("state") or "Unknown"
        message = status.get("description") or _condition_message(status.get("conditions") or [])
        url = (status.get("address") or {}).get("url")
    else:  # plain objects are ready once stored
        state, message, url = "Applied", "", None
    if not status and kind in SERVING_KINDS:
        state = "Pending"
    if not current:
        state = "Stale"
    ready = current and state in ("Available", "Ready", "Applied")
    return {
        "kind": kind,
        "name": (obj.get("metadata") or {}).get("name"),
        "state": state,
        "ready": ready,
        "failed": current and state == "Failed",
        "message": message or "",
        "url": url,
        "observed_generation": observed,
        "generation": generation,
    }


def _kserve_state(status: dict[str, Any]) -> tuple[str, str, str | None]:
    conds = {c.get("type"): c for c in status.get("conditions") or []}
    model = status.get("modelStatus") or {}
    states = model.get("states") or {}
    failure = model.get("lastFailureInfo") or {}
    url = status.get("url") or (status.get("address") or {}).get("url")
    if (model.get("transitionStatus") in ("BlockedByFailedLoad", "InvalidSpec")
            or "FailedToLoad" in (states.get("activeModelState"), states.get("targetModelState"))):
        msg = failure.get("message") or failure.get("reason") or _condition_message(list(conds.values()))
        return "Failed", msg or model.get("transitionStatus", ""), url
    needed = [t for t in ("Ready", "PredictorReady", "IngressReady") if t == "Ready" or t in conds]
    if "Ready" in conds and all(str(conds[t].get("status")) == "True" for t in needed):
        return "Ready", "", url
    return "NotReady", _condition_message(list(conds.values())), url


def _condition_message(conds: list[dict[str, Any]]) -> str:
    bad = [c for c in conds if str(c.get("status")) != "True" and (c.get("message") or c.get("reason"))]
    return "; ".join(f"{c.get('type')}: {c.get('message') or c.get('reason')}" for c in bad)


def outcome(status: dict[str, Any]) -> str:
    """``ready`` (serving, and the controller has seen the latest spec: a stale Available does not
    count), ``failed`` or ``waiting``, from a :func:`get_status` result."""
    if status.get("failed") or str(status.get("state") or "").lower() == "failed":
        return "failed"
    if not status.get("ready"):
        return "waiting"
    observed, generation = status.get("observed_generation"), status.get("generation")
    return "ready" if observed is None or generation is None or int(observed) >= int(generation) else "waiting"
