"""An inline-kubeconfig ``kubernetes`` connection works across processes (issue 12).

The worker applies and defers; a SEPARATE ``python`` process plays the triggerer (deserialize the
trigger from its JSON kwargs, run it); then promote runs in yet another process. None of them may
depend on a temp file that only the worker had: they resolve the connection id themselves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelhaul import artifacts

SKLEARN = {"format": "SKLearn", "framework": "scikit-learn", "metrics": {"accuracy": 0.95}}

TRIGGERER = """
import asyncio, importlib, json, sys
classpath, kwargs = json.loads(sys.stdin.read())
module, name = classpath.rsplit(".", 1)
trigger = getattr(importlib.import_module(module), name)(**kwargs)

async def first():
    async for event in trigger.run():
        return event

print(json.dumps(asyncio.run(asyncio.wait_for(first(), 60)).payload))
"""

PROMOTE = """
import json, sys
from modelhaul.operators import PromoteModelOperator
args = json.loads(sys.stdin.read())
op = PromoteModelOperator(task_id="promote", ref=args["ref"], stage="production", deployment=args["deployment"],
                          on_reject="fail")
print(json.dumps(op.execute({})))
"""


def _in_another_process(code: str, payload: object) -> dict:
    res = subprocess.run([sys.executable, "-c", code], input=json.dumps(payload), capture_output=True, text=True,
                         timeout=180, env=dict(os.environ))
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture
def inline_conn(kube_cluster, kube_ns, monkeypatch) -> str:
    inline = Path(kube_cluster.kubeconfig).read_text()
    monkeypatch.setenv("AIRFLOW_CONN_KUBE_INLINE", json.dumps({"conn_type": "kubernetes", "extra": {
        "kube_config": inline, "namespace": kube_ns}}))
    return "kube_inline"


def test_deferred_deploy_resumes_in_a_separate_triggerer_and_promote_reaches_the_cluster(
        inline_conn, kube_cluster, kube_ns, controller, tmp_path, airflow_home):
    from airflow.sdk.exceptions import TaskDeferred

    from modelhaul.operators import DeployModelOperator, hooks

    d = tmp_path / "model"
    d.mkdir()
    (d / "model.joblib").write_bytes(b"weights")
    ref = artifacts.publish(d, f"oci:{tmp_path}/layout:v1", config=SKLEARN)["ref"]
    op = DeployModelOperator(task_id="deploy", ref=ref, target="seldon", deployment_name="iris",
                             kube_conn_id=inline_conn, deferrable=True, poll_interval=0.05, timeout=60)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    assert kube_cluster.get("SeldonDeployment", "iris", kube_ns) is not None
    classpath, kwargs = deferred.value.trigger.serialize()
    assert kwargs["kube_conn_id"] == inline_conn and kwargs["kubeconfig"] is None
    assert kwargs["carry"]["kube_conn_id"] == inline_conn and kwargs["carry"]["kubeconfig"] is None

    # the worker is gone: its private copy of the inline kubeconfig with it
    for path in hooks._INLINE_KUBECONFIGS.values():
        os.unlink(path)
    hooks._INLINE_KUBECONFIGS.clear()

    event = _in_another_process(TRIGGERER, [classpath, kwargs])
    assert event["status"] == "ready" and event["state"] == "Available"
    result = op.execute_complete({}, event=event)
    assert result["kube_conn_id"] == inline_conn and result["kubeconfig"] is None
    assert "modelhaul-kubeconfig" not in json.dumps(result)

    promoted = _in_another_process(PROMOTE, {"ref": ref, "deployment": result})
    assert promoted["promoted"] is True
    # promote applied the model again on the same cluster and read it back ready there
    assert promoted["deployment"]["applied"] == [f"SeldonDeployment/{kube_ns}/iris"]
    assert promoted["deployment"]["state"] == "Available"
