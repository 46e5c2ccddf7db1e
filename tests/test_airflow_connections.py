"""Connections given as ``AIRFLOW_CONN_*`` in URI and JSON form reach the real services."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from urllib.parse import quote

import pytest

from modelhaul import artifacts
from tests.fixtures.registry import unique_repo

SKLEARN = {"format": "SKLearn", "framework": "scikit-learn", "metrics": {"accuracy": 0.95}}


def publish(tmp_path: Path, ref: str, options, content: bytes = b"weights") -> dict:
    d = tmp_path / f"model-{len(list(tmp_path.iterdir()))}"
    d.mkdir()
    (d / "model.joblib").write_bytes(content)
    return artifacts.publish(d, ref, config=SKLEARN, options=options)


def registry_conn_uri(server, password: str | None = None) -> str:
    pw = quote(password if password is not None else server.password, safe="")
    return f"modelhaul-registry://{server.username}:{pw}@{server.host}?plain_http=true"


def registry_conn_json(server, password: str | None = None) -> str:
    host, port = server.host.rsplit(":", 1)
    return json.dumps({"conn_type": "modelhaul_registry", "host": host, "port": int(port),
                       "login": server.username,
                       "password": password if password is not None else server.password,
                       "extra": {"plain_http": True}})


@pytest.mark.parametrize("form", ["uri", "json"])
def test_sensor_finds_a_new_digest_through_a_registry_connection(form, auth_registry, tmp_path, monkeypatch):
    from modelhaul.operators import ModelArtifactSensor

    conn_id = f"reg_{form}"
    value = registry_conn_uri(auth_registry) if form == "uri" else registry_conn_json(auth_registry)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
    repo = unique_repo("airflow-sensor")
    # the ref names no registry: the connection's host is where it lives
    sensor = ModelArtifactSensor(task_id="watch", ref=f"{repo}:candidate", registry_conn_id=conn_id)
    assert sensor.poke({}).is_done is False  # no such tag yet

    first = publish(tmp_path, f"{auth_registry.host}/{repo}:candidate", auth_registry.options, b"v1")
    seen = sensor.poke({})
    assert seen.is_done and seen.xcom_value == {"ref": first["ref"], "digest": first["digest"]}

    sensor.not_digest = first["digest"]
    assert sensor.poke({}).is_done is False  # the tag has not moved
    second = publish(tmp_path, f"{auth_registry.host}/{repo}:candidate", auth_registry.options, b"v2")
    assert sensor.poke({}).xcom_value["digest"] == second["digest"] != first["digest"]


def test_a_wrong_password_is_refused_without_being_echoed(auth_registry, tmp_path, monkeypatch):
    from modelhaul.errors import AuthError
    from modelhaul.operators import ModelArtifactSensor

    wrong = "wrong-" + auth_registry.password[::-1]
    monkeypatch.setenv("AIRFLOW_CONN_REG_WRONG", registry_conn_uri(auth_registry, wrong))
    repo = unique_repo("airflow-wrong")
    publish(tmp_path, f"{auth_registry.host}/{repo}:v1", auth_registry.options)
    sensor = ModelArtifactSensor(task_id="watch", ref=f"{repo}:v1", registry_conn_id="reg_wrong")
    with pytest.raises(AuthError) as err:
        sensor.poke({})
    assert wrong not in str(err.value) and auth_registry.password not in str(err.value)


def test_registry_settings_from_both_forms_agree_and_hide_the_password(auth_registry, monkeypatch):
    from modelhaul.operators.hooks import RegistryHook

    monkeypatch.setenv("AIRFLOW_CONN_SAME_URI", registry_conn_uri(auth_registry, "p@ss:w/rd%"))
    monkeypatch.setenv("AIRFLOW_CONN_SAME_JSON", registry_conn_json(auth_registry, "p@ss:w/rd%"))
    a, b = RegistryHook("same_uri").get_conn(), RegistryHook("same_json").get_conn()
    assert a == b
    assert (a.host, a.username, a.password, a.plain_http) == (auth_registry.host, auth_registry.username,
                                                            "p@ss:w/rd%", True)
    assert "p@ss" not in repr(a)
    # no default connection defined: bare refs go to the local layout, qualified ones stay
    hook = RegistryHook()
    assert hook.qualify("models/iris:v1", "/srv/layouts") == "oci:/srv/layouts/models/iris:v1"
    assert hook.qualify("reg.example.com/models/iris:v1", "/srv/layouts") == "reg.example.com/models/iris:v1"


def test_mlflow_connection_in_uri_and_json_form(monkeypatch):
    from modelhaul.operators.hooks import MLflowHook

    monkeypatch.setenv("AIRFLOW_CONN_ML_URI", "modelhaul-mlflow://ds:s%40cret@mlflow.example.com:5443/?scheme=https")
    monkeypatch.setenv("AIRFLOW_CONN_ML_JSON", json.dumps({
        "conn_type": "modelhaul_mlflow", "extra": {"tracking_uri": "sqlite:///mlflow.db", "token": "tkn-1"}}))
    uri, env = MLflowHook("ml_uri").get_conn()
    assert uri == "https://mlflow.example.com:5443"
    assert env == {"MLFLOW_TRACKING_USERNAME": "ds", "MLFLOW_TRACKING_PASSWORD": "s@cret"}
    uri, env = MLflowHook("ml_json").get_conn()
    assert uri == "sqlite:///mlflow.db" and env == {"MLFLOW_TRACKING_TOKEN": "tkn-1"}
    assert MLflowHook().get_conn() == (None, {})  # no default connection: the steps' own defaults


def test_kubernetes_connection_extras_without_the_cncf_provider(kube_emulator, monkeypatch):
    from modelhaul.operators.hooks import kube_settings

    monkeypatch.setenv("AIRFLOW_CONN_KUBE_PATH", json.dumps({"conn_type": "kubernetes", "extra": {
        "kube_config_path": kube_emulator.kubeconfig, "cluster_context": "emulator", "namespace": "models"}}))
    s = kube_settings("kube_path")
    assert (s.kubeconfig, s.context, s.namespace, s.configured) == (kube_emulator.kubeconfig, "emulator",
                                                                    "models", True)
    # the provider's older, prefixed extras with the kubeconfig inline
    inline = Path(kube_emulator.kubeconfig).read_text()
    monkeypatch.setenv("AIRFLOW_CONN_KUBE_INLINE", json.dumps({"conn_type": "kubernetes", "extra": {
        "extra__kubernetes__kube_config": inline, "extra__kubernetes__in_cluster": "false"}}))
    s = kube_settings("kube_inline")
    # changed (issue 12): the file is written only where a step runs; other processes get the conn id
    path = s.step_kwargs()["kubeconfig"]
    assert Path(path).read_text() == inline and not s.in_cluster and s.configured
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert s.portable()["kube_conn_id"] == "kube_inline" and s.portable()["kubeconfig"] is None
    assert kube_settings(None).configured is False  # nothing configured: deploy renders
