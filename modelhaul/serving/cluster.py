"""Which cluster a deploy talks to, found the way ``kubectl`` finds it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelhaul.errors import DeployError


@dataclass(frozen=True)
class Cluster:
    """The cluster a deploy talks to, found the way ``kubectl`` finds it, and how to say which."""

    server: str
    context: str | None = None
    kubeconfig: str | None = None
    in_cluster: bool = False

    def describe(self) -> str:
        if self.in_cluster:
            return f"{self.server} (in-cluster service account)"
        return f"{self.server} (context {self.context})"


def resolve(kubeconfig: str | None = None, context: str | None = None, in_cluster: bool = False,
            env: Mapping[str, str] | None = None) -> tuple[Any, Cluster] | None:
    """The client ``Configuration`` and :class:`Cluster` kubectl would use, or None when there is none.

    ``in_cluster``: the pod's service account. Else the kubeconfig of ``kubeconfig``, or the
    ``$KUBECONFIG`` list, or ``~/.kube/config``, merged as kubectl merges them
    (:mod:`modelhaul.serving.kubeconfig`), at ``context`` or the current context. With no file at
    all, the pod's service account when ``KUBERNETES_SERVICE_HOST`` is set (as kubectl does).
    A kubeconfig that exists but cannot be used raises :class:`DeployError`.
    """
    import os

    from kubernetes import client, config

    from modelhaul.serving import kubeconfig as kc

    env = os.environ if env is None else env
    if not in_cluster:
        found = kc.load(kubeconfig, context, env)
        if found is not None:
            cfg = kc.client_configuration(found)
            path = kubeconfig or env.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
            return cfg, Cluster(server=cfg.host, context=found.context, kubeconfig=path)
        if not env.get("KUBERNETES_SERVICE_HOST"):
            return None
    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)
    except Exception as exc:
        raise DeployError(f"cannot use the in-cluster service account: {exc}") from None
    return cfg, Cluster(server=cfg.host, in_cluster=True)


def find_cluster(kubeconfig: str | None = None, context: str | None = None, in_cluster: bool = False,
                 env: Mapping[str, str] | None = None) -> Cluster | None:
    """The :class:`Cluster` of :func:`resolve`, or None when there is no cluster to talk to."""
    found = resolve(kubeconfig, context, in_cluster, env)
    return found[1] if found else None
