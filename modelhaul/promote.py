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

Both operations are safe to re-run: a repeated promotion of the model already at the stage (or a
repeated rollback) leaves the tags alone and re-asserts alias and deployment, which finishes a run
that failed half-way.
"""

from __future__ import annotations

from typing import Any

from modelhaul import artifacts
from modelhaul import gate as gates
from modelhaul.errors import ConfigError, DeployError, ModelhaulError
from modelhaul.formats.pickle_safety import refuse_unsafe
from modelhaul.reference import TAG_RE, Reference, parse
from modelhaul.registry_options import RegistryOptions
from modelhaul.serving.redeploy import redeploy, settings_of, shift_traffic
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


# -- promote -------------------------------------------------------------------------------------


def _retire_canary(record: dict[str, Any], deployment: dict[str, Any] | None,
                   options: RegistryOptions | None) -> None:
    """A rejected candidate must not keep its share of traffic: the stable model serves alone."""
    stable = (deployment or {}).get("stable_ref")
    if stable and (deployment or {}).get("canary_percent") and deployment.get("state") != "Skipped":
        record["deployment"] = redeploy(deployment, stable, options)
        record["reason"] += "; canary retired, the stable model serves alone"


def promote_model(*, ref: str, stage: str = "production", gate: list[str] | str | None = None,
                  beats: str | None = None, min_delta: float = 0.0, tracking_uri: str | None = None,
                  deployment: dict[str, Any] | None = None, options: RegistryOptions | None = None,
                  require_signature: str | None = None, trust: bool = False) -> dict[str, Any]:
    """Move ``<stage>`` to ``ref`` when the gate passes; see the module docstring for what moves.

    Returns ``{promoted, reason, candidate, previous, stage, ref, digest, checks, alias,
    deployment}``. A gate that is not met changes nothing and returns ``promoted: False``; a
    malformed gate raises GateError before anything is read. A failed rollout raises DeployError
    after the tags and alias moved: run rollback to restore the previous model.
    """
    stage_tag, previous_tag, _ = stage_tags(stage)
    gates.parse(gate)  # a typo in the gate is the pipeline's fault: fail before touching anything
    if beats:
        gates.parse_beats(beats, min_delta)
    if deployment:
        settings_of(deployment)  # an unusable deployment dict fails before anything moves
    cfg, candidate = artifacts.load_config(ref, options)
    refuse_unsafe(cfg, candidate, "promote", trust=trust)  # before any tag, alias or traffic moves
    cand = parse(candidate)
    current = _at(cand, stage_tag, options)
    record: dict[str, Any] = {
        "promoted": False, "reason": "", "candidate": candidate, "previous": current, "stage": stage,
        "ref": candidate, "digest": cand.digest, "checks": [], "alias": None, "deployment": None,
    }

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
        if current:
            artifacts.retag(current, previous_tag, options)
            record["previous"] = str(cand.with_tag(previous_tag).unpinned().with_digest(_digest(current)))
        moved = artifacts.retag(candidate, stage_tag, options)
        record["ref"] = moved["ref"]
        record["promoted"] = True
        record["reason"] = ("gate passed: " + "; ".join(checks)) if checks else "promoted without a gate"

    record["alias"] = promote_alias(cfg, stage, tracking_uri)
    if deployment:
        try:  # the candidate as given: the reference its canary was deployed with, so nothing restarts
            record["deployment"] = shift_traffic(deployment, candidate, options)
        except ModelhaulError as exc:
            prev = record["previous"] or "nothing (first promotion)"
            raise DeployError(
                f"{candidate} is now at {stage}, but the rollout failed: {exc} — run rollback for "
                f"stage {stage} to restore {prev}"
            ) from exc
    return record


def _previous_of(cand: Reference, previous_tag: str, not_digest: str | None,
                 options: RegistryOptions | None) -> str | None:
    prev = _at(cand, previous_tag, options)
    return prev if prev and _digest(prev) != not_digest else None


# -- rollback ------------------------------------------------------------------------------------


def rollback_model(*, ref: str, stage: str = "production", tracking_uri: str | None = None,
                   deployment: dict[str, Any] | None = None, options: RegistryOptions | None = None,
                   only_if_digest: str | None = None) -> dict[str, Any]:
    """Put the model at ``<stage>-previous`` back at ``<stage>`` (tag, alias, deployment).

    The model taken off the stage is kept at ``<stage>-rolledback``. Only one step back: a second
    rollback finds the stage already restored and only re-asserts alias and deployment. With
    ``only_if_digest`` (this run's candidate) nothing happens unless ``stage`` points at it: a run
    whose candidate was never promoted must not undo an earlier, good promotion (``skipped`` is
    then True). Returns ``{rolled_back, reason, stage, restored, replaced, ref, digest,
    alias, deployment}``.
    """
    stage_tag, previous_tag, rolledback_tag = stage_tags(stage)
    if deployment:
        settings_of(deployment)
    repo = parse(ref).unpinned()
    current = _at(repo, stage_tag, options)
    if only_if_digest is not None and (not only_if_digest or _digest(current) != only_if_digest):
        return {"rolled_back": False, "skipped": True, "stage": stage, "restored": None, "replaced": None,
                "ref": current, "digest": _digest(current), "alias": None, "deployment": None,
                "reason": f"{stage} points at {_digest(current) or 'nothing'}, not at this run's candidate "
                          f"{only_if_digest or '(none)'}: nothing of this run to roll back"}
    previous = _at(repo, previous_tag, options)
    record: dict[str, Any] = {
        "rolled_back": False, "reason": "", "stage": stage, "restored": previous, "replaced": current,
        "ref": current, "digest": _digest(current), "alias": None, "deployment": None,
    }
    if previous is None:
        record["reason"] = (f"nothing to roll back to: {repo.with_tag(previous_tag)} does not exist "
                            f"(no promotion has replaced a model at {stage} yet)")
        return record
    if current and _digest(current) == _digest(previous):
        replaced = _at(repo, rolledback_tag, options)
        record.update(rolled_back=True, replaced=replaced, ref=current, digest=_digest(current),
                      reason=f"{stage} already holds {_digest(previous)}; alias and deployment re-asserted")
    else:
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
        record["deployment"] = redeploy(deployment, record["ref"], options)
    return record
