"""Each step's parameters, declared once, as small typed values the adapters derive theirs from.

A :class:`Param` says what a parameter is (name, type, default, help, whether it is a secret and
whether Airflow renders it as a template); the CLI's options, the Airflow operators' arguments and
``template_fields`` are built from these lists (the KFP components' literal signatures are checked
against them), and every adapter hands a step its arguments through :func:`step_arguments`, which
coerces each with :meth:`Param.coerce`; so adding a parameter is one edit here (and its use in the
core, and a KFP component's signature line). The groups that several steps share are
values: :data:`REGISTRY_ACCESS` (how to reach a registry: the fields of
:class:`~modelhaul.registry_options.RegistryOptions`), :class:`KubeTarget` (which cluster) and
:class:`DeploymentSettings` (what to serve and how). TFX's ``ComponentSpec`` and
Airflow providers' typed hooks are the models.

This module is cheap to import (no third-party library) and is, with ``modelhaul.steps``, the
only part of the core the adapters may import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

from modelhaul.errors import ConfigError
from modelhaul.flags import parse_bool
from modelhaul.registry_options import RegistryOptions

__all__ = ["CONVERT", "DEPLOY", "PACKAGE", "PARSE", "PROMOTE", "ROLLBACK", "SIGN", "STATUS", "STEPS", "TARGET_KINDS",
           "TRAIN", "VERIFY", "fields_from_params", "step_arguments",
           "REGISTRY_ACCESS", "DeploymentSettings", "KubeTarget", "Param", "jsonable", "kind_of", "parse_bool",
           "registry_options", "tracking_uri_of"]


@dataclass(frozen=True)
class Param:
    """One parameter of a step.

    ``flag``/``attr`` rename it for the CLI (``--canary``) and for an Airflow operator
    (``deployment_name``, where ``name`` would read as the task's); ``cli=False`` keeps it off the
    command line (secrets come from the environment or standard input there). On the command line a
    required parameter without a ``flag`` is positional (``metavar`` names it in the usage line),
    ``repeat`` takes the option once per value, and ``help`` is the option's help text.
    """

    name: str
    type: type = str
    default: Any = None
    help: str = ""
    secret: bool = False
    templated: bool = True
    required: bool = False
    choices: tuple[str, ...] | None = None
    flag: str | None = None
    metavar: str | None = None
    attr: str | None = None
    cli: bool = True
    repeat: bool = False

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def operator_attr(self) -> str:
        return self.attr or self.name

    def coerce(self, value: Any, label: str | None = None) -> Any:
        """A value as an adapter holds it, as the step expects it (``label`` names it in an error).

        Templates render text and KFP carries ``""`` for "not set": None, and ``""`` where the
        parameter has no text (or list) default, mean the default; ``"true"``/``"False"`` are booleans (strictly),
        ``"5"`` is 5, and the JSON text of a dict or list (``{{ x | tojson }}``) is that dict or list.
        """
        label = label or self.operator_attr
        # a list's "" is one empty item (a gate template that rendered to nothing): the step refuses it
        if value is None or value == "" and self.type is not list and (self.type is not str or self.default is None):
            return self.default
        if self.type is bool:
            return parse_bool(value, label)
        if self.type in (int, float):
            try:
                return self.type(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{label}={value!r}: expected a number") from None
        if self.type in (dict, list) and isinstance(value, str):
            text = value.strip()
            if text in ("None", "null"):
                return self.default
            if self.type is list and not text.startswith("["):
                return value  # one item (a gate expression): the step takes it as such
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{label}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                                  f"pass a {self.type.__name__} or its JSON text") from None
        return value


_ABSENT = object()
#: how KFP spells "not set" for a parameter whose default is None (what every backend carries)
_KFP_UNSET = {str: "", int: 0, float: 0.0, dict: {}, list: []}


def step_arguments(params: tuple[Param, ...], held: Mapping[str, Any] | object, *, by_attr: bool = False,
                   kfp: bool = False, complete: bool = False) -> dict[str, Any]:
    """A step's keyword arguments from the values an adapter holds, each coerced by its :class:`Param`.

    This is the one way an adapter passes a step its parameters, so a parameter added to a
    declaration reaches the step from every adapter that holds it. ``held``: a mapping (a KFP
    component's arguments, a deploy result) or an object (an operator after templating, an
    argparse namespace). A parameter it does not hold is left out (the step's default applies),
    unless ``complete`` (then it is its default). ``by_attr``: the values are under the operator's
    names (``deployment_name``); ``kfp``: KFP's "not set" spellings (``""``, ``0``, ``{}``, ``[]``)
    mean the default where that is None.
    """
    def get(key: str) -> Any:
        if isinstance(held, Mapping):
            return held.get(key, _ABSENT)
        return getattr(held, key, _ABSENT)

    out: dict[str, Any] = {}
    for p in params:
        key = p.operator_attr if by_attr else p.name
        value = get(key)
        if value is _ABSENT:
            if not complete:
                continue
            value = None
        if kfp and p.default is None and p.type in _KFP_UNSET and value == _KFP_UNSET[p.type] \
                and not isinstance(value, bool):
            value = None
        out[p.name] = p.coerce(value, key)
    return out


def fields_from_params(cls: type) -> type:
    """Class decorator: a frozen dataclass whose fields are ``cls.PARAMS`` (one source for both)."""
    own = cls.__dict__.get("__annotations__", {})
    annotations = {k: v for k, v in own.items() if k == "PARAMS"}
    inherited = {f.name for f in fields(cls)} if hasattr(cls, "__dataclass_fields__") else set()
    for p in cls.PARAMS:
        if p.name in inherited:
            continue
        annotations[p.name] = p.type if p.default is not None else p.type | None
        setattr(cls, p.name, p.default)
    cls.__annotations__ = annotations
    return dataclass(frozen=True)(cls)


def _values(cls: type, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``cls`` present in ``kwargs`` (None means: the default)."""
    return {f.name: kwargs[f.name] for f in fields(cls) if kwargs.get(f.name) is not None}


# how to reach a registry: the fields of RegistryOptions a step takes (the timeouts come from the environment)
REGISTRY_ACCESS: tuple[Param, ...] = (
    Param("plain_http", bool, False, "talk to the registry over plain HTTP", templated=False),
    Param("insecure", bool, False, "skip TLS certificate verification (testing only)", templated=False),
    Param("ca_file", str, None, "CA bundle to verify the registry's certificate", metavar="PEM", templated=False),
    Param("username", str, None, "registry user (else MODELHAUL_USERNAME, else the docker config)", cli=False,
          templated=False),
    Param("password", str, None, "registry password (else MODELHAUL_PASSWORD)", secret=True, cli=False,
          templated=False),
)
REGISTRY_ACCESS_NAMES = frozenset(p.name for p in REGISTRY_ACCESS)


def registry_options(registry: Mapping[str, Any], step: str) -> RegistryOptions:
    """A step's registry arguments, checked (one line naming an unknown one), resolved against the environment."""
    unknown(REGISTRY_ACCESS, registry, step)
    return RegistryOptions.resolve(**registry)


@fields_from_params
class KubeTarget:
    """Which cluster: a kubeconfig (and context), or the pod's service account; none means render.

    Its fields are its ``PARAMS`` (``kubeconfig``, ``context``, ``in_cluster``).
    """

    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("kubeconfig", str, None, "kubeconfig file (default: $KUBECONFIG, ~/.kube/config)", metavar="FILE"),
        Param("context", str, None, "kubeconfig context (default: its current context)", attr="kube_context"),
        Param("in_cluster", bool, False, "use the pod's service account", templated=False),
    )

    @classmethod
    def of(cls, kwargs: Mapping[str, Any]) -> KubeTarget:
        return cls(**{k: v for k, v in step_arguments(cls.PARAMS, kwargs).items() if v is not None})

    @property
    def configured(self) -> bool:
        return bool(self.kubeconfig or self.context or self.in_cluster)

    def kwargs(self) -> dict[str, Any]:
        return {"kubeconfig": self.kubeconfig, "context": self.context, "in_cluster": self.in_cluster}


TARGET_KINDS = {"seldon": "SeldonDeployment", "kserve": "InferenceService"}


def kind_of(target: str) -> str:
    """The resource kind a deploy ``target`` creates (``seldon`` -> ``SeldonDeployment``); a kind stays."""
    return TARGET_KINDS.get(str(target).lower(), target)


@fields_from_params
class DeploymentSettings:
    """What to serve where: platform, resource name and namespace, canary, render or apply, waiting.

    Its fields are its ``PARAMS`` (``target``, ``name``, ``namespace``, ``canary_percent``, ...).
    """

    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("target", str, "seldon", "serving platform", choices=tuple(TARGET_KINDS)),
        Param("name", str, None, "resource name (default: from the repository name)", attr="deployment_name"),
        Param("namespace", str, "default", "namespace to deploy into"),
        Param("canary_percent", int, None, "serve as a canary with this share of traffic", flag="--canary",
              metavar="PERCENT"),
        Param("stable_ref", str, None, "the model the canary runs beside (default: the one serving now)"),
        Param("render_dir", str, None, "write manifests to DIR instead of applying them", flag="--render",
              metavar="DIR"),
        Param("wait", bool, True, "wait for readiness after applying", flag="--no-wait", attr="wait_for_ready",
              templated=False),
        Param("timeout", float, 600.0, "seconds to wait for readiness", templated=False),
        Param("initializer_image", str, None, "image of the model initializer (default: modelhaul's)"),
        Param("registry_secret", str, None,
              "Secret with MODELHAUL_USERNAME/MODELHAUL_PASSWORD the model initializer reads", metavar="NAME"),
    )

    @classmethod
    def of(cls, kwargs: Mapping[str, Any]) -> DeploymentSettings:
        """The settings given in ``kwargs`` (values as given: the deploy step checks them, in one line each)."""
        return cls(**_values(cls, kwargs))

    def kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


