"""Which cluster a deploy talks to, found the way ``kubectl`` finds it."""

from __future__ import annotations

from dataclasses import dataclass

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


def find_cluster(kubeconfig: str | None = None, context: str | None = None, in_cluster: bool = False,
                 env: dict[str, str] | None = None) -> Cluster | None:
    """``--in-cluster``, else ``kubeconfig``/``$KUBECONFIG``/``~/.kube/config`` (its current context
    unless ``context``), else the pod's service account when ``KUBERNETES_SERVICE_HOST`` is set.

    None when there is no cluster to talk to; a kubeconfig that exists but cannot be used raises
    :class:`DeployError`.
    """
    import os

    from kubernetes import client, config

    env = os.environ if env is None else env
    cfg = client.Configuration()
    if not in_cluster:
        path = kubeconfig or env.get("KUBECONFIG") or None
        default = os.path.expanduser("~/.kube/config")
        if not path and os.path.isfile(default):
            path = default
        if path or context:
            where = f"kubeconfig {path or default}"
            try:
                contexts, active = config.list_kube_config_contexts(config_file=path or default)
                name = context or (active or {}).get("name")
                if not name:
                    raise DeployError(f"{where} has no current context: pass --context NAME")
                if name not in {c.get("name") for c in contexts or []}:
                    raise DeployError(f"{where} has no context {name!r}; kubectl config get-contexts lists them")
                config.load_kube_config(config_file=path or default, context=name, client_configuration=cfg,
                                        persist_config=False)
            except DeployError:
                raise
            except Exception as exc:  # ConfigException, yaml errors, unreadable files
                raise DeployError(f"cannot use the {where}: {exc}") from None
            return Cluster(server=cfg.host, context=name, kubeconfig=path or default)
        if not env.get("KUBERNETES_SERVICE_HOST"):
            return None
    try:
        config.load_incluster_config(client_configuration=cfg)
    except Exception as exc:
        raise DeployError(f"cannot use the in-cluster service account: {exc}") from None
    return Cluster(server=cfg.host, in_cluster=True)
