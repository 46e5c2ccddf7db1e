"""``airflow connections test`` (the UI's "Test" button) for each modelhaul connection type, against the
real registry, the real MLflow server and the real kube-apiserver (tests/fixtures/cluster.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.airflow import airflow_cli
from tests.test_airflow_connections import registry_conn_uri

ENABLED = {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}


def _test(conn_id: str, value: str) -> tuple[bool, str]:
    res = airflow_cli("connections", "test", conn_id, check=False,
                      env={**ENABLED, f"AIRFLOW_CONN_{conn_id.upper()}": value})
    return res.returncode == 0 and "Connection success!" in res.stdout, res.stdout + res.stderr


@pytest.mark.slow
def test_each_connection_type_tests_green_against_the_real_service(airflow_home, auth_registry, mlflow_server,
                                                                   kube_cluster):
    ok, out = _test("reg_ok", registry_conn_uri(auth_registry))
    assert ok, out
    ok, out = _test("reg_bad", registry_conn_uri(auth_registry, password="not-the-password"))
    assert not ok and "Connection failed!" in out and "not-the-password" not in out

    host = mlflow_server.split("://", 1)[1]
    ok, out = _test("mlflow_ok", json.dumps({"conn_type": "modelhaul_mlflow", "host": host,
                                             "extra": {"scheme": "http"}}))
    assert ok, out
    ok, out = _test("mlflow_gone", json.dumps({"conn_type": "modelhaul_mlflow", "host": "127.0.0.1:9"}))
    assert not ok and "unreachable" in out

    inline = Path(kube_cluster.kubeconfig).read_text()
    ok, out = _test("kube_ok", json.dumps({"conn_type": "modelhaul_kubernetes", "extra": {"kube_config": inline}}))
    assert ok, out
    # a connection made for the cncf.kubernetes provider is read the same way
    ok, out = _test("kube_cncf", json.dumps({"conn_type": "kubernetes", "extra": {
        "kube_config_path": kube_cluster.kubeconfig, "cluster_context": "nowhere"}}))
    assert not ok, out


def test_hooks_report_what_answered(auth_registry, mlflow_server, kube_cluster, monkeypatch):
    from modelhaul.operators.hooks import KubernetesClusterHook, MLflowHook, RegistryHook

    monkeypatch.setenv("AIRFLOW_CONN_REG", registry_conn_uri(auth_registry))
    assert RegistryHook("reg").test_connection() == (
        True, f"registry {auth_registry.host} answers /v2/ as {auth_registry.username}")
    monkeypatch.setenv("AIRFLOW_CONN_ML", json.dumps({"conn_type": "modelhaul_mlflow", "host": mlflow_server}))
    ok, msg = MLflowHook("ml").test_connection()
    assert ok and "healthy" in msg, msg
    monkeypatch.setenv("AIRFLOW_CONN_K8S", json.dumps({"conn_type": "modelhaul_kubernetes", "extra": {
        "kube_config_path": kube_cluster.kubeconfig}}))
    assert KubernetesClusterHook("k8s").test_connection() == (True, f"Kubernetes v1.28.0 at {kube_cluster.server}")


@pytest.mark.slow
def test_airflow_connections_test_prints_brackets_as_they_are(airflow_home, tmp_path):
    """Airflow's CLI prints the message as rich markup, which would eat ``[kube]``: it arrives intact."""
    missing = tmp_path / "[kube]" / "config"
    ok, out = _test("kube_brackets", json.dumps({"conn_type": "modelhaul_kubernetes",
                                                 "extra": {"kube_config_path": str(missing)}}))
    assert not ok and f"kubeconfig {missing}:" in out, out
