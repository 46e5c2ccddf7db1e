"""The train step on a SQLite store: the shipped example, an MLflow Project from a git checkout, a
deliberately bad model, autolog-only code, and the mistakes a user makes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelhaul import steps
from modelhaul.errors import ConfigError, MLflowError
from modelhaul.tracking import import_model
from tests.fixtures.mlflow import GIT_REMOTE_CLEAN, Checkout

DOCUMENTED_KEYS = {"run_id", "model_uri", "model_id", "experiment_id", "metrics", "registered_model", "version"}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SQLite store puts new experiments' artifacts under ./mlruns: keep them out of the repo."""
    monkeypatch.chdir(tmp_path)


def test_example_trains_with_the_documented_result(mlflow_sqlite: str) -> None:
    out = steps.train(entry_point="modelhaul.examples.iris:train", params={"dataset": "wine"},
                      tracking_uri=mlflow_sqlite, experiment="example")
    assert set(out) == DOCUMENTED_KEYS
    json.dumps(out)
    assert out["model_uri"] == f"models:/{out['model_id']}"
    assert (out["registered_model"], out["version"]) == (None, None)
    assert out["metrics"]["accuracy"] > 0.85
    assert not Path("mlruns").exists()  # artifacts live beside the SQLite file, not in the working dir
    with import_model(out["model_uri"], tracking_uri=mlflow_sqlite) as (model_dir, cfg):
        assert (model_dir / "MLmodel").is_file()
        assert cfg.metric("accuracy") == pytest.approx(out["metrics"]["accuracy"])
        assert {d.name for d in cfg.datasets} == {"wine-train", "wine-test"}
        assert len(cfg.signature.inputs) == 13


def test_project_from_a_git_checkout_gives_a_bad_model_on_request(
        mlflow_sqlite: str, training_checkout: Checkout) -> None:
    out = steps.train(entry_point=str(training_checkout.path), params={"label_noise": 1.0},
                      tracking_uri=mlflow_sqlite, experiment="project", run_name="noisy",
                      registered_model="iris-project", alias="candidate")
    assert out["metrics"]["accuracy"] < 0.5  # what a promotion gate must reject
    assert out["version"] == "1"
    with import_model("models:/iris-project@candidate", tracking_uri=mlflow_sqlite) as (_d, cfg):
        # MLflow Projects record the checkout's commit themselves
        assert cfg.training.git.revision == training_checkout.commit
        assert cfg.training.git.repository == GIT_REMOTE_CLEAN
        assert cfg.provenance.mlflow.run_name == "noisy"
        assert cfg.provenance.mlflow.aliases == ["candidate"]
        assert {p.name: p.value for p in cfg.hyper_parameters}["label_noise"] == "1.0"
        assert cfg.metric("iris-test.accuracy") == pytest.approx(out["metrics"]["accuracy"])


AUTOLOG_ONLY = '''\
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


def train(c=1.0):
    x, y = load_iris(return_X_y=True, as_frame=True)
    LogisticRegression(C=c, max_iter=500).fit(x, y)
'''


def test_code_that_logs_no_model_gets_autologs(mlflow_sqlite: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "autolog_only.py").write_text(AUTOLOG_ONLY)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = steps.train(entry_point="autolog_only:train", params={"c": 2.0}, tracking_uri=mlflow_sqlite,
                      experiment="autolog")
    assert out["metrics"]["training_accuracy_score"] > 0.9
    with import_model(f"runs:/{out['run_id']}/model", tracking_uri=mlflow_sqlite) as (_d, cfg):
        assert cfg.format == "SKLearn" and cfg.provenance.mlflow.model_id == out["model_id"]
        assert {p.name: p.value for p in cfg.hyper_parameters}["C"] == "2.0"


WRAPPER = '''\
from modelhaul.examples.iris import train as _train


def train(**params):
    return _train(**params)
'''


def test_autologs_copy_of_a_logged_model_is_not_left_beside_it(mlflow_sqlite: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    # the module itself calls no log_model, so autolog is on for models while the code logs its own
    (tmp_path / "wrapper.py").write_text(WRAPPER)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = steps.train(entry_point="wrapper:train", tracking_uri=mlflow_sqlite, experiment="wrapper")
    models = MlflowClient(mlflow_sqlite).search_logged_models(
        experiment_ids=[out["experiment_id"]], filter_string=f"source_run_id = '{out['run_id']}'")
    assert [m.model_id for m in models] == [out["model_id"]]
    with import_model(f"runs:/{out['run_id']}/model", tracking_uri=mlflow_sqlite) as (model_dir, _cfg):
        assert (model_dir / "input_example.json").is_file()  # the example's own model, not autolog's


def no_model(**_params: Any) -> None:
    import mlflow

    mlflow.log_metric("accuracy", 0.5)


def test_code_that_logs_no_model_at_all(mlflow_sqlite: str) -> None:
    with pytest.raises(MLflowError, match="logged no model in run"):
        steps.train(entry_point="tests.test_train:no_model", tracking_uri=mlflow_sqlite, experiment="bad")


@pytest.mark.parametrize("kw, says", [
    ({"entry_point": "no_such_module_xyz:train"}, "cannot import 'no_such_module_xyz'"),
    ({"entry_point": "modelhaul.examples.iris:nope"}, "has no attribute 'nope'"),
    ({"entry_point": "modelhaul.examples.iris"}, "expected 'package.module:function'"),
    ({"entry_point": "modelhaul.examples.iris:train", "alias": "champion"}, "needs registered_model"),
])
def test_mistakes_are_one_line_errors(mlflow_sqlite: str, kw: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as exc:
        steps.train(tracking_uri=mlflow_sqlite, experiment="bad", **kw)
    assert says in str(exc.value) and "\n" not in str(exc.value)


def test_the_example_trains_and_packages_in_one_call(mlflow_sqlite: str, tmp_path: Path) -> None:
    from modelhaul import artifacts
    from modelhaul.examples.iris import train_and_package

    out = train_and_package(f"oci:{tmp_path}/models:iris", tracking_uri=mlflow_sqlite, experiment="one-call")
    config = artifacts.inspect(out["package"]["ref"])["config"]
    assert config["provenance"]["mlflow"]["runId"] == out["train"]["run_id"]
    assert config["framework"] == "scikit-learn" and config["signature"]["inputs"]
