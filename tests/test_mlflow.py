"""MLflow in, OCI out: train from a real git checkout against a real tracking server, import by every
URI form, package to a real registry and read every mapped field back; the error cases."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from modelhaul import steps
from modelhaul.errors import MLflowError
from modelhaul.tracking import import_model
from modelhaul.tracking.client import get_alias_version, set_alias
from tests.fixtures.mlflow import GIT_REMOTE_CLEAN, Checkout

DOCUMENTED_KEYS = {"run_id", "model_uri", "model_id", "experiment_id", "metrics", "registered_model", "version"}


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@pytest.fixture(scope="module")
def trained(mlflow_server: str, training_checkout: Checkout) -> dict[str, Any]:
    """One training run from the checkout's module, registered as version 1 with alias champion."""
    name = f"iris-{uuid.uuid4().hex[:8]}"
    sys.path.insert(0, str(training_checkout.path))
    try:
        result = steps.train(entry_point="train_iris:train", params={"c": 0.5}, tracking_uri=mlflow_server,
                             experiment="iris-e2e", run_name="e2e-run", registered_model=name,
                             alias="champion")
    finally:
        sys.path.remove(str(training_checkout.path))
        sys.modules.pop("train_iris", None)
    client = _client(mlflow_server)
    client.set_tag(result["run_id"], "mlflow.note.content", "Iris classifier, logistic regression")
    client.set_tag(result["run_id"], "team", "vision")
    return {**result, "name": name, "checkout": training_checkout, "uri": mlflow_server}


def test_train_returns_the_documented_json(trained: dict[str, Any]) -> None:
    result = {k: v for k, v in trained.items() if k in DOCUMENTED_KEYS}
    assert set(result) == DOCUMENTED_KEYS
    json.dumps(result)  # XCom / KFP parameters carry only JSON
    assert result["model_uri"] == f"models:/{result['model_id']}"
    assert result["registered_model"] == trained["name"] and result["version"] == "1"
    assert 0.8 < result["metrics"]["accuracy"] <= 1.0
    # the function logged its own model: autolog's copy of it must not be left beside it
    client = _client(trained["uri"])
    models = client.search_logged_models(experiment_ids=[result["experiment_id"]],
                                         filter_string=f"source_run_id = '{result['run_id']}'")
    assert [m.model_id for m in models] == [result["model_id"]]
    assert get_alias_version(trained["name"], "champion", trained["uri"]) == "1"


@pytest.mark.parametrize("form", ["run", "model_id", "version", "alias", "latest"])
def test_import_by_every_uri_form(trained: dict[str, Any], form: str) -> None:
    name = trained["name"]
    uri = {
        "run": f"runs:/{trained['run_id']}/model",
        "model_id": f"models:/{trained['model_id']}",
        "version": f"models:/{name}/1",
        "alias": f"models:/{name}@champion",
        "latest": f"models:/{name}/latest",
    }[form]
    with import_model(uri, tracking_uri=trained["uri"]) as (model_dir, cfg):
        files = {p.name for p in model_dir.iterdir()}
        kept = model_dir
        prov = cfg.provenance.mlflow
        assert prov.model_id == trained["model_id"] and prov.run_id == trained["run_id"]
        assert cfg.provenance.sources == [uri]
        if form in ("run", "model_id"):
            assert prov.registered_model is None and prov.aliases == []
        else:
            assert (prov.registered_model, prov.version, prov.aliases) == (name, "1", ["champion"])
    # MLflow's layout (MLFLOW_SERVER serves it) with the input example that convert needs
    assert {"MLmodel", "model.skops", "input_example.json", "serving_input_example.json"} <= files
    assert not kept.exists()  # the download is temporary


def test_every_mapped_field(trained: dict[str, Any]) -> None:
    with import_model(f"models:/{trained['name']}@champion", tracking_uri=trained["uri"]) as (_d, cfg):
        check_config(cfg.to_dict(), trained)


