"""One Airflow operator per pipeline step, each a thin adapter over ``modelhaul.steps``.

An operator renders its templated arguments, resolves connections into plain step arguments, calls
exactly one step function and returns the step's small JSON result (XCom). Nothing happens in
``__init__`` but storing arguments, and ``modelhaul.steps`` (with MLflow, ONNX, Kubernetes behind
it) is imported only when a task runs, so DAG parsing stays cheap. Model bytes never enter XCom.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar

from modelhaul.errors import redact
from modelhaul.operators._compat import AirflowException, AirflowSkipException, BaseOperator, conf
from modelhaul.operators.assets import asset_extra
from modelhaul.operators.hooks import (
    MLflowHook,
    RegistryHook,
    RegistrySettings,
    as_bool,
    deployment_here,
    kube_settings,
    resolve_tracking_uri,
    scoped_env,
)
from modelhaul.operators.lineage import LineageMixin, artifact_dataset, mlflow_dataset
from modelhaul.operators.links import (
    MLFLOW_URL_KEY,
    DeploymentLink,
    MLflowRunLink,
    RegistryArtifactLink,
    mlflow_run_url,
    persist_links,
)

_SECRET_ARGS = {"password", "key", "key_password"}  # a key may be given as its PEM text
_SUMMARY_KEYS = ("ref", "digest", "run_id", "model_uri", "promoted", "rolled_back", "reason", "state", "url",
                 "signed", "key_id")


def _jsonable(value: Any) -> Any:
    """What XCom can carry everywhere: plain JSON (paths, datetimes... become strings)."""
    return json.loads(json.dumps(value, default=str))


def _maybe_json(value: Any) -> Any:
    """Accept a dict or its JSON text (what a ``{{ ... | tojson }}`` template renders to)."""
    if isinstance(value, str):
        text = value.strip()
        if not text or text in ("None", "null"):
            return None
        return json.loads(text)
    return value


def _gate(value: Any) -> list[str] | str | None:
    """A gate expression, a list of them, or the JSON text of a list (a ``| tojson`` template)."""
    if isinstance(value, str) and value.strip().startswith("["):
        return json.loads(value)
    return value  # "" reaches the core, which refuses it: an empty gate is a templating mistake


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable``: one switch for every deferrable operator."""
    return conf.getboolean("operators", "default_deferrable", fallback=False)


