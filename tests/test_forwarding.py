"""Every adapter hands its step every declared parameter it is given, with the value the step expects.

The step functions of ``modelhaul.steps`` are replaced by recorders (a spy on the call: the step's
own work is tested elsewhere); the adapters run for real: Airflow operators through ``execute``
(registry access from a real ``AIRFLOW_CONN_*`` connection), KFP component bodies called with
KFP's own artifact classes, the ``modelhaul`` command through its ``main``, the deployment sensor
and the deferrable trigger, redeploy, and the exit handler's rollback. Each declared parameter gets
a value unlike its default, spelled as the adapter receives it (templated text for Airflow, KFP's
types, command-line text); the step must receive the value itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import json
import os
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelhaul import declarations
from modelhaul.declarations import STEPS, Param

ROOT = Path(__file__).resolve().parents[1]
DIGEST = "sha256:" + "a" * 64
CONN_ONLY = {"plain_http", "insecure", "ca_file", "username", "password"}  # an operator's registry connection
#: what an adapter gives a step in another form than it was given, and why (the test checks that instead)
ADAPTER_RULES = {
    ("cli", "username"): "the environment or the docker config, resolved by the core",
    ("cli", "password"): "the environment or the docker config, resolved by the core",
    ("cli", "config"): "ModelConfig overrides: an operator/component argument",
}


def sample(p: Param) -> Any:
    """A value of ``p``'s type that is not its default (a choice when it has choices)."""
    if p.choices:
        return next(c for c in reversed(p.choices) if c != p.default)
    if p.type is bool:
        return not p.default
    if p.type is int:
        return 7
    if p.type is float:
        return 0.25
    if p.type is dict:
        return {"made": "up"}
    if p.type is list:
        return ["accuracy >= 0.5"]
    if p.name in ("ref", "dest_ref", "stable_ref"):
        return f"registry.example/models/{p.name}:v1"
    if p.name == "source":
        return "runs:/0123abcd/model"
    if p.name == "tracking_uri":
        return "http://mlflow.example:5000"
    return f"{p.name}-value"


def templated(value: Any) -> Any:
    """How a Jinja template renders ``value`` into an operator's field: text (``| tojson`` for a dict or list)."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


class Calls:
    """The keyword arguments each spied step was called with."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, Any]] = {}

    def of(self, name: str) -> dict[str, Any]:
        assert name in self.seen, f"steps.{name} was not called"
        return self.seen.pop(name)


RESULT = {"ref": f"registry.example/models/iris@{DIGEST}", "digest": DIGEST, "promoted": True, "rolled_back": True,
          "reason": "spied", "name": "iris", "namespace": "models", "target": "seldon", "state": "Available",
          "applied": [], "manifests": [], "key_id": "k" * 16, "files": 1, "outcome": "ready", "ready": True}


@contextlib.contextmanager
def spying(*names: str) -> Iterator[Calls]:
    """Replace ``modelhaul.steps.<name>`` by a recorder for the duration (restored after)."""
    from modelhaul import steps

    calls = Calls()
    saved = {n: getattr(steps, n) for n in names}

    def recorder(name: str) -> Any:
        def step(**kwargs: Any) -> dict[str, Any]:
            calls.seen[name] = kwargs
            return dict(RESULT)
        return step

    for n in names:
        setattr(steps, n, recorder(n))
    try:
        yield calls
    finally:
        for n, fn in saved.items():
            setattr(steps, n, fn)


def registry_connection(values: dict[str, Any]) -> dict[str, str]:
    """``AIRFLOW_CONN_MODELHAUL_REGISTRY_DEFAULT``: the registry access of ``values`` as a real connection."""
    if "username" not in values:
        return {}
    conn = {"conn_type": "modelhaul_registry", "host": "registry.example", "login": values["username"],
            "password": values["password"],
            "extra": {k: values[k] for k in ("plain_http", "insecure", "ca_file")}}
    return {"AIRFLOW_CONN_MODELHAUL_REGISTRY_DEFAULT": json.dumps(conn)}


# ---- the adapters, each run with the samples of a declaration; each returns what the step received


def operator_class(step: str) -> type:
    import modelhaul.operators as ops

    return next(getattr(ops, n) for n in ops.__all__ if getattr(getattr(ops, n), "step", None) == step)