def check_config(c: dict[str, Any], trained: dict[str, Any]) -> None:
    """Every field the import maps, as a user reads it from ``inspect --json``."""
    checkout: Checkout = trained["checkout"]
    assert (c["framework"], c["format"]) == ("scikit-learn", "SKLearn")
    assert c["author"] and c["description"] == "Iris classifier, logistic regression"
    assert c["created"].startswith(time.strftime("%Y-", time.gmtime()))
    assert c["size"] > 1000
    assert c["labels"]["team"] == "vision" and not any(k.startswith("mlflow.") for k in c["labels"])
    assert "sklearn" in c["tags"]
    params = {p["name"]: p["value"] for p in c["hyperParameters"]}
    assert params["C"] == "0.5" and params["dataset"] == "iris" and params["max_iter"] == "1000"
    # ormb's reader wants metrics as a map of named lists
    training = {m["name"]: float(m["value"]) for m in c["metrics"]["training"]}
    test = {m["name"]: float(m["value"]) for m in c["metrics"]["iris-test"]}
    assert training["accuracy"] == pytest.approx(trained["metrics"]["accuracy"])
    assert test["accuracy"] == pytest.approx(trained["metrics"]["accuracy"]) and "f1_macro" in test
    assert "training_accuracy_score" in training  # autolog's, logged on the run
    sig = c["signature"]
    assert [t["name"] for t in sig["inputs"]] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert all(t["dType"] == "double" and t["size"] == [-1] for t in sig["inputs"])
    assert sig["outputs"] == [{"size": [-1], "dType": "int64"}]
    assert c["training"]["git"] == {"repository": GIT_REMOTE_CLEAN, "revision": checkout.commit,
                                    "branch": checkout.branch}
    ds = {d["name"]: d for d in c["datasets"]}
    assert set(ds) == {"iris-train", "iris-test"}
    assert (ds["iris-train"]["context"], ds["iris-train"]["rows"]) == ("training", 105)
    assert (ds["iris-test"]["context"], ds["iris-test"]["rows"]) == ("testing", 45)
    assert ds["iris-train"]["digest"] and ds["iris-train"]["sourceType"] == "code"
    assert ds["iris-train"]["source"] == "train_iris:train"  # the code that made it: the entry point
    assert [col["name"] for col in ds["iris-train"]["schema"]["mlflow_colspec"]][-1] == "target"
    m = c["provenance"]["mlflow"]
    assert m["trackingUri"] == trained["uri"]
    assert (m["experimentName"], m["runName"]) == ("iris-e2e", "e2e-run") and m["experimentId"]
    assert (m["runId"], m["modelId"], m["modelUri"]) == (
        trained["run_id"], trained["model_id"], trained["model_uri"])
    assert (m["registeredModel"], m["version"], m["aliases"]) == (trained["name"], "1", ["champion"])
    assert m["mlflowVersion"] and m["flavors"]["sklearn"]
    assert c["provenance"]["sources"] == [f"models:/{trained['name']}@champion"]


@pytest.mark.parametrize("bundle_format", ["modelpack", "kitops"])
def test_package_to_a_registry_carries_every_field(trained: dict[str, Any], registry: Any, bundle_format) -> None:
    from modelhaul import artifacts

    ref = registry.ref(f"mlflow/{uuid.uuid4().hex[:8]}", "v1")
    out = steps.package(source=f"models:/{trained['name']}@champion", ref=ref, tracking_uri=trained["uri"],
                        plain_http=True, bundle_format=bundle_format)
    assert out["bundle_format"] == bundle_format
    assert out["ref"].startswith(ref + "@sha256:") and out["digest"] in out["ref"]
    assert (out["format"], out["framework"]) == ("SKLearn", "scikit-learn")
    info = artifacts.inspect(out["ref"], registry.options)
    check_config(info["config"], trained)
    paths = {layer["path"] for layer in info["layers"]}
    assert {"MLmodel", "model.skops", "input_example.json"} <= {Path(p).name for p in paths if p}


def test_tracking_credentials_never_leave(trained: dict[str, Any], tmp_path: Path) -> None:
    secret_uri = trained["uri"].replace("http://", "http://alice:pa55w0rd@")
    with import_model(f"runs:/{trained['run_id']}/model", tracking_uri=secret_uri) as (_d, cfg):
        text = cfg.to_yaml()
    assert "pa55w0rd" not in text and "alice" not in text and "s3cr3t" not in text
    assert cfg.provenance.mlflow.tracking_uri == trained["uri"]


