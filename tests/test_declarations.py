"""Each step's parameters are declared once; the CLI and the Airflow operator are built from the declaration."""

from __future__ import annotations

import inspect

import pytest

from modelhaul import steps
from modelhaul.declarations import (
    DEPLOY,
    REGISTRY_ACCESS,
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
                             "require_signature", "kubeconfig", "kube_context"},
    "RollbackModelOperator": {"ref", "stage", "deployment", "only_if_digest", "tracking_uri", "kubeconfig",
                              "kube_context"},
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


# the step each command of `modelhaul` runs; its arguments are that step's declaration
CLI_STEPS = {"train": "train", "import-mlflow": "package", "parse": "parse", "convert": "convert",
             "deploy": "deploy", "promote": "promote", "rollback": "rollback", "sign": "sign", "verify": "verify"}
# what the command line has beyond the declaration: output format, the signing key's password read from standard
# input, --quiet (no progress shown), and the registry access options every command takes (also those without a
# registry, like train)
CLI_ONLY = {"json", "quiet", "help", "key_password_stdin"} | {p.name for p in REGISTRY_ACCESS if p.cli}
# declared parameters the command line leaves out, and why
OFF_CLI = {"username": "from the environment or the docker config (`modelhaul login`)",
           "password": "a secret: from the environment or the docker config",
           "key_password": "a secret: --key-password-stdin or the environment",
           "config": "ModelConfig overrides: an operator/component argument"}


def _command(name: str):
    import argparse

    from modelhaul.cli import build_parser

    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]


@pytest.mark.parametrize("command", sorted(CLI_STEPS))
def test_adding_a_parameter_is_one_edit_the_cli_and_the_operators_take_exactly_the_declaration(command):
    """Each step command's arguments are its declaration's (by flag, positional name and default), no more."""
    from modelhaul.declarations import STEPS

    params = STEPS[CLI_STEPS[command]]
    actions = {a.dest: a for a in _command(command)._actions}
    dest = {p.name: ("no_" + p.name if p.type is bool and p.default else p.name) for p in params if p.cli}
    assert set(actions) - CLI_ONLY == set(dest.values()) - CLI_ONLY, f"modelhaul {command}: CLI and declaration differ"
    for p in params:
        if not p.cli:
            assert p.name in OFF_CLI, f"{p.name}: off the command line without a reason"
            continue
        action = actions[dest[p.name]]
        if p.required and p.flag is None:
            assert action.option_strings == [], f"{p.name}: a required argument is positional"
        else:
            assert action.option_strings == [p.cli_flag] and action.required == p.required
            assert action.help == ("do not " if p.type is bool and p.default else "") + p.help
            if not (p.type is bool or p.repeat):
                assert action.default == p.default, f"modelhaul {command} {p.cli_flag}: default differs"
    # the same declaration is the operator's arguments (registry access comes from the connection)
    if CLI_STEPS[command] == "verify":
        return  # no Airflow operator verifies (the model initializer and promote's require_signature do)
    import modelhaul.operators as ops
    from modelhaul.operators.base import FROM_CONNECTIONS

    cls = next(getattr(ops, n) for n in ops.__all__ if getattr(getattr(ops, n), "step", None) == CLI_STEPS[command])
    accepted = set().union(*(inspect.signature(k.__init__).parameters for k in cls.__mro__ if "__init__" in vars(k)))
    assert {p.operator_attr for p in params if p.name not in FROM_CONNECTIONS} <= accepted


def test_a_parameter_added_to_a_declaration_reaches_the_command_line():
    import argparse

    from modelhaul.cli.commands import declared_kwargs
    from modelhaul.cli.parser import _add_declared

    params = (Param("ref", str, None, "the model", required=True), Param("replicas", int, 1, "how many copies serve"),
              Param("label", list, None, "a label (repeatable)", repeat=True), Param("dry", bool, False, "only show"))
    parser = argparse.ArgumentParser()
    _add_declared(parser, params)
    args = parser.parse_args(["m:v1", "--replicas", "3", "--label", "a", "--label", "b", "--dry"])
    assert declared_kwargs(args, params) == {"ref": "m:v1", "replicas": 3, "label": ["a", "b"], "dry": True}
    assert declared_kwargs(parser.parse_args(["m:v1"]), params) == {"ref": "m:v1", "replicas": 1, "label": None,
                                                                    "dry": False}


