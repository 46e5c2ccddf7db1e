"""What the initializer writes is what the real MLServer loads, and it serves the original predictions.

For every layout: train a small model, package it to the real test registry, render the
SeldonDeployment (and the KServe InferenceService) with modelhaul's deploy, take ``modelUri`` /
``storageUri`` from the rendered manifest, run the real ``modelhaul-initializer URI DEST`` as the
init container does, start MLServer 1.7.1 (its own venv) with the environment Seldon Core v1 gives
its protocol-v2 prepackaged servers, POST ``/v2/models/NAME/infer`` and compare with the model's
own predictions. KServe's kserve-mlserver runs the same MLServer on the same layout: its
initializer output is checked to be byte-identical to Seldon's, and that layout is served once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from modelhaul import steps
from modelhaul.serving import seldon
from tests.fixtures.mlserver import MLServer, running, seldon_env, start_mlserver
from tests.fixtures.registry import unique_repo

pytestmark = pytest.mark.slow

INITIALIZER = Path(sys.executable).with_name("modelhaul-initializer")
IMPLEMENTATION = {  # what Seldon Core v1 runs for each protocol-v2 prepackaged server
    "SKLEARN_SERVER": "mlserver_sklearn.SKLearnModel",
    "XGBOOST_SERVER": "mlserver_xgboost.XGBoostModel",
    "MLFLOW_SERVER": "mlserver_mlflow.MLflowRuntime",
}
KSERVE_MODEL_CLASS = {  # kserve-mlserver's modelClass per modelFormat
    "sklearn": "mlserver_sklearn.SKLearnModel",
    "xgboost": "mlserver_xgboost.XGBoostModel",
    "mlflow": "mlserver_mlflow.MLflowRuntime",
}


def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x, y


@dataclass
class Case:
    """One model layout: how to build its directory and what it must predict."""

    id: str
    build: Callable[[Path], np.ndarray]  # writes the model directory, returns the expected predictions
    config: dict[str, Any] = field(default_factory=dict)
    trust: bool = False  # the layout re-saves a pickle/skops file: the initializer must load it
    exact: bool = True  # labels compare equal; probabilities compare close
    server: str | None = None  # an initializer layout with no Seldon/KServe manifest (LightGBM)
    # filled in by the setup
    dest: Path | None = None
    mlserver: MLServer | None = None
    kserve_mlserver: MLServer | None = None  # only when KServe's layout differs in bytes (a re-saved pickle)
    manifests: dict[str, Any] = field(default_factory=dict)


def _sklearn_joblib(d: Path) -> np.ndarray:
    import joblib
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    clf = LogisticRegression(max_iter=300).fit(x, y)
    joblib.dump(clf, d / "model.joblib")
    return clf.predict(x)


def _sklearn_skops(d: Path) -> np.ndarray:
    import skops.io as sio
    from sklearn.tree import DecisionTreeClassifier

    x, y = iris()
    clf = DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y)
    sio.dump(clf, d / "model.skops")
    return clf.predict(x)


def _xgb(d: Path, how: str) -> np.ndarray:
    import joblib
    import xgboost

    x, y = iris()
    clf = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(x, y)
    if how == "pickle":
        joblib.dump(clf, d / "model.pkl")
    else:
        clf.save_model(str(d / f"model.{how}"))
    return clf.predict(x)


def _lightgbm_pickle(d: Path) -> np.ndarray:
    import joblib
    import lightgbm

    x, y = iris()
    clf = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y)
    joblib.dump(clf, d / "model.joblib")
    return clf.predict(x)


def _lightgbm_text(d: Path) -> np.ndarray:
    import lightgbm

    x, y = iris()
    booster = lightgbm.train({"objective": "multiclass", "num_class": 3, "verbose": -1, "num_iterations": 5},
                             lightgbm.Dataset(x, y))
    booster.save_model(str(d / "model.txt"))
    return booster.predict(x)


def _mlflow_sklearn(d: Path) -> np.ndarray:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    clf = LogisticRegression(max_iter=300).fit(x, y)
    os.rmdir(d)  # save_model wants to create the directory
    mlflow.sklearn.save_model(clf, str(d), signature=infer_signature(x, clf.predict(x)),
                              pip_requirements=["scikit-learn"])
    return clf.predict(x)


CASES = [
    Case("sklearn-joblib", _sklearn_joblib),
    Case("sklearn-skops", _sklearn_skops, trust=True),
    Case("xgboost-json", lambda d: _xgb(d, "json")),
    Case("xgboost-ubj", lambda d: _xgb(d, "ubj")),
    Case("xgboost-pickle", lambda d: _xgb(d, "pickle"), config={"format": "XGBoost", "framework": "XGBoost"},
         trust=True),
    Case("lightgbm-pickle", _lightgbm_pickle),
    Case("lightgbm-text", _lightgbm_text, exact=False, server="mlserver"),
    Case("mlflow-sklearn", _mlflow_sklearn),
]


def run_initializer(uri: str, dest: Path, home: Path, env: dict[str, str]) -> None:
    """The init container: ``[uri, /mnt/models]`` with the env of the Secret it is given."""
    full = {"PATH": os.environ["PATH"], "HOME": str(home), "MODELHAUL_HOME": str(home / ".modelhaul"), **env}
    r = subprocess.run([str(INITIALIZER), uri, str(dest)], env=full, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"modelhaul-initializer {uri}: {r.stderr}"


def rendered(res: dict[str, Any], kind: str) -> dict[str, Any]:
    for path in res["manifests"]:
        doc = yaml.safe_load(Path(path).read_text())
        if doc.get("kind") == kind:
            return doc
    raise AssertionError(f"no {kind} among {res['manifests']}")


def tree(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def setup_case(case: Case, registry, root: Path) -> None:
    """Package, render, initialize: everything up to starting the server."""
    src = root / "src"
    src.mkdir(parents=True)
    expected = case.build(src)
    np.save(root / "expected.npy", expected)
    repo = unique_repo(case.id)
    pub = steps.package(source=str(src), ref=registry.ref(repo, "v1"), config=case.config or None, plain_http=True)
    env = {"MODELHAUL_TRUST": "true"} if case.trust else {}  # from the envSecretRefName Secret in a cluster
    case.dest = root / "mnt-models"
    if case.server:  # no prepackaged Seldon/KServe server for this layout: the initializer's own URI
        from modelhaul.serving.initializer import build_uri

        run_initializer(build_uri(pub["ref"], server=case.server, name=case.id, plain_http=True), case.dest, root,
                        env)
        return
    sd = rendered(steps.deploy(ref=pub["ref"], target="seldon", name=case.id, render_dir=str(root / "seldon"),
                               plain_http=True), "SeldonDeployment")
    graph = sd["spec"]["predictors"][0]["graph"]
    assert sd["spec"]["protocol"] == seldon.PROTOCOL == "v2"
    case.manifests["seldon"] = graph
    run_initializer(graph["modelUri"], case.dest, root, env)

    isvc = rendered(steps.deploy(ref=pub["ref"], target="kserve", name=case.id, render_dir=str(root / "kserve"),
                                 plain_http=True), "InferenceService")
    model = isvc["spec"]["predictor"]["model"]
    case.manifests["kserve"] = model
    run_initializer(model["storageUri"], root / "kserve-mnt-models", root, env)


@pytest.fixture(scope="module")
def served(registry, mlserver_venv, tmp_path_factory) -> Any:
    base = tmp_path_factory.mktemp("mlserver")
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda c: setup_case(c, registry, base / c.id), CASES))
    servers = []
    for case in CASES:
        assert case.dest is not None
        if case.server:  # a model repository: MLServer reads the model-settings.json the initializer wrote
            env = {"MLSERVER_MODELS_DIR": str(case.dest)}
        else:
            graph = case.manifests["seldon"]
            env = seldon_env(IMPLEMENTATION[graph["implementation"]], graph["name"], case.dest)
        case.mlserver = start_mlserver(mlserver_venv, case.dest, case.id, env, base / case.id / "mlserver.log")
        servers.append(case.mlserver)
        kserve_dest = case.dest.parent / "kserve-mnt-models"
        if not case.server and tree(kserve_dest) != tree(case.dest):
            model = case.manifests["kserve"]
            kenv = {"MLSERVER_MODEL_IMPLEMENTATION": KSERVE_MODEL_CLASS[model["modelFormat"]["name"]],
                    "MLSERVER_MODEL_NAME": case.id, "MLSERVER_MODEL_URI": str(kserve_dest),
                    "MLSERVER_MODELS_DIR": str(kserve_dest)}
            case.kserve_mlserver = start_mlserver(mlserver_venv, kserve_dest, case.id, kenv,
                                                  base / case.id / "kserve-mlserver.log")
            servers.append(case.kserve_mlserver)
    with running(servers):
        yield {c.id: c for c in CASES}


def assert_serves(server: MLServer, case: Case) -> None:
    x, _ = iris()
    assert case.dest is not None
    expected = np.load(case.dest.parent / "expected.npy")
    out = server.infer([{"name": "input-0", "shape": list(x.shape), "datatype": "FP64", "data": x.ravel().tolist()}])
    first = out["outputs"][0]
    got = np.asarray(first["data"]).reshape(first["shape"])
    if case.exact:
        assert first["datatype"].startswith("INT"), f"{case.id}: served {first['datatype']}, expected labels"
        np.testing.assert_array_equal(got.ravel(), expected.ravel())
    else:
        np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("case_id", [c.id for c in CASES])
def test_mlserver_serves_what_the_initializer_wrote(served, case_id):
    case = served[case_id]
    assert case.mlserver is not None
    assert_serves(case.mlserver, case)


@pytest.mark.parametrize("case_id", [c.id for c in CASES if not c.server])
def test_kserve_initializer_writes_the_layout_seldon_serves(served, case_id):
    case = served[case_id]
    graph, model = case.manifests["seldon"], case.manifests["kserve"]
    kserve_dest = case.dest.parent / "kserve-mnt-models"
    if case.kserve_mlserver is not None:  # a re-saved pickle differs in bytes: serve KServe's own layout
        assert sorted(tree(kserve_dest)) == sorted(tree(case.dest))
        assert_serves(case.kserve_mlserver, case)
    else:  # the same bytes MLServer already serves for Seldon
        assert tree(kserve_dest) == tree(case.dest)
    fmt = model["modelFormat"]["name"]
    impl = {"sklearn": "SKLEARN_SERVER", "xgboost": "XGBOOST_SERVER", "mlflow": "MLFLOW_SERVER"}[fmt]
    assert graph["implementation"] == impl and model["protocolVersion"] == "v2"


def test_the_pickled_xgboost_classifier_is_saved_with_its_sklearn_metadata(served):
    """MLServer's XGBoost runtime serves a classifier only when the file says it is one."""
    model_file = served["xgboost-pickle"].dest / "model.bst"
    import xgboost

    booster = xgboost.Booster(model_file=str(model_file))
    meta = json.loads(booster.attr("scikit_learn") or "{}")
    assert meta.get("_estimator_type") == "classifier"
