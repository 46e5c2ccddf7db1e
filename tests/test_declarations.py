"""Each step's parameters are declared once; the CLI and the Airflow operator are built from the declaration."""

from __future__ import annotations

import inspect

import pytest

from modelhaul import steps
from modelhaul.declarations import (
    DEPLOY,
    REGISTRY_ACCESS_NAMES,
    DeploymentSettings,
    KubeTarget,
    Param,
    registry_options,
)
from modelhaul.errors import ConfigError

_ACCESS = set(REGISTRY_ACCESS_NAMES)


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
    options = registry_options({"username": "robot", "password": "s3cret", "plain_http": True}, "test")
    assert options.username == "robot" and "s3cret" not in repr(options)
    assert KubeTarget.of({"in_cluster": "false"}).configured is False


def test_each_declaration_is_its_steps_signature():
    from modelhaul.declarations import STEPS

    for name, params in STEPS.items():
        signature = inspect.signature(inspect.unwrap(getattr(steps, name)))
        explicit = {k: v for k, v in signature.parameters.items() if v.kind is not inspect.Parameter.VAR_KEYWORD}
        declared = {p.name: p for p in params}
        assert set(explicit) <= set(declared), f"steps.{name}: not declared: {set(explicit) - set(declared)}"
        for key, parameter in explicit.items():
            if parameter.default is not inspect.Parameter.empty:
                assert declared[key].default == parameter.default, f"steps.{name}({key}=...): defaults differ"
            else:
                assert declared[key].required, f"steps.{name}: {key} is required"
        undeclared_kwargs = set(declared) - set(explicit)
        assert undeclared_kwargs <= _ACCESS | {p.name for p in (*DeploymentSettings.PARAMS, *KubeTarget.PARAMS)}


OPERATOR_TEMPLATE_FIELDS = {  # as they were before the declarations: a DAG's templates keep rendering
    "MLflowTrainOperator": {"entry_point", "train_params", "experiment", "run_name", "registered_model", "alias",
                            "tracking_uri"},
    "PackageModelOperator": {"source", "ref", "bundle_format", "config", "tracking_uri"},
    "ParseModelOperator": {"ref", "dest_ref", "trust"},
    "ConvertModelOperator": {"ref", "dest_ref", "to", "tolerance", "opset", "trust"},
    "PromoteModelOperator": {"ref", "stage", "gate", "beats", "min_delta", "deployment", "tracking_uri",
                             "require_signature"},
    "RollbackModelOperator": {"ref", "stage", "deployment", "only_if_digest", "tracking_uri"},
}


@pytest.mark.parametrize("operator", sorted(OPERATOR_TEMPLATE_FIELDS))
def test_operators_take_their_steps_declaration(operator):
    import modelhaul.operators as ops
    from modelhaul.declarations import STEPS
    from modelhaul.operators.base import FROM_CONNECTIONS

    cls = getattr(ops, operator)
    assert set(cls.template_fields) == OPERATOR_TEMPLATE_FIELDS[operator]
    accepted = set().union(*(inspect.signature(k.__init__).parameters for k in cls.__mro__
                             if "__init__" in vars(k)))
    for p in STEPS[cls.step]:
        if p.name not in FROM_CONNECTIONS:
            assert p.operator_attr in accepted, f"{operator}: no argument for {p.name}"
