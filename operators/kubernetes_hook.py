"""The ``modelhaul_kubernetes`` (or cncf ``kubernetes``) connection: which cluster, and its kubeconfig here.

Kubernetes settings are read from a ``kubernetes`` connection's extra fields when one exists, without
the cncf.kubernetes provider (its releases need a ``kubernetes`` client that kfp cannot install beside).
"""

from __future__ import annotations

import atexit
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from modelhaul.operators._compat import BaseHook
from modelhaul.operators.connections import as_bool, extra_field, optional_connection, tested

KUBERNETES_CONN_TYPE = "kubernetes"  # the cncf.kubernetes provider's type: its extras are read too
CLUSTER_CONN_TYPE = "modelhaul_kubernetes"


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
