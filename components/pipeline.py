"""The ``retrain_and_redeploy`` pipeline: train, package, parse, convert, sign, canary, gate, smoke check.

::

    train ─► package ─► parse ─► convert ─► sign ─► deploy canary ─► promote (the gate) ─► smoke check
    ExitHandler around all of it: rollback_on_failure

Each task takes the previous task's ``Model`` artifact, so KFP's metadata store links the chain;
training metrics and the conversion's parity are ``Metrics`` artifacts (charted in the UI).

``promote`` is the gate: it evaluates the gate expressions (and ``beats``) against the model now at
the stage and, on pass, moves the stage tag, the MLflow alias and the traffic (the candidate
alone, all traffic) in one step, so that a decision and its effect cannot come apart; on a
rejection it moves nothing and retires the candidate's canary. On a first run there is no stable
model: the canary is skipped, and promote deploys the model only if it passes. ``smoke_check`` then
runs the team's own check (``package.module:function``) on the promoted model. If any task fails,
the exit handler rolls back — only when this run's candidate had reached the stage.

``sign`` signs the converted candidate when the ``signing_secret`` Secret (or, locally, the
``MODELHAUL_SIGNING_KEY`` env var) holds a key, and does nothing otherwise; ``verify_key`` (a public
key, PEM text) makes promote reject a candidate that is not signed by it.

Defaults are the cluster's: deploy applies to the cluster the pipeline runs on (with the pod's
service account) unless ``render_dir`` asks for manifests; MLflow is the server named by
``tracking_uri`` or by ``MLFLOW_TRACKING_URI`` in the MLflow Secret — never a store inside a pod.

Every task has caching off: a recurring run with unchanged parameters must still retrain and push.
Tags are per run (the KFP job id: ``repository:<job id>`` for the packaged model,
``repository:<job id>-<to>`` for the converted one), so concurrent runs never overwrite each other.
"""

# No ``from __future__ import annotations``: KFP reads the pipeline signature's types at runtime.
from kfp import dsl
from kfp.dsl.base_component import BaseComponent

from modelhaul.components.credentials import (
    use_mlflow_credentials,
    use_registry_credentials,
    use_signing_key,
)
from modelhaul.components.factory import build_all
from modelhaul.components.inputs import document_choices
from modelhaul.components.runtime import Runtime, published

NAME = "retrain-and-redeploy"
#: Trains a small scikit-learn classifier and logs it to MLflow (shipped with modelhaul).
DEFAULT_ENTRY_POINT = "modelhaul.examples.iris:train"


def import_model(ref: str) -> dsl.PipelineTask:
    """Start a pipeline from a model already in a registry: an importer whose ``Model`` names ``ref``.

    Its output feeds any step's ``source``/``candidate`` input (e.g. promote an existing model), so
    a pipeline that starts from a reference keeps the same lineage as one that trains.
    """
    return dsl.importer(artifact_uri=ref, artifact_class=dsl.Model, reimport=False, metadata={"ref": ref})