REF = Param("ref", str, None, "model reference: REGISTRY/REPO:TAG[@sha256:...] or oci:PATH:TAG", required=True)

TRACKING_URI = Param("tracking_uri", str, None, "MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
# promote and rollback move the registered model's alias too when MLflow is given
TRACKING_URI_ALIAS = replace(TRACKING_URI, help="MLflow tracking URI (to move the registered model's alias too)")
TRUST = Param("trust", bool, False, "allow loading pickle/joblib files (runs their code)")
STAGE = Param("stage", str, "production", "the stage tag to move")
# the result of the deploy step (where traffic moves); on the command line, the file `deploy --json` wrote
DEPLOYMENT = Param("deployment", dict, None, "JSON file with the result of `deploy --json`")
_ACCESS = REGISTRY_ACCESS

# one declaration per step, in the step's own order; steps.py's signatures are checked against them
TRAIN: tuple[Param, ...] = (
    Param("entry_point", str, None, "package.module:function, or an MLflow Project directory", required=True),
    Param("params", dict, None, "training parameter (repeatable)", attr="train_params", flag="--param",
          metavar="KEY=VALUE", repeat=True),
    TRACKING_URI,
    Param("experiment", str, "modelhaul", "MLflow experiment name"),
    Param("run_name", str, None, "MLflow run name"),
    Param("registered_model", str, None, "also register the model under this name"),
    Param("alias", str, None, "alias to set on the registered version"),
)
#: the artifact formats modelhaul writes: CNCF ModelPack, KitOps ModelKit, ormb (every adapter's choice)
BUNDLE_FORMATS = ("modelpack", "kitops", "ormb")
PACKAGE: tuple[Param, ...] = (
    # runs:/..., models:/... or a model directory; the CLI's import-mlflow takes the MLflow URIs
    Param("source", str, None, "runs:/RUN_ID/NAME, models:/NAME/VERSION, models:/NAME@ALIAS or models:/m-ID",
          required=True, metavar="uri"),
    REF, TRACKING_URI,
    Param("bundle_format", str, "modelpack", "artifact format to write", choices=BUNDLE_FORMATS,
          flag="--format"),
    Param("config", dict, None, "ModelConfig fields that override the model's", cli=False),
    *_ACCESS,
)
PARSE: tuple[Param, ...] = (
    REF, Param("dest_ref", str, None, "where to push the parsed artifact (default: the same tag)", flag="--dest"),
    TRUST, *_ACCESS,
)
CONVERT: tuple[Param, ...] = (
    replace(REF, help=f"the model to convert ({REF.help})"),
    Param("to", str, "onnx", "target format", choices=("onnx", "torchscript")),
    Param("dest_ref", str, None, "where to push the converted model", required=True, metavar="dst"),
    Param("tolerance", float, None, "largest output difference the parity check accepts"),
    Param("opset", int, None, "ONNX opset to convert to"),
    TRUST, *_ACCESS,
)
# steps.deploy: the model, how to serve it, on which cluster, reading which registry
# deploy and promote refuse a model whose pickles import code outside the allow-list, unless trusted
TRUST_UNSAFE = Param("trust", bool, False, "serve a model parse marked unsafe (its pickle imports code)",
                     templated=False)
DEPLOY: tuple[Param, ...] = (REF, *DeploymentSettings.PARAMS, TRUST_UNSAFE, *KubeTarget.PARAMS, *_ACCESS)
# steps.deployment_status: the readiness the deployment sensor and the deferrable trigger poll
STATUS: tuple[Param, ...] = (
    Param("target", str, None, "the platform (seldon, kserve) or the resource kind", required=True),
    replace(DeploymentSettings.PARAMS[1], required=True), DeploymentSettings.PARAMS[2], *KubeTarget.PARAMS,
)
# promote/rollback reach the deployment's cluster as the deploy result recorded, unless told otherwise
KUBE_OVERRIDE: tuple[Param, ...] = (
    replace(KubeTarget.PARAMS[0], help="kubeconfig for the deployment's cluster, found as kubectl finds it "
                                       "(default: what the deploy result recorded)"),
    replace(KubeTarget.PARAMS[1], help="kubeconfig context for the deployment's cluster "
                                       "(default: what the deploy result recorded)"),
)
PROMOTE: tuple[Param, ...] = (
    REF, STAGE,
    # expressions over the candidate's metrics
    Param("gate", list, None, 'e.g. "accuracy >= 0.9" (repeatable)', repeat=True),
    Param("beats", str, None, "metric that must beat the model at the stage (-metric: lower is better)"),
    Param("min_delta", float, 0.0, "by how much --beats must be beaten"),
    TRACKING_URI_ALIAS, DEPLOYMENT, *KUBE_OVERRIDE,
    Param("require_signature", str, None,
          "reject the candidate unless it is signed by this public key (PEM) and untampered", metavar="PUB"),
    TRUST_UNSAFE, *_ACCESS,
)
ROLLBACK: tuple[Param, ...] = (
    REF, replace(STAGE, help="the stage tag to restore"), TRACKING_URI_ALIAS, DEPLOYMENT, *KUBE_OVERRIDE,
    Param("only_if_digest", str, None, "act only when the stage points at this digest (this run's candidate)",
          metavar="DIGEST"),
    *_ACCESS,
)
SIGN: tuple[Param, ...] = (
    REF, Param("key", str, None, "elliptic-curve private key, PEM", required=True, flag="--key", secret=True),
    # from standard input on the command line (--key-password-stdin), else MODELHAUL_SIGNING_KEY_PASSWORD
    Param("key_password", str, None, "the private key's password", secret=True, cli=False),
    *_ACCESS,
)
VERIFY: tuple[Param, ...] = (
    REF, Param("key", str, None, "the signer's public key, PEM", required=True, flag="--key"), *_ACCESS,
)
STEPS: dict[str, tuple[Param, ...]] = {"train": TRAIN, "package": PACKAGE, "parse": PARSE, "convert": CONVERT,
                                       "deploy": DEPLOY, "promote": PROMOTE, "rollback": ROLLBACK, "sign": SIGN,
                                       "verify": VERIFY}


def unknown(params: tuple[Param, ...], kwargs: Mapping[str, Any], step: str) -> None:
    """Refuse an argument the step does not declare, in one line."""
    extra = sorted(set(kwargs) - {p.name for p in params})
    if extra:
        raise ConfigError(f"{step}: unknown argument(s) {', '.join(extra)}; "
                          f"expected {', '.join(p.name for p in params)}")


def jsonable(value: Any) -> Any:
    """What XCom and KFP outputs can carry everywhere: plain JSON (paths, datetimes... become strings)."""
    return json.loads(json.dumps(value, default=str))


def tracking_uri_of(explicit: str | None, connection: str | None = None, fallback: str | None = None) -> str | None:
    """MLflow tracking URI precedence: the argument, a connection's, ``MLFLOW_TRACKING_URI``, the fallback."""
    import os

    return explicit or connection or os.environ.get("MLFLOW_TRACKING_URI") or fallback
