"""Connections: where the registry, MLflow and the cluster are, and how to log in to them.

The step functions take connection details as plain arguments; these hooks turn an Airflow
connection (from the metadata DB, a secrets backend or ``AIRFLOW_CONN_*`` in URI or JSON form) into
those arguments. A missing *default* connection is not an error: the steps then fall back to their
own environment variables and to the embedded defaults, so a DAG runs unchanged on one laptop and
against real services once the connections exist.

Kubernetes settings are read from a ``kubernetes`` connection's extra fields when one exists, without
the cncf.kubernetes provider (its releases need a ``kubernetes`` client that kfp cannot install beside).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from modelhaul.declarations import parse_bool
from modelhaul.operators._compat import AirflowNotFoundException, BaseHook

REGISTRY_CONN_TYPE = "modelhaul_registry"
MLFLOW_CONN_TYPE = "modelhaul_mlflow"
KUBERNETES_CONN_TYPE = "kubernetes"  # the cncf.kubernetes provider's type: its extras are read too
CLUSTER_CONN_TYPE = "modelhaul_kubernetes"


def as_bool(value: Any, name: str = "connection extra") -> bool:
    """Extras from a URI-form connection arrive as strings: ``"true"`` must mean True, ``"False"`` False."""
    return parse_bool(value, name)


def extra_field(conn: Any, name: str, default: Any = None) -> Any:
    """An extra field, stored plain (``name``) or UI-prefixed (``extra__<conn_type>__name``)."""
    extra = conn.extra_dejson or {}
    if name in extra and extra[name] not in (None, ""):
        return extra[name]
    prefixed = f"extra__{conn.conn_type}__{name}"
    if prefixed in extra and extra[prefixed] not in (None, ""):
        return extra[prefixed]
    return default


def optional_connection(conn_id: str | None) -> Any | None:
    """The connection ``conn_id``, or None when it is not defined anywhere."""
    if not conn_id:
        return None
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


@dataclass(frozen=True)
class RegistryConnection:
    """What a ``modelhaul_registry`` connection says: the registry's address, how to reach it
    (the step arguments of ``declarations.REGISTRY_ACCESS``) and the default bundle format."""

    host: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    plain_http: bool = False
    insecure: bool = False
    ca_file: str | None = None
    bundle_format: str | None = None

    def step_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every registry-touching step accepts."""
        return {"plain_http": self.plain_http, "insecure": self.insecure, "ca_file": self.ca_file,
                "username": self.username, "password": self.password}


def _is_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def is_qualified(ref: str) -> bool:
    """True when ``ref`` names its registry (``host/...``) or is a local layout (``oci:PATH``)."""
    ref = ref.strip()
    return ref.startswith("oci:") or ("/" in ref and _is_host(ref.split("/", 1)[0]))


