"""Run the user's training code inside an MLflow run, then register and alias the model it logged.

Two kinds of entry point: ``"package.module:function"`` (imported and called with ``**params`` in
this process, under ``mlflow.start_run()`` with autologging on) and an MLflow Project directory
(``mlflow.projects.run`` with the local environment, so nothing is installed).

The git commit recorded for a function entry point is that of the *function's source file*, not of
whatever program happens to be running (MLflow looks at ``sys.argv[0]``, which in an Airflow
worker or a KFP pod says nothing about the training code).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from modelhaul.errors import ConfigError, MLflowError, redact


def run_training(
    *,
    entry_point: str,
    params: dict[str, Any],
    tracking_uri: str | None,
    experiment: str,
    run_name: str | None,
    registered_model: str | None,
    alias: str | None,
) -> dict[str, Any]:
    """Train, register, alias; returns ``{run_id, model_uri, model_id, experiment_id, metrics,
    registered_model, version}`` (JSON values only). See :func:`modelhaul.steps.train`."""
    if alias and not registered_model:
        raise ConfigError(f"alias {alias!r} needs registered_model: an alias names a registered version")
    import mlflow

    from modelhaul.declarations import tracking_uri_of
    from modelhaul.tracking.client import _quick_failures, check_reachable
    from modelhaul.tracking.resolve import logged_models_of

    tracking_uri = tracking_uri_of(tracking_uri)
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        check_reachable(tracking_uri)
    with _quick_failures(), _tracking(tracking_uri):
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        autologged: set[str] = set()
        if _is_project(entry_point):
            run_id = _run_project(entry_point, params, experiment, run_name)
        else:
            run_id = _run_function(entry_point, params, experiment, run_name, autologged)
        run = client.get_run(run_id)
        models = logged_models_of(client, run)
        if not models:
            raise MLflowError(f"entry point {entry_point!r} logged no model in run {run_id}; "
                              "call mlflow.<flavor>.log_model(...) in it")
        model = _chosen(models, autologged, client)
        model_uri = f"models:/{model.model_id}"
        version = None
        if registered_model:
            version = _register(client, model_uri, registered_model, run_id, model.model_id)
            if alias:
                client.set_registered_model_alias(registered_model, alias, version)
    return {
        "run_id": run_id,
        "model_uri": model_uri,
        "model_id": model.model_id,
        "experiment_id": run.info.experiment_id,
        "metrics": {k: _json_float(v) for k, v in sorted(run.data.metrics.items())},
        "registered_model": registered_model,
        "version": version,
    }


# -- function entry points -----------------------------------------------------------------------


def load_entry_point(entry_point: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function (the current directory is importable too)."""
    mod_name, sep, attr = entry_point.partition(":")
    if not sep or not mod_name or not attr:
        raise ConfigError(f"entry point {entry_point!r}: expected 'package.module:function' or an MLflow "
                          "Project directory")
    added = False
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
        added = True
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ConfigError(f"entry point {entry_point!r}: cannot import {mod_name!r} ({exc})") from None
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(os.getcwd())
    fn: Any = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise ConfigError(f"entry point {entry_point!r}: {mod_name} has no attribute {attr!r}")
    if not callable(fn):
        raise ConfigError(f"entry point {entry_point!r}: {attr} is not callable")
    return fn


def _run_function(entry_point: str, params: dict[str, Any], experiment: str, run_name: str | None,
                  autologged: set[str]) -> str:
    import mlflow

    fn = load_entry_point(entry_point)
    exp = mlflow.set_experiment(experiment_id=experiment_id(experiment))
    tags = {"mlflow.source.name": entry_point, "mlflow.source.type": "LOCAL", **source_git_tags(fn)}
    # autolog fills in what the function does not log itself: params, training metrics, and the
    # model and datasets unless the function logs them (two models per run leave "which one?" open)
    mlflow.autolog(log_models=not _calls(fn, "log_model"), log_datasets=not _calls(fn, "log_input"),
                   silent=True)
    try:
        with mlflow.start_run(experiment_id=exp.experiment_id, run_name=run_name, tags=tags) as run, \
                _autologged_models(autologged):
            fn(**params)
            return run.info.run_id
    finally:
        _autolog_off()


def _autolog_off() -> None:
    """Disable autolog and forget every integration's settings, so the next training starts clean.

    (Settings made by a flavor's own ``autolog()`` call inside the function would otherwise win over
    every later ``mlflow.autolog()`` in this process, e.g. the next task in the same worker.)
    """
    import mlflow

    mlflow.autolog(disable=True, silent=True)
    with contextlib.suppress(ImportError, AttributeError):
        from mlflow.utils.autologging_utils import AUTOLOGGING_INTEGRATIONS

        AUTOLOGGING_INTEGRATIONS.clear()


