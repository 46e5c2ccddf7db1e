"""One table of serving targets: every module asks it, an unknown target is one clear line at every
entry, and a third target reaches its own functions (never the KServe path by default)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from modelhaul import steps
from modelhaul.config import ModelConfig
from modelhaul.declarations import TARGET_KINDS, DeploymentSettings, kind_of
from modelhaul.errors import DeployError
from modelhaul.serving import deploy, kube, routing, seldon, status, steady, targets, validate
from modelhaul.serving.model import ServedModel
from modelhaul.serving.platform import Resource

DIGEST = "sha256:" + "1" * 64
STABLE = "sha256:" + "2" * 64
REFUSED = "target 'made-up': expected one of seldon, kserve"


def served(digest: str = DIGEST) -> ServedModel:
    cfg = ModelConfig.from_dict({"format": "ONNX", "framework": "ONNX", "directoryStructure": ["model.onnx"]})
    return ServedModel(f"registry.example:5000/team/iris:v1@{digest}", cfg)


# -- the vocabulary and the table agree ------------------------------------------------------------


def test_the_declared_targets_are_the_tables():
    # declarations.py (floor 1, what adapters see) cannot import serving/: the two are checked here
    assert {name: row.kind for name, row in targets.TABLE.items()} == TARGET_KINDS
    choices = {p.name: p.choices for p in DeploymentSettings.PARAMS}["target"]
    assert choices == targets.names()
    assert {kind_of(name) for name in targets.TABLE} == set(status.SERVING_KINDS)


def test_every_row_has_its_schema_vendored_and_its_kind_known_to_kube():
    for row in targets.TABLE.values():
        assert (validate.vendored_dir() / row.crd.vendored).is_file(), row.name
        assert validate.crd_schema(row.api_version, row.kind)["type"] == "object"
        for res in (row.resource, *row.extra):
            assert kube.plural(res.kind) == res.plural
            rid = kube.ResourceId.of({"apiVersion": res.api_version, "kind": res.kind,
                                      "metadata": {"name": "x", "namespace": "models"}})
            assert (rid.namespace == "models") == res.namespaced


# -- a made-up target: one line naming it and the choices, at every entry --------------------------


def test_deploy_refuses_a_made_up_target():
    with pytest.raises(DeployError) as err:
        deploy.build_manifests(served(), target="made-up", name="iris")
    assert str(err.value) == REFUSED
    with pytest.raises(DeployError) as err:  # before the registry is asked anything
        deploy.deploy_model("registry.invalid/team/iris:v1", DeploymentSettings(target="made-up", name="iris"))
    assert str(err.value) == REFUSED


def test_status_refuses_a_made_up_target(tmp_path):
    # before any cluster is looked for: the kubeconfig named here does not exist
    with pytest.raises(DeployError) as err:
        steps.deployment_status(target="made-up", name="iris", kubeconfig=str(tmp_path / "none"))
    assert str(err.value) == REFUSED
    with pytest.raises(DeployError) as err:
        steady.live_manifest("made-up", "iris", "models", kubeconfig=None, context=None, in_cluster=False)
    assert str(err.value) == REFUSED


def test_traffic_refuses_a_made_up_target(tmp_path):
    with pytest.raises(DeployError) as err:
        kube.set_traffic("made-up", "iris", "models", to_digest=DIGEST, kubeconfig=str(tmp_path / "none"))
    assert str(err.value) == REFUSED
    with pytest.raises(DeployError) as err:
        routing.check_canary({"kind": "made-up", "metadata": {"name": "iris"}}, kubeconfig=str(tmp_path / "none"),
                             context=None, in_cluster=False)
    assert str(err.value) == REFUSED


def test_validate_refuses_a_made_up_kind():
    manifest = {"apiVersion": "made-up.example/v1", "kind": "MadeUp", "metadata": {"name": "iris"}}
    with pytest.raises(DeployError) as err:
        validate.validate(manifest)
    assert str(err.value) == ("MadeUp/iris: invalid manifest: (top level): unsupported apiVersion/kind "
                              "made-up.example/v1 MadeUp")


# -- a third target: one module and one row ------------------------------------------------------


MODEL = Resource("Model", "mlops.example.io/v1", "models")


def _as_model(manifest: dict[str, Any]) -> dict[str, Any]:
    return {**manifest, "apiVersion": MODEL.api_version, "kind": MODEL.kind}


@pytest.fixture
def third(monkeypatch):
    """A row shaped like Seldon's (so the vendored schema applies) under its own kind and name."""
    row = dataclasses.replace(
        seldon.TARGET, name="third", resource=MODEL,
        build=lambda model, **kw: [_as_model(m) for m in seldon.build(model, **kw)],
        read_state=lambda st: ("Ready" if st.get("ok") else "NotReady", "", "http://third"))
    monkeypatch.setitem(targets.TABLE, "third", row)
    return row


def test_a_third_target_gets_its_own_manifests_status_and_traffic(third, tmp_path):
    manifests = deploy.build_manifests(served(), target="third", name="iris", namespace="models")
    assert [(m["apiVersion"], m["kind"]) for m in manifests] == [(MODEL.api_version, MODEL.kind)]
    assert not any(m["kind"] in ("InferenceService", "ClusterStorageContainer") for m in manifests)
    paths = deploy.render(manifests, tmp_path)
    assert [Path(p).name for p in paths] == ["model-iris.yaml"]
    # the stable model of a canary is read back from the rendered manifest by the row's reader
    assert deploy.find_stable(f"registry.example:5000/team/iris:v2@{STABLE}", target="third", name="iris",
                              render_dir=tmp_path, options=None) == served().ref
    assert kube.plural("Model") == "models"
    st = status.read_status({"kind": "Model", "metadata": {"name": "iris"}, "status": {"ok": True}})
    assert (st["state"], st["ready"], st["url"]) == ("Ready", True, "http://third")
    assert targets.get("Model") is third


# -- nothing else names a target ---------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
# who may name a target's name, kind, apiVersion or plural in code: its own module and the vocabulary
OWNERS = {"modelhaul/serving/seldon.py", "modelhaul/serving/kserve.py", "modelhaul/declarations.py"}
# still naming one, each with who moves it to the table (issue 25's other parts)
NOT_YET = {
}


def _named_targets(path: Path) -> list[str]:
    """``line: text`` of each string in code (not a docstring) naming a target or one of its kinds."""
    import ast

    words = set()
    for row in targets.TABLE.values():
        for res in (row.resource, *row.extra):
            words |= {res.kind, res.api_version, res.plural}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body and isinstance(n.body[0], ast.Expr)}
    return [f"{n.lineno}: {n.value[:60]!r}" for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs
            and (n.value in targets.TABLE or any(w in n.value for w in words))]


def test_only_a_targets_own_module_names_it():
    found = {}
    for path in sorted((ROOT / "modelhaul").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel not in OWNERS and rel not in NOT_YET and (hits := _named_targets(path)):
            found[rel] = hits
    assert found == {}, f"ask modelhaul.serving.targets instead of naming a target: {found}"


def test_the_name_check_sees_a_branch_on_a_target(tmp_path):
    src = tmp_path / "m.py"
    src.write_text('"""Names SeldonDeployment in a docstring only."""\n\ndef f(t):\n    return t == "kserve"\n')
    assert _named_targets(src) == ["4: 'kserve'"]
