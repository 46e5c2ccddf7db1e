"""The storage initializer run as a process (as Seldon's and KServe's init containers run it): it pulls
a digest-pinned model from a real registry (or an OCI layout) and writes each server's layout."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelhaul import artifacts
from modelhaul.serving.initializer import SERVERS, build_uri
from tests.fixtures.registry import unique_repo

SCRIPT = Path(sys.executable).parent / "modelhaul-initializer"


def run_initializer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "modelhaul.cli.initializer"]
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("MODELHAUL_", "ORMB_")) and k != "DOCKER_CONFIG"}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, env={**base, **(env or {})},
                          timeout=120)


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


# -- model directories, one per layout -----------------------------------------------------------


def _onnx_model(d: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [None, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "relu", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, d / "model.onnx")


def _sklearn_model():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit([[0.0, 1.0], [1.0, 0.0], [0.5, 0.9], [0.9, 0.1]], [0, 1, 0, 1])


def _joblib_model(d: Path) -> None:
    import joblib

    joblib.dump(_sklearn_model(), d / "model.joblib")


def _xgboost_model(d: Path) -> None:
    import numpy as np
    import xgboost

    data = xgboost.DMatrix(np.array([[0.0, 1.0], [1.0, 0.0]] * 4), label=np.array([0, 1] * 4))
    booster = xgboost.train({"max_depth": 2, "nthread": 1}, data, num_boost_round=2)
    (d / "model.bst").write_bytes(booster.save_raw("ubj"))


def _mlflow_model(d: Path) -> None:
    import joblib

    joblib.dump(_sklearn_model(), d / "model.pkl")
    (d / "MLmodel").write_text(
        "artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
        "    model_path: model.pkl\n    python_version: 3.11.7\n  sklearn:\n    pickled_model: model.pkl\n"
        "    serialization_format: pickle\n    sklearn_version: 1.9.1\nmlflow_version: 3.17.2\n")


def _savedmodel(d: Path) -> None:
    from tests.test_formats import make_savedmodel  # a real saved_model.pb, written without TensorFlow

    make_savedmodel(d)


# server -> (model writer, files the layout must contain, relative to dest; {name} is the model name)
LAYOUTS = {
    "triton": (_onnx_model, ["{name}/config.pbtxt", "{name}/1/model.onnx"]),
    "tfserving": (_savedmodel, ["1/saved_model.pb", "1/variables/variables.index"]),
    "sklearn": (_joblib_model, ["model.joblib"]),
    "xgboost": (_xgboost_model, ["model.bst"]),
    "mlflow": (_mlflow_model, ["MLmodel", "model.pkl"]),
    "mlserver": (_joblib_model, ["model-settings.json"]),
}


def _publish(tmp_path: Path, server: str, ref: str, options=None) -> str:
    src = tmp_path / f"src-{server}"
    src.mkdir()
    LAYOUTS[server][0](src)
    return artifacts.publish(src, ref, options=options)["ref"]


@pytest.mark.parametrize("server", sorted(LAYOUTS))
def test_each_layout_from_the_registry(server, registry, tmp_path):
    pinned = _publish(tmp_path, server, registry.ref(unique_repo("init"), "v1"), registry.options)
    dest = tmp_path / "mnt" / "models"
    dest.mkdir(parents=True)  # the emptyDir the server mounts exists and is empty
    uri = build_uri(pinned, server=server, name="iris")
    r = run_initializer(uri, str(dest), env={"MODELHAUL_PLAIN_HTTP": "true"})
    assert r.returncode == 0, r.stderr
    assert f"{server} layout" in r.stdout and pinned.split("@")[1] in r.stdout
    for rel in LAYOUTS[server][1]:
        assert (dest / rel.format(name="iris")).is_file(), sorted(str(p.relative_to(dest))
                                                                  for p in dest.rglob("*"))
    assert not (dest / "ormbfile.yaml").exists() or server == "mlserver"


def test_server_flag_overrides_the_uri_and_layout_comes_from_the_model_without_one(tmp_path):
    pinned = _publish(tmp_path, "sklearn", f"oci:{tmp_path / 'store'}:v1")
    r = run_initializer(build_uri(pinned, server="triton", name="iris"), str(tmp_path / "a"),
                        env={"MODELHAUL_SERVER": "sklearn"})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "a" / "model.joblib").is_file()
    r = run_initializer(pinned, str(tmp_path / "b"))  # a bare reference: server chosen from the model
    assert r.returncode == 0, r.stderr
    assert any(f"the {s} layout" in r.stdout for s in SERVERS)


def test_credentials_from_the_environment_or_a_docker_config(auth_registry, tmp_path):
    pinned = _publish(tmp_path, "sklearn", auth_registry.ref(unique_repo("init"), "v1"), auth_registry.options)
    uri = build_uri(pinned, server="sklearn", name="iris", plain_http=True)
    line = one_line_error(run_initializer(uri, str(tmp_path / "anon")))
    assert "modelhaul-initializer: error:" in line
    for i, env in enumerate([
        {"MODELHAUL_USERNAME": auth_registry.username, "MODELHAUL_PASSWORD": auth_registry.password},
        {"ORMB_USERNAME": auth_registry.username, "ORMB_PASSWORD": auth_registry.password},
    ]):
        r = run_initializer(uri, str(tmp_path / f"env{i}"), env=env)
        assert r.returncode == 0, r.stderr
        assert auth_registry.password not in r.stdout + r.stderr
    docker = tmp_path / "docker"
    docker.mkdir()
    token = base64.b64encode(f"{auth_registry.username}:{auth_registry.password}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": token}}}))
    r = run_initializer(uri, str(tmp_path / "docker-out"), env={"DOCKER_CONFIG": str(docker)})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "docker-out" / "model.joblib").is_file()


# -- refusals (no server, no layouts needed) ----------------------------------------------------


@pytest.fixture(scope="module")
def layout_model(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("init-layout")
    (d / "src").mkdir()
    (d / "src" / "model.onnx").write_bytes(b"not really onnx")
    return artifacts.publish(d / "src", f"oci:{d / 'store'}:v1")["ref"]


def test_unpinned_reference_is_refused_unless_allowed(layout_model, tmp_path):
    tagged = layout_model.split("@")[0]
    line = one_line_error(run_initializer(f"modelhaul://{tagged}", str(tmp_path / "d")))
    assert "not pinned by digest" in line and "--allow-tag" in line
    assert not (tmp_path / "d").exists()


def test_wrong_scheme_unknown_digest_and_busy_destination_fail_in_one_line(layout_model, registry, tmp_path):
    line = one_line_error(run_initializer("oci://" + layout_model.split(":", 1)[1], str(tmp_path / "d")))
    assert "not a modelhaul URI" in line
    missing = f"{registry.host}/{unique_repo('init')}@sha256:{'0' * 64}"
    line = one_line_error(run_initializer(f"modelhaul://{missing}?plain_http=true", str(tmp_path / "d")))
    assert line.startswith("modelhaul-initializer: error:")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    assert "not empty" in one_line_error(run_initializer(f"modelhaul://{layout_model}", str(busy)))
    line = one_line_error(run_initializer(f"modelhaul://{layout_model}", str(tmp_path / "e"),
                                          env={"MODELHAUL_SERVER": "docker"}))
    assert "server 'docker'" in line


def test_dockerfile_runs_the_entrypoint():
    # issue 14: the initializer image builds FROM the one modelhaul image (the Dockerfile), which is
    # where python:3.11-slim is named now
    root = Path(__file__).resolve().parents[1]
    text = (root / "Dockerfile.initializer").read_text()
    assert "FROM ${BASE}" in text
    assert "FROM python:3.11-slim" in (root / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["modelhaul-initializer"]' in text


def test_ca_file_reaches_a_tls_registry(tls_registry, tmp_path):
    pinned = _publish(tmp_path, "sklearn", tls_registry.ref(unique_repo("init-tls"), "v1"), tls_registry.options)
    uri = build_uri(pinned, server="sklearn", name="iris")
    assert "CERTIFICATE_VERIFY_FAILED" in one_line_error(run_initializer(uri, str(tmp_path / "no-ca")))
    r = run_initializer(uri, str(tmp_path / "flag"), "--ca-file", tls_registry.ca_file)
    assert r.returncode == 0, r.stderr
    r = run_initializer(uri, str(tmp_path / "env"), env={"MODELHAUL_CA_FILE": tls_registry.ca_file})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "flag" / "model.joblib").is_file() and (tmp_path / "env" / "model.joblib").is_file()
