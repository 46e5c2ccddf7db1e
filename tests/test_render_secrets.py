"""No render directory ever holds a secret value: it is meant to be committed (issue 12)."""

from __future__ import annotations

from pathlib import Path

from modelhaul import artifacts
from tests.fixtures.registry import unique_repo
from tests.test_airflow_connections import registry_conn_uri


def _every_file_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(root.rglob("*")) if p.is_file())


def test_the_deploy_operator_renders_without_the_connection_password(auth_registry, tmp_path, monkeypatch,
                                                                     airflow_home):
    from modelhaul.operators import DeployModelOperator

    monkeypatch.setenv("AIRFLOW_CONN_REG_RENDER", registry_conn_uri(auth_registry))
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.onnx").write_bytes(b"onnx-bytes")
    repo = unique_repo("render-secret")
    artifacts.publish(src, f"{auth_registry.host}/{repo}:v1", options=auth_registry.options)
    out = tmp_path / "gitops"
    op = DeployModelOperator(task_id="deploy", ref=f"{repo}:v1", target="kserve", render_dir=str(out),
                             registry_conn_id="reg_render", kube_conn_id=None)
    res = op.execute({})
    assert res["state"] == "Rendered"
    assert res["registry_secret"] == "modelhaul-registry"
    assert "kubectl create secret generic modelhaul-registry" in res["secret_hint"]
    text = _every_file_text(out)
    assert text and auth_registry.password not in text
    assert "MODELHAUL_PASSWORD" not in text and "kind: Secret" not in text
    assert auth_registry.password not in str(res)
