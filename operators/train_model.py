"""Airflow: train a model under an MLflow run (``steps.train``)."""

from __future__ import annotations

from typing import Any

from modelhaul.declarations import TRAIN
from modelhaul.operators.base import MLflowStepOperator, declared_operator
from modelhaul.operators.lineage import mlflow_dataset
from modelhaul.operators.links import MLFLOW_URL_KEY, MLflowRunLink, mlflow_run_url

_DeclaredTrain = declared_operator("_DeclaredTrain", MLflowStepOperator, TRAIN, module=__name__)


class MLflowTrainOperator(_DeclaredTrain):
    """Train a model under an MLflow run (``steps.train``).

    ``entry_point`` is ``package.module:function`` (called with ``train_params``) or an MLflow
    Project directory. XCom: ``{run_id, model_uri, model_id, experiment_id, metrics, ...}``.
    """

    step = "train"
    template_fields_renderers = {"train_params": "json"}
    operator_extra_links = (MLflowRunLink(),)

    def execute(self, context: Any) -> dict[str, Any]:
        uri, env = self.mlflow()
        result = self.call_step(env, **self.step_arguments(tracking_uri=uri))
        url = mlflow_run_url(uri, result.get("experiment_id"), result.get("run_id"))
        if url:
            context["ti"].xcom_push(key=MLFLOW_URL_KEY, value=url)
        self._set_lineage([], [mlflow_dataset(uri, result.get("run_id"))])
        return result
