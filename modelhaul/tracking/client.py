"""Talking to MLflow: a client that fails in seconds, one-line errors, registered-model aliases."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from modelhaul.errors import MLflowError, redact

_HTTP_RETRIES = "2"  # MLflow's default (7 retries, backoff 2) turns a dead server into minutes
_HTTP_TIMEOUT = "30"
_SQL_SCHEMES = {"sqlite", "postgresql", "mysql", "mssql"}


def _client(tracking_uri: str | None) -> Any:
    """An MlflowClient for ``tracking_uri``, after checking that an HTTP server answers at all."""
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        check_reachable(tracking_uri)
    from modelhaul.optional import require

    MlflowClient = require("mlflow", "mlflow", "MLflow tracking").MlflowClient  # noqa: N806 - a class
    if tracking_uri and tracking_uri.split(":", 1)[0].split("+", 1)[0] in _SQL_SCHEMES:
        require("sqlalchemy", "mlflow", f"the {tracking_uri.split(':', 1)[0]} tracking store")
        require("alembic", "mlflow", f"the {tracking_uri.split(':', 1)[0]} tracking store")
    try:
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    except Exception as exc:
        raise _error(exc, f"cannot open the MLflow tracking store {redact(str(tracking_uri))}") from None


def check_reachable(tracking_uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, when no MLflow server answers at ``tracking_uri``."""
    import requests

    url = tracking_uri.rstrip("/") + "/health"
    try:
        requests.get(url, timeout=timeout)
    except requests.RequestException as exc:
        raise MLflowError(f"MLflow tracking server {redact(tracking_uri)} is unreachable "
                          f"({type(exc).__name__}); check MLFLOW_TRACKING_URI / tracking_uri") from None


@contextlib.contextmanager
def _quick_failures() -> Iterator[None]:
    """Few HTTP retries and a bounded timeout for MLflow calls, unless the user chose otherwise."""
    saved = {}
    for var, val in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", _HTTP_RETRIES),
                     ("MLFLOW_HTTP_REQUEST_TIMEOUT", _HTTP_TIMEOUT)):
        if var not in os.environ:
            saved[var] = None
            os.environ[var] = val
    try:
        yield
    finally:
        for var in saved:
            os.environ.pop(var, None)


def _call(fn: Any, uri: str, not_found: Any) -> Any:
    try:
        return fn()
    except Exception as exc:
        if _code(exc) == "RESOURCE_DOES_NOT_EXIST":
            raise MLflowError(f"{redact(uri)}: {not_found()}") from None
        raise _error(exc, f"cannot resolve {redact(uri)}") from None


def _code(exc: BaseException) -> str | None:
    """MLflow's error code, with "not found" said in any way folded into RESOURCE_DOES_NOT_EXIST."""
    code = getattr(exc, "error_code", None)
    if code == "NOT_FOUND" or (code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc).lower()):
        return "RESOURCE_DOES_NOT_EXIST"
    return code


def _error(exc: BaseException, what: str, hint: str | None = None) -> MLflowError:
    """One line: what failed, MLflow's reason (first line, credentials stripped), what to do."""
    if isinstance(exc, MLflowError):
        return exc
    code = _code(exc)
    if code == "RESOURCE_DOES_NOT_EXIST" and hint:
        return MLflowError(f"{what}; {hint}")
    reason = redact(str(getattr(exc, "message", None) or exc)).strip().splitlines()
    reason_s = reason[0][:200] if reason else type(exc).__name__
    tail = f"; {hint}" if hint else ""
    return MLflowError(f"{what}: {reason_s}{tail}")


def _registered_model_exists(client: Any, name: str) -> bool:
    try:
        client.get_registered_model(name)
        return True
    except Exception:
        return False


def set_alias(registered_model: str, alias: str, version: str | int, tracking_uri: str | None = None
              ) -> str | None:
    """Point ``registered_model@alias`` at ``version``; returns the version it pointed at before."""
    with _quick_failures():
        client = _client(tracking_uri)
        previous = get_alias_version(registered_model, alias, tracking_uri, client=client)
        try:
            client.set_registered_model_alias(registered_model, alias, str(version))
        except Exception as exc:
            raise _error(exc, f"cannot set alias {registered_model}@{alias} to version {version}",
                         "check that the registered model and version exist") from None
    return previous


def get_alias_version(registered_model: str, alias: str, tracking_uri: str | None = None, *,
                      client: Any = None) -> str | None:
    """The version ``registered_model@alias`` points at, or ``None`` when the alias is not set."""
    with _quick_failures():
        client = client or _client(tracking_uri)
        try:
            return str(client.get_model_version_by_alias(registered_model, alias).version)
        except Exception as exc:
            if _code(exc) == "RESOURCE_DOES_NOT_EXIST":
                if _registered_model_exists(client, registered_model):
                    return None
                raise MLflowError(f"registered model {registered_model!r} does not exist; "
                                  "register a version first") from None
            raise _error(exc, f"cannot read alias {registered_model}@{alias}") from None