class RegistryHook(BaseHook):
    """An OCI Distribution registry (Harbor, distribution, GHCR, ECR, zot...) for model artifacts.

    Connection: host (``registry.example.com:5000``; an ``http://`` prefix means plain HTTP), login,
    password; extras ``plain_http``, ``insecure`` (skip TLS verification), ``ca_file`` and
    ``bundle_format`` (``modelpack``, ``kitops`` or ``ormb``, the default format to push).
    """

    conn_name_attr = "registry_conn_id"
    default_conn_name = "modelhaul_registry_default"
    conn_type = REGISTRY_CONN_TYPE
    hook_name = "OCI registry (modelhaul)"

    def __init__(self, registry_conn_id: str | None = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registry_conn_id = registry_conn_id

    def get_conn(self) -> RegistryConnection:
        """Settings from the connection; empty settings when the default connection is not defined."""
        conn = (optional_connection(self.registry_conn_id)
                if self.registry_conn_id == self.default_conn_name
                else BaseHook.get_connection(self.registry_conn_id) if self.registry_conn_id else None)
        if conn is None:
            return RegistryConnection()
        host = conn.host or ""
        plain_http = as_bool(extra_field(conn, "plain_http", False), "plain_http")
        if "://" in host:
            parts = urlsplit(host)
            plain_http = plain_http or parts.scheme == "http"
            host = parts.netloc
        if host and conn.port:
            host = f"{host}:{conn.port}"
        return RegistryConnection(
            host=host or None,
            username=conn.login or None,
            password=conn.password or None,
            plain_http=plain_http,
            insecure=as_bool(extra_field(conn, "insecure", False), "insecure"),
            ca_file=extra_field(conn, "ca_file"),
            bundle_format=extra_field(conn, "bundle_format"),
        )

    def qualify(self, ref: str, layout_root: str | None = None, settings: RegistryConnection | None = None
                ) -> str:
        """Give a bare ``repo:tag`` a home: the connection's registry, else a local OCI layout.

        ``models/iris:v1`` becomes ``HOST/models/iris:v1`` when the connection names a host, else
        ``oci:LAYOUT_ROOT/models/iris:v1``; references that already name a registry or a layout
        are returned unchanged.
        """
        ref = ref.strip()
        if is_qualified(ref):
            return ref
        settings = settings or self.get_conn()
        if settings.host:
            return f"{settings.host}/{ref}"
        if layout_root:
            repo, sep, tag = ref.rpartition(":") if ":" in ref else (ref, "", "")
            return f"oci:{layout_root.rstrip('/')}/{repo}{sep}{tag}"
        return ref

    def test_connection(self) -> tuple[bool, str]:
        """The UI's "Test" button: ping ``/v2/`` with the connection's credentials."""
        from modelhaul import steps

        def check() -> str:
            s = self.get_conn()
            if not s.host:
                raise ValueError("the connection names no registry host")
            return steps.check_registry(host=s.host, **s.step_kwargs())

        return tested(check)


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


def tested(check: Callable[[], str]) -> tuple[bool, str]:
    """A Test button's answer: ``check``'s line, or the error's, said to an Airflow user.

    ``airflow connections test`` prints the line as rich markup, which eats ``[kube]`` and any other
    ``[word]``; there it is escaped (the UI shows the line as text, so it is not escaped there).
    """
    import sys

    from modelhaul.errors import redact, said_in

    try:
        with said_in("airflow"):
            ok, text = True, check()
    except Exception as exc:
        ok, text = False, redact(" ".join(str(exc).split())) or type(exc).__name__
    if sys.argv[1:3] == ["connections", "test"]:
        from rich.markup import escape

        text = escape(text)
    return ok, text


@contextlib.contextmanager
def scoped_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a step call, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass(frozen=True)
class KubeSettings:
    """Which cluster to talk to; ``configured`` is False when none is, and deploy then renders.

    A kubeconfig given inline in a connection (``inline``) is written to a private temp file only
    where the work runs (:meth:`step_kwargs`); what travels to another process (the triggerer, the
    promote task on another worker) is the connection id (:meth:`portable`), resolved again there,
    as the cncf.kubernetes provider's triggers do.
    """

    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    namespace: str | None = None
    conn_id: str | None = None
    inline: Any = field(default=None, repr=False)

    @property
    def configured(self) -> bool:
        return bool(self.kubeconfig or self.inline or self.context or self.in_cluster)

    def step_kwargs(self) -> dict[str, Any]:
        """Arguments for a step run in this process (an inline kubeconfig becomes a 0600 temp file)."""
        kubeconfig = self.kubeconfig
        if kubeconfig is None and self.inline:
            kubeconfig = _write_inline_kubeconfig(self.inline)
        return {"kubeconfig": kubeconfig, "context": self.context, "in_cluster": self.in_cluster}

    def portable(self) -> dict[str, Any]:
        """How another process reaches the same cluster: never a path that only exists here."""
        if self.kubeconfig is None and self.inline and self.conn_id:
            return {"kube_conn_id": self.conn_id, "kubeconfig": None, "context": self.context,
                    "in_cluster": self.in_cluster}
        return {"kube_conn_id": None, **self.step_kwargs()}


def kube_here(settings: dict[str, Any]) -> dict[str, Any]:
    """``{kubeconfig, context, in_cluster}`` for this process from :meth:`KubeSettings.portable` output
    (or a deploy result that carries it): a ``kube_conn_id`` is resolved through its connection here."""
    conn_id = settings.get("kube_conn_id")
    if conn_id:
        return kube_settings(conn_id, context=settings.get("context") or None).step_kwargs()
    return {"kubeconfig": settings.get("kubeconfig"), "context": settings.get("context"),
            "in_cluster": as_bool(settings.get("in_cluster"), "in_cluster")}


def deployment_here(deployment: dict[str, Any] | None) -> dict[str, Any] | None:
    """A deploy result (XCom) with its cluster resolved in this process, for promote and rollback."""
    if not deployment or not deployment.get("kube_conn_id"):
        return deployment
    return {**deployment, **kube_here(deployment)}


_INLINE_KUBECONFIGS: dict[str, str] = {}


def _write_inline_kubeconfig(content: Any) -> str:
    """Write a kubeconfig given inline in a connection to a private file (once per process)."""
    import json

    text = content if isinstance(content, str) else json.dumps(content)
    if text in _INLINE_KUBECONFIGS:
        return _INLINE_KUBECONFIGS[text]
    fd, path = tempfile.mkstemp(prefix="modelhaul-kubeconfig-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:  # mkstemp creates the file 0600
        f.write(text)
    atexit.register(lambda: os.path.exists(path) and os.unlink(path))
    _INLINE_KUBECONFIGS[text] = path
    return path


def kube_settings(
    kube_conn_id: str | None = "kubernetes_default",
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    in_cluster: bool | None = None,
) -> KubeSettings:
    """Explicit arguments first, then the ``kubernetes`` connection's extras when it exists.

    Extras read (plain or ``extra__kubernetes__``-prefixed, as the cncf provider stores them):
    ``in_cluster``, ``kube_config_path``, ``kube_config`` (inline JSON/YAML), ``cluster_context``,
    ``namespace``.
    """
    conn = optional_connection(kube_conn_id)
    c_path = c_inline = c_ctx = c_ns = None
    c_in_cluster = False
    if conn is not None:
        c_in_cluster = as_bool(extra_field(conn, "in_cluster", False), "in_cluster")
        c_path = extra_field(conn, "kube_config_path")
        c_inline = extra_field(conn, "kube_config")
        c_ctx = extra_field(conn, "cluster_context")
        c_ns = extra_field(conn, "namespace")
    if kubeconfig is None and c_path:
        kubeconfig = os.path.expanduser(str(c_path))
    return KubeSettings(
        kubeconfig=kubeconfig,
        context=context or c_ctx,
        in_cluster=as_bool(in_cluster, "in_cluster") if in_cluster not in (None, "") else c_in_cluster,
        namespace=c_ns,
        conn_id=kube_conn_id if conn is not None else None,
        inline=c_inline if kubeconfig is None else None,
    )


class KubernetesClusterHook(BaseHook):
    """A Kubernetes cluster for deploy, promote and the deployment sensor, without the cncf provider.

    Connection type ``modelhaul_kubernetes`` (form fields below); a ``kubernetes`` connection made for
    the cncf.kubernetes provider works as well. Extras, plain or ``extra__<type>__``-prefixed:
    ``kube_config_path``, ``kube_config`` (inline YAML/JSON), ``cluster_context``, ``in_cluster``,
    ``namespace``. With none of them the client's defaults apply (``KUBECONFIG``, ``~/.kube/config``).
    """

    conn_name_attr = "kube_conn_id"
    default_conn_name = "kubernetes_default"
    conn_type = CLUSTER_CONN_TYPE
    hook_name = "Kubernetes cluster (modelhaul)"

    def __init__(self, kube_conn_id: str | None = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kube_conn_id = kube_conn_id

    def get_conn(self) -> KubeSettings:
        return kube_settings(self.kube_conn_id)

    def test_connection(self) -> tuple[bool, str]:
        """The UI's "Test" button: the API server's version, with the connection's credentials."""
        from modelhaul import steps

        return tested(lambda: steps.check_cluster(**self.get_conn().step_kwargs()))
