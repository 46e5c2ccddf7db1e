"""The ``modelhaul_registry`` connection: an OCI registry's address, login and how to reach it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from modelhaul.declarations import REGISTRY_ACCESS
from modelhaul.operators._compat import BaseHook
from modelhaul.operators.connections import as_bool, extra_field, optional_connection, tested

REGISTRY_CONN_TYPE = "modelhaul_registry"


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
        return {p.name: getattr(self, p.name) for p in REGISTRY_ACCESS}


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
    ``bundle_format`` (the default format to push: one of ``modelhaul.declarations.BUNDLE_FORMATS``).
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
