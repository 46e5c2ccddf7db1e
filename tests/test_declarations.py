"""Each step's parameters are declared once; the CLI and the Airflow operator are built from the declaration."""

from __future__ import annotations

import inspect

import pytest

from modelhaul import steps
from modelhaul.declarations import DEPLOY, DeploymentSettings, KubeTarget, Param, RegistryAccess
from modelhaul.errors import ConfigError

_ACCESS = {p.name for p in RegistryAccess.PARAMS}


def _deploy_cli_options() -> dict[str, str]:
    from modelhaul.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["deploy"]
    return {opt: action.dest for action in sub._actions for opt in action.option_strings}


def test_every_deploy_parameter_is_a_cli_option():
    options = _deploy_cli_options()
    for p in DEPLOY:
        if p.name == "ref" or not p.cli:
            continue
        assert p.cli_flag in options, f"{p.name}: no {p.cli_flag} on `modelhaul deploy`"
    # the README's spelling of the deploy options stays what it was
    for flag in ("--target", "--name", "--namespace", "--canary", "--stable-ref", "--render", "--registry-secret",
                 "--kubeconfig", "--context", "--in-cluster", "--no-wait", "--timeout"):
        assert flag in options
    assert "--password" not in options  # secrets come from the environment or standard input


def test_every_deploy_parameter_is_an_operator_argument_and_the_template_fields_are_unchanged():
    from modelhaul.operators import DeployModelOperator

    signature = inspect.signature(DeployModelOperator.__mro__[1].__init__)
    for p in DEPLOY:
        if p.name in _ACCESS:
            continue  # from the registry connection
        assert p.operator_attr in signature.parameters
    assert set(DeployModelOperator.template_fields) == {
        "ref", "target", "deployment_name", "namespace", "canary_percent", "stable_ref", "render_dir",
        "initializer_image", "registry_secret", "kubeconfig", "kube_context"}
    op = DeployModelOperator(task_id="d", ref="models/iris:v1", deployment_name="iris", wait_for_ready=False)
    assert (op.ref, op.deployment_name, op.wait_for_ready, op.target, op.timeout) == \
        ("models/iris:v1", "iris", False, "seldon", 600.0)
    with pytest.raises(TypeError, match="ref"):
        DeployModelOperator(task_id="e")


def test_a_parameter_added_to_a_declaration_reaches_the_operator():
    from modelhaul.operators.base import RegistryStepOperator, declared_operator

    params = (*DeploymentSettings.PARAMS, Param("replicas", int, 1, "how many copies serve"))
    cls = declared_operator("Probe", RegistryStepOperator, params)
    op = cls(task_id="p", replicas=3)
    assert op.replicas == 3 and "replicas" in cls.template_fields
    assert "replicas" in inspect.signature(cls.__init__).parameters


def test_a_step_refuses_an_argument_it_does_not_declare_in_one_line():
    with pytest.raises(ConfigError, match=r"deploy: unknown argument\(s\) replicas; expected ref, target"):
        steps.deploy(ref="oci:/nowhere:v1", replicas=2)
    with pytest.raises(ConfigError, match=r"fetch: unknown argument\(s\) plain_htttp"):
        steps.fetch(ref="oci:/nowhere:v1", dest="/nonexistent", plain_htttp=True)


def test_registry_access_never_prints_the_password():
    access = RegistryAccess.of({"username": "robot", "password": "s3cret", "plain_http": True})
    assert "s3cret" not in repr(access)
    assert KubeTarget.of({"in_cluster": "false"}).configured is False
