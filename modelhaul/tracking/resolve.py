"""Which run, logged model and registered version an MLflow URI names."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhaul.errors import MLflowError, redact
from modelhaul.tracking.client import _call, _code, _error, _registered_model_exists

_MODEL_ID = re.compile(r"^m-[0-9a-f]{32}$")


@dataclass
class Resolved:
    """What a URI names in MLflow: the run, the logged model, the registered version, if any."""

    uri: str
    run: Any = None
    logged_model: Any = None
    version: Any = None
    download_uri: str = ""


def resolve(client: Any, uri: str) -> Resolved:
    """Find the run, logged model and registered version that ``uri`` names."""
    if uri.startswith("runs:/"):
        return _resolve_run_uri(client, uri)
    if uri.startswith("models:/"):
        rest = uri[len("models:/"):].strip("/")
        if _MODEL_ID.match(rest):
            lm = _logged_model(client, rest, uri)
            return Resolved(uri, run=_run(client, lm.source_run_id, uri, soft=True), logged_model=lm,
                            download_uri=lm.artifact_location)
        if "@" in rest:
            name, alias = rest.rsplit("@", 1)
            mv = _call(lambda: client.get_model_version_by_alias(name, alias), uri,
                       lambda: (f"alias {alias!r} is not set on registered model {name!r}; "
                                "set it or use models:/NAME/VERSION")
                       if _registered_model_exists(client, name) else _no_registered_model(name))
            return _from_version(client, mv, uri)
        if "/" in rest:
            name, version = rest.rsplit("/", 1)
            if version == "latest":
                version = _latest_version(client, name, uri)
            mv = _call(lambda: client.get_model_version(name, version), uri,
                       lambda: (f"registered model {name!r} has no version {version!r}"
                                if _registered_model_exists(client, name) else _no_registered_model(name)))
            return _from_version(client, mv, uri)
        raise MLflowError(f"{uri}: not a model URI; use models:/<model_id>, models:/NAME/VERSION "
                          "or models:/NAME@ALIAS")
    raise MLflowError(f"{redact(uri)}: not an MLflow URI; use runs:/RUN_ID/PATH or models:/...")


def _resolve_run_uri(client: Any, uri: str) -> Resolved:
    rest = uri[len("runs:/"):].strip("/")
    run_id, _, path = rest.partition("/")
    if not run_id:
        raise MLflowError(f"{uri}: no run id; use runs:/RUN_ID/PATH")
    run = _run(client, run_id, uri)
    models = logged_models_of(client, run)
    name = path.split("/", 1)[0] if path else None
    pick = [m for m in models if name is None or m.name == name]
    if len(pick) >= 1 and (name is not None or len(pick) == 1):
        lm = max(pick, key=lambda m: m.creation_timestamp or 0)
        sub = path.split("/", 1)[1] if path and "/" in path else ""
        return Resolved(uri, run=run, logged_model=lm,
                        download_uri=lm.artifact_location.rstrip("/") + (f"/{sub}" if sub else ""))
    if path and _has_mlmodel(client, run_id, path):  # a model saved as plain run artifacts (MLflow 2)
        return Resolved(uri, run=run, download_uri=f"{run.info.artifact_uri.rstrip('/')}/{path}")
    if not models:
        raise MLflowError(f"run {run_id} has no logged model; log one with mlflow.<flavor>.log_model(...)")
    names = ", ".join(sorted({m.name for m in models}))
    if name is None:
        raise MLflowError(f"run {run_id} has several logged models ({names}); name one: runs:/{run_id}/NAME")
    raise MLflowError(f"run {run_id} has no model named {name!r} (it has: {names})")


def logged_models_of(client: Any, run: Any) -> list[Any]:
    """The logged models of ``run``: its outputs, else those whose source run it is."""
    ids = [o.model_id for o in (run.outputs.model_outputs if run.outputs else [])]
    models = []
    for mid in dict.fromkeys(ids):
        with contextlib.suppress(Exception):
            models.append(client.get_logged_model(mid))
    if not models:
        with contextlib.suppress(Exception):
            models = list(client.search_logged_models(
                experiment_ids=[run.info.experiment_id],
                filter_string=f"source_run_id = '{run.info.run_id}'"))
    return [m for m in models if str(getattr(m.status, "name", m.status)) != "FAILED"]


def _from_version(client: Any, mv: Any, uri: str) -> Resolved:
    model_id = mv.model_id or _model_id_from_source(mv.source)
    lm = _logged_model(client, model_id, uri, soft=True) if model_id else None
    run_id = mv.run_id or (lm.source_run_id if lm else None)
    run = _run(client, run_id, uri, soft=True) if run_id else None
    download = lm.artifact_location if lm else mv.source
    if not lm and run and mv.source.startswith("runs:/"):
        download = run.info.artifact_uri.rstrip("/") + "/" + mv.source[len("runs:/"):].partition("/")[2]
    return Resolved(uri, run=run, logged_model=lm, version=mv, download_uri=download)


def _model_id_from_source(source: str | None) -> str | None:
    m = re.search(r"(?:models:/|/models/)(m-[0-9a-f]{32})", source or "")
    return m.group(1) if m else None


def _latest_version(client: Any, name: str, uri: str) -> str:
    versions = _call(lambda: client.search_model_versions(f"name = '{name}'"), uri,
                     lambda: _no_registered_model(name))
    if not versions:
        raise MLflowError(_no_registered_model(name) if not _registered_model_exists(client, name)
                          else f"registered model {name!r} has no versions")
    return str(max(int(v.version) for v in versions))


def _run(client: Any, run_id: str | None, uri: str, soft: bool = False) -> Any:
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except Exception as exc:
        if soft and _code(exc) == "RESOURCE_DOES_NOT_EXIST":
            return None  # a registered version or logged model may outlive its run
        raise _error(exc, f"run {run_id} not found in the tracking server ({redact(uri)})",
                     "check the run id and the tracking URI") from None


def _logged_model(client: Any, model_id: str, uri: str, soft: bool = False) -> Any:
    try:
        return client.get_logged_model(model_id)
    except Exception as exc:
        if soft and _code(exc) == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise _error(exc, f"logged model {model_id} not found ({redact(uri)})",
                     "check the model id and the tracking URI") from None


def _no_registered_model(name: str) -> str:
    return f"registered model {name!r} does not exist; check the name and the tracking URI"


def _has_mlmodel(client: Any, run_id: str, path: str) -> bool:
    try:
        return any(Path(f.path).name == "MLmodel" for f in client.list_artifacts(run_id, path))
    except Exception:
        return False


def _experiment(client: Any, res: Resolved) -> Any:
    exp_id = (res.run.info.experiment_id if res.run else None) or (
        res.logged_model.experiment_id if res.logged_model else None)
    if not exp_id:
        return None
    try:
        return client.get_experiment(exp_id)
    except Exception:
        return None
