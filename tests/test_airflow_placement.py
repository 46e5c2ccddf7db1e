"""The example DAG under a distributed executor: it refuses, when parsed, the defaults that are local
to one worker (an ``oci:`` layout, SQLite MLflow), and parses once connections name shared services."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.airflow import DAGS

REGISTRY = json.dumps({"conn_type": "modelhaul_registry", "host": "registry.example:5000"})
MLFLOW = json.dumps({"conn_type": "modelhaul_mlflow", "host": "http://mlflow.example:5000"})


def import_error(monkeypatch: pytest.MonkeyPatch, executor: str, dag: str = "retrain_and_redeploy",
                 **conns: str) -> str | None:
    """Parse an example DAG with ``executor`` configured and only ``conns`` defined; its import error."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in ("MODELHAUL_REGISTRY_DEFAULT", "MODELHAUL_MLFLOW_DEFAULT"):
        monkeypatch.delenv(f"AIRFLOW_CONN_{name}", raising=False)
    for name, value in conns.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", value)
    bag = DagBag(dag_folder=str(DAGS / f"{dag}.py"))
    errors = list(bag.import_errors.values())
    assert errors or dag in bag.dags
    return errors[0] if errors else None


def test_celery_without_a_registry_connection_is_refused_when_parsed(airflow_home, monkeypatch):
    err = import_error(monkeypatch, "CeleryExecutor")
    assert err and ("retrain_and_redeploy: the executor CeleryExecutor runs tasks on other machines, but the "
                    "connection modelhaul_registry_default names no registry host") in err
    assert "oci: layout" in err


def test_a_local_mlflow_store_is_refused_too(airflow_home, monkeypatch):
    err = import_error(monkeypatch, "airflow.providers.celery.executors.celery_executor.CeleryExecutor",
                       modelhaul_registry_default=REGISTRY)
    assert err and "but MLflow is the embedded default (SQLite on each worker)" in err
    assert "modelhaul_mlflow_default" in err


@pytest.mark.parametrize("executor", ["CeleryExecutor", "KubernetesExecutor", "LocalExecutor,CeleryExecutor"])
def test_shared_registry_and_mlflow_parse_under_any_executor(airflow_home, monkeypatch, executor):
    assert import_error(monkeypatch, executor, modelhaul_registry_default=REGISTRY,
                        modelhaul_mlflow_default=MLFLOW) is None


def test_a_local_executor_keeps_the_embedded_defaults(airflow_home, monkeypatch):
    assert import_error(monkeypatch, "LocalExecutor") is None


def test_the_redeploy_dag_needs_the_registry_only(airflow_home, monkeypatch):
    err = import_error(monkeypatch, "CeleryExecutor", "redeploy_on_promotion")
    assert err and "redeploy_on_promotion: the executor CeleryExecutor" in err and "registry host" in err
    assert import_error(monkeypatch, "CeleryExecutor", "redeploy_on_promotion",
                        modelhaul_registry_default=REGISTRY) is None
