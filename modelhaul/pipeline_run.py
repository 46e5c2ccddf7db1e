"""What a pipeline run does around its steps, for both orchestrators: before, insist on a tracking
URI that outlives the pod; after the deploy, smoke-test the served model with the user's own check;
on failure, roll back only what this run itself promoted.

Reached through :mod:`modelhaul.steps` (``steps.smoke_check(...)`` etc.), like every step.
"""

from __future__ import annotations

import os
from typing import Any

from modelhaul.declarations import registry_options
from modelhaul.errors import ConfigError, GateError


def require_tracking_uri(tracking_uri: str | None = None) -> str:
    """``tracking_uri``, else ``MLFLOW_TRACKING_URI``; neither is an error.

    MLflow's own default (``./mlruns``, or a SQLite file) lives inside the pod and vanishes with
    it, so a run that reaches MLflow with neither set fails here, before any work is done.
    """
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        raise ConfigError("tracking_uri: not set and MLFLOW_TRACKING_URI is not in the environment; pass the "
                          "MLflow server's URI, or put MLFLOW_TRACKING_URI in the MLflow Secret")
    return uri


def rollback_if_promoted(*, repository: str, candidate: str, stage: str = "production",
                         tracking_uri: str | None = None, deployment: dict[str, Any] | None = None,
                         **registry: Any) -> dict[str, Any]:
    """Roll ``repository:stage`` back only when it holds ``candidate`` (what a failed run promoted).

    A run that failed before promoting left ``stage`` alone, and rolling back then would undo an
    earlier, good promotion (the rule itself is :func:`modelhaul.promote.rollback_model`'s
    ``only_if_digest``). ``deployment``'s ``name`` defaults to the candidate's.
    """
    from modelhaul import artifacts
    from modelhaul.promote import rollback_model
    from modelhaul.serving.deploy import default_name

    opts = registry_options(registry, "rollback_if_promoted")
    pinned = artifacts.try_resolve(candidate, opts)
    if deployment is not None and pinned and not deployment.get("name"):
        deployment = {**deployment, "name": default_name(pinned)}
    return rollback_model(ref=f"{repository}:{stage}", stage=stage, tracking_uri=tracking_uri,
                          deployment=deployment, options=opts,
                          only_if_digest=pinned.rsplit("@", 1)[1] if pinned else "")


def smoke_check(*, entry_point: str, ref: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call the user's check ``"package.module:function"`` with ``ref=`` the served model and ``**params``.

    A check that raises, or returns a false value, fails the step (a GateError naming the check),
    so an orchestrator's failure handling (KFP's exit handler, an Airflow ``on_failure`` rollback)
    takes over. Returns ``{ref, check, passed}``.
    """
    from modelhaul.train import load_entry_point

    check = load_entry_point(entry_point)
    try:
        outcome = check(ref=ref, **(params or {}))
    except Exception as exc:  # noqa: BLE001 - any failure of the user's check is the check failing
        raise GateError(f"smoke check {entry_point} failed on {ref}: {type(exc).__name__}: {exc}") from None
    if outcome is not None and not outcome:  # None: a check that only raises on failure
        raise GateError(f"smoke check {entry_point} returned {outcome!r} for {ref}")
    return {"ref": ref, "check": entry_point, "passed": True}
