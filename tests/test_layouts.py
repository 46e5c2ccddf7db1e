"""Serving layouts: Triton repositories (config.pbtxt read back with tritonclient's protobuf), MLServer,
TF Serving, Seldon's sklearn / xgboost / mlflow servers."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from google.protobuf import text_format

from modelhaul.config import ModelConfig, Tensor
from modelhaul.errors import DeployError
from modelhaul.formats import parse_directory
from modelhaul.formats.convert import convert_directory
from modelhaul.serving import triton
from modelhaul.serving.layouts import server_for, write_layout
from tests.test_formats import (
    PMML,
    make_lightgbm,
    make_onnx,
    make_savedmodel,
    make_sklearn,
    make_torchscript,
    make_xgboost,
    save_joblib,
    save_skops,
    tabular,
    write_mlmodel,
)


def read_pbtxt(path):
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def _cfg(model_dir, **extra):
    return ModelConfig.from_dict({**parse_directory(model_dir).config_patch(), **extra})


def _io(cfg_pb):
    from tritonclient.grpc import model_config_pb2

    def t(x):
        return (x.name, model_config_pb2.DataType.Name(x.data_type), list(x.dims),
                list(x.reshape.shape) if x.HasField("reshape") else None)

    return [t(i) for i in cfg_pb.input], [t(o) for o in cfg_pb.output]


def test_triton_onnx_with_external_data_is_copied_as_is(tmp_path):
    src = make_onnx(tmp_path / "src" / "model.onnx", external=True)
    root = write_layout(src.parent, _cfg(src.parent), tmp_path / "repo", "triton", name="iris")
    assert root == tmp_path / "repo" / "iris"
    pb = read_pbtxt(root / "config.pbtxt")
    assert (pb.name, pb.platform, pb.max_batch_size) == ("iris", "onnxruntime_onnx", triton.DEFAULT_MAX_BATCH_SIZE)
    assert _io(pb) == ([("x", "TYPE_FP32", [4], None)], [("probabilities", "TYPE_FP32", [4], None)])
    assert pb.HasField("dynamic_batching")
    data = root / "1" / "model.onnx.data"
    assert (root / "1" / "model.onnx").is_file()
    # was "linked, not copied": a layout owns its bytes (issue 10), so a byte-identical copy, never the inode
    assert data.read_bytes() == (src.parent / "model.onnx.data").read_bytes()
    assert os.stat(data).st_ino != os.stat(src.parent / "model.onnx.data").st_ino
    parse_directory(root / "1")  # the graph still finds its weights


def test_triton_classifier_label_is_reshaped(tmp_path):
    src = save_skops(make_sklearn("logreg"), tmp_path / "src" / "model.skops")
    res = convert_directory(src.parent, tmp_path / "onnx")
    root = write_layout(tmp_path / "onnx", res.config, tmp_path / "repo", server_for(res.config))
    pb = read_pbtxt(root / "config.pbtxt")
    assert _io(pb) == ([("input", "TYPE_FP32", [4], None)],
                       [("label", "TYPE_INT64", [1], []), ("probabilities", "TYPE_FP32", [3], None)])


def test_triton_torchscript_names_and_savedmodel(tmp_path):
    ts = make_torchscript(tmp_path / "ts" / "model.pt")
    cfg = _cfg(ts.parent, signature={"inputs": [{"name": "x", "size": [-1, 4], "dType": "float32"}],
                                     "outputs": [{"size": [-1, 3], "dType": "float32"}]})
    root = write_layout(ts.parent, cfg, tmp_path / "repo", "triton", name="net")
    pb = read_pbtxt(root / "config.pbtxt")
    assert pb.platform == "pytorch_libtorch" and (root / "1" / "model.pt").is_file()
    assert _io(pb) == ([("x", "TYPE_FP32", [4], None)], [("output__0", "TYPE_FP32", [3], None)])

    sm = make_savedmodel(tmp_path / "sm")
    root = write_layout(sm, _cfg(sm), tmp_path / "repo", "triton", name="tf")
    pb = read_pbtxt(root / "config.pbtxt")
    assert pb.platform == "tensorflow_savedmodel"
    assert (root / "1" / "model.savedmodel" / "saved_model.pb").is_file()
    assert (root / "1" / "model.savedmodel" / "variables" / "variables.index").is_file()
    assert _io(pb) == ([("x", "TYPE_FP32", [4], None)], [("probs", "TYPE_FP32", [3], None)])


def test_fixed_shapes_mean_no_batching():
    text = triton.config_pbtxt("img", "ONNX", [Tensor(name="pixels", size=[1, 3, 8, 8], d_type="uint8")],
                               [Tensor(name="score", size=[1], d_type="float64")])
    from tritonclient.grpc import model_config_pb2

    pb = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert pb.max_batch_size == 0 and not pb.HasField("dynamic_batching")
    assert list(pb.input[0].dims) == [1, 3, 8, 8] and pb.input[0].data_type == model_config_pb2.TYPE_UINT8
    assert pb.output[0].data_type == model_config_pb2.TYPE_FP64


def test_triton_refuses_what_it_cannot_serve(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "model.pmml").write_text(PMML)
    with pytest.raises(DeployError, match="convert it first"):
        write_layout(tmp_path / "p", _cfg(tmp_path / "p"), tmp_path / "repo", "triton")
    with pytest.raises(DeployError, match="no shape"):
        triton.config_pbtxt("m", "ONNX", [Tensor(name="x", d_type="float32")], [Tensor(name="y", size=[1],
                                                                                       d_type="float32")])


def test_tfserving_version_directory(tmp_path):
    sm = make_savedmodel(tmp_path / "sm")
    out = write_layout(sm, _cfg(sm), tmp_path / "serve", "tfserving")
    assert (out / "1" / "saved_model.pb").is_file() and (out / "1" / "variables").is_dir()


def test_sklearn_server_joblib(tmp_path):
    import joblib

    x, _ = tabular(20, seed=9)
    est = make_sklearn("forest")
    src = save_joblib(est, tmp_path / "j" / "model.pkl")
    out = write_layout(src.parent, _cfg(src.parent), tmp_path / "s1", "sklearn")
    # copied as is (issue 10: no shared inode): no re-save, no loading
    assert (out / "model.joblib").read_bytes() == src.read_bytes()
    assert os.stat(out / "model.joblib").st_ino != os.stat(src).st_ino
    # a skops archive must be re-saved, which loads it: trees need explicit trust
    sk = save_skops(est, tmp_path / "k" / "model.skops")
    with pytest.raises(DeployError, match="trust=True"):
        write_layout(sk.parent, _cfg(sk.parent), tmp_path / "s2", "sklearn")
    assert not (tmp_path / "s2" / "model.joblib").exists()
    out = write_layout(sk.parent, _cfg(sk.parent), tmp_path / "s3", "sklearn", trust=True)
    np.testing.assert_array_equal(joblib.load(out / "model.joblib").predict(x), est.predict(x))


def test_xgboost_server_model_bst(tmp_path):
    import xgboost as xgb

    src = make_xgboost(tmp_path / "x" / "model.json")
    cfg = _cfg(src.parent)
    assert server_for(cfg) == "xgboost"
    out = write_layout(src.parent, cfg, tmp_path / "serve", "xgboost")
    booster = xgb.Booster(model_file=str(out / "model.bst"))
    assert booster.num_features() == 4


def test_mlserver_settings(tmp_path):
    lgb_src = make_lightgbm(tmp_path / "l" / "model.txt")
    cfg = _cfg(lgb_src.parent)
    assert server_for(cfg) == "mlserver"
    out = write_layout(lgb_src.parent, cfg, tmp_path / "ml-lgb", "mlserver", name="churn")
    settings = json.loads((out / "model-settings.json").read_text())
    assert settings == {"name": "churn", "implementation": "mlserver_lightgbm.LightGBMModel",
                        "parameters": {"uri": "./model.txt"}}
    assert (out / "model.txt").is_file()

    sk = save_joblib(make_sklearn("logreg"), tmp_path / "s" / "model.joblib")
    out = write_layout(sk.parent, _cfg(sk.parent), tmp_path / "ml-sk", "mlserver")
    settings = json.loads((out / "model-settings.json").read_text())
    assert settings["implementation"] == "mlserver_sklearn.SKLearnModel"
    assert settings["parameters"]["uri"] == "./model.joblib" and (out / "model.joblib").is_file()

    xg = make_xgboost(tmp_path / "x" / "model.ubj")
    out = write_layout(xg.parent, _cfg(xg.parent), tmp_path / "ml-xgb", "mlserver")
    assert json.loads((out / "model-settings.json").read_text())["parameters"]["uri"] == "./model.ubj"


def test_mlflow_directory_as_is(tmp_path):
    d = write_mlmodel(tmp_path / "m", {"xgboost": {"data": "model.ubj"}, "python_function": {"data": "model.ubj"}})
    make_xgboost(d / "model.ubj")
    cfg = _cfg(d)
    assert server_for(cfg, d) == "mlflow"
    out = write_layout(d, cfg, tmp_path / "serve", "mlflow")
    assert sorted(p.name for p in out.iterdir()) == ["MLmodel", "model.ubj"]
    out = write_layout(d, cfg, tmp_path / "mls", "mlserver")
    settings = json.loads((out / "model-settings.json").read_text())
    assert settings["implementation"] == "mlserver_mlflow.MLflowRuntime"
    with pytest.raises(DeployError, match="MLmodel"):
        write_layout(tmp_path / "serve" / "model.ubj", cfg, tmp_path / "x", "mlflow")


def test_server_for_defaults():
    def cfg(fmt, fw=None):
        return ModelConfig.from_dict({"format": fmt, "framework": fw})

    assert server_for(cfg("ONNX")) == "triton"
    assert server_for(cfg("TorchScript", "PyTorch")) == "triton"
    assert server_for(cfg("SavedModel", "TensorFlow")) == "triton"
    assert server_for(cfg("SKLearn", "scikit-learn")) == "sklearn"
    assert server_for(cfg("XGBoost")) == "xgboost"
    assert server_for(cfg("LightGBM")) == "mlserver"
    with pytest.raises(DeployError, match="convert it first"):
        server_for(cfg("PMML"))
    with pytest.raises(DeployError, match="expected one of"):
        write_layout(".", cfg("ONNX"), ".", "torchserve")
