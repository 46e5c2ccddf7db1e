"""modelhaul for Apache Airflow: hooks, operators, sensors, triggers, links and assets.

The public classes are loaded on first use (``from modelhaul.operators import PackageModelOperator``),
so importing this package costs a DAG parse nothing beyond what Airflow itself already imported.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RegistryHook": "registry_hook",
    "MLflowHook": "mlflow_hook",
    "KubernetesClusterHook": "kubernetes_hook",
    "KubeSettings": "kubernetes_hook",
    "kube_settings": "kubernetes_hook",
    "MLflowTrainOperator": "train_model",
    "PackageModelOperator": "package_model",
    "ParseModelOperator": "parse_model",
    "ConvertModelOperator": "convert_model",
    "DeployModelOperator": "deploy_model",
    "SignModelOperator": "sign_model",
    "PromoteModelOperator": "promote_model",
    "RollbackModelOperator": "rollback_model",
    "ModelArtifactSensor": "sensors",
    "DeploymentReadySensor": "sensors",
    "DeploymentReadyTrigger": "triggers",
    "MLflowRunLink": "links",
    "RegistryArtifactLink": "links",
    "DeploymentLink": "links",
    "model_asset": "assets",
    "ref_from_events": "assets",
    "require_shared_services": "placement",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
