"""Framework, format and signature from real MLmodel directories, one per flavor MLflow saves here.

Each model is saved with MLflow's own ``save_model`` (no tracking server needed); TensorFlow, Keras and
Transformers are not installed on this machine, so their MLmodel flavor blocks are written as MLflow
writes them (the keys were read in MLflow's save code).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modelhaul.tracking.mapping import flavor_versions, framework_and_format, parse_signature, read_mlmodel


def _iris() -> tuple:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x.astype("float32"), y


def _save_sklearn(d: Path) -> None:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    x, y = _iris()
    mlflow.sklearn.save_model(LogisticRegression(max_iter=300).fit(x, y), d, pip_requirements=["scikit-learn"])


def _save_xgboost(d: Path) -> None:
    import mlflow
    import xgboost as xgb

    x, y = _iris()
    mlflow.xgboost.save_model(xgb.XGBClassifier(n_estimators=3, max_depth=2).fit(x, y), d,
                              pip_requirements=["xgboost"])


def _save_lightgbm(d: Path) -> None:
    import lightgbm as lgb
    import mlflow

    x, y = _iris()
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1}, lgb.Dataset(x, y),
                        num_boost_round=3)
    mlflow.lightgbm.save_model(booster, d, pip_requirements=["lightgbm"])


def _save_onnx(d: Path) -> None:
    import mlflow
    from mlflow.models import infer_signature
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y = _iris()
    onx = to_onnx(LogisticRegression(max_iter=300).fit(x, y), x[:1], target_opset=17)
    mlflow.onnx.save_model(onx, d, pip_requirements=["onnx"],
                           signature=infer_signature(x[:2], y[:2].astype("int64")))


def _torch_model():  # noqa: ANN202
    import torch

    return torch.nn.Sequential(torch.nn.Linear(4, 3))


def _save_torchscript(d: Path) -> None:
    import mlflow
    import torch
    from mlflow.models import infer_signature

    x, _ = _iris()
    m = torch.jit.script(_torch_model())
    sig = infer_signature(x[:2], m(torch.from_numpy(x[:2])).detach().numpy())
    mlflow.pytorch.save_model(m, d, serialization_format="pickle", pip_requirements=["torch"], signature=sig)


def _save_torch_pickle(d: Path) -> None:
    import mlflow

    mlflow.pytorch.save_model(_torch_model(), d, serialization_format="pickle", pip_requirements=["torch"])


def _save_pt2(d: Path) -> None:
    import mlflow

    x, _ = _iris()
    mlflow.pytorch.save_model(_torch_model(), d, serialization_format="pt2", input_example=x[:2],
                              pip_requirements=["torch"])


def _save_pyfunc(d: Path) -> None:
    import mlflow

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
            return model_input

    mlflow.pyfunc.save_model(d, python_model=Echo(), pip_requirements=["mlflow"])


@pytest.mark.parametrize("save, framework, fmt, flavor", [
    (_save_sklearn, "scikit-learn", "SKLearn", "sklearn"),
    (_save_xgboost, "XGBoost", "XGBoost", "xgboost"),
    (_save_lightgbm, "LightGBM", "LightGBM", "lightgbm"),
    (_save_onnx, "ONNX", "ONNX", "onnx"),
    (_save_torchscript, "PyTorch", "TorchScript", "pytorch"),
    (_save_torch_pickle, "PyTorch", "PyTorch", "pytorch"),
    (_save_pt2, "PyTorch", "PT2", "pytorch"),
    (_save_pyfunc, "MLflow", "MLflow", "python_function"),
], ids=["sklearn", "xgboost", "lightgbm", "onnx", "torchscript", "torch-pickle", "pt2", "pyfunc"])
def test_framework_and_format_of_saved_models(tmp_path: Path, save, framework: str, fmt: str,
                                              flavor: str) -> None:
    d = tmp_path / "model"
    save(d)
    mlmodel = read_mlmodel(d)
    assert framework_and_format(mlmodel["flavors"], d) == (framework, fmt)
    assert flavor_versions(mlmodel["flavors"])[flavor]


def test_tensor_spec_signature_keeps_dynamic_dims(tmp_path: Path) -> None:
    _save_torchscript(tmp_path / "m")
    sig = parse_signature(read_mlmodel(tmp_path / "m")["signature"])
    assert [(t.size, t.d_type) for t in sig.inputs] == [([-1, 4], "float32")]
    assert [(t.size, t.d_type) for t in sig.outputs] == [([-1, 3], "float32")]


@pytest.mark.parametrize("flavors, expected", [
    ({"tensorflow": {"saved_model_dir": "tf2model", "model_type": "tf2-module"}}, ("TensorFlow", "SavedModel")),
    ({"tensorflow": {"data": "data", "model_type": "keras", "keras_version": "2.15", "save_format": "tf"}},
     ("TensorFlow", "SavedModel")),
    ({"tensorflow": {"data": "data", "model_type": "keras", "keras_version": "2.15", "save_format": "h5"}},
     ("TensorFlow", "Keras")),
    # MLflow's keras flavor is Keras 3 (any backend): framework Keras, as a .keras file parses
    ({"keras": {"data": "data", "keras_version": "3.5", "save_exported_model": False}}, ("Keras", "Keras")),
    ({"keras": {"data": "data", "keras_version": "3.5", "save_exported_model": True}},
     ("Keras", "SavedModel")),
    ({"transformers": {"transformers_version": "4.46.0", "task": "text-classification"}},
     ("Transformers", "Transformers")),
])
def test_flavors_not_installed_here(tmp_path: Path, flavors: dict, expected: tuple[str, str]) -> None:
    (tmp_path / "MLmodel").write_text(yaml.safe_dump({"flavors": {**flavors, "python_function": {}}}))
    assert framework_and_format(read_mlmodel(tmp_path)["flavors"], tmp_path) == expected
