"""Promotion and rollback: move a stage tag (``production``) between artifacts of one repository.

A stage is a tag, so what is in production is visible in the registry and pullable by name, and
promotion moves no bytes. Three tags take part, all in the candidate's repository:

* ``<stage>``             the model at the stage;
* ``<stage>-previous``    the model that was at the stage before the last promotion (rollback target);
* ``<stage>-rolledback``  the model that the last rollback took off the stage (for inspection).

Beside the tags, promotion sets the MLflow registered-model alias named ``<stage>`` when the
candidate's provenance names a registered model and version, and records the version the alias
pointed at before as the model-version tag ``modelhaul.<stage>.previous_version`` on the candidate's
version, so rollback can restore the alias even when the previous artifact never came from the
model registry. With a ``deployment`` (the result of the deploy step), traffic moves too: to 100%
on a running canary first, then to a single predictor serving the candidate.

Before a tag moves, the deployment's cluster is asked whether this identity may read and patch the
deployment (``SelfSubjectAccessReview``, :mod:`modelhaul.serving.access`): a refusal that could be
seen in advance changes nothing. A rollout that fails after the tags moved puts them back (and
serves the model that was at the stage again), so the registry and the cluster agree.

Both operations are safe to re-run: a repeated promotion of the model already at the stage (or a
repeated rollback) leaves the tags alone and re-asserts alias and deployment, which finishes a run
that failed half-way.
"""

from __future__ import annotations

from typing import Any

from modelhaul import artifacts, stagelock
from modelhaul import promotion_gate as gates
from modelhaul.errors import ConfigError, DeployError, ModelhaulError
from modelhaul.formats.pickle_safety import refuse_unsafe
from modelhaul.reference import TAG_RE, Reference, parse
from modelhaul.registry_options import RegistryOptions
from modelhaul.serving.redeploy import preflight, redeploy, settings_of, shift_traffic
from modelhaul.tracking.aliases import promote_alias, rollback_alias

PREVIOUS_SUFFIX = "-previous"
ROLLEDBACK_SUFFIX = "-rolledback"


def stage_tags(stage: str) -> tuple[str, str, str]:
    """``(stage, stage-previous, stage-rolledback)``, checked to be valid tag names."""
    tags = (stage, stage + PREVIOUS_SUFFIX, stage + ROLLEDBACK_SUFFIX)
    if not stage or any(not TAG_RE.match(t) for t in tags):
        raise ConfigError(f"stage {stage!r} is not usable as a tag name (letters, digits, '_', '.', '-')")
    return tags


def _at(repo: Reference, tag: str, options: RegistryOptions | None) -> str | None:
    """The digest-pinned ``repo:tag``, or None when the tag does not exist."""
    return artifacts.try_resolve(str(repo.with_tag(tag).unpinned()), options)


def _digest(pinned: str | None) -> str | None:
    return parse(pinned).digest if pinned else None


def with_cluster(deployment: dict[str, Any] | None, kubeconfig: str | None, context: str | None
                 ) -> dict[str, Any] | None:
    """The deployment reached through ``kubeconfig``/``context`` (found as kubectl finds them) instead of
    what the deploy result recorded; either one replaces both recorded values."""
    if not deployment or not (kubeconfig or context):
        return deployment
    return {**deployment, "kubeconfig": kubeconfig, "context": context, "in_cluster": False}


def _check_deployment(deployment: dict[str, Any] | None, doing: str) -> dict[str, Any] | None:
    """An unusable deployment dict, or a cluster that would refuse us, fails before anything moves."""
    if deployment:
        settings_of(deployment)
        preflight(deployment, doing)
    return deployment


def _put_back(tags: tuple[str, str], was: tuple[str, str | None], options: RegistryOptions | None) -> str:
    """Return ``(stage, stage-previous)`` to the digests they held. A tag that did not exist stays
    where it is: a registry deletes a manifest, not a tag, so deleting it would delete a model."""
    for tag, pinned in zip(tags, was, strict=True):
        if pinned:
            artifacts.retag(pinned, tag, options)
    return f"{tags[0]} put back on {_digest(was[0])}"


# -- promote -------------------------------------------------------------------------------------


def _retire_canary(record: dict[str, Any], deployment: dict[str, Any] | None,
                   options: RegistryOptions | None) -> None:
    """A rejected candidate must not keep its share of traffic: the stable model serves alone."""
    stable = (deployment or {}).get("stable_ref")
    if stable and (deployment or {}).get("canary_percent") and deployment.get("state") != "Skipped":
        record["deployment"] = redeploy(deployment, stable, options)
        record["reason"] += "; canary retired, the stable model serves alone"


def _arguments(*, stage: str = "production", gate: list[str] | str | None = None, beats: str | None = None,
               min_delta: float = 0.0, deployment: dict[str, Any] | None = None, **_: Any) -> None:
    """What a move refuses before it reads anything (so before it claims the stage, too)."""
    stage_tags(stage)
    gates.parse(gate)
    if beats:
        gates.parse_beats(beats, min_delta)
    if deployment:
        settings_of(deployment)


