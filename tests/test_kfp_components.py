"""The KFP components as a user gets them: cheap to import, compiled YAML that loads and is current."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from modelhaul.components import COMPONENTS, PIPELINE, load, yaml_path

STEP_OUTPUTS = {
    "train": {"model", "model_uri", "run_id", "metrics"},
    "package": {"model", "ref", "digest"},
    "parse": {"model", "ref", "digest", "signature"},
    "convert": {"model", "ref", "digest", "parity"},
    "sign": {"model", "ref", "digest", "signed"},
    "deploy": {"model", "deployment", "name", "state", "stable_ref"},
    "promote": {"model", "Output"},
    "rollback": {"model", "rolled_back", "reason", "ref"},
    "rollback_on_failure": {"Output"},
}


def test_import_is_light() -> None:
    """Airflow's DAG parser and the CLI import this package: it must not pull in heavy libraries."""
    code = ("import sys, modelhaul.components as c; c.yaml_path('train'); "
            "print(__import__('json').dumps(sorted(m for m in ('kfp', 'mlflow', 'kubernetes', 'onnx', "
            "'torch', 'sklearn') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


@pytest.mark.parametrize("name", COMPONENTS)
def test_component_yaml_loads_with_its_interface(name: str) -> None:
    comp = load(name)
    assert set(comp.component_spec.outputs) == STEP_OUTPUTS[name]
    if "model" in STEP_OUTPUTS[name]:
        assert comp.component_spec.outputs["model"].type == "system.Model@0.0.1"
    container = comp.component_spec.implementation.container
    assert container.image == "python:3.11-slim"
    command = " ".join(container.command)
    from importlib.metadata import version

    assert f"]=={version('modelhaul')}'" in command  # the pinned release, with its extras
    assert "'kfp==" not in command  # kfp comes pinned through the modelhaul[kfp] extra


def test_pipeline_yaml_loads() -> None:
    pipe = load(PIPELINE)
    assert pipe.name == "retrain-and-redeploy"
    assert {"repository", "tracking_uri", "gate", "params", "render_dir", "canary_percent"} <= set(
        pipe.component_spec.inputs)


def test_credentials_come_from_secrets_not_parameters() -> None:
    """Registry credentials reach the pods through Kubernetes Secrets; no parameter carries them."""
    text = yaml_path(PIPELINE).read_text()
    pipe = load(PIPELINE)
    assert not {n for n in pipe.component_spec.inputs if "password" in n or "username" in n}
    assert "secretAsEnv" in text and "MODELHAUL_PASSWORD" in text
    assert "secretAsVolume" in text and "DOCKER_CONFIG" in text


@pytest.mark.parametrize("name", (*COMPONENTS, PIPELINE))
def test_checked_in_yaml_is_current(name: str) -> None:
    from modelhaul.components.compile import drift

    diff = drift(name)
    assert not diff, f"stale {yaml_path(name).name}; run python -m modelhaul.components.compile\n{diff}"


def test_local_runtime_installs_nothing() -> None:
    """The local runner executes in this environment: its components must never pip-install here."""
    from modelhaul.components.factory import build_all
    from modelhaul.components.runtime import local

    for name, comp in build_all(local()).items():
        command = " ".join(comp.component_spec.implementation.container.command)
        assert "pip install" not in command, name