def test_alias_helpers_move_an_alias(trained: dict[str, Any]) -> None:
    name, uri = trained["name"], trained["uri"]
    assert get_alias_version(name, "staging", uri) is None
    try:
        assert set_alias(name, "staging", 1, uri) is None
        assert get_alias_version(name, "staging", uri) == "1"
        assert set_alias(name, "staging", "1", uri) == "1"
    finally:
        _client(uri).delete_registered_model_alias(name, "staging")
    with pytest.raises(MLflowError, match="no-such-model"):
        get_alias_version("no-such-model", "staging", uri)


SKINNY_ABSENT = {"numpy", "pandas", "sklearn", "scipy", "sqlalchemy", "alembic", "flask", "skops", "pyarrow"}
SKINNY = """
import json, sys
from modelhaul.tracking import import_model

with import_model(sys.argv[1], tracking_uri=sys.argv[2]) as (model_dir, cfg):
    print(json.dumps(cfg.to_dict()))
"""


def test_import_needs_only_mlflow_skinny(trained: dict[str, Any], tmp_path: Path) -> None:
    """Import with the packages mlflow-skinny does not bring (numpy, pandas, scikit-learn, SQLAlchemy...)
    absent from the interpreter's path."""
    import os
    import site
    import subprocess

    site_dir = Path(next(p for p in site.getsitepackages() if Path(p, "mlflow").is_dir()))
    skinny = tmp_path / "site"
    skinny.mkdir()
    for entry in site_dir.iterdir():
        if entry.name.split("-")[0].split(".")[0] not in SKINNY_ABSENT and entry.suffix != ".pth":
            (skinny / entry.name).symlink_to(entry)
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{repo}{os.pathsep}{skinny}"}
    out = subprocess.run([sys.executable, "-S", "-c", SKINNY, f"models:/{trained['name']}@champion",
                          trained["uri"]], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    check_config(json.loads(out.stdout.strip().splitlines()[-1]), trained)


# -- errors ---------------------------------------------------------------------------------------


def _one_line(exc: pytest.ExceptionInfo[MLflowError]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and "Traceback" not in msg and len(msg) < 300
    return msg


@pytest.mark.parametrize("uri, says", [
    ("runs:/0123456789abcdef0123456789abcdef/model", "run 0123456789abcdef0123456789abcdef not found"),
    ("models:/m-0123456789abcdef0123456789abcdef", "logged model m-0123456789abcdef0123456789abcdef not found"),
    ("models:/no-such-model/1", "registered model 'no-such-model' does not exist"),
    ("models:/no-such-model@champion", "registered model 'no-such-model' does not exist"),
    ("{name}/99", "has no version '99'"),
    ("{name}@nope", "alias 'nope' is not set"),
])
def test_unknown_things_are_one_line_errors(trained: dict[str, Any], uri: str, says: str) -> None:
    uri = uri.replace("{name}", f"models:/{trained['name']}")
    with pytest.raises(MLflowError) as exc, import_model(uri, tracking_uri=trained["uri"]):
        pass
    assert says in _one_line(exc)


def test_run_without_a_model(trained: dict[str, Any]) -> None:
    client = _client(trained["uri"])
    run = client.create_run(client.get_run(trained["run_id"]).info.experiment_id)
    client.set_terminated(run.info.run_id)
    with pytest.raises(MLflowError) as exc, import_model(f"runs:/{run.info.run_id}/model",
                                                         tracking_uri=trained["uri"]):
        pass
    assert f"run {run.info.run_id} has no logged model" in _one_line(exc)


def test_unreachable_server_fails_fast_and_pushes_nothing(tmp_path: Path) -> None:
    from tests.fixtures.mlflow import _free_port

    uri = f"http://bob:t0ps3cret@127.0.0.1:{_free_port()}"
    layout = tmp_path / "layout"
    with pytest.raises(MLflowError) as exc:
        steps.package(source="models:/iris@champion", ref=f"oci:{layout}:v1", tracking_uri=uri)
    msg = _one_line(exc)
    assert "unreachable" in msg and "t0ps3cret" not in msg
    assert not layout.exists()
