"""modelhaul for Apache Airflow: hooks, operators, sensors, triggers, links and assets.

The public classes are loaded on first use (``from modelhaul.operators import PackageModelOperator``),
so importing this package costs a DAG parse nothing beyond what Airflow itself already imported.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RegistryHook": "hooks",
    "MLflowHook": "hooks",
    "KubernetesClusterHook": "hooks",
    "KubeSettings": "hooks",
    "kube_settings": "hooks",
    "MLflowTrainOperator": "train",
    "PackageModelOperator": "package",
    "ParseModelOperator": "package",
    "ConvertModelOperator": "package",
    "DeployModelOperator": "deploy",
    "SignModelOperator": "package",
    "PromoteModelOperator": "promote",
    "RollbackModelOperator": "promote",
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
