"""Retrain weekly, publish the model as an OCI artifact, canary it, promote it through a gate.

train -> package -> parse -> convert -> sign -> deploy_canary -> promote, and rollback when deploy or promote
fails. Runs as is on the embedded defaults: MLflow on SQLite, the registry as a local OCI layout and
the deployment rendered to files, all under ``MODELHAUL_DEMO_DIR`` (default ``.modelhaul-demo``
beside this folder). Real services take over by configuration alone:

* connection ``modelhaul_registry_default`` (host, login, password): models go to that registry;
* connection ``modelhaul_mlflow_default`` or ``MLFLOW_TRACKING_URI``: the tracking server;
* connection ``kubernetes_default`` (extras ``kube_config_path``/``cluster_context``/``in_cluster``):
  manifests are applied to the cluster and the canary is waited for (deferrable when
  ``[operators] default_deferrable`` is on);
* ``MODELHAUL_SIGNING_KEY`` (an EC private key, PEM path or text; ``MODELHAUL_SIGNING_KEY_PASSWORD``
  if it is encrypted): the candidate is signed (OpenSSF model signing + SLSA provenance) before it
  is deployed; ``MODELHAUL_VERIFY_KEY`` (the public key): promotion requires that signature;
* ``MODELHAUL_REPOSITORY`` (default ``models/iris``), ``MODELHAUL_SERVING_TARGET`` (``seldon`` or
  ``kserve``), ``MODELHAUL_NAMESPACE``.

Under a distributed executor (Celery, Kubernetes) the registry and MLflow connections are required
(checked when the DAG is parsed): tasks hand each other only XCom and what is in the registry and
MLflow, never a file.

Run parameters (``airflow dags test retrain_and_redeploy -c '{...}'``): ``train_params`` (passed
to the training function), ``gate`` (list of expressions over the model's metrics),
``canary_percent``.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, TriggerRule, task

from modelhaul.operators import (
    ConvertModelOperator,
    DeployModelOperator,
    MLflowTrainOperator,
    PackageModelOperator,
    ParseModelOperator,
    PromoteModelOperator,
    RollbackModelOperator,
    SignModelOperator,
    model_asset,
    require_shared_services,
)
from modelhaul.steps import candidate_ref

DEMO_DIR = Path(os.environ.get("MODELHAUL_DEMO_DIR")
                or Path(__file__).resolve().parent.parent / ".modelhaul-demo")
REPOSITORY = os.environ.get("MODELHAUL_REPOSITORY", "models/iris")
TARGET = os.environ.get("MODELHAUL_SERVING_TARGET", "seldon")
NAMESPACE = os.environ.get("MODELHAUL_NAMESPACE", "default")
VERIFY_KEY = os.environ.get("MODELHAUL_VERIFY_KEY") or None
STAGE = "production"
# a tag per run: run ids carry ':' and '+', which tags do not allow
TAG = "{{ run_id | replace(':', '') | replace('+', '') }}"
CANDIDATE_REF = "{{ ti.xcom_pull(task_ids='convert')['ref'] }}"

# under Celery/Kubernetes workers the embedded local defaults cannot carry a model between tasks
require_shared_services("retrain_and_redeploy")

PROMOTED = model_asset(REPOSITORY, STAGE)
CANDIDATE = model_asset(REPOSITORY, "candidate")

with DAG(
    dag_id="retrain_and_redeploy",
    description="Train with MLflow, ship through the registry, canary and promote",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=2,  # two runs may promote at once: the stage is claimed (modelhaul.stagelock)
    tags=["modelhaul", "example"],
    params={
        "train_params": Param({"dataset": "iris", "label_noise": 0.0}, type="object"),
        "gate": Param(["accuracy >= 0.9"], type="array"),
        "canary_percent": Param(10, type="integer", minimum=1, maximum=99),
    },
    default_args={
        # the embedded defaults; a defined connection wins over each of them
        "layout_root": str(DEMO_DIR / "registry"),
        "fallback_tracking_uri": f"sqlite:///{DEMO_DIR / 'mlflow.db'}",
    },
) as dag:
    train = MLflowTrainOperator(
        task_id="train",
        entry_point="modelhaul.examples.iris:train",
        train_params="{{ params.train_params | tojson }}",
        experiment="modelhaul-iris",
    )
    package = PackageModelOperator(
        task_id="package",
        source="{{ ti.xcom_pull(task_ids='train')['model_uri'] }}",
        ref=f"{REPOSITORY}:{TAG}",
    )
    parse = ParseModelOperator(task_id="parse", ref="{{ ti.xcom_pull(task_ids='package')['ref'] }}")
    convert = ConvertModelOperator(
        task_id="convert",
        ref="{{ ti.xcom_pull(task_ids='parse')['ref'] }}",
        dest_ref=candidate_ref(REPOSITORY, TAG, "onnx"),
        to="onnx",
        outlets=[CANDIDATE],
    )
    # signs when MODELHAUL_SIGNING_KEY is set in the worker's environment; a no-op otherwise
    sign = SignModelOperator(task_id="sign", ref=CANDIDATE_REF, optional=True)
    deploy = DeployModelOperator(
        task_id="deploy_canary",
        ref=CANDIDATE_REF,
        target=TARGET,
        deployment_name="iris",
        namespace=NAMESPACE,
        canary_percent="{{ params.canary_percent }}",
        render_dir=str(DEMO_DIR / "manifests"),
    )
    promote = PromoteModelOperator(
        task_id="promote",
        ref=CANDIDATE_REF,
        stage=STAGE,
        gate="{{ params.gate | tojson }}",
        deployment=deploy.output,
        require_signature=VERIFY_KEY,
        outlets=[PROMOTED],
    )
    rollback = RollbackModelOperator(
        task_id="rollback",
        ref=f"{REPOSITORY}:{STAGE}",
        stage=STAGE,
        deployment="{{ ti.xcom_pull(task_ids='deploy_canary') | tojson }}",
        # only undo a promotion this run made: the stage must point at this run's candidate
        only_if_digest="{{ (ti.xcom_pull(task_ids='convert') or {}).get('digest', '') }}",
        trigger_rule=TriggerRule.ONE_FAILED,
    )

    @task
    def summary(**context: Any) -> dict[str, Any]:
        """Where the promoted model is (a leaf, so a failed step fails the run despite rollback)."""
        promoted = context["ti"].xcom_pull(task_ids="promote") or {}
        deployed = context["ti"].xcom_pull(task_ids="deploy_canary") or {}
        return {"production": promoted.get("ref"), "previous": promoted.get("previous"),
                "manifests": (promoted.get("deployment") or {}).get("manifests") or deployed.get("manifests")}

    train >> package >> parse >> convert >> sign >> deploy >> promote >> summary()
    [deploy, promote] >> rollback
