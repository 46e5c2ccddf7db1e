"""The ``modelhaul_mlflow`` connection: an MLflow tracking server and the credentials its client reads."""

from __future__ import annotations

from typing import Any

from modelhaul.operators._compat import BaseHook
from modelhaul.operators.connections import as_bool, extra_field, optional_connection, scoped_env, tested

MLFLOW_CONN_TYPE = "modelhaul_mlflow"


class MLflowHook(BaseHook):
    """An MLflow tracking server: its URI and the credentials MLflow's client reads from the environment.

    Connection: host (``http://mlflow:5000``, or ``mlflow:5000`` with extra ``scheme``), login and
    password (basic auth); extras ``tracking_uri`` (wins over host, e.g. ``sqlite:///...``), ``token``
    (bearer) and ``insecure`` (skip TLS verification).
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "modelhaul_mlflow_default"
    conn_type = MLFLOW_CONN_TYPE
    hook_name = "MLflow tracking (modelhaul)"

    def __init__(self, mlflow_conn_id: str | None = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mlflow_conn_id = mlflow_conn_id

    def _conn(self) -> Any | None:
        if not self.mlflow_conn_id:
            return None
        if self.mlflow_conn_id == self.default_conn_name:
            return optional_connection(self.mlflow_conn_id)
        return BaseHook.get_connection(self.mlflow_conn_id)

    def get_conn(self) -> tuple[str | None, dict[str, str]]:
        """``(tracking_uri, environment)`` from the connection; ``(None, {})`` without one."""
        conn = self._conn()
        if conn is None:
            return None, {}
        uri = extra_field(conn, "tracking_uri")
        if not uri and conn.host:
            host = conn.host
            if "://" not in host:
                host = f"{extra_field(conn, 'scheme', 'http')}://{host}"
            if conn.port:
                host = f"{host.rstrip('/')}:{conn.port}"
            path = (conn.schema or "").strip("/")
            uri = f"{host.rstrip('/')}/{path}" if path else host
        env: dict[str, str] = {}
        if conn.login:
            env["MLFLOW_TRACKING_USERNAME"] = conn.login
        if conn.password:
            env["MLFLOW_TRACKING_PASSWORD"] = conn.password
        if token := extra_field(conn, "token"):
            env["MLFLOW_TRACKING_TOKEN"] = str(token)
        if as_bool(extra_field(conn, "insecure", False), "insecure"):
            env["MLFLOW_TRACKING_INSECURE_TLS"] = "true"
        return uri or None, env

    def test_connection(self) -> tuple[bool, str]:
        """The UI's "Test" button: ``/health`` and an authenticated search (or one call to a DB store)."""
        from modelhaul import steps

        def check() -> str:
            uri, env = self.get_conn()
            with scoped_env(env):
                return steps.check_mlflow(tracking_uri=uri)

        return tested(check)
