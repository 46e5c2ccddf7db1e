"""The example DAGs end to end with ``dag.test()``: on the embedded defaults, and on a real registry
and a real MLflow server reached through connections alone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from modelhaul import artifacts
from modelhaul.reference import parse
from tests.fixtures.airflow import load_dag
from tests.fixtures.registry import unique_repo

pytestmark = pytest.mark.slow


def run(dag_id: str, conf: dict | None = None):
    dr = load_dag(dag_id).test(run_conf=conf)
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dr.get_task_instances()}
    return str(getattr(dr.state, "value", dr.state)), states, dr


def stored(dr) -> dict[str, dict]:
    """What the metadata DB keeps of a run: XComs and rendered template fields, per task."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rtif
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    out: dict[str, dict] = {}
    with create_session() as s:
        for x in s.scalars(XComModel.get_many(run_id=dr.run_id, dag_ids=dr.dag_id)).all():
            out.setdefault(x.task_id, {})[x.key] = XComModel.deserialize_value(x)
        for r in s.query(Rtif).filter(Rtif.dag_id == dr.dag_id, Rtif.run_id == dr.run_id):
            out.setdefault(r.task_id, {})["rendered_fields"] = r.rendered_fields
    return out


def asset_extras(uri: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as s:
        q = (s.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
             .filter(AssetModel.uri == uri))
        return [dict(e.extra or {}) for e in q.order_by(AssetEvent.id)]


def digest_at(ref: str, options=None) -> str | None:
    pinned = artifacts.try_resolve(ref, options)
    return parse(pinned).digest if pinned else None


def rendered(demo_dir: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((demo_dir / "manifests").rglob("*.yaml")))


def assert_the_readme_shows_what_the_demo_prints(demo_dir: Path) -> None:
    """README's sample of ``bash scripts/run.sh`` has the lines and facts ``show_demo.py`` prints."""
    import subprocess
    import sys

    from tests.test_readme import README_BLOCKS, normalise, shape_matches

    sample = next(b.text for b in README_BLOCKS if b.text.startswith("tasks:"))
    # without the `airflow dags test` log there are no task states and no log line
    sample = "".join(line for line in sample.splitlines(keepends=True) if not line.startswith(("tasks:", "log:")))
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "scripts" / "show_demo.py"), str(demo_dir)],
                         capture_output=True, text=True, timeout=120, check=True).stdout.lstrip("\n")

    def same_places(text: str) -> str:
        text = text.replace(str(demo_dir), "/home/me/modelhaul/.modelhaul-demo")
        # the size counts the config, which names where the run came from (a git remote, paths)
        text = re.sub(r"\b\d+ bytes\b", "N bytes", text)
        return re.sub(r"manual__[^,\s]+", "manual__RUN", normalise(text))

    assert shape_matches(same_places(sample), same_places(out)), f"README shows:\n{sample}\ndemo prints:\n{out}"


def test_retrain_and_redeploy_on_the_embedded_defaults(airflow_home, demo_dir):
    state, tasks, dr = run("retrain_and_redeploy")
    assert state == "success", tasks
    assert tasks["promote"] == "success" and tasks["rollback"] == "skipped"

    layout = f"oci:{demo_dir}/registry/models/iris"
    production = digest_at(f"{layout}:production")
    assert production is not None
    cfg, _ = artifacts.load_config(f"{layout}:production")
    assert cfg.format.lower() == "onnx"  # the converted model is what got promoted
    assert (demo_dir / "mlflow.db").exists()
    assert production in rendered(demo_dir)  # the deployment serves exactly that digest
    xcom = stored(dr)
    assert xcom["promote"]["return_value"]["promoted"] is True
    assert xcom["summary"]["return_value"]["production"].endswith(production)
    assert_the_readme_shows_what_the_demo_prints(demo_dir)
    # the promoted-model asset event names the digest
    from modelhaul.operators.assets import model_asset_uri

    events = asset_extras(model_asset_uri("models/iris", "production"))
    assert events and events[-1]["digest"] == production

    # the promotion's asset event would start this DAG; by hand it deploys what production is now
    state, tasks, _ = run("redeploy_on_promotion")
    assert state == "success", tasks
    assert production in rendered(demo_dir)


def test_the_redeploy_dag_takes_the_ref_from_the_newest_asset_event():
    from types import SimpleNamespace as Event

    from modelhaul.operators import ref_from_events

    events = {"asset": [Event(extra={"ref": "r/m:production@sha256:old"}, timestamp=1),
                        Event(extra={"ref": "r/m:production@sha256:new"}, timestamp=2)]}
    assert ref_from_events(events) == "r/m:production@sha256:new"
    assert ref_from_events({}) is None and ref_from_events(None) is None


