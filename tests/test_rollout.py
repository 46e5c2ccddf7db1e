"""What the operator's objects say about a rollout, for what the test cluster cannot show (Knative)."""

from __future__ import annotations

from modelhaul.serving import kserve, rollout


def isvc(status: dict) -> dict:
    return {"kind": "InferenceService", "metadata": {"name": "iris", "namespace": "models", "annotations": {}},
            "spec": {"predictor": {"model": {"storageUri": "modelhaul://r/x@sha256:" + "a" * 64}}}, "status": status}


def test_a_serverless_predictor_waits_for_its_latest_revision():
    created_only = isvc({"deploymentMode": "Serverless",
                         "components": {"predictor": {"latestCreatedRevision": "iris-predictor-00002",
                                                      "latestReadyRevision": "iris-predictor-00001"}}})
    assert kserve.serverless(created_only)
    assert rollout.revision_waiting(created_only) == \
        "predictor: revision iris-predictor-00002 not ready yet (ready: iris-predictor-00001)"
    done = isvc({"deploymentMode": "Serverless", "components": {"predictor": {
        "latestCreatedRevision": "iris-predictor-00002", "latestReadyRevision": "iris-predictor-00002"}}})
    assert rollout.revision_waiting(done) == ""
    assert not kserve.serverless(isvc({"deploymentMode": "Standard"}))


def test_an_init_container_that_exited_is_named_with_its_last_words():
    pod = {"metadata": {"name": "iris-1"}, "status": {"initContainerStatuses": [
        {"name": "storage-initializer", "state": {"terminated": {
            "exitCode": 1, "reason": "Error",
            "message": "Traceback ...\nmodelhaul-initializer: error: no such model\n"}}}]}}
    assert rollout.pod_failure(pod) == ("pod iris-1, init container storage-initializer: exited 1 (Error): "
                                        "modelhaul-initializer: error: no such model")
