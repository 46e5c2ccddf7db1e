"""Extra links work while a task is deferred; lineage carries the model's signature and digest."""

from __future__ import annotations

import re
import uuid

import pytest

from modelhaul.operators.lineage import model_facets
from tests.test_airflow_deferrable import deploy_operator, kube_conn, model_ref  # noqa: F401 - fixtures


class _PushedXCom:
    """Records what a task pushes, as Airflow's task instance stores it."""

    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def test_links_are_persisted_before_the_deploy_defers(model_ref, kube_conn):  # noqa: F811
    from airflow.sdk.exceptions import TaskDeferred

    from modelhaul.operators.links import ARTIFACT_REF_KEY

    ti = _PushedXCom()
    with pytest.raises(TaskDeferred):
        deploy_operator(model_ref, kube_conn, "iris").execute({"ti": ti})
    assert ti.pushed[ARTIFACT_REF_KEY] == model_ref  # the "Model artifact" link has its ref while deferred


def test_model_facets_from_a_parse_result():
    result = {"ref": "registry.example.com/models/iris:v1@sha256:" + "a" * 64, "digest": "sha256:" + "a" * 64,
              "format": "ONNX", "framework": "onnx",
              "signature": {"inputs": [{"name": "float_input", "dType": "float32", "size": [-1, 4]}],
                            "outputs": [{"name": "label", "dType": "int64", "size": [-1]}, {"dType": "float32"}]}}
    assert model_facets(result) == {
        "schema": {"fields": [
            {"name": "float_input", "type": "float32[-1, 4]", "description": "inputs"},
            {"name": "label", "type": "int64[-1]", "description": "outputs"},
            {"name": "outputs_1", "type": "float32", "description": "outputs"},
        ]},
        "modelhaul": {"ref": result["ref"], "digest": result["digest"], "format": "ONNX", "framework": "onnx"},
    }


def test_model_facets_without_a_signature_keep_the_digest():
    assert model_facets({"ref": "oci:x:v1@sha256:" + "b" * 64, "digest": "sha256:" + "b" * 64}) == {
        "modelhaul": {"ref": "oci:x:v1@sha256:" + "b" * 64, "digest": "sha256:" + "b" * 64}}
    assert model_facets(None) == {}


def test_the_artifact_link_is_hidden_unless_a_registry_ui_is_configured(monkeypatch):
    """A registry's manifest API answers a browser with MANIFEST_UNKNOWN: no link rather than that page."""
    from modelhaul.operators.links import registry_artifact_url

    ref = "registry.example.com/models/iris:v1@sha256:" + "a" * 64
    assert registry_artifact_url(ref) == ""  # the UI hides an empty link
    monkeypatch.setenv("AIRFLOW__MODELHAUL__REGISTRY_LINK_TEMPLATE",
                       "https://harbor.example.com/harbor/projects/{repository}/{digest}")
    assert registry_artifact_url(ref) == f"https://harbor.example.com/harbor/projects/models/iris/sha256:{'a' * 64}"


def test_the_mlflow_run_link_opens_the_run_on_a_real_server(mlflow_server):
    """The link the train task stores opens the run's page, and the page's route names that very run."""
    import requests
    from mlflow import MlflowClient

    from modelhaul.operators.links import mlflow_run_url

    client = MlflowClient(mlflow_server)
    experiment = client.create_experiment(f"links-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment).info.run_id
    link = mlflow_run_url(mlflow_server, experiment, run)
    page = requests.get(link, timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"], (link, page.status_code)
    route = re.fullmatch(r"#/experiments/(\w+)/runs/(\w+)", "#" + link.split("#", 1)[1])
    assert route is not None, link
    shown = requests.get(f"{mlflow_server}/ajax-api/2.0/mlflow/runs/get", params={"run_id": route[2]}, timeout=30)
    assert shown.status_code == 200 and shown.json()["run"]["info"]["experiment_id"] == route[1], shown.text
    # no guessed experiment (the UI answers that with an error page), no credentials, no link off a server
    assert mlflow_run_url(mlflow_server, None, run) == ""
    assert "secret" not in mlflow_run_url(mlflow_server.replace("://", "://me:secret@"), experiment, run)
    assert mlflow_run_url("sqlite:///mlflow.db", experiment, run) == ""


@pytest.mark.parametrize(("url", "shown"), [
    ("http://iris.models.example.com", True),  # KServe's external host
    ("http://localhost:8080/seldon/models/iris", True),
    ("http://iris-predictor.models.svc.cluster.local", False),  # only the cluster resolves these
    ("http://iris-default.models.svc:8000", False),
    ("http://iris-default:8000", False),
    ("/tmp/rendered/iris", False),  # rendered manifests: files on the worker
    (None, False),
])
def test_the_deployment_link_is_shown_only_where_a_person_can_open_it(url, shown):
    from modelhaul.operators.links import deployment_url

    assert deployment_url(url) == (url if shown else "")
