"""What a serving resource's status says: state, readiness against the current spec, the message to show."""

from __future__ import annotations

from typing import Any

from modelhaul.serving import targets

#: ``{kind: apiVersion}`` of the serving objects, from the targets table.
SERVING_KINDS = targets.serving_kinds()


def read_status(obj: dict[str, Any]) -> dict[str, Any]:
    """What the status of a serving resource says: ``{state, ready, failed, message, url, ...}``.

    ``state`` is what the target's status reader says (Seldon's ``status.state``
    ``Creating``/``Available``/``Failed``; KServe's ``Ready``/``NotReady``/``Failed``), ``Applied``
    for an object that is not a serving one; ``Stale`` while the controller has not yet seen the spec.
    """
    kind = obj.get("kind", "")
    status = obj.get("status") or {}
    generation = (obj.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    current = observed is None or generation is None or int(observed) >= int(generation)
    row = targets.of_kind(kind)
    if row is not None:
        state, message, url = row.read_state(status)
    else:  # plain objects are ready once stored
        state, message, url = "Applied", "", None
    if not status and row is not None:
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


def outcome(status: dict[str, Any]) -> str:
    """``ready`` (serving, and the controller has seen the latest spec: a stale Available does not
    count), ``failed`` or ``waiting``, from a :func:`get_status` result."""
    if status.get("failed") or str(status.get("state") or "").lower() == "failed":
        return "failed"
    if not status.get("ready"):
        return "waiting"
    observed, generation = status.get("observed_generation"), status.get("generation")
    return "ready" if observed is None or generation is None or int(observed) >= int(generation) else "waiting"
