"""The ``retrain_and_redeploy`` pipeline: train, package, parse, convert, canary, gate, and its outcome.

::

    train ─► package ─► parse ─► convert ─► sign ─► deploy canary ─► promote (the gate)
                                                               └─ If "rejected-with-canary":
                                                                  deploy the stable model alone (retire canary)
    ExitHandler around all of it: rollback_on_failure

``promote`` is the gate: it evaluates the gate expressions (and ``beats``) against the model now at
the stage and, on pass, moves the stage tag, the MLflow alias and the traffic (the candidate
alone, all traffic) in one step, so that a decision and its effect cannot come apart. A ``dsl.If``
on its decision handles a rejection: no tag moved, and the canary is retired so that the stable
model serves alone again. On a first run there is no stable model: the canary is skipped, and
promote deploys the model only if it passes. If any task fails, the exit handler rolls back — only
when this run's candidate had reached the stage.

``sign`` signs the converted candidate when the ``signing_secret`` Secret (or, locally, the
``MODELHAUL_SIGNING_KEY`` env var) holds a key, and does nothing otherwise; ``verify_key`` (a public
key, PEM text) makes promote reject a candidate that is not signed by it.

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
from modelhaul.components.runtime import Runtime, published

NAME = "retrain-and-redeploy"
#: Trains a small scikit-learn classifier and logs it to MLflow (shipped with modelhaul).
DEFAULT_ENTRY_POINT = "modelhaul.examples.iris:train"


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

    @dsl.pipeline(name=NAME, description="Retrain with MLflow, ship through an OCI registry, canary, gate, "
                                         "promote and roll out on Seldon Core or KServe.")
    def retrain_and_redeploy(
        repository: str,
        entry_point: str = DEFAULT_ENTRY_POINT,
        params: dict = {},  # noqa: B006 - pipeline defaults are literals in the IR
        tracking_uri: str = "sqlite:///mlflow.db",
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
        in_cluster: bool = False,
        initializer_image: str = "",
        stage: str = "production",
        gate: list = [],  # noqa: B006 - as above
        beats: str = "",
        min_delta: float = 0.0,
        verify_key: str = "",
        plain_http: bool = False,
        insecure: bool = False,
        registry_secret: str = "modelhaul-registry",
        docker_config_secret: str = "modelhaul-docker-config",
        mlflow_secret: str = "modelhaul-mlflow",
        signing_secret: str = "modelhaul-signing",
    ) -> None:
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

            packaged = comp["package"](source=trained.outputs["model_uri"], repository=repository, tag=tag,
                                       tracking_uri=tracking_uri, bundle_format=bundle_format, **reg)
            secure(packaged, registry=True, mlflow=True, secrets=secrets)

            parsed = comp["parse"](ref=packaged.outputs["ref"], trust=trust, **reg)
            secure(parsed, registry=True, mlflow=False, secrets=secrets)

            converted = comp["convert"](ref=parsed.outputs["ref"], repository=repository, tag=tag,
                                        to=convert_to, tolerance=tolerance, trust=trust, **reg)
            secure(converted, registry=True, mlflow=False, secrets=secrets)

            signed = comp["sign"](ref=converted.outputs["ref"], **reg)
            secure(signed, registry=True, mlflow=False, secrets=secrets)
            if rt.pod_credentials:
                use_signing_key(signed, signing_secret=signing_secret)

            canary = comp["deploy"](ref=converted.outputs["ref"], canary_percent=canary_percent,
                                    **serving, **reg).after(signed)
            secure(canary.set_display_name("deploy canary"), registry=True, mlflow=False, secrets=secrets)

            promoted = comp["promote"](ref=converted.outputs["ref"], stage=stage, gate=gate, beats=beats,
                                       min_delta=min_delta, tracking_uri=tracking_uri,
                                       deployment=canary.outputs["deployment"], require_signature=verify_key,
                                       **reg)
            secure(promoted, registry=True, mlflow=True, secrets=secrets)

            # promote is the gate: on pass it already moved tag, alias and traffic. A candidate
            # rejected while it ran as a canary is retired: the stable model serves alone again.
            with dsl.If(promoted.outputs["Output"] == "rejected-with-canary", name="gate-rejected"):
                retire = comp["deploy"](ref=canary.outputs["stable_ref"], canary_percent=0, **serving, **reg)
                secure(retire.set_display_name("retire canary"), registry=True, mlflow=False, secrets=secrets)

    return retrain_and_redeploy
