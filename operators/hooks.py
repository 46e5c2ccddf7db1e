"""Connections: where the registry, MLflow and the cluster are, and how to log in to them.

One module per connection type holds its hook: :mod:`.registry_hook` (``modelhaul_registry``),
:mod:`.mlflow_hook` (``modelhaul_mlflow``), :mod:`.kubernetes_hook` (``modelhaul_kubernetes``, or a
cncf ``kubernetes`` connection); :mod:`.connections` what they share. This module is the path DAGs
and users import them by (``from modelhaul.operators.hooks import RegistryHook``).
"""

from __future__ import annotations

from modelhaul.operators.connections import as_bool, extra_field, optional_connection, scoped_env, tested
from modelhaul.operators.kubernetes_hook import (
    _INLINE_KUBECONFIGS,
    CLUSTER_CONN_TYPE,
    KUBERNETES_CONN_TYPE,
    KubernetesClusterHook,
    KubeSettings,
    deployment_here,
    kube_here,
    kube_settings,
)
from modelhaul.operators.mlflow_hook import MLFLOW_CONN_TYPE, MLflowHook
from modelhaul.operators.registry_hook import REGISTRY_CONN_TYPE, RegistryConnection, RegistryHook, is_qualified

__all__ = ["CLUSTER_CONN_TYPE", "KUBERNETES_CONN_TYPE", "MLFLOW_CONN_TYPE", "REGISTRY_CONN_TYPE", "_INLINE_KUBECONFIGS",
           "KubeSettings", "KubernetesClusterHook", "MLflowHook", "RegistryConnection", "RegistryHook", "as_bool",
           "deployment_here", "extra_field", "is_qualified", "kube_here", "kube_settings", "optional_connection",
           "scoped_env", "tested"]
