"""Kubeflow Pipelines components for the modelhaul steps, and the ``retrain_and_redeploy`` pipeline.

Importing this package is cheap (no kfp, mlflow or kubernetes): the compiled YAML is found with
:func:`yaml_path` and loaded with :func:`load`; the Python components and the pipeline are built
on first attribute access (``modelhaul.components.train``, ``.retrain_and_redeploy``), which
imports kfp then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Component names (the steps, the post-promotion smoke check, the exit-handler rollback) and the pipeline's.
COMPONENTS = ("train", "package", "parse", "convert", "sign", "deploy", "promote", "smoke_check", "rollback",
              "rollback_on_failure")
PIPELINE = "retrain_and_redeploy"

_HERE = Path(__file__).resolve().parent


def yaml_path(name: str) -> Path:
    """The checked-in compiled YAML of component or pipeline ``name`` (shipped as package data)."""
    if name not in (*COMPONENTS, PIPELINE):
        raise KeyError(f"no compiled YAML for {name!r}; known: {', '.join((*COMPONENTS, PIPELINE))}")
    return _HERE / f"{name}.yaml"


def load(name: str) -> Any:
    """The compiled component (or pipeline) ``name``, loaded from its YAML as a KFP component."""
    from kfp import components

    return components.load_component_from_file(str(yaml_path(name)))


def __getattr__(attr: str) -> Any:
    if attr in COMPONENTS:
        from modelhaul.components.factory import build

        value = build(attr)
    elif attr == PIPELINE:
        from modelhaul.components.pipeline import build_pipeline

        value = build_pipeline()
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
    globals()[attr] = value
    return value
