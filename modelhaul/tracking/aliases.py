"""The MLflow side of a promotion: the registered-model alias named after the stage, and where it pointed before.

Promotion points ``<registered_model>@<stage>`` at the candidate's version and records the version it
pointed at before as the model-version tag ``modelhaul.<stage>.previous_version``; rollback reads
that tag to put the alias back, even when the previous artifact never came from the model registry.
"""

from __future__ import annotations

from typing import Any

from modelhaul.config import ModelConfig
from modelhaul.declarations import tracking_uri_of

VERSION_TAG = "modelhaul.{stage}.previous_version"


def _registered(cfg: ModelConfig | None) -> tuple[str, str] | None:
    ml = cfg.provenance.mlflow if cfg and cfg.provenance else None
    if ml and ml.registered_model and ml.version:
        return ml.registered_model, str(ml.version)
    return None


def _tracking_uri(explicit: str | None, cfg: ModelConfig | None) -> str | None:
    """The explicit URI, else the environment's, else the one the artifact was packaged from."""
    ml = cfg.provenance.mlflow if cfg and cfg.provenance else None
    return tracking_uri_of(explicit, fallback=ml.tracking_uri if ml else None)


def _client(tracking_uri: str | None) -> Any:
    from modelhaul.tracking.client import _client as open_client

    return open_client(tracking_uri)


def promote_alias(cfg: ModelConfig, stage: str, tracking_uri: str | None) -> dict[str, Any] | None:
    """Point ``<registered_model>@<stage>`` at the candidate's version; remember where it pointed."""
    reg = _registered(cfg)
    if reg is None:
        return None
    from modelhaul.tracking.client import set_alias

    name, version = reg
    uri = _tracking_uri(tracking_uri, cfg)
    before = set_alias(name, stage, version, uri)
    if before != version:  # not a re-run: remember what to restore ("" = the alias was not set)
        _client(uri).set_model_version_tag(name, version, VERSION_TAG.format(stage=stage), before or "")
    return {"registered_model": name, "alias": stage, "version": version,
            "previous_version": before if before != version else _recorded(uri, name, version, stage)}


def _recorded(uri: str | None, name: str, version: str, stage: str) -> str | None:
    mv = _client(uri).get_model_version(name, version)
    return (mv.tags or {}).get(VERSION_TAG.format(stage=stage)) or None


def rollback_alias(replaced: ModelConfig | None, restored: ModelConfig, stage: str,
                    tracking_uri: str | None) -> dict[str, Any] | None:
    """Point ``@<stage>`` back where it was before the replaced model's promotion.

    The version recorded at promotion wins; else the restored artifact's own registered version
    (same registered model); else the alias is removed if it still names the replaced version.
    """
    from modelhaul.tracking.client import get_alias_version, set_alias

    old, new = _registered(replaced), _registered(restored)
    if old is None:
        if new is None:
            return None
        uri = _tracking_uri(tracking_uri, restored)
        set_alias(new[0], stage, new[1], uri)
        return {"registered_model": new[0], "alias": stage, "version": new[1]}
    name, version = old
    uri = _tracking_uri(tracking_uri, replaced)
    client = _client(uri)
    tags = client.get_model_version(name, version).tags or {}
    key = VERSION_TAG.format(stage=stage)
    target = tags.get(key) if key in tags else (new[1] if new and new[0] == name else None)
    if target:
        set_alias(name, stage, target, uri)
        return {"registered_model": name, "alias": stage, "version": target}
    if get_alias_version(name, stage, uri, client=client) == version:
        client.delete_registered_model_alias(name, stage)
    return {"registered_model": name, "alias": stage, "version": None}
