"""The deferrable deployment wait: the worker applies and defers, the trigger polls the cluster.

The cluster is the real kube-apiserver (tests/fixtures/cluster.py; the test plays the Seldon
controller), reached through a ``kubernetes`` connection whose namespace is the test's own; the model
lives in a local OCI layout, which needs no server.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from modelhaul import artifacts

SKLEARN = {"format": "SKLearn", "framework": "scikit-learn", "metrics": {"accuracy": 0.95}}


@pytest.fixture
def model_ref(tmp_path: Path) -> str:
    d = tmp_path / "model"
    d.mkdir()
    (d / "model.joblib").write_bytes(b"weights")
    return artifacts.publish(d, f"oci:{tmp_path}/layout:v1", config=SKLEARN)["ref"]


@pytest.fixture
def kube_conn(kube_cluster, kube_ns, monkeypatch) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_KUBE_TEST", json.dumps({"conn_type": "kubernetes", "extra": {
        "kube_config_path": kube_cluster.kubeconfig, "cluster_context": kube_cluster.context,
        "namespace": kube_ns}}))
    return "kube_test"


def run_trigger(trigger, timeout: float = 60.0):
    """Drive the trigger the way the triggerer does, up to its first event."""

    async def first():
        async for event in trigger.run():
            return event

    return asyncio.run(asyncio.wait_for(first(), timeout))


def deploy_operator(ref: str, kube_conn: str, name: str, **kw):
    from modelhaul.operators import DeployModelOperator

    kw = {"deferrable": True, "poll_interval": 0.05, "timeout": 60, **kw}
    return DeployModelOperator(task_id=f"deploy_{name}", ref=ref, target="seldon", deployment_name=name,
                               kube_conn_id=kube_conn, **kw)


def test_deploy_defers_and_the_trigger_fires_when_the_model_serves(model_ref, kube_conn, kube_cluster, kube_ns,
                                                                    controller):
    from airflow.sdk.exceptions import TaskDeferred

    from modelhaul.operators import DeploymentReadyTrigger

    op = deploy_operator(model_ref, kube_conn, "iris")
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    assert kube_cluster.get("SeldonDeployment", "iris", kube_ns) is not None  # applied before deferring
    trigger = deferred.value.trigger
    classpath, kwargs = trigger.serialize()
    assert classpath == "modelhaul.operators.triggers.DeploymentReadyTrigger"
    json.dumps(kwargs)  # what the triggerer stores must be plain JSON
    event = run_trigger(DeploymentReadyTrigger(**kwargs))
    assert event.payload["status"] == "ready" and event.payload["state"] == "Available"

    result = getattr(op, deferred.value.method_name)({}, event=event.payload)
    assert result["state"] == "Available" and result["name"] == "iris"
    assert result["digest"] == model_ref.rsplit("@", 1)[1]
    json.dumps(result)
    # without the OpenLineage provider installed, lineage is quietly skipped
    assert op.get_openlineage_facets_on_complete(None) is None


def test_a_failing_rollout_fails_the_task_with_the_reason(model_ref, kube_conn, controller):
    from airflow.sdk.exceptions import AirflowException, TaskDeferred

    controller.behave("broken", "failed")
    op = deploy_operator(model_ref, kube_conn, "broken")
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    event = run_trigger(deferred.value.trigger)
    assert event.payload["status"] == "failed"
    with pytest.raises(AirflowException, match="did not become ready"):
        op.execute_complete({}, event=event.payload)


def test_the_sensor_pokes_once_then_defers_and_waits_for_ready(model_ref, kube_conn, controller):
    """Changed (issue 12): the sensor used to defer without a first poke; now a deployment that already
    serves never goes through the triggerer."""
    from airflow.sdk.exceptions import TaskDeferred

    from modelhaul.operators import DeploymentReadySensor

    controller.behave("iris", "never")  # the rollout is still going when the sensor first looks
    deploy_operator(model_ref, kube_conn, "iris", wait_for_ready=False, deferrable=False).execute({})
    sensor = DeploymentReadySensor(task_id="ready", deployment_name="iris", kube_conn_id=kube_conn,
                                   deferrable=True, poke_interval=0.05, timeout=60)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    controller.behave("iris", "available")
    event = run_trigger(deferred.value.trigger)
    assert sensor.execute_complete({}, event=event.payload)["state"] == "Available"
    # now it serves: the first poke finishes the task, nothing is deferred
    assert sensor.execute({})["state"] == "Available"


def test_deferrable_defaults_from_airflow_config(monkeypatch, model_ref):
    from modelhaul.operators import DeployModelOperator

    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "true")
    assert DeployModelOperator(task_id="a", ref=model_ref).deferrable is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "false")
    assert DeployModelOperator(task_id="b", ref=model_ref).deferrable is False
    assert DeployModelOperator(task_id="c", ref=model_ref, deferrable=True).deferrable is True