@pytest.mark.parametrize(("argv", "expected"), [
    (["convert", "r/m:v1", "r/m:v1-onnx", "--opset", "13", "--tolerance", "0.01"],
     {"ref": "r/m:v1", "dest_ref": "r/m:v1-onnx", "opset": 13, "tolerance": 0.01, "to": "onnx", "trust": False}),
    (["train", "pkg.mod:fn", "--param", "c=0.5", "--run-name", "nightly"],
     {"entry_point": "pkg.mod:fn", "params": {"c": "0.5"}, "run_name": "nightly", "experiment": "modelhaul"}),
    (["promote", "r/m@sha256:ab", "--gate", "a >= 1", "--gate", "b < 2", "--beats", "-loss"],
     {"gate": ["a >= 1", "b < 2"], "beats": "-loss", "min_delta": 0.0, "stage": "production"}),
    (["rollback", "r/m:v1", "--only-if-digest", "sha256:ab", "--plain-http"],
     {"only_if_digest": "sha256:ab", "plain_http": True, "deployment": None}),
    (["promote", "r/m:v1", "--kubeconfig", "ci.yaml", "--context", "ci"], {"kubeconfig": "ci.yaml", "context": "ci"}),
    (["rollback", "r/m:v1", "--kubeconfig", "ci.yaml"], {"kubeconfig": "ci.yaml", "context": None}),
    (["import-mlflow", "models:/iris@champion", "r/m:v1", "--format", "ormb"],
     {"source": "models:/iris@champion", "ref": "r/m:v1", "bundle_format": "ormb"}),
    (["import-mlflow", "models:/iris@champion", "r/m:v1", "--format", "kitops"],
     {"source": "models:/iris@champion", "ref": "r/m:v1", "bundle_format": "kitops"}),
])
def test_the_command_line_gives_each_step_its_declared_arguments(argv, expected):
    from modelhaul.cli.commands import declared_kwargs
    from modelhaul.cli.parser import _join_dash_values, build_parser
    from modelhaul.declarations import STEPS

    args = build_parser().parse_args(_join_dash_values(argv))
    kwargs = declared_kwargs(args, STEPS[CLI_STEPS[argv[0]]])
    assert {k: kwargs[k] for k in expected} == expected


# KFP needs literal function source, so components/step_bodies.py spells its signatures by hand; this keeps them
# the declaration's. What a component takes in another form, and why:
KFP_NOT_TAKEN = {
    "ref": "the upstream model artifact's metadata (source: Input[Model]) or repository + tag",
    "ca_file": "the registry Secret / mounted docker config", "username": "the registry Secret",
    "password": "the registry Secret", "config": "not a pipeline input", "kubeconfig": "a pod uses in_cluster",
    "context": "a pod uses in_cluster", "key_password": "MODELHAUL_SIGNING_KEY_PASSWORD from a Secret",
    "deployment": "the deploy component's output artifact", "only_if_digest": "rollback_on_failure's own check",
    "source": "an upstream artifact (package: the trained model)",
}
KFP_EXTRA = {"repository", "tag"}  # the reference a step writes, as two pipeline inputs
KFP_NOT_TAKEN_BY = {"convert": {"dest_ref"}}  # convert writes to repository + tag
KFP_DEFAULTS = {("deploy", "in_cluster"): True,  # a component runs in a pod
                ("sign", "key"): ""}  # empty: MODELHAUL_SIGNING_KEY from a Secret


def _kfp_unset(p: Param):
    """How KFP spells a declared default: None is "" / 0 / False / {} / [] (what every backend carries)."""
    if p.default is not None:
        return p.default
    return {str: "", int: 0, float: 0.0, bool: False, dict: {}, list: []}[p.type]


@pytest.mark.parametrize("step", ["train", "package", "parse", "convert", "sign", "deploy", "promote", "rollback"])
def test_each_kfp_component_takes_its_steps_declaration(step):
    pytest.importorskip("kfp")
    import typing

    from modelhaul.components.factory import body
    from modelhaul.declarations import STEPS

    declared = {p.name: p for p in STEPS[step]}
    taken = {k: v for k, v in inspect.signature(body(step)).parameters.items()
             if typing.get_origin(v.annotation) is not typing.Annotated}  # Input[...] / Output[...] artifacts
    assert set(taken) - set(declared) <= KFP_EXTRA, f"component {step}: not declared: {set(taken) - set(declared)}"
    excused = set(KFP_NOT_TAKEN) | KFP_NOT_TAKEN_BY.get(step, set())
    missing = set(declared) - set(taken)
    assert missing <= excused, f"component {step}: no parameter for {missing - excused}"
    for name, parameter in taken.items():
        if name in KFP_EXTRA:
            continue
        p = declared[name]
        assert parameter.annotation is p.type, f"component {step}({name}): {parameter.annotation} vs {p.type}"
        expected = KFP_DEFAULTS.get((step, name), _kfp_unset(p))
        if p.required and (step, name) not in KFP_DEFAULTS:
            assert parameter.default is inspect.Parameter.empty, f"component {step}({name}) is required"
        else:
            assert parameter.default == expected, f"component {step}({name}={parameter.default!r}): {expected!r}"
