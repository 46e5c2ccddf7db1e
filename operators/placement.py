"""Where a DAG's tasks run: under a distributed executor, the embedded local defaults cannot work.

A Celery or Kubernetes worker is another machine (or pod): an ``oci:`` layout or a SQLite MLflow
store on one worker's disk is not there for the next task. A DAG calls :func:`require_shared_services`
at parse time, so the mistake shows as one import error in the UI instead of a run failing half-way.
"""

from __future__ import annotations

from modelhaul.operators.mlflow_hook import MLflowHook
from modelhaul.operators.registry_hook import RegistryHook

# executors that run every task on the scheduler's machine
LOCAL_EXECUTORS = {"LocalExecutor", "SequentialExecutor", "DebugExecutor"}


def distributed_executors() -> list[str]:
    """The configured executors (``[core] executor``, a comma list) that run tasks on other machines."""
    from airflow.configuration import conf

    names = [n.strip() for n in (conf.get("core", "executor", fallback="") or "").split(",") if n.strip()]
    # "CeleryExecutor", a class path, or "alias:class.path"
    return [n for n in names if n.rsplit(":", 1)[-1].rsplit(".", 1)[-1] not in LOCAL_EXECUTORS]


def require_shared_services(dag_id: str, *, registry_conn_id: str = RegistryHook.default_conn_name,
                            mlflow_conn_id: str = MLflowHook.default_conn_name,
                            tracking_uri: str | None = None, mlflow: bool = True) -> None:
    """Refuse to parse under a distributed executor when the registry or MLflow would be local.

    The registry must come from the connection ``registry_conn_id`` (a host every worker reaches);
    MLflow from ``mlflow_conn_id``, ``tracking_uri`` or ``MLFLOW_TRACKING_URI``, and not a local
    file store (unless ``mlflow`` is False: a DAG that never reads MLflow). Raises ValueError naming
    what is missing and what to define.
    """
    import os

    remote = distributed_executors()
    if not remote:
        return
    where = f"{dag_id}: the executor {remote[0]} runs tasks on other machines"
    try:
        host = RegistryHook(registry_conn_id).get_conn().host
        uri = MLflowHook(mlflow_conn_id).get_conn()[0] or tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    except Exception:  # noqa: BLE001 - connections unreadable while parsing here: the tasks will say
        return
    if not host:
        raise ValueError(f"{where}, but the connection {registry_conn_id} names no registry host: the embedded "
                         "default (an oci: layout on each worker's disk) cannot carry a model from one task to "
                         "the next; define that connection (a registry every worker reaches)")
    if mlflow and (not uri or uri.startswith(("sqlite:", "file:")) or (":" not in uri and uri != "databricks")):
        raise ValueError(f"{where}, but MLflow is {uri or 'the embedded default (SQLite on each worker)'}: "
                         f"a run trained on one worker is not there for the next; define the connection "
                         f"{mlflow_conn_id} (a tracking server every worker reaches)")