class StepOperator(LineageMixin, BaseOperator):
    """Calls ``modelhaul.steps.<step>``; subclasses only gather arguments."""

    step: ClassVar[str] = ""
    ui_color = "#e8f1fb"

    def call_step(self, env: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
        """Run the step with ``kwargs`` (logged without secrets) and return its JSON-clean result."""
        from modelhaul import steps

        shown = {k: v for k, v in kwargs.items() if k not in _SECRET_ARGS and v not in (None, False)}
        self.log.info("modelhaul %s %s", self.step, redact(json.dumps(shown, default=str, sort_keys=True)))
        with scoped_env(env or {}):
            result = getattr(steps, self.step)(**kwargs)
        result = _jsonable(result)
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

    def registry(self) -> tuple[RegistryHook, RegistrySettings]:
        hook = RegistryHook(self.registry_conn_id)
        return hook, hook.get_conn()

    def registry_env(self, settings: RegistrySettings) -> dict[str, str]:
        return {"MODELHAUL_CA_FILE": settings.ca_file} if settings.ca_file else {}

    def qualify(self, ref: str | None, settings: RegistrySettings) -> str | None:
        if not ref:
            return ref
        return RegistryHook(self.registry_conn_id).qualify(ref, self.layout_root, settings)


class MLflowMixin:
    """Tracking URI: explicit ``tracking_uri``, else the ``modelhaul_mlflow`` connection, else
    ``MLFLOW_TRACKING_URI``, else ``fallback_tracking_uri`` (the embedded SQLite default)."""

    tracking_uri: str | None
    mlflow_conn_id: str | None
    fallback_tracking_uri: str | None

    def mlflow(self) -> tuple[str | None, dict[str, str]]:
        conn_uri, env = MLflowHook(self.mlflow_conn_id).get_conn()
        return resolve_tracking_uri(self.tracking_uri, conn_uri, self.fallback_tracking_uri), env


class MLflowTrainOperator(MLflowMixin, StepOperator):
    """Train a model under an MLflow run (``steps.train``).

    ``entry_point`` is ``package.module:function`` (called with ``train_params``) or an MLflow
    Project directory. XCom: ``{run_id, model_uri, model_id, experiment_id, metrics, ...}``.
    """

    step = "train"
    template_fields: Sequence[str] = ("entry_point", "train_params", "experiment", "run_name",
                                      "registered_model", "alias", "tracking_uri")
    template_fields_renderers = {"train_params": "json"}
    operator_extra_links = (MLflowRunLink(),)

    def __init__(self, *, entry_point: str, train_params: dict[str, Any] | None = None,
                 experiment: str = "modelhaul", run_name: str | None = None,
                 registered_model: str | None = None, alias: str | None = None,
                 tracking_uri: str | None = None,
                 mlflow_conn_id: str | None = MLflowHook.default_conn_name,
                 fallback_tracking_uri: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entry_point = entry_point
        self.train_params = train_params
        self.experiment = experiment
        self.run_name = run_name
        self.registered_model = registered_model
        self.alias = alias
        self.tracking_uri = tracking_uri
        self.mlflow_conn_id = mlflow_conn_id
        self.fallback_tracking_uri = fallback_tracking_uri

    def execute(self, context: Any) -> dict[str, Any]:
        uri, env = self.mlflow()
        result = self.call_step(env, entry_point=self.entry_point, params=_maybe_json(self.train_params),
                                tracking_uri=uri, experiment=self.experiment, run_name=self.run_name,
                                registered_model=self.registered_model, alias=self.alias)
        url = mlflow_run_url(uri, result.get("experiment_id"), result.get("run_id"))
        if url:
            context["ti"].xcom_push(key=MLFLOW_URL_KEY, value=url)
        self._set_lineage([], [mlflow_dataset(uri, result.get("run_id"))])
        return result


class PackageModelOperator(MLflowMixin, RegistryStepOperator):
    """Publish a model (MLflow ``runs:/``/``models:/`` URI or a directory) to ``ref`` (``steps.package``).

    XCom: ``{ref, digest, size, format, framework, media_type, bundle_format}``; ``outlets`` assets
    get the digest-pinned ref in their event extra.
    """

    step = "package"
    template_fields: Sequence[str] = ("source", "ref", "bundle_format", "config", "tracking_uri")
    template_fields_renderers = {"config": "json"}
    operator_extra_links = (RegistryArtifactLink(),)

    def __init__(self, *, source: str, ref: str, bundle_format: str | None = None,
                 config: dict[str, Any] | None = None, tracking_uri: str | None = None,
                 mlflow_conn_id: str | None = MLflowHook.default_conn_name,
                 fallback_tracking_uri: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.ref = ref
        self.bundle_format = bundle_format
        self.config = config
        self.tracking_uri = tracking_uri
        self.mlflow_conn_id = mlflow_conn_id
        self.fallback_tracking_uri = fallback_tracking_uri

    def execute(self, context: Any) -> dict[str, Any]:
        _, reg = self.registry()
        uri, env = self.mlflow()
        result = self.call_step(
            {**env, **self.registry_env(reg)}, source=self.source, ref=self.qualify(self.ref, reg),
            tracking_uri=uri, bundle_format=self.bundle_format or reg.bundle_format or "modelpack",
            config=_maybe_json(self.config), **reg.step_kwargs())
        self.emit_assets(context, result)
        run_id = self.source[len("runs:/"):].split("/", 1)[0] if self.source.startswith("runs:/") else None
        self._set_lineage([mlflow_dataset(uri, run_id)], [artifact_dataset(result.get("ref"))], result)
        return result


class ParseModelOperator(RegistryStepOperator):
    """Read the model's signature and layers into its config, as a new manifest (``steps.parse``).

    XCom: ``{ref, digest, parent, format, framework, signature}``.
    """

    step = "parse"
    template_fields: Sequence[str] = ("ref", "dest_ref", "trust")
    operator_extra_links = (RegistryArtifactLink(),)

    def __init__(self, *, ref: str, dest_ref: str | None = None, trust: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ref = ref
        self.dest_ref = dest_ref
        self.trust = trust

    def execute(self, context: Any) -> dict[str, Any]:
        _, reg = self.registry()
        result = self.call_step(self.registry_env(reg), ref=self.qualify(self.ref, reg),
                                dest_ref=self.qualify(self.dest_ref, reg), trust=as_bool(self.trust, "trust"),
                                **reg.step_kwargs())
        self.emit_assets(context, result)
        self._set_lineage([artifact_dataset(result.get("parent"))], [artifact_dataset(result.get("ref"))], result)
        return result


class ConvertModelOperator(RegistryStepOperator):
    """Convert to ONNX (or TorchScript), prove parity, push a derived artifact (``steps.convert``).

    A parity failure fails the task and pushes nothing. XCom: ``{ref, digest, parent, format, parity}``.
    """

    step = "convert"
    template_fields: Sequence[str] = ("ref", "dest_ref", "to", "tolerance", "opset", "trust")
    operator_extra_links = (RegistryArtifactLink(),)

    def __init__(self, *, ref: str, dest_ref: str, to: str = "onnx", tolerance: float | None = None,
                 opset: int | None = None, trust: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ref = ref
        self.dest_ref = dest_ref
        self.to = to
        self.tolerance = tolerance
        self.opset = opset
        self.trust = trust

    def execute(self, context: Any) -> dict[str, Any]:
        _, reg = self.registry()
        result = self.call_step(
            self.registry_env(reg), ref=self.qualify(self.ref, reg), to=self.to,
            dest_ref=self.qualify(self.dest_ref, reg),
            tolerance=None if self.tolerance in (None, "") else float(self.tolerance),
            opset=None if self.opset in (None, "") else int(self.opset), trust=as_bool(self.trust, "trust"),
            **reg.step_kwargs())
        self.emit_assets(context, result)
        self._set_lineage([artifact_dataset(result.get("parent"))], [artifact_dataset(result.get("ref"))], result)
        return result


class DeployModelOperator(RegistryStepOperator):
    """Serve the model on Seldon Core v1 or KServe, optionally as a canary (``steps.deploy``).

    The cluster comes from ``kubeconfig``/``kube_context``/``in_cluster`` or the ``kubernetes`` connection;
    with none configured (or ``render_only``) the manifests are written to ``render_dir``. With
    ``deferrable`` the worker applies the manifests and hands the readiness wait to the triggerer.
    A canary with no stable model to run beside (the first rollout) deploys nothing (``state``
    ``Skipped``): the promote step serves the model once it passes its gate.
    The XCom result also carries ``render_dir`` and the cluster settings, so that promote and
    rollback act on the same deployment.
    XCom: ``{ref, digest, target, name, namespace, canary_percent, manifests, applied, state, url}``.
    """

    step = "deploy"
    template_fields: Sequence[str] = ("ref", "target", "deployment_name", "namespace", "canary_percent",
                                      "stable_ref", "render_dir", "initializer_image", "registry_secret",
                                      "kubeconfig", "kube_context")
    operator_extra_links = (DeploymentLink(), RegistryArtifactLink())

    def __init__(self, *, ref: str, target: str = "seldon", deployment_name: str | None = None,
                 namespace: str | None = None, canary_percent: int | None = None,
                 stable_ref: str | None = None, render_dir: str | None = None, render_only: bool = False,
                 kube_conn_id: str | None = "kubernetes_default", kubeconfig: str | None = None,
                 kube_context: str | None = None, in_cluster: bool | None = None,
                 wait_for_ready: bool = True, timeout: float = 600.0, poll_interval: float = 5.0,
                 initializer_image: str | None = None, registry_secret: str | None = None,
                 deferrable: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ref = ref
        self.target = target
        self.deployment_name = deployment_name
        self.namespace = namespace
        self.canary_percent = canary_percent
        self.stable_ref = stable_ref
        self.render_dir = render_dir
        self.render_only = render_only
        self.kube_conn_id = kube_conn_id
        self.kubeconfig = kubeconfig
        self.kube_context = kube_context
        self.in_cluster = in_cluster
        self.wait_for_ready = wait_for_ready
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.initializer_image = initializer_image
        self.registry_secret = registry_secret
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def execute(self, context: Any) -> dict[str, Any]:
        _, reg = self.registry()
        kube = kube_settings(self.kube_conn_id, kubeconfig=self.kubeconfig or None,
                             context=self.kube_context or None, in_cluster=self.in_cluster)
        wait_for_ready = as_bool(self.wait_for_ready, "wait_for_ready")
        render = as_bool(self.render_only, "render_only") or not kube.configured
        defer = as_bool(self.deferrable, "deferrable") and wait_for_ready and not render
        canary = None if self.canary_percent in (None, "") else int(self.canary_percent)
        ref = self.qualify(self.ref, reg)
        env, reg_kwargs = self.registry_env(reg), reg.step_kwargs()
        if render:  # the credentials only read the registry: a render directory never holds a secret
            user, password = reg_kwargs.pop("username"), reg_kwargs.pop("password")
            if user and password:
                env = {**env, "MODELHAUL_USERNAME": user, "MODELHAUL_PASSWORD": password}
        result = self.call_step(
            env, ref=ref, target=self.target, name=self.deployment_name or None,
            namespace=self.namespace or kube.namespace or "default",
            canary_percent=canary, stable_ref=self.qualify(self.stable_ref, reg),
            render_dir=self.render_dir if render else None,
            **({} if render else kube.step_kwargs()),
            wait=wait_for_ready and not defer and not render, timeout=float(self.timeout),
            initializer_image=self.initializer_image, registry_secret=self.registry_secret,
            **reg_kwargs)
        if result.get("secret_hint"):
            self.log.info("the manifests refer to the Secret %s; create it in the cluster with: %s",
                          result.get("registry_secret"), result["secret_hint"])
        # the step result names how to reach the deployment again; promote/rollback should wait for
        # readiness even when this task handed its own wait to the triggerer
        result["wait"] = wait_for_ready
        if not render:
            result.update(kube.portable())  # a connection id, never a temp file of this worker
        self._set_lineage([artifact_dataset(result.get("ref"))], [], result)
        persist_links(context, result)
        if defer and result.get("applied"):
            from modelhaul.operators.triggers import DeploymentReadyTrigger, kind_of

            self.defer(
                trigger=DeploymentReadyTrigger(
                    kind=kind_of(result.get("target") or self.target), name=result["name"],
                    namespace=result.get("namespace") or "default", poll_interval=float(self.poll_interval),
                    carry=result, **kube.portable()),
                method_name="execute_complete",
                timeout=timedelta(seconds=float(self.timeout)),
            )
        return result

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Back from the triggerer: the deployment serves (return it) or failed (raise)."""
        deployment = dict(event.get("carry") or {})
        if event.get("status") != "ready":
            raise AirflowException(f"deployment {deployment.get('namespace')}/{deployment.get('name')} "
                                   f"did not become ready: {event.get('state')} {event.get('message') or ''}")
        return {**deployment, "state": event.get("state"), "url": event.get("url") or deployment.get("url")}


class SignModelOperator(RegistryStepOperator):
    """Sign the model and attach its SLSA provenance as OCI referrers (``steps.sign``).

    ``key``: an elliptic-curve private key, PEM (a path, or the text); default
    ``MODELHAUL_SIGNING_KEY``. ``key`` and ``key_password`` are not template fields on purpose:
    rendered fields are stored in the metadata database, a private key must not be. With no key at
    all the task succeeds with ``{signed: false}`` when ``optional`` (so one DAG runs signed or
    unsigned by configuration), else fails. XCom: ``{ref, digest, signed, key_id, files, signature, attestation}``.
    """

    step = "sign"
    template_fields: Sequence[str] = ("ref",)
    operator_extra_links = (RegistryArtifactLink(),)

    def __init__(self, *, ref: str, key: str | None = None, key_password: str | None = None,
                 optional: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ref = ref
        self.key = key
        self.key_password = key_password
        self.optional = optional

    def execute(self, context: Any) -> dict[str, Any]:
        import os

        _, reg = self.registry()
        ref = self.qualify(self.ref, reg)
        key = (self.key or "").strip() or os.environ.get("MODELHAUL_SIGNING_KEY", "")
        if not key:
            if not self.optional:
                raise AirflowException("no signing key: pass key= or set MODELHAUL_SIGNING_KEY")
            self.log.info("modelhaul sign: no signing key configured; %s stays unsigned", ref)
            return {"ref": ref, "signed": False, "reason": "no signing key configured"}
        result = self.call_step(self.registry_env(reg), ref=ref, key=key,
                                key_password=self.key_password or None, **reg.step_kwargs())
        result["signed"] = True
        self.emit_assets(context, result)
        return result


class PromoteModelOperator(MLflowMixin, RegistryStepOperator):
    """Move the ``stage`` tag to the candidate when its gate passes (``steps.promote``).

    ``on_reject``: ``skip`` (default: the task is skipped, so ``outlets`` emit no event and nothing
    downstream runs), ``fail``, or ``succeed`` (return the result with ``promoted: false``). A rejected
    gate never touches the stage tag. XCom: ``{promoted, reason, candidate, previous, stage, ref, digest}``.
    """

    step = "promote"
    template_fields: Sequence[str] = ("ref", "stage", "gate", "beats", "min_delta", "deployment",
                                      "tracking_uri", "require_signature")
    operator_extra_links = (RegistryArtifactLink(),)

    def __init__(self, *, ref: str, stage: str = "production", gate: list[str] | str | None = None,
                 beats: str | None = None, min_delta: float = 0.0,
                 deployment: dict[str, Any] | str | None = None, on_reject: str = "skip",
                 tracking_uri: str | None = None, require_signature: str | None = None,
                 mlflow_conn_id: str | None = MLflowHook.default_conn_name,
                 fallback_tracking_uri: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if on_reject not in ("skip", "fail", "succeed"):
            raise ValueError(f"on_reject={on_reject!r}: choose skip, fail or succeed")
        self.ref = ref
        self.stage = stage
        self.gate = gate
        self.beats = beats
        self.min_delta = min_delta
        self.deployment = deployment
        self.require_signature = require_signature
        self.on_reject = on_reject
        self.tracking_uri = tracking_uri
        self.mlflow_conn_id = mlflow_conn_id
        self.fallback_tracking_uri = fallback_tracking_uri

    def execute(self, context: Any) -> dict[str, Any]:
        _, reg = self.registry()
        uri, env = self.mlflow()
        result = self.call_step(
            {**env, **self.registry_env(reg)}, ref=self.qualify(self.ref, reg), stage=self.stage,
            gate=_gate(self.gate), beats=self.beats or None, min_delta=float(self.min_delta or 0.0),
            tracking_uri=uri, deployment=deployment_here(_maybe_json(self.deployment)),
            require_signature=self.require_signature or None, **reg.step_kwargs())
        if not result.get("promoted"):
            reason = result.get("reason") or "gate not met"
            context["ti"].xcom_push(key="promotion", value=result)
            if self.on_reject == "fail":
                raise AirflowException(f"promotion to {self.stage} rejected: {reason}")
            if self.on_reject == "skip":
                raise AirflowSkipException(f"promotion to {self.stage} rejected: {reason}")
            return result
        self.emit_assets(context, result)
        self._set_lineage([artifact_dataset(result.get("candidate"))], [artifact_dataset(result.get("ref"))],
                          result)
        return result


class RollbackModelOperator(MLflowMixin, RegistryStepOperator):
    """Restore the digest that was at ``stage`` before the last promotion (``steps.rollback``).

    With ``only_if_digest`` the rollback happens only when ``stage`` still points at that digest
    (the candidate of this run): a run whose candidate was never promoted must not undo an
    earlier, good promotion. XCom: ``{rolled_back, reason, stage, restored, replaced, ref, digest}``.
    """

    step = "rollback"
    template_fields: Sequence[str] = ("ref", "stage", "deployment", "only_if_digest", "tracking_uri")
    operator_extra_links = (RegistryArtifactLink(),)

    def __init__(self, *, ref: str, stage: str = "production",
                 deployment: dict[str, Any] | str | None = None, only_if_digest: str | None = None,
                 tracking_uri: str | None = None,
                 mlflow_conn_id: str | None = MLflowHook.default_conn_name,
                 fallback_tracking_uri: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ref = ref
        self.stage = stage
        self.deployment = deployment
        self.only_if_digest = only_if_digest
        self.tracking_uri = tracking_uri
        self.mlflow_conn_id = mlflow_conn_id
        self.fallback_tracking_uri = fallback_tracking_uri

    def execute(self, context: Any) -> dict[str, Any]:
        hook, reg = self.registry()
        ref = self.qualify(self.ref, reg)
        if self.only_if_digest is not None:
            self._check_stage_digest(hook, reg, ref)
        uri, env = self.mlflow()
        result = self.call_step({**env, **self.registry_env(reg)}, ref=ref, stage=self.stage,
                                tracking_uri=uri, deployment=deployment_here(_maybe_json(self.deployment)),
                                **reg.step_kwargs())
        self._set_lineage([], [artifact_dataset(result.get("ref"))])
        return result

    def _check_stage_digest(self, hook: RegistryHook, reg: RegistrySettings, ref: str) -> None:
        from modelhaul import artifacts
        from modelhaul.reference import Reference

        stage_ref = str(Reference.parse(ref).with_tag(self.stage).unpinned())
        with scoped_env(self.registry_env(reg)):
            pinned = artifacts.try_resolve(stage_ref, hook.options(reg))
        current = pinned.rsplit("@", 1)[1] if pinned and "@" in pinned else None
        if not self.only_if_digest or current != self.only_if_digest:
            raise AirflowSkipException(
                f"{self.stage} points at {current or 'nothing'}, not at this run's candidate "
                f"{self.only_if_digest or '(none)'}: nothing of this run to roll back")