@stagelock.serialised(_arguments)  # two promotions at once must not mix their tags
def promote_model(*, ref: str, stage: str = "production", gate: list[str] | str | None = None,
                  beats: str | None = None, min_delta: float = 0.0, tracking_uri: str | None = None,
                  deployment: dict[str, Any] | None = None, options: RegistryOptions | None = None,
                  require_signature: str | None = None, kubeconfig: str | None = None,
                  context: str | None = None, trust: bool = False) -> dict[str, Any]:
    """Move ``<stage>`` to ``ref`` when the gate passes; see the module docstring for what moves.

    Returns ``{promoted, reason, candidate, previous, stage, ref, digest, checks, alias,
    deployment}``. A gate that is not met changes nothing and returns ``promoted: False``; a
    malformed gate raises GateError before anything is read. A failed rollout raises DeployError
    after putting the tags back (the alias only moves once the rollout succeeded).
    """
    stage_tag, previous_tag, _ = stage_tags(stage)
    gates.parse(gate)  # a typo in the gate is the pipeline's fault: fail before touching anything
    if beats:
        gates.parse_beats(beats, min_delta)
    deployment = with_cluster(deployment, kubeconfig, context)
    _check_deployment(deployment, f"promote of {ref} to {stage}")
    cfg, candidate = artifacts.load_config(ref, options)
    refuse_unsafe(cfg, candidate, "promote", trust=trust)  # before any tag, alias or traffic moves
    cand = parse(candidate)
    current = _at(cand, stage_tag, options)
    record: dict[str, Any] = {
        "promoted": False, "reason": "", "candidate": candidate, "previous": current, "stage": stage,
        "ref": candidate, "digest": cand.digest, "checks": [], "alias": None, "deployment": None,
    }
    moved_from: tuple[str | None, str | None] | None = None  # (stage, stage-previous) before they moved

    if require_signature:  # an unsigned or tampered candidate is rejected like a failed gate
        from modelhaul.errors import SignatureError
        from modelhaul.signing import verify_model

        try:
            record["signature"] = verify_model(candidate, require_signature, options=options).to_dict()
        except SignatureError as exc:
            record["reason"] = f"signature check failed: {exc}"
            _retire_canary(record, deployment, options)
            return record

    if current and _digest(current) == cand.digest:
        record["previous"] = _previous_of(cand, previous_tag, cand.digest, options)
        record.update(promoted=True, ref=current,
                      reason=f"already at {stage}; tags unchanged, alias and deployment re-asserted")
    else:
        result = gates.evaluate(gate, cfg)
        checks = list(result.reasons)
        passed = result.passed
        if beats:
            incumbent = artifacts.load_config(current, options)[0] if current else None
            ok, why = gates.beats(beats, cfg, incumbent, min_delta)
            passed, checks = passed and ok, [*checks, why]
        record["checks"] = checks
        if not passed:
            failed = [c for c in checks if c.endswith("not met") or "no metric" in c or "no numeric" in c]
            record["reason"] = "gate not met: " + "; ".join(failed or checks)
            _retire_canary(record, deployment, options)
            return record
        moved_from = (current, _at(cand, previous_tag, options))
        if current:
            artifacts.retag(current, previous_tag, options)
            record["previous"] = str(cand.with_tag(previous_tag).unpinned().with_digest(_digest(current)))
        moved = artifacts.retag(candidate, stage_tag, options)
        stagelock.check_moved(cand, stage_tag, cand.digest, previous_tag, _digest(current), options)
        record["ref"] = moved["ref"]
        record["promoted"] = True
        record["reason"] = ("gate passed: " + "; ".join(checks)) if checks else "promoted without a gate"

    if deployment:
        try:  # the candidate as given: the reference its canary was deployed with, so nothing restarts
            record["deployment"] = shift_traffic(deployment, candidate, options)
        except ModelhaulError as exc:
            raise DeployError(_rollout_failed(candidate, stage, exc, cand, moved_from, deployment, options)) from exc
    record["alias"] = promote_alias(cfg, stage, tracking_uri)
    return record


def _rollout_failed(candidate: str, stage: str, exc: Exception, cand: Reference,
                    moved_from: tuple[str | None, str | None] | None, deployment: dict[str, Any],
                    options: RegistryOptions | None) -> str:
    """Put the tags back after a failed rollout and serve the model they point at; say what happened."""
    head = f"the rollout of {candidate} to {stage} failed: {exc}"
    if moved_from is None:
        return f"{head} — the tags had not moved (it was already at {stage})"
    if not moved_from[0]:
        return f"{head} — it stays at {stage}: a first promotion has no model to put back"
    return _restore(head, stage_tags(stage)[:2], (moved_from[0], moved_from[1]), deployment, options,
                    if_stuck=f": run rollback for stage {stage}")


