"""The bodies of the KFP components that run after promote: a smoke check, and the rollbacks.

The same rules as :mod:`modelhaul.components.step_bodies` (self-contained bodies, no ``from
__future__ import annotations``, ``Args:``/``Returns:`` for the compiled YAML's descriptions).
"""

from typing import NamedTuple

from kfp.dsl import Artifact, Input, Output, PipelineTaskFinalStatus


def smoke_check(
    promotion: Input[Artifact],
    entry_point: str = "",
    params: dict = {},  # noqa: B006 - KFP needs a literal default; the body never mutates it
) -> str:
    """After a promotion, run the team's check on the model now at the stage; failing it fails the run.

    The run's exit handler then rolls the stage back to the model it replaced. Nothing runs when
    the candidate was not promoted or no check is configured.

    Args:
        promotion: promote's ``promotion``.
        entry_point: The check, ``package.module:function`` in the image, called with ``ref=`` (the
            promoted model) and ``params``; raising or returning a false value fails it. Empty: no check.
        params: Keyword arguments for the check.

    Returns:
        Output: What was checked, one line.
    """
    from modelhaul import steps

    meta = dict(promotion.metadata)
    if not entry_point or not meta.get("promoted"):
        return "no smoke check: " + ("none configured" if not entry_point else "nothing was promoted")
    res = steps.smoke_check(entry_point=entry_point, ref=str(meta["ref"]), params=dict(params or {}))
    return f"smoke check {res['check']} passed on {res['ref']}"


def rollback(
    result: Output[Artifact],
    ref: str,
    stage: str = "production",
    tracking_uri: str = "",
    deployment: dict = {},  # noqa: B006 - KFP needs a literal default; the body never mutates it
    plain_http: bool = False,
    insecure: bool = False,
) -> NamedTuple("RollbackOutputs", [("rolled_back", bool), ("reason", str), ("ref", str)]):  # noqa: UP014
    """Put back the digest that held ``stage`` before the last promotion (tag, alias, traffic).

    Args:
        ref: The repository to roll back (``host/path``, any tag).
        stage: The stage tag to restore.
        tracking_uri: The MLflow tracking server whose alias follows (empty:
            ``MLFLOW_TRACKING_URI`` from the MLflow Secret).
        deployment: Where to serve the restored model: deploy settings (``target``, ``name``,
            ``namespace``, ``in_cluster`` or ``render_dir``); empty: no traffic moves.
        plain_http: Talk HTTP, not HTTPS, to the registry.
        insecure: Accept the registry's TLS certificate without verifying it.

    Returns:
        result: What was restored: metadata ``rolled_back``, ``reason``, ``restored``,
            ``replaced``, ``ref`` and ``digest`` (now at the stage).
        rolled_back: Whether the stage holds the previous model now.
        reason: Why, one line.
        ref: The digest-pinned reference now at the stage.
    """
    given = dict(locals())  # the arguments KFP passed, before anything else is bound here
    from modelhaul import steps
    from modelhaul.components.inputs import arguments
    from modelhaul.components.outputs import record

    res = steps.rollback(**arguments("rollback", given))
    record(result, res)
    return (bool(res.get("rolled_back")), str(res.get("reason") or ""), str(res.get("ref") or ""))


def rollback_on_failure(
    status: PipelineTaskFinalStatus,
    repository: str,
    tag: str,
    to: str = "onnx",
    stage: str = "production",
    tracking_uri: str = "",
    target: str = "seldon",
    name: str = "",
    namespace: str = "default",
    render_dir: str = "",
    in_cluster: bool = True,
    initializer_image: str = "",
    registry_secret: str = "",
    plain_http: bool = False,
    insecure: bool = False,
) -> str:
    """Exit handler: when the run failed after it moved ``stage`` to its candidate, roll back.

    A run that failed before promoting left ``stage`` alone, and rolling back then would undo an
    earlier, good promotion; so this acts only when ``stage`` points at this run's candidate
    (``repository:tag-to``, what convert pushed). The rollback restores tag, alias and the
    deployment (the previous model alone).

    Args:
        status: The run's final status (set by KFP).
        repository: Registry repository of the run, ``host/path``.
        tag: The run's tag (its candidate is ``<tag>-<to>``).
        to: The conversion target of the run.
        stage: The stage tag to restore.
        tracking_uri: The MLflow tracking server (empty: ``MLFLOW_TRACKING_URI`` from the MLflow Secret).
        target: ``seldon`` or ``kserve``, as deployed by the run.
        name: The deployment's name (empty: derived from the repository).
        namespace: The deployment's namespace.
        render_dir: The directory the run rendered manifests into (empty: the cluster).
        in_cluster: Apply with the pod's service account to the cluster the pipeline runs on.
        initializer_image: The modelhaul storage initializer image (empty: the default).
        registry_secret: Name of the Secret with the registry credentials the serving pods use.
        plain_http: Talk HTTP, not HTTPS, to the registry.
        insecure: Accept the registry's TLS certificate without verifying it.

    Returns:
        Output: What happened, one line.
    """
    given = dict(locals())  # the arguments KFP passed, before anything else is bound here
    from modelhaul import steps
    from modelhaul.components.inputs import DEPLOYMENT_PARAMS, arguments

    if status.state == "SUCCEEDED":
        return "run succeeded: nothing to roll back"
    # the deployment as the run's deploy made it, and the rollback's own arguments, as declared
    deployment = arguments(DEPLOYMENT_PARAMS, given, in_cluster=in_cluster and not render_dir)
    res = steps.rollback_if_promoted(repository=repository, candidate=steps.candidate_ref(repository=repository,
                                                                                          tag=tag, to=to),
                                     **arguments("rollback", given, deployment=deployment))
    if not res.get("rolled_back"):
        return f"run {status.state.lower()} before promoting: {stage} untouched"
    return f"run {status.state.lower()} after promoting: {res.get('reason')}"