def build_pipeline(runtime: Runtime | None = None) -> BaseComponent:
    """The pipeline on ``runtime`` (default: the published components of the checked-in YAML)."""
    rt = runtime or published()
    comp = build_all(rt)

    def secure(task: dsl.PipelineTask, *, registry: bool, mlflow: bool, secrets: dict) -> dsl.PipelineTask:
        task.set_caching_options(False)
        if rt.pod_credentials and registry:
            use_registry_credentials(task, registry_secret=secrets["registry"],
                                     docker_config_secret=secrets["docker_config"])
        if rt.pod_credentials and mlflow:
            use_mlflow_credentials(task, mlflow_secret=secrets["mlflow"])
        return task

    def retrain_and_redeploy(
        repository: str,
        tracking_uri: str = "",
        entry_point: str = DEFAULT_ENTRY_POINT,
        params: dict = {},  # noqa: B006 - pipeline defaults are literals in the IR
        experiment: str = "modelhaul",
        registered_model: str = "",
        bundle_format: str = "modelpack",
        convert_to: str = "onnx",
        tolerance: float = 0.0,
        trust: bool = False,
        target: str = "seldon",
        deployment_name: str = "",
        namespace: str = "default",
        canary_percent: int = 10,
        render_dir: str = "",
        in_cluster: bool = True,
        initializer_image: str = "",
        stage: str = "production",
        gate: list = [],  # noqa: B006 - as above
        beats: str = "",
        min_delta: float = 0.0,
        verify_key: str = "",
        smoke_check: str = "",
        smoke_check_params: dict = {},  # noqa: B006 - as above
        plain_http: bool = False,
        insecure: bool = False,
        registry_secret: str = "modelhaul-registry",
        docker_config_secret: str = "modelhaul-docker-config",
        mlflow_secret: str = "modelhaul-mlflow",
        signing_secret: str = "modelhaul-signing",
    ) -> None:
        """Retrain, publish, convert, canary, gate and promote a model; roll back if the run fails after promoting.

        Args:
            repository: Registry repository for this model, ``host/path`` (each run pushes ``<job id>``
                and ``<job id>-<convert_to>``; the stage is a tag there too).
            tracking_uri: The MLflow tracking server. Empty: ``MLFLOW_TRACKING_URI`` from the MLflow
                Secret; with neither, training fails at once.
            entry_point: Training code, ``package.module:function`` in the image (called with ``params``).
            params: Keyword arguments for the training code.
            experiment: MLflow experiment name.
            registered_model: Register the trained model under this name (empty: not registered).
            bundle_format: Artifact layout, one of {bundle_formats}.
            convert_to: Serving format: ``onnx`` or ``torchscript``.
            tolerance: Largest accepted output difference of the conversion (0: the format's default).
            trust: Load pickle/joblib files (only for models you trust).
            target: ``seldon`` (Seldon Core v1) or ``kserve``.
            deployment_name: Name of the deployment (empty: derived from the repository).
            namespace: Kubernetes namespace to deploy into.
            canary_percent: Traffic share of the candidate beside the stable model before the gate.
            render_dir: Write manifests into this directory instead of applying them (empty: apply).
            in_cluster: Apply with the pods' service account to the cluster the pipeline runs on.
            initializer_image: The modelhaul storage initializer image the serving pods use.
            stage: The stage tag that promote moves and rollback restores.
            gate: Conditions over the candidate's metrics, such as ``accuracy >= 0.9``.
            beats: A metric that must beat the model at the stage (``-loss`` for lower-is-better).
            min_delta: The least margin for ``beats``.
            verify_key: A public key (PEM text): reject a candidate not signed by it (empty: no check).
            smoke_check: A check run on the promoted model, ``package.module:function`` in the image
                (called with ``ref=`` and ``smoke_check_params``); failing it rolls the stage back.
            smoke_check_params: Keyword arguments for the smoke check.
            plain_http: Talk HTTP, not HTTPS, to the registry.
            insecure: Accept the registry's TLS certificate without verifying it.
            registry_secret: Secret with ``MODELHAUL_USERNAME``/``MODELHAUL_PASSWORD`` for the registry
                (also used by the serving pods).
            docker_config_secret: Secret with a docker ``config.json`` for the registry.
            mlflow_secret: Secret with ``MLFLOW_TRACKING_URI`` and MLflow credentials.
            signing_secret: Secret with ``MODELHAUL_SIGNING_KEY`` (and its password) to sign with.
        """
        secrets = {"registry": registry_secret, "docker_config": docker_config_secret, "mlflow": mlflow_secret}
        tag = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        reg = {"plain_http": plain_http, "insecure": insecure}

        serving = {"target": target, "name": deployment_name, "namespace": namespace,
                   "render_dir": render_dir, "in_cluster": in_cluster,
                   "initializer_image": initializer_image, "registry_secret": registry_secret}
        on_exit = comp["rollback_on_failure"](repository=repository, tag=tag, to=convert_to, stage=stage,
                                              tracking_uri=tracking_uri, **serving, **reg)
        secure(on_exit.set_display_name("rollback on failure"), registry=True, mlflow=True, secrets=secrets)

        with dsl.ExitHandler(on_exit, name="retrain"):
            trained = comp["train"](entry_point=entry_point, params=params, tracking_uri=tracking_uri,
                                    experiment=experiment, registered_model=registered_model)
            secure(trained, registry=False, mlflow=True, secrets=secrets)

            packaged = comp["package"](source=trained.outputs["model"], repository=repository, tag=tag,
                                       tracking_uri=tracking_uri, bundle_format=bundle_format, **reg)
            secure(packaged, registry=True, mlflow=True, secrets=secrets)

            parsed = comp["parse"](source=packaged.outputs["model"], trust=trust, **reg)
            secure(parsed, registry=True, mlflow=False, secrets=secrets)

            converted = comp["convert"](source=parsed.outputs["model"], repository=repository, tag=tag,
                                        to=convert_to, tolerance=tolerance, trust=trust, **reg)
            secure(converted, registry=True, mlflow=False, secrets=secrets)

            signed = comp["sign"](source=converted.outputs["model"], **reg)
            secure(signed, registry=True, mlflow=False, secrets=secrets)
            if rt.pod_credentials:
                use_signing_key(signed, signing_secret=signing_secret)

            canary = comp["deploy"](source=signed.outputs["model"], canary_percent=canary_percent, **serving, **reg)
            secure(canary.set_display_name("deploy canary"), registry=True, mlflow=False, secrets=secrets)

            # promote is the gate: on pass it moves tag, alias and traffic; on a rejection it
            # retires the canary, so the stable model serves alone again.
            promoted = comp["promote"](candidate=signed.outputs["model"], deployment=canary.outputs["deployment"],
                                       stage=stage, gate=gate, beats=beats, min_delta=min_delta,
                                       tracking_uri=tracking_uri, require_signature=verify_key, **reg)
            secure(promoted, registry=True, mlflow=True, secrets=secrets)

            checked = comp["smoke_check"](promotion=promoted.outputs["promotion"], entry_point=smoke_check,
                                          params=smoke_check_params)
            secure(checked.set_display_name("smoke check"), registry=True, mlflow=False, secrets=secrets)

    # the bundle formats of its docstring come from the declarations; KFP reads it when it builds the pipeline
    return dsl.pipeline(name=NAME, description="Retrain with MLflow, ship through an OCI registry, canary, gate, "
                                               "promote and roll out on Seldon Core or KServe.")(
        document_choices(retrain_and_redeploy))