def test_real_registry_and_mlflow_server_by_connections_and_a_rejected_gate(
        airflow_home, demo_dir, auth_registry, mlflow_server, monkeypatch, capfd, task_logs):
    from mlflow import MlflowClient

    from tests.test_airflow_connections import registry_conn_uri

    repo = unique_repo("airflow-dag")
    monkeypatch.setenv("MODELHAUL_REPOSITORY", repo)
    monkeypatch.setenv("AIRFLOW_CONN_MODELHAUL_REGISTRY_DEFAULT", registry_conn_uri(auth_registry))
    monkeypatch.setenv("AIRFLOW_CONN_MODELHAUL_MLFLOW_DEFAULT",
                       json.dumps({"conn_type": "modelhaul_mlflow", "host": mlflow_server}))
    # the artifact link is shown once a registry UI is named (a registry's API is no page to open)
    monkeypatch.setenv("AIRFLOW__MODELHAUL__REGISTRY_LINK_TEMPLATE", "{scheme}://{registry}/ui/{repository}@{digest}")
    production_ref = f"{auth_registry.host}/{repo}:production"

    state, tasks, dr = run("retrain_and_redeploy")
    assert state == "success", tasks
    first = digest_at(production_ref, auth_registry.options)
    assert first is not None
    xcom = stored(dr)
    train = xcom["train"]["return_value"]
    assert xcom["train"]["_link_MLflowRunLink"] == (
        f"{mlflow_server}/#/experiments/{train['experiment_id']}/runs/{train['run_id']}")
    package = xcom["package"]["return_value"]
    assert package["digest"] in xcom["package"]["_link_RegistryArtifactLink"]
    assert auth_registry.host in xcom["package"]["_link_RegistryArtifactLink"]
    assert not (demo_dir / "registry").exists() and not (demo_dir / "mlflow.db").exists()
    runs = MlflowClient(mlflow_server).search_runs(
        [MlflowClient(mlflow_server).get_experiment_by_name("modelhaul-iris").experiment_id])
    assert runs and runs[0].data.metrics["accuracy"] >= 0.9

    # a model trained on wrong labels fails the gate: production keeps the first model
    state, tasks, dr2 = run("retrain_and_redeploy", {"train_params": {"dataset": "iris", "label_noise": 1.0}})
    assert state == "success", tasks
    assert tasks["convert"] == "success" and tasks["promote"] == "skipped"
    assert tasks["rollback"] == "skipped"  # nothing failed, and an earlier promotion is never undone
    assert digest_at(production_ref, auth_registry.options) == first

    assert "gate not met" in stored(dr2)["promote"]["promotion"]["reason"]

    # the registry password is in no task log, captured output, XCom or rendered template field
    out, err = capfd.readouterr()
    logs = task_logs() + out + err
    assert "modelhaul promote" in logs  # the logs were captured at all
    assert auth_registry.password not in logs
    assert auth_registry.password not in json.dumps([stored(dr), stored(dr2)], default=str)


def test_a_failed_rollout_after_promotion_puts_the_first_model_back(airflow_home, demo_dir, kube_cluster, kube_ns,
                                                                     controller, monkeypatch):
    """On the real kube-apiserver (the test plays the Seldon controller): the second model passes its gate
    and its canary (waited for by the deferrable trigger), the tag moves, then serving it alone fails;
    promote puts the first model back on the tag and in the cluster, so the rollback task has nothing of
    this run to undo and is skipped."""
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps({"conn_type": "kubernetes", "extra": {
        "kube_config_path": kube_cluster.kubeconfig, "cluster_context": kube_cluster.context}}))
    monkeypatch.setenv("MODELHAUL_NAMESPACE", kube_ns)
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "true")  # canary waits in a trigger
    production_ref = f"oci:{demo_dir}/registry/models/iris:production"

    state, tasks, _ = run("retrain_and_redeploy")
    assert state == "success", tasks
    first = digest_at(production_ref)
    assert first and first in json.dumps(kube_cluster.get("SeldonDeployment", "iris", kube_ns))

    def settle(obj: dict) -> str:  # a canary serves; the new model alone does not
        alone = len(obj["spec"]["predictors"]) == 1
        return "failed" if alone and first not in json.dumps(obj["spec"]) else "available"

    controller.behave("iris", settle)
    state, tasks, _ = run("retrain_and_redeploy", {"train_params": {"dataset": "iris", "c": 0.5}})
    assert state == "failed", tasks
    assert tasks["deploy_canary"] == "success" and tasks["promote"] == "failed"
    assert tasks["rollback"] == "skipped"
    assert digest_at(production_ref) == first
    served = kube_cluster.get("SeldonDeployment", "iris", kube_ns)
    assert len(served["spec"]["predictors"]) == 1 and first in json.dumps(served["spec"])