def experiment_id(name: str) -> str:
    """The id of experiment ``name``, created when missing.

    On a SQLite store a new experiment keeps its artifacts beside the database file
    (``mlartifacts/<name>``), not in ``./mlruns`` of whatever directory the worker runs in.
    """
    import mlflow

    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):].split("?", 1)[0])
        location = (db.parent / "mlartifacts" / re.sub(r"[^A-Za-z0-9._-]+", "_", name)).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:
        exp = client.get_experiment_by_name(name)  # created meanwhile by another worker
        if exp is None:
            raise
        return exp.experiment_id


def source_git_tags(fn: Callable[..., Any]) -> dict[str, str]:
    """MLflow's git tags for the checkout that holds ``fn``'s source file (empty when none does)."""
    from mlflow.utils.git_utils import get_git_branch, get_git_commit, get_git_repo_url

    try:
        src = inspect.getsourcefile(inspect.unwrap(fn))
    except TypeError:
        src = None
    if not src:
        return {}
    commit = get_git_commit(src)
    if not commit:
        return {}
    tags = {"mlflow.source.git.commit": commit}
    if url := get_git_repo_url(src):
        tags["mlflow.source.git.repoURL"] = redact(url)
    if branch := get_git_branch(src):
        tags["mlflow.source.git.branch"] = branch
    return tags


def _calls(fn: Callable[..., Any], name: str) -> bool:
    """Whether the entry point's module calls ``name`` itself (then autolog must not log it again)."""
    try:
        return f"{name}(" in inspect.getsource(inspect.getmodule(inspect.unwrap(fn)))  # type: ignore[arg-type]
    except (OSError, TypeError):
        return False


@contextlib.contextmanager
def _autologged_models(ids: set[str]) -> Iterator[None]:
    """Collect into ``ids`` the models that autolog (rather than the function) logs in the block."""
    from mlflow.models.model import Model
    from mlflow.utils.autologging_utils.safety import _AutologgingSessionManager

    saved = Model.__dict__["log"]
    original = saved.__func__

    @functools.wraps(original)
    def log(cls: Any, *args: Any, **kwargs: Any) -> Any:
        info = original(cls, *args, **kwargs)
        if _AutologgingSessionManager.active_session() is not None and getattr(info, "model_id", None):
            ids.add(info.model_id)
        return info

    Model.log = classmethod(log)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        Model.log = saved  # type: ignore[method-assign]


def _chosen(models: list[Any], autologged: set[str], client: Any) -> Any:
    """The function's own model when it logged one (autolog's copies are then deleted), else autolog's."""
    own = [m for m in models if m.model_id not in autologged]
    if own:
        for m in models:
            if m.model_id in autologged:
                with contextlib.suppress(Exception):
                    client.delete_logged_model(m.model_id)
    return max(own or models, key=lambda m: m.creation_timestamp or 0)


# -- MLflow Projects -----------------------------------------------------------------------------


def _is_project(entry_point: str) -> bool:
    return Path(entry_point).is_dir()


def _run_project(path: str, params: dict[str, Any], experiment: str, run_name: str | None) -> str:
    import mlflow
    import mlflow.projects

    exp = mlflow.set_experiment(experiment_id=experiment_id(experiment))
    # "local" means this environment: the project's `python ...` must be this interpreter
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + old_path
    try:
        submitted = mlflow.projects.run(uri=str(Path(path).resolve()), parameters=params,
                                        experiment_id=exp.experiment_id, run_name=run_name,
                                        env_manager="local", synchronous=True)
    except Exception as exc:
        msg = redact(str(getattr(exc, "message", None) or exc)).strip().splitlines()
        raise MLflowError(f"MLflow Project {path!r} failed: {msg[0] if msg else type(exc).__name__}") from None
    finally:
        os.environ["PATH"] = old_path
    return submitted.run_id


# -- registration --------------------------------------------------------------------------------


def _register(client: Any, model_uri: str, name: str, run_id: str, model_id: str) -> str:
    import time

    try:
        client.get_registered_model(name)
    except Exception:
        with contextlib.suppress(Exception):  # another worker may create it at the same moment
            client.create_registered_model(name)
    mv = client.create_model_version(name, source=model_uri, run_id=run_id, model_id=model_id)
    for _ in range(600):  # sqlite and the plain server register at once; some registries copy first
        if str(getattr(mv.status, "name", mv.status)) not in ("PENDING_REGISTRATION", "1"):
            break
        time.sleep(0.5)
        mv = client.get_model_version(name, mv.version)
    if str(mv.status) in ("FAILED_REGISTRATION",):
        raise MLflowError(f"registering {model_uri} as {name!r} failed: {mv.status_message}")
    return str(mv.version)


# -- helpers -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _tracking(tracking_uri: str | None) -> Iterator[None]:
    """Point MLflow's fluent API (and child processes) at ``tracking_uri`` for the call only."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    if not tracking_uri:
        yield
        return
    old_uri, old_env = tracking_utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)  # also exported, so MLflow Projects hand it to the child
    try:
        yield
    finally:
        mlflow.set_tracking_uri(old_uri)
        if old_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_env


def _json_float(v: Any) -> float | None:
    f = float(v)
    return f if math.isfinite(f) else None
