"""The KFP ``deploy`` component in its in-cluster mode (a pod's service account) against the real
kube-apiserver (tests/fixtures/cluster.py).

A pod finds its cluster through ``KUBERNETES_SERVICE_HOST``/``_PORT`` and the service account's token
and CA under ``/var/run/secrets/kubernetes.io/serviceaccount``; the test points the ``kubernetes``
client's two file names at a real ServiceAccount token (``kubectl create token``) and the cluster's
CA instead of writing into ``/var/run``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from modelhaul import artifacts
from modelhaul.serving import access, kube

SKLEARN = {"format": "SKLearn", "framework": "scikit-learn", "metrics": {"accuracy": 0.95}}


@pytest.fixture
def in_a_pod(kube_cluster, kube_ns, tmp_path, monkeypatch) -> str:
    """This process looks like a pod of ``kube_ns`` running as ServiceAccount ``pipeline-runner``."""
    from kubernetes.config import incluster_config

    cluster = kube_cluster
    cluster.kubectl("-n", kube_ns, "create", "serviceaccount", "pipeline-runner")
    cluster.kubectl("-n", kube_ns, "create", "role", "pipeline-runner", "--verb=get,list,watch,create,patch,update",
                    "--resource=seldondeployments.machinelearning.seldon.io,events")
    cluster.kubectl("-n", kube_ns, "create", "rolebinding", "pipeline-runner", "--role=pipeline-runner",
                    f"--serviceaccount={kube_ns}:pipeline-runner")
    (tmp_path / "token").write_text(cluster.kubectl("-n", kube_ns, "create", "token", "pipeline-runner").stdout.strip())
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    ca = base64.b64decode(admin["clusters"][0]["cluster"]["certificate-authority-data"])
    (tmp_path / "ca.crt").write_bytes(ca)
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    host, port = cluster.server.removeprefix("https://").rsplit(":", 1)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return f"system:serviceaccount:{kube_ns}:pipeline-runner"


def test_the_deploy_component_applies_as_the_pods_service_account(in_a_pod, kube_cluster, kube_ns, controller,
                                                                  tmp_path):
    from kfp import dsl

    from modelhaul.components.factory import body

    with kube.connect(in_cluster=True) as api:
        assert access.whoami(api) == in_a_pod
    d = tmp_path / "model"
    d.mkdir()
    (d / "model.joblib").write_bytes(b"weights")
    ref = artifacts.publish(d, f"oci:{tmp_path}/layout:v1", config=SKLEARN)["ref"]
    source = dsl.Model(name="model", uri=str(tmp_path / "source"), metadata={"ref": ref})
    out = dsl.Artifact(name="deployment", uri=str(tmp_path / "deployment"), metadata={})

    body("deploy")(deployment=out, source=source, target="seldon", name="iris", namespace=kube_ns, timeout=30.0)

    result = json.loads(Path(out.path).read_text())
    assert result["state"] == "Available" and result["in_cluster"] is True
    assert result["applied"] == [f"SeldonDeployment/{kube_ns}/iris"]
    live = kube_cluster.get("SeldonDeployment", "iris", kube_ns)
    assert any(f["manager"] == "modelhaul" for f in live["metadata"]["managedFields"])