def _restore(head: str, tags: tuple[str, str], was: tuple[str, str | None], deployment: dict[str, Any],
             options: RegistryOptions | None, if_stuck: str = "") -> str:
    """Put ``tags`` back on ``was`` and serve ``was[0]`` again; the message says how far that got."""
    try:
        undone = _put_back(tags, was, options)
    except ModelhaulError as undo_exc:
        return f"{head} — putting the {tags[0]} tag back failed too ({undo_exc}){if_stuck}"
    try:
        redeploy(deployment, was[0], options)
    except ModelhaulError as again:
        return f"{head} — {undone}, but serving it again failed: {again}; deploy {was[0]} again"
    return f"{head} — {undone} and serving it again"


def _previous_of(cand: Reference, previous_tag: str, not_digest: str | None,
                 options: RegistryOptions | None) -> str | None:
    prev = _at(cand, previous_tag, options)
    return prev if prev and _digest(prev) != not_digest else None


# -- rollback ------------------------------------------------------------------------------------


@stagelock.serialised(_arguments)
def rollback_model(*, ref: str, stage: str = "production", tracking_uri: str | None = None,
                   deployment: dict[str, Any] | None = None, options: RegistryOptions | None = None,
                   only_if_digest: str | None = None, kubeconfig: str | None = None,
                   context: str | None = None) -> dict[str, Any]:
    """Put the model at ``<stage>-previous`` back at ``<stage>`` (tag, alias, deployment).

    The model taken off the stage is kept at ``<stage>-rolledback``. Only one step back: a second
    rollback finds the stage already restored and only re-asserts alias and deployment. With
    ``only_if_digest`` (this run's candidate) nothing happens unless ``stage`` points at it: a run
    whose candidate was never promoted must not undo an earlier, good promotion (``skipped`` is
    then True). Returns ``{rolled_back, reason, stage, restored, replaced, ref, digest,
    alias, deployment}``.
    """
    stage_tag, previous_tag, rolledback_tag = stage_tags(stage)
    deployment = with_cluster(deployment, kubeconfig, context)
    repo = parse(ref).unpinned()
    current = _at(repo, stage_tag, options)
    if only_if_digest is not None and (not only_if_digest or _digest(current) != only_if_digest):
        return {"rolled_back": False, "skipped": True, "stage": stage, "restored": None, "replaced": None,
                "ref": current, "digest": _digest(current), "alias": None, "deployment": None,
                "reason": f"{stage} points at {_digest(current) or 'nothing'}, not at this run's candidate "
                          f"{only_if_digest or '(none)'}: nothing of this run to roll back"}
    _check_deployment(deployment, f"rollback of stage {stage}")  # after the skip: nothing to ask then
    previous = _at(repo, previous_tag, options)
    record: dict[str, Any] = {
        "rolled_back": False, "reason": "", "stage": stage, "restored": previous, "replaced": current,
        "ref": current, "digest": _digest(current), "alias": None, "deployment": None,
    }
    if previous is None:
        record["reason"] = (f"nothing to roll back to: {repo.with_tag(previous_tag)} does not exist "
                            f"(no promotion has replaced a model at {stage} yet)")
        return record
    moved_from: tuple[str | None, str | None] | None = None  # (stage, stage-rolledback) before they moved
    if current and _digest(current) == _digest(previous):
        replaced = _at(repo, rolledback_tag, options)
        record.update(rolled_back=True, replaced=replaced, ref=current, digest=_digest(current),
                      reason=f"{stage} already holds {_digest(previous)}; alias and deployment re-asserted")
    else:
        moved_from = (current, _at(repo, rolledback_tag, options))
        if current:
            artifacts.retag(current, rolledback_tag, options)
            replaced = str(repo.with_tag(rolledback_tag).with_digest(_digest(current)))
        else:
            replaced = None
        moved = artifacts.retag(previous, stage_tag, options)
        record.update(rolled_back=True, replaced=replaced, ref=moved["ref"], digest=moved["digest"],
                      reason=f"{stage} restored to {_digest(previous)}"
                             + (f"; {_digest(current)} kept at {rolledback_tag}" if current else ""))

    prev_cfg = artifacts.load_config(previous, options)[0]
    replaced_cfg = artifacts.load_config(record["replaced"], options)[0] if record["replaced"] else None
    record["alias"] = rollback_alias(replaced_cfg, prev_cfg, stage, tracking_uri)
    if deployment:
        try:
            record["deployment"] = redeploy(deployment, record["ref"], options)
        except ModelhaulError as exc:
            raise DeployError(_rollback_failed(stage, exc, moved_from, deployment, options)) from exc
    return record


def _rollback_failed(stage: str, exc: Exception, moved_from: tuple[str | None, str | None] | None,
                     deployment: dict[str, Any], options: RegistryOptions | None) -> str:
    """A rollback whose redeploy failed puts ``<stage>`` back where it was, so registry and cluster agree."""
    head = f"the rollback of {stage} failed to deploy: {exc}"
    if moved_from is None or not moved_from[0]:
        return f"{head} — the tags had not moved"
    return _restore(head, (stage, stage + ROLLEDBACK_SUFFIX), (moved_from[0], moved_from[1]), deployment, options)