def run_operator(step: str, values: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The operator of ``step`` given ``values`` (registry access through its connection), executed."""
    from modelhaul.operators.base import FROM_CONNECTIONS

    cls = operator_class(step)
    kwargs = {p.operator_attr: templated(values[p.name]) if p.templated else values[p.name]
              for p in STEPS[step] if p.name in values and (p.name not in FROM_CONNECTIONS or p.name == "tracking_uri")}
    saved = dict(os.environ)
    os.environ.update(registry_connection(values))
    try:
        with spying(step) as calls:
            cls(task_id=f"{step}_task", **kwargs, **extra).execute({})
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return calls.of(step)


CLI_COMMAND = {"train": "train", "package": "import-mlflow", "parse": "parse", "convert": "convert",
               "deploy": "deploy", "promote": "promote", "rollback": "rollback", "sign": "sign", "verify": "verify"}


def cli_argv(step: str, values: dict[str, Any], tmp: Path) -> list[str]:
    """``modelhaul COMMAND ...`` giving every declared parameter of ``values`` that the command line takes."""
    argv = [CLI_COMMAND[step]]
    for p in STEPS[step]:
        if not p.cli or p.name not in values:
            continue
        value = values[p.name]
        if p.required and p.flag is None:
            argv.append(str(value))
        elif p.type is bool:
            argv += [p.cli_flag] if value != p.default else []
        elif p.name == "deployment":  # the file `deploy --json` wrote
            path = tmp / "deployment.json"
            path.write_text(json.dumps(value))
            argv += [p.cli_flag, str(path)]
        elif p.type is dict:
            argv += [x for k, v in value.items() for x in (p.cli_flag, f"{k}={v}")]
        elif p.repeat:
            argv += [x for v in value for x in (p.cli_flag, str(v))]
        else:
            argv += [p.cli_flag, str(value)]
    return [*argv, "--json", "--quiet"]


def run_cli(step: str, values: dict[str, Any], tmp: Path) -> dict[str, Any]:
    from modelhaul.cli import main

    stdin, sys.stdin = sys.stdin, io.StringIO(f"{values.get('key_password', '')}\n")
    extra = ["--key-password-stdin"] if step == "sign" else []
    try:
        with spying(step, "which_cluster") as calls:
            steps_module = sys.modules["modelhaul.steps"]
            steps_module.which_cluster = lambda **kube: {**kube, "server": "https://cluster.example"}
            code = main([*cli_argv(step, values, tmp), *extra])
    finally:
        sys.stdin = stdin
    assert code == 0, f"modelhaul {CLI_COMMAND[step]} exited {code}"
    return calls.of(step)


def kfp_artifact(kind: str, tmp: Path, name: str, metadata: dict[str, Any] | None = None) -> Any:
    from kfp import dsl

    return getattr(dsl, kind)(name=name, uri=str(tmp / name), metadata=dict(metadata or {}))


def component_inputs(name: str) -> dict[str, Any]:
    """The (non-artifact) parameters of component ``name``'s body: name -> inspect.Parameter."""
    from modelhaul.components.factory import body

    return {k: v for k, v in inspect.signature(body(name)).parameters.items()
            if typing.get_origin(v.annotation) is not typing.Annotated and k != "status"}


def run_component(name: str, values: dict[str, Any], tmp: Path, spied: str) -> dict[str, Any]:
    """Component ``name``'s body called as KFP's executor calls it: its inputs from ``values``, real artifacts."""
    from kfp.dsl import PipelineTaskFinalStatus

    from modelhaul.components.factory import body

    fn = body(name)
    given: dict[str, Any] = {k: values[k] for k in component_inputs(name) if k in values}
    given.update({k: v for k, v in values.items() if k in ("repository", "tag", "to") and k in component_inputs(name)})
    for k, parameter in inspect.signature(fn).parameters.items():
        text = str(parameter.annotation)
        if k == "status":
            given[k] = PipelineTaskFinalStatus(state="FAILED", pipeline_job_resource_name="run",
                                               pipeline_task_name="t", error_code=None, error_message=None)
        elif "Output" in text or typing.get_origin(parameter.annotation) is typing.Annotated and "Output" in repr(
                parameter.annotation):
            given[k] = kfp_artifact("Metrics" if k in ("metrics", "parity") else "Artifact"
                                    if k in ("deployment", "promotion", "result") else "Model", tmp, k)
        elif typing.get_origin(parameter.annotation) is typing.Annotated:  # an input artifact
            metadata = values["deployment"] if k == "deployment" else {
                "ref": values.get("source") if name == "package" else values["ref"]}
            given[k] = kfp_artifact("Artifact" if k == "deployment" else "Model", tmp, f"in-{k}", metadata)
    with spying(spied) as calls:
        fn(**given)
    return calls.of(spied)


# ---- the spy test: every step, every adapter


def samples(step: str) -> dict[str, Any]:
    return {p.name: sample(p) for p in STEPS[step]}


def assert_reached(received: dict[str, Any], values: dict[str, Any], names: Any, where: str) -> None:
    for name in names:
        assert name in received, f"{where}: {name} never reached the step"
        assert received[name] == values[name], f"{where}: {name}={received[name]!r}, given {values[name]!r}"


@pytest.mark.parametrize("step", [s for s in STEPS if s != "verify"])  # no Airflow operator verifies
def test_each_operator_hands_its_step_every_declared_parameter(step, airflow_home):
    values = samples(step)
    if step == "deploy":
        received = run_operator(step, values)  # a cluster is configured: render_dir is not used
        assert received["render_dir"] is None
        assert_reached(received, values, [p.name for p in STEPS[step] if p.name != "render_dir"], "operator")
        received = run_operator(step, values, render_only=True)  # rendering: no cluster, no secret in a file
        assert received["render_dir"] == values["render_dir"]
        assert (received["kubeconfig"], received["context"], received["in_cluster"]) == (None, None, False)
        assert "password" not in received and "username" not in received
        return
    assert_reached(run_operator(step, values), values, [p.name for p in STEPS[step]], f"{step} operator")


@pytest.mark.parametrize("step", list(STEPS))
def test_each_command_hands_its_step_every_declared_parameter(step, tmp_path):
    values = samples(step)
    names = [p.name for p in STEPS[step]
             if (p.cli or p.name == "key_password") and ("cli", p.name) not in ADAPTER_RULES]
    received = run_cli(step, values, tmp_path)
    if step == "deploy":  # with --render, no cluster is reached
        assert_reached(received, values, [n for n in names if n not in ("kubeconfig", "context", "in_cluster")], "cli")
        values = {k: v for k, v in values.items() if k != "render_dir"}
        received = run_cli(step, values, tmp_path)  # the cluster the command line names
        names = [n for n in names if n != "render_dir"]
    assert_reached(received, values, names, f"modelhaul {CLI_COMMAND[step]}")


# what a component takes in another form (tests/test_declarations.py checks the signatures against the declarations)
KFP_FORMS = {"package": {"ref": "repository + tag"}, "convert": {"dest_ref": "repository + tag + to"},
             "deploy": {"in_cluster": "False when rendering"}}


@pytest.mark.parametrize("step", ["train", "package", "parse", "convert", "sign", "deploy", "promote", "rollback"])
def test_each_component_hands_its_step_every_declared_parameter(step, tmp_path):
    pytest.importorskip("kfp")
    values = {**samples(step), "repository": "registry.example/models/iris", "tag": "run-1"}
    received = run_component(step, values, tmp_path, step)
    taken = set(component_inputs(step)) & {p.name for p in STEPS[step]}
    taken |= {"source"} if step == "package" else {"ref"} if step != "train" else set()  # an upstream artifact's
    assert_reached(received, values, sorted(taken - set(KFP_FORMS.get(step, {}))), f"component {step}")
    if step == "package":
        assert received["ref"] == "registry.example/models/iris:run-1"
    if step == "convert":
        assert received["dest_ref"] == f"registry.example/models/iris:run-1-{values['to']}"
    if step == "deploy":
        assert received["in_cluster"] is False  # a render directory was given: the pod applies nothing
        received = run_component(step, {**values, "render_dir": ""}, tmp_path, step)
        assert received["in_cluster"] is True and received["render_dir"] is None


def test_kfp_unset_spellings_mean_the_declared_default(tmp_path):
    """KFP carries "" / 0 for "not set": the step gets None (its default), never an empty name or a 0 % canary."""
    pytest.importorskip("kfp")
    values = {"ref": "registry.example/models/iris:v1", "name": "", "canary_percent": 0, "stable_ref": "",
              "registry_secret": "", "render_dir": "out"}
    received = run_component("deploy", values, tmp_path, "deploy")
    assert {k: received[k] for k in ("name", "canary_percent", "stable_ref", "registry_secret")} == dict.fromkeys(
        ("name", "canary_percent", "stable_ref", "registry_secret"))
    received = run_component("convert", {"ref": "r/m:v1", "repository": "r/m", "tag": "t", "tolerance": 0.0,
                                         "opset": 0}, tmp_path, "convert")
    assert (received["tolerance"], received["opset"]) == (None, None)


def test_the_exit_handler_rolls_back_with_the_runs_declared_settings(tmp_path):
    pytest.importorskip("kfp")
    from modelhaul.components.inputs import DEPLOYMENT_PARAMS

    values = {**samples("rollback"), **{p.name: sample(p) for p in DEPLOYMENT_PARAMS},
              "repository": "registry.example/models/iris", "tag": "run-1", "to": "onnx"}
    received = run_component("rollback_on_failure", values, tmp_path, "rollback_if_promoted")
    taken = set(component_inputs("rollback_on_failure"))
    assert_reached(received, values, sorted(taken & {p.name for p in STEPS["rollback"]}), "rollback_on_failure")
    deployment = received["deployment"]
    assert_reached(deployment, values, sorted(taken & {p.name for p in DEPLOYMENT_PARAMS} - {"in_cluster"}),
                   "rollback_on_failure's deployment")
    assert deployment["in_cluster"] is False  # the run rendered (render_dir given): no cluster to reach
    assert received["candidate"] == "registry.example/models/iris:run-1-onnx"


def test_redeploy_serves_with_every_declared_setting_of_the_deployment(monkeypatch):
    """Promote and rollback reach a deployment again from the deploy result: every setting it names is kept."""
    import modelhaul.serving.deploy as deploy_module
    from modelhaul.declarations import DeploymentSettings, KubeTarget
    from modelhaul.serving.redeploy import redeploy

    seen: dict[str, Any] = {}
    monkeypatch.setattr(deploy_module, "deploy_model", lambda ref, settings, kube, options: seen.update(
        ref=ref, settings=settings, kube=kube) or dict(RESULT))
    values = {p.name: sample(p) for p in (*DeploymentSettings.PARAMS, *KubeTarget.PARAMS)}
    # as a deploy result read back from XCom or a KFP artifact may carry them: text
    redeploy({**{k: templated(v) for k, v in values.items()}, "applied": []}, "r/m@" + DIGEST, None)
    assert seen["settings"].kwargs() == {**{p.name: values[p.name] for p in DeploymentSettings.PARAMS},
                                         "canary_percent": None, "stable_ref": None}  # the model serves alone
    assert seen["kube"].kwargs() == {p.name: values[p.name] for p in KubeTarget.PARAMS}


def test_the_sensor_and_the_trigger_poll_with_every_declared_parameter(airflow_home):
    from modelhaul.declarations import STATUS
    from modelhaul.operators import DeploymentReadySensor, DeploymentReadyTrigger

    values = {p.name: sample(p) for p in STATUS}
    values["target"] = "kserve"
    sensor = DeploymentReadySensor(task_id="ready", **{p.operator_attr: values[p.name] for p in STATUS})
    with spying("deployment_status") as calls:
        assert sensor.poke({}).is_done
    assert_reached(calls.of("deployment_status"), values, [p.name for p in STATUS], "sensor")
    trigger = DeploymentReadyTrigger(kind="InferenceService", **{p.name: values[p.name] for p in STATUS[1:]})

    async def first_event() -> Any:
        return await anext(trigger.run())

    with spying("deployment_status") as calls:
        assert asyncio.run(first_event()).payload["status"] == "ready"
    values["target"] = "InferenceService"
    assert_reached(calls.of("deployment_status"), values, [p.name for p in STATUS], "trigger")


def test_coercion_names_the_field_and_keeps_an_empty_gate_for_the_step_to_refuse():
    from modelhaul.errors import ConfigError

    gate = next(p for p in STEPS["promote"] if p.name == "gate")
    assert gate.coerce("") == ""  # the gate refuses it: a template that rendered to nothing
    assert gate.coerce('["a >= 1"]') == ["a >= 1"] and gate.coerce("a >= 1") == "a >= 1"
    opset = next(p for p in STEPS["convert"] if p.name == "opset")
    with pytest.raises(ConfigError, match=r"^opset='13x': expected a number"):
        opset.coerce("13x")
    config = next(p for p in STEPS["package"] if p.name == "config")
    with pytest.raises(ConfigError, match=r"^config: not JSON"):
        config.coerce("{name: iris}")


# ---- a made-up parameter added to each declaration reaches the step from every adapter built from declarations

MADE_UP = Param("made_up_knob", int, None, "a parameter no adapter has heard of")


def made_up_probe() -> None:
    """In a fresh interpreter: add MADE_UP to every declaration *before* the adapters are imported, run them,
    print which adapters' steps received it (JSON)."""
    import tempfile

    from modelhaul.declarations import DeploymentSettings, fields_from_params

    for step, params in list(STEPS.items()):
        extended = (*params, MADE_UP)
        STEPS[step] = extended
        setattr(declarations, step.upper(), extended)

    @fields_from_params
    class Extended(DeploymentSettings):  # the settings with one more declared field
        PARAMS = (*DeploymentSettings.PARAMS, MADE_UP)

    declarations.DeploymentSettings = Extended
    reached: dict[str, Any] = {}

    def probe(where: str, run: Any) -> None:
        try:
            reached[where] = run() == 42 or "dropped"
        except Exception as exc:  # one adapter's failure is its row, the others still run
            reached[where] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"

    tmp = Path(tempfile.mkdtemp())
    for step in STEPS:
        values = {**samples(step), MADE_UP.name: 42}
        if step != "verify":
            probe(f"operator {step}", lambda: run_operator(step, values).get(MADE_UP.name))  # noqa: B023
        probe(f"cli {step}", lambda: run_cli(step, values, tmp).get(MADE_UP.name))  # noqa: B023
    import modelhaul.serving.deploy as deploy_module
    from modelhaul.serving.redeploy import redeploy

    seen: dict[str, Any] = {}
    deploy_module.deploy_model = lambda ref, settings, kube, options: seen.update(s=settings) or dict(RESULT)
    probe("redeploy", lambda: getattr(redeploy({"name": "iris", "render_dir": "out", MADE_UP.name: "42"},
                                               "r/m@" + DIGEST, None) and seen["s"], MADE_UP.name))
    print(json.dumps(reached))


def test_a_made_up_parameter_reaches_every_step_call(airflow_home):
    proc = subprocess.run([sys.executable, "-c", "from tests.test_forwarding import made_up_probe; made_up_probe()"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert proc.returncode == 0, proc.stderr[-3000:]
    reached = json.loads(proc.stdout.strip().splitlines()[-1])
    missed = {k: ok for k, ok in reached.items() if ok is not True}
    assert reached and not missed, missed
    assert len(reached) == 2 * len(STEPS) - 1 + 1  # every operator, every command, redeploy


@pytest.mark.parametrize("step", ["parse", "deploy", "rollback"])
def test_a_made_up_parameter_missing_from_a_kfp_signature_fails_loudly(step, monkeypatch):
    """KFP reads a component's signature from its literal source: there the declarations check names it."""
    pytest.importorskip("kfp")
    from tests.test_declarations import test_each_kfp_component_takes_its_steps_declaration as check

    monkeypatch.setitem(STEPS, step, (*STEPS[step], MADE_UP))
    with pytest.raises(AssertionError, match=f"component {step}: no parameter for {{'{MADE_UP.name}'}}"):
        check(step)


def test_a_made_up_parameter_added_to_a_kfp_signature_reaches_the_step_with_no_other_edit(monkeypatch, tmp_path):
    """The component body forwards whatever declared input it is given: adding the signature line is the whole edit."""
    pytest.importorskip("kfp")
    import textwrap

    from modelhaul.components import step_bodies

    monkeypatch.setitem(STEPS, "parse", (*STEPS["parse"], MADE_UP))
    source = textwrap.dedent(inspect.getsource(step_bodies.parse))
    assert source.count("    trust: bool = False,\n") == 1
    source = source.replace("    trust: bool = False,\n", f"    trust: bool = False,\n    {MADE_UP.name}: int = 0,\n")
    namespace = dict(vars(step_bodies))
    exec(compile(source, "<parse with one more input>", "exec"), namespace)  # what KFP runs: the body's own text
    source_model = kfp_artifact("Model", tmp_path, "in", {"ref": "registry.example/models/iris:v1"})
    with spying("parse") as calls:
        namespace["parse"](model=kfp_artifact("Model", tmp_path, "out"), source=source_model, **{MADE_UP.name: 42})
    assert calls.of("parse")[MADE_UP.name] == 42
    with spying("parse") as calls:  # KFP's "not set" (0) is the declared default
        namespace["parse"](model=kfp_artifact("Model", tmp_path, "out2"), source=source_model)
    assert calls.of("parse")[MADE_UP.name] is None
