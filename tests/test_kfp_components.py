"""The KFP components as a user gets them: cheap to import, compiled YAML that loads and is current."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from modelhaul.components import COMPONENTS, PIPELINE, load, yaml_path

# Issue 14 changed these: models flow as artifacts (the string ref/digest outputs went into their
# metadata), metrics and parity are Metrics, and deploy/promote/rollback results are plain Artifacts.
STEP_OUTPUTS = {
    "train": {"model", "metrics"},
    "package": {"model"},
    "parse": {"model"},
    "convert": {"model", "parity"},
    "sign": {"model"},
    "deploy": {"deployment"},
    "promote": {"promotion", "Output"},
    "smoke_check": {"Output"},
    "rollback": {"result", "rolled_back", "reason", "ref"},
    "rollback_on_failure": {"Output"},
}
OUTPUT_TYPES = {"model": "system.Model@0.0.1", "metrics": "system.Metrics@0.0.1", "parity": "system.Metrics@0.0.1",
                "deployment": "system.Artifact@0.0.1", "promotion": "system.Artifact@0.0.1",
                "result": "system.Artifact@0.0.1"}
#: The upstream model each step after train reads (an artifact, never a string ref).
MODEL_INPUTS = {"package": "source", "parse": "source", "convert": "source", "sign": "source", "deploy": "source",
                "promote": "candidate"}


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
    for output, spec in comp.component_spec.outputs.items():
        assert spec.type == OUTPUT_TYPES.get(output, spec.type), (name, output)
    if name in MODEL_INPUTS:
        assert comp.component_spec.inputs[MODEL_INPUTS[name]].type == "system.Model@0.0.1"
        assert "ref" not in comp.component_spec.inputs  # lineage: no string reference beside the artifact
    container = comp.component_spec.implementation.container
    assert container.image == "python:3.11-slim"
    command = " ".join(container.command)
    from importlib.metadata import version

    assert f"]=={version('modelhaul')}'" in command  # the pinned release, with its extras
    assert "'kfp==" not in command  # kfp comes pinned through the modelhaul[kfp] extra


def test_pipeline_yaml_loads() -> None:
    pipe = load(PIPELINE)
    assert pipe.name == "retrain-and-redeploy"
    assert {"repository", "tracking_uri", "gate", "params", "render_dir", "canary_percent", "smoke_check"} <= set(
        pipe.component_spec.inputs)


def test_pipeline_defaults_mean_something_in_a_pod() -> None:
    """No pod-local MLflow store, and deploy applies to the cluster unless a render directory is asked for."""
    inputs = load(PIPELINE).component_spec.inputs
    assert inputs["tracking_uri"].default == ""  # else MLFLOW_TRACKING_URI from the MLflow Secret, else an error
    assert inputs["in_cluster"].default is True
    assert inputs["render_dir"].default == ""
    text = yaml_path(PIPELINE).read_text()
    assert "sqlite:" not in text
    assert "MLFLOW_TRACKING_URI" in text  # the MLflow Secret can carry the URI


def documented(spec: dict) -> dict[str, bool]:
    """``{input or output name: has a description}`` over a compiled component's interface."""
    seen = {}
    for kind in ("inputDefinitions", "outputDefinitions"):
        for section in ("artifacts", "parameters"):
            for name, value in (spec.get(kind, {}).get(section) or {}).items():
                seen[f"{kind[:-11]}:{name}"] = bool(value.get("description", "").strip())
    return seen


@pytest.mark.parametrize("name", (*COMPONENTS, PIPELINE))
def test_every_input_and_output_is_described(name: str) -> None:
    """The KFP UI shows each parameter's meaning: the compiled YAML carries a description per input/output."""
    import yaml

    ir = next(yaml.safe_load_all(yaml_path(name).read_text()))
    seen = documented(ir["root"])
    assert seen and all(seen.values()), [k for k, ok in seen.items() if not ok]


def test_compile_time_image_runs_everything_on_it_with_no_install(tmp_path) -> None:
    """``--image IMG``: every component of every YAML runs on IMG, and no pod installs anything at start."""
    import yaml

    img = "registry.example/team/modelhaul:0.1.0"
    subprocess.run([sys.executable, "-m", "modelhaul.components.compile", "--image", img, "--out", str(tmp_path)],
                   check=True, capture_output=True, text=True)
    assert sorted(p.stem for p in tmp_path.glob("*.yaml")) == sorted((*COMPONENTS, PIPELINE))
    for path in tmp_path.glob("*.yaml"):
        ir = next(yaml.safe_load_all(path.read_text()))
        executors = ir["deploymentSpec"]["executors"]
        assert executors, path.name
        for executor in executors.values():
            container = executor["container"]
            assert container["image"] == img, path.name
            command = " ".join(container["command"])
            assert "pip install" not in command and "ensurepip" not in command, path.name
    # the checked-in (published) YAML keeps the install-at-start route
    assert "pip install" in yaml_path(PIPELINE).read_text()


def test_compile_rejects_a_malformed_image() -> None:
    proc = subprocess.run([sys.executable, "-m", "modelhaul.components.compile", "--image", "not an image"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "image 'not an image': expected an image reference" in proc.stderr


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


def test_the_image_carries_what_every_component_needs() -> None:
    """The Dockerfile (the ``--image`` route) installs this checkout with every extra a component installs
    at pod start on the published route, so the same pipeline runs on it with nothing installed."""
    import re
    from pathlib import Path

    from modelhaul.components.runtime import EXTRA_PACKAGES, EXTRAS

    text = (Path(__file__).resolve().parents[1] / "Dockerfile").read_text()
    extras = set(re.search(r'^ARG EXTRAS="([^"]*)"', text, re.M).group(1).split(","))
    packages = set(re.search(r'^ARG EXTRA_PACKAGES="([^"]*)"', text, re.M).group(1).split())
    assert {e for needed in EXTRAS.values() for e in needed} <= extras
    assert {p for needed in EXTRA_PACKAGES.values() for p in needed} <= packages
    assert re.search(r'^RUN pip install "/src\$\{EXTRAS:\+\[\$EXTRAS\]\}" \$\{EXTRA_PACKAGES\}', text, re.M)
    assert re.search(r"^USER 1000$", text, re.M)  # non-root, with the artifact mount points it needs
    assert "chmod 1777 /gcs /minio /s3" in text


def test_smoke_check_fails_on_a_false_answer_or_a_raise() -> None:
    """The step behind the smoke_check component: a false answer or an exception is one GateError line."""
    from modelhaul import steps
    from modelhaul.errors import ConfigError, GateError

    pinned = "registry.example/ml/iris:production@sha256:" + "a" * 64
    assert steps.smoke_check(entry_point="tests.fixtures.smoke:passes", ref=pinned)["passed"] is True
    with pytest.raises(GateError, match=r"^smoke check tests.fixtures.smoke:passes returned False for r"):
        steps.smoke_check(entry_point="tests.fixtures.smoke:passes", ref="registry.example/ml/iris:production")
    with pytest.raises(GateError, match=r"failed on .*: AssertionError: .* does not answer as expected$"):
        steps.smoke_check(entry_point="tests.fixtures.smoke:always_fails", ref=pinned)
    with pytest.raises(ConfigError, match="cannot import"):
        steps.smoke_check(entry_point="tests.fixtures.no_such_module:check", ref=pinned)
