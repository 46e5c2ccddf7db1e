"""What every modelhaul operator shares: call one step, log it without secrets, return plain JSON.

An operator renders its templated arguments, resolves connections into plain step arguments, calls
exactly one function of ``modelhaul.steps`` and returns its small JSON result (XCom). Nothing
happens in ``__init__`` but storing arguments, and ``modelhaul.steps`` (with MLflow, ONNX,
Kubernetes behind it) is imported only when a task runs, so DAG parsing stays cheap. Model bytes
never enter XCom.

:func:`declared_operator` builds an operator's arguments and ``template_fields`` from a step's
declaration (:mod:`modelhaul.declarations`), so a parameter added there reaches Airflow unchanged.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, ClassVar

from modelhaul.declarations import REGISTRY_ACCESS, STEPS, Param, jsonable, step_arguments, tracking_uri_of
from modelhaul.errors import redact, said_in
from modelhaul.operators._compat import BaseOperator, conf
from modelhaul.operators.assets import asset_extra
from modelhaul.operators.connections import scoped_env
from modelhaul.operators.lineage import LineageMixin, artifact_dataset
from modelhaul.operators.mlflow_hook import MLflowHook
from modelhaul.operators.registry_hook import RegistryConnection, RegistryHook

_SECRET_ARGS = {"password", "key", "key_password"}  # a key may be given as its PEM text
_SUMMARY_KEYS = ("ref", "digest", "run_id", "model_uri", "promoted", "rolled_back", "reason", "state", "url",
                 "signed", "key_id")


def maybe_json(value: Any) -> Any:
    """Accept a dict or its JSON text (what a ``{{ ... | tojson }}`` template renders to)."""
    if isinstance(value, str):
        text = value.strip()
        if not text or text in ("None", "null"):
            return None
        return json.loads(text)
    return value


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable``: one switch for every deferrable operator."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


class StepOperator(LineageMixin, BaseOperator):
    """Calls ``modelhaul.steps.<step>``; subclasses only gather arguments."""

    step: ClassVar[str] = ""
    ui_color = "#e8f1fb"

    def step_arguments(self, **resolved: Any) -> dict[str, Any]:
        """The step's declared arguments from this operator's (rendered) attributes, coerced.

        ``resolved``: what the operator worked out itself (a qualified ``ref``, the connection's
        tracking URI and registry access), under the step's names; it wins over the attribute.
        Every declared parameter the operator holds reaches the step without being listed here.
        """
        params = STEPS[self.step]
        held = step_arguments(tuple(p for p in params if p.name not in FROM_CONNECTIONS), self, by_attr=True)
        # an undeclared name passes as given: the step refuses it in one line, nothing is dropped silently
        return {**held, **resolved, **step_arguments(params, resolved)}

    def call_step(self, env: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
        """Run the step with ``kwargs`` (logged without secrets) and return its JSON-clean result."""
        from modelhaul import steps

        shown = {k: v for k, v in kwargs.items() if k not in _SECRET_ARGS and v not in (None, False)}
        self.log.info("modelhaul %s %s", self.step, redact(json.dumps(shown, default=str, sort_keys=True)))
        # errors say what to do in Airflow; the task log gets a line per layer and, every 15 s, where the bytes are
        with scoped_env(env or {}), said_in("airflow"), steps.watching(steps.LogLines(self.log.info, every=15.0,
                                                                                       what=self.step)):
            result = getattr(steps, self.step)(**kwargs)
        result = jsonable(result)
        summary = {k: result[k] for k in _SUMMARY_KEYS if result.get(k) is not None}
        self.log.info("modelhaul %s -> %s", self.step, redact(json.dumps(summary, default=str)))
        return result

    def emit_assets(self, context: Any, result: dict[str, Any]) -> None:
        """Attach the digest-pinned ref to the events of every asset in ``outlets``."""
        events = context.get("outlet_events") if hasattr(context, "get") else None
        if events is None:
            return
        extra = asset_extra(result)
        for outlet in self.outlets or ():
            if hasattr(outlet, "uri"):
                events[outlet].extra.update(extra)


class RegistryStepOperator(StepOperator):
    """A step that reads or writes the registry: credentials from a ``modelhaul_registry`` connection.

    A bare reference (``models/iris:v1``) goes to the connection's registry, or, when no such
    connection is defined, to a local OCI layout under ``layout_root`` (the embedded default).
    """

    def __init__(self, *, registry_conn_id: str | None = RegistryHook.default_conn_name,
                 layout_root: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.registry_conn_id = registry_conn_id
        self.layout_root = layout_root

    def registry(self) -> tuple[RegistryHook, RegistryConnection]:
        hook = RegistryHook(self.registry_conn_id)
        return hook, hook.get_conn()

    def registry_env(self, settings: RegistryConnection) -> dict[str, str]:
        return {"MODELHAUL_CA_FILE": settings.ca_file} if settings.ca_file else {}

    def qualify(self, ref: str | None, settings: RegistryConnection) -> str | None:
        if not ref:
            return ref
        return RegistryHook(self.registry_conn_id).qualify(ref, self.layout_root, settings)

    def connected(self, reg: RegistryConnection) -> tuple[dict[str, str], dict[str, Any]]:
        """``(environment, step arguments)`` the connections give: every declared reference (``ref``,
        ``*_ref``) qualified against the registry connection, and its registry access."""
        refs = {p.name: self.qualify(getattr(self, p.operator_attr), reg) for p in STEPS[self.step]
                if (p.name == "ref" or p.name.endswith("_ref")) and hasattr(self, p.operator_attr)}
        return self.registry_env(reg), {**refs, **reg.step_kwargs()}

    def run_step(self, **resolved: Any) -> dict[str, Any]:
        """Call the step with what the connections give and ``resolved`` (the operator's own, winning)."""
        _, reg = self.registry()
        env, given = self.connected(reg)
        return self.call_step(env, **self.step_arguments(**{**given, **resolved}))


class DerivedArtifactOperator(RegistryStepOperator):
    """A step that publishes a new artifact made from another (parse, convert): its XCom is the result,
    its asset the new artifact, its lineage parent -> new."""

    def execute(self, context: Any) -> dict[str, Any]:
        result = self.run_step()
        self.emit_assets(context, result)
        self._set_lineage([artifact_dataset(result.get("parent"))], [artifact_dataset(result.get("ref"))], result)
        return result


class MLflowStepOperator(StepOperator):
    """A step that talks to MLflow. Tracking URI: explicit ``tracking_uri``, else the
    ``modelhaul_mlflow`` connection, else ``MLFLOW_TRACKING_URI``, else ``fallback_tracking_uri``
    (the embedded SQLite default)."""

    def __init__(self, *, tracking_uri: str | None = None,
                 mlflow_conn_id: str | None = MLflowHook.default_conn_name,
                 fallback_tracking_uri: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tracking_uri = tracking_uri
        self.mlflow_conn_id = mlflow_conn_id
        self.fallback_tracking_uri = fallback_tracking_uri

    def mlflow(self) -> tuple[str | None, dict[str, str]]:
        conn_uri, env = MLflowHook(self.mlflow_conn_id).get_conn()
        return tracking_uri_of(self.tracking_uri, conn_uri, self.fallback_tracking_uri), env


class MLflowRegistryStepOperator(MLflowStepOperator, RegistryStepOperator):
    """A step that talks to MLflow and to the registry (package, promote, rollback)."""

    def connected(self, reg: RegistryConnection) -> tuple[dict[str, str], dict[str, Any]]:
        """The registry connection's environment and arguments, and the tracking URI and MLflow's credentials."""
        env, given = super().connected(reg)
        uri, mlflow_env = self.mlflow()
        return {**mlflow_env, **env}, {**given, "tracking_uri": uri}


# what an operator takes from its connections instead of as arguments
FROM_CONNECTIONS = frozenset({*(p.name for p in REGISTRY_ACCESS), "tracking_uri"})


def declared_operator(name: str, base: type, params: tuple[Param, ...], *, defaults: dict[str, Any] | None = None,
                      module: str = __name__) -> type:
    """A subclass of ``base`` whose keyword arguments and ``template_fields`` are ``params``.

    Registry access and the tracking URI come from connections (:data:`FROM_CONNECTIONS`, the
    base classes); each other parameter is stored under its operator name (``Param.attr``); ``defaults`` overrides a
    declared default for Airflow (None: "from the connection"). The generated ``__init__`` carries
    a real signature, so Airflow's ``default_args``, ``partial``/``expand`` and required-argument
    checks see the declared names.
    """
    defaults = defaults or {}
    templated_by_base = ("tracking_uri",) if issubclass(base, MLflowStepOperator) else ()
    params = tuple(p for p in params if p.name not in FROM_CONNECTIONS)
    empty = inspect.Parameter.empty
    slots = [(p.operator_attr, empty if p.required else defaults.get(p.operator_attr, p.default))
             for p in params if not p.secret]

    def init(self: Any, **kwargs: Any) -> None:
        own = {}
        for attr, default in slots:
            if attr in kwargs:
                own[attr] = kwargs.pop(attr)
            elif default is empty:
                raise TypeError(f"{type(self).__name__}: missing the keyword argument {attr!r}")
            else:
                own[attr] = default
        super(cls, self).__init__(**kwargs)
        for attr, value in own.items():
            setattr(self, attr, value)

    init.__name__ = init.__qualname__ = "__init__"
    init.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(attr, inspect.Parameter.KEYWORD_ONLY, default=default) for attr, default in slots]
        + [inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)])
    template_fields = (*(p.operator_attr for p in params if p.templated and not p.secret), *templated_by_base)
    cls = type(base)(name, (base,), {"__init__": init, "template_fields": template_fields,
                                     "__module__": module, "__qualname__": name})
    return cls
