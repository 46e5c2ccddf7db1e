"""Render mode: one stable YAML file per resource, compared with expected files, and the deploy step
end to end on a real OCI layout (no server): result dict, re-render stability, how a canary finds
its stable model.

Expected files live in ``tests/data/render/``; regenerate them with ``MODELHAUL_REGEN_GOLDEN=1``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from modelhaul import artifacts, steps
from modelhaul.errors import DeployError
from modelhaul.serving import initializer
from modelhaul.serving.deploy import build_manifests, render
from tests.fixtures.serving import deploy_model
from tests.test_manifests import CONFIGS, STABLE_DIGEST, served

GOLDEN = Path(__file__).parent / "data" / "render"
REGEN = os.environ.get("MODELHAUL_REGEN_GOLDEN") == "1"


def _render_cases(target: str, out: Path) -> list[str]:
    paths: list[str] = []
    for kind in sorted(CONFIGS):
        paths += render(build_manifests(served(kind), target=target, name=f"iris-{kind}", namespace="models"),
                        out)
    paths += render(build_manifests(served("sklearn"), target=target, name="iris-canary", namespace="models",
                                    stable=served("onnx", STABLE_DIGEST, "v1"), canary_percent=10), out)
    if target == "seldon":
        paths += render(build_manifests(served("onnx"), target=target, name="iris-private", namespace="models",
                                        registry_secret="modelhaul-registry",
                                        initializer_image="registry.example:5000/modelhaul/initializer:dev"),
                        out)
    return paths


@pytest.mark.parametrize("target", ["seldon", "kserve"])
def test_rendered_files_match_the_expected_files(target, tmp_path):
    _render_cases(target, tmp_path)
    expected_dir = GOLDEN / target
    if REGEN:
        expected_dir.mkdir(parents=True, exist_ok=True)
        for old in expected_dir.glob("*.yaml"):
            old.unlink()
        for f in sorted(tmp_path.iterdir()):
            (expected_dir / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    got = sorted(f.name for f in tmp_path.iterdir())
    assert got == sorted(f.name for f in expected_dir.glob("*.yaml"))
    for name in got:
        assert (tmp_path / name).read_text(encoding="utf-8") == (expected_dir / name).read_text(
            encoding="utf-8"), f"{target}/{name} differs from the expected file"


def test_file_names_and_order_follow_apply_order(tmp_path):
    paths = render(build_manifests(served("onnx"), target="kserve", name="iris", registry_secret="pull-creds"),
                   tmp_path)
    assert [Path(p).name for p in paths] == ["clusterstoragecontainer-modelhaul.yaml", "inferenceservice-iris.yaml"]
    docs = [yaml.safe_load(Path(p).read_text()) for p in paths]
    assert [d["kind"] for d in docs] == ["ClusterStorageContainer", "InferenceService"]


def test_a_secret_with_values_is_never_rendered(tmp_path):
    """Changed (issue 12): a render directory is committed, so a Secret with values is refused."""
    manifests = build_manifests(served("onnx"), target="kserve", name="iris", username="u", password="example-pw")
    with pytest.raises(DeployError, match=r"never written to a render directory.*kubectl create secret generic "
                                          r"modelhaul-registry --namespace default"):
        render(manifests, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- the deploy step on a real OCI layout ---------------------------------------------------------


def _publish(tmp_path: Path, tag: str, payload: bytes, repo: str = "iris") -> str:
    src = tmp_path / f"src-{tag}"
    src.mkdir()
    (src / "model.onnx").write_bytes(payload)
    return artifacts.publish(src, f"oci:{tmp_path / repo}:{tag}")["ref"]


@pytest.fixture
def layout_models(tmp_path) -> tuple[str, str]:
    return _publish(tmp_path, "v1", b"model one"), _publish(tmp_path, "v2", b"model two")


def test_deploy_renders_and_returns_the_documented_result(layout_models, tmp_path):
    v1, _ = layout_models
    out = tmp_path / "gitops"
    res = deploy_model(ref=v1, target="seldon", render_dir=str(out))
    digest = v1.split("@", 1)[1]
    assert res == {
        "ref": v1, "digest": digest, "target": "seldon", "name": "iris", "namespace": "default",
        "canary_percent": None, "stable_ref": None, "manifests": [str(out / "seldondeployment-iris.yaml")],
        "applied": [], "state": "Rendered", "url": None, "initializer_image": initializer.DEFAULT_IMAGE,
        "registry_secret": None, "render_dir": str(out), "kubeconfig": None, "context": None,
        "in_cluster": False, "wait": True, "timeout": 600.0,
    }
    sdep = yaml.safe_load((out / "seldondeployment-iris.yaml").read_text())
    [pred] = sdep["spec"]["predictors"]
    assert initializer.parse_uri(pred["graph"]["modelUri"])[0] == f"oci:{tmp_path / 'iris'}@{digest}"
    first = (out / "seldondeployment-iris.yaml").read_bytes()
    deploy_model(ref=v1.split("@")[0], target="seldon", render_dir=str(out))  # by tag: same digest
    assert (out / "seldondeployment-iris.yaml").read_bytes() == first


def test_canary_finds_the_stable_model_in_the_previous_rendering(layout_models, tmp_path):
    v1, v2 = layout_models
    out = tmp_path / "gitops"
    deploy_model(ref=v1, target="seldon", render_dir=str(out))
    res = deploy_model(ref=v2, target="seldon", render_dir=str(out), canary_percent=20)
    assert (res["stable_ref"], res["canary_percent"]) == (v1, 20)
    preds = {p["name"]: p for p in yaml.safe_load(Path(res["manifests"][0]).read_text())["spec"]["predictors"]}
    assert v1.split("@")[1] in preds["main"]["graph"]["modelUri"] and preds["main"]["traffic"] == 80
    assert v2.split("@")[1] in preds["canary"]["graph"]["modelUri"] and preds["canary"]["traffic"] == 20


def test_canary_falls_back_to_the_production_tag(layout_models, tmp_path):
    v1, v2 = layout_models
    artifacts.retag(v1, "production")
    res = deploy_model(ref=v2, target="seldon", render_dir=str(tmp_path / "fresh"), canary_percent=5)
    assert res["stable_ref"].split("@")[1] == v1.split("@")[1]


def test_canary_without_any_stable_model(layout_models, tmp_path):
    _, v2 = layout_models
    # a first Seldon rollout has nothing to run a canary beside: nothing is served before the gate
    res = deploy_model(ref=v2, target="seldon", render_dir=str(tmp_path / "empty"), canary_percent=5)
    assert res["state"] == "Skipped" and res["manifests"] == [] and "no stable model" in res["reason"]
    assert not (tmp_path / "empty").exists() or not any((tmp_path / "empty").iterdir())
    # KServe keeps the previous revision itself: the canary renders, with no stable model recorded
    res = deploy_model(ref=v2, target="kserve", render_dir=str(tmp_path / "ks"), canary_percent=5)
    isvc = yaml.safe_load(Path(res["manifests"][-1]).read_text())
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 5
    assert "modelhaul.io/stable-ref" not in isvc["metadata"]["annotations"]
    with pytest.raises(DeployError, match="already the stable model"):
        deploy_model(ref=v2, target="seldon", render_dir=str(tmp_path / "x"), canary_percent=5, stable_ref=v2)


def test_bad_arguments_are_refused_before_anything_is_written(layout_models, tmp_path):
    v1, _ = layout_models
    for kw, match in [({"target": "docker"}, "target"), ({"canary_percent": 150}, "canary_percent"),
                      ({"name": "Iris"}, "name")]:
        with pytest.raises(DeployError, match=match):
            deploy_model(ref=v1, render_dir=str(tmp_path / "out"), **kw)
    assert not (tmp_path / "out").exists()


def test_step_without_cluster_renders_into_the_default_directory(layout_models, tmp_path, monkeypatch):
    v1, _ = layout_models
    monkeypatch.setenv("MODELHAUL_RENDER_DIR", str(tmp_path / "default"))
    monkeypatch.setenv("MODELHAUL_USERNAME", "env-user")
    monkeypatch.setenv("MODELHAUL_PASSWORD", "env-password")
    res = steps.deploy(ref=v1, target="kserve", name="iris-ks", namespace="models")
    assert res["state"] == "Rendered"
    assert sorted(Path(p).name for p in res["manifests"]) == [
        "clusterstoragecontainer-modelhaul.yaml", "inferenceservice-iris-ks.yaml"]
    # credentials from the environment are never written into a manifest
    for p in (tmp_path / "default").iterdir():
        assert "env-password" not in p.read_text()


# -- with a cluster: the same manifests go to kube.apply_and_wait -----------------------------------


def test_with_a_cluster_the_manifests_are_applied_not_rendered(layout_models, kube_cluster, kube_ns, controller,
                                                               tmp_path, monkeypatch):
    v1, _ = layout_models
    monkeypatch.chdir(tmp_path)
    res = deploy_model(ref=v1, target="seldon", namespace=kube_ns, kubeconfig=kube_cluster.kubeconfig,
                       context=kube_cluster.context, username="robot", password="example-password",
                       timeout=60)
    assert res["state"] == "Available" and res["manifests"] == []
    assert res["applied"] == [f"Secret/{kube_ns}/modelhaul-registry", f"SeldonDeployment/{kube_ns}/iris"]
    live = kube_cluster.get("SeldonDeployment", "iris", kube_ns)
    assert live["spec"]["predictors"][0]["graph"]["envSecretRefName"] == "modelhaul-registry"
    assert "example-password" not in str(res)
    assert res["registry_secret"] == "modelhaul-registry"
    assert not any(tmp_path.glob("modelhaul-manifests*"))
    # render_dir wins over a configured cluster: GitOps output, nothing applied
    res = deploy_model(ref=v1, target="kserve", namespace=kube_ns, render_dir=str(tmp_path / "out"),
                       kubeconfig=kube_cluster.kubeconfig, context=kube_cluster.context)
    assert res["state"] == "Rendered" and kube_cluster.get("InferenceService", "iris", kube_ns) is None


def test_step_refuses_explicit_credentials_in_render_mode(layout_models, tmp_path):
    """Changed (issue 12): render mode used to write the password into secret-modelhaul-registry.yaml."""
    v1, _ = layout_models
    with pytest.raises(DeployError, match=r"not written into the render directory .*kubectl create secret generic "
                                          r"modelhaul-registry .*<password>") as err:
        steps.deploy(ref=v1, render_dir=str(tmp_path / "out"), username="robot", password="example-pw")
    assert "example-pw" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_render_mode_names_the_secret_the_user_creates(layout_models, tmp_path, monkeypatch):
    v1, _ = layout_models
    monkeypatch.setenv("MODELHAUL_USERNAME", "robot")  # credentials to read the registry
    monkeypatch.setenv("MODELHAUL_PASSWORD", "example-pw")
    res = steps.deploy(ref=v1, target="kserve", namespace="models", render_dir=str(tmp_path / "out"))
    assert res["registry_secret"] == "modelhaul-registry"
    assert res["secret_hint"] == ("kubectl create secret generic modelhaul-registry --namespace models "
                                  "--from-literal=MODELHAUL_USERNAME=<username> "
                                  "--from-literal=MODELHAUL_PASSWORD=<password>")
    files = list((tmp_path / "out").iterdir())
    assert sorted(f.name for f in files) == ["clusterstoragecontainer-modelhaul.yaml", "inferenceservice-iris.yaml"]
    for f in files:
        assert "example-pw" not in f.read_text() and "robot" not in f.read_text(), f
    assert "example-pw" not in str(res)
