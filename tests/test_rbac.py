"""The README's RBAC rules, applied as written to the real kube-apiserver, are enough for deploy
(Seldon, KServe, canary), promote and rollback; an identity missing one verb gets one line naming
the verb and the resource, and nothing changes in the registry or the cluster (issue 22).

The Role/ClusterRole come from the README block marked ``readme-test: cluster (validated as YAML
and for these rules)``, so the README says exactly what this test applies (namespace ``models``).
"""

from __future__ import annotations

import copy
import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from modelhaul.errors import DeployError
from tests.fixtures.cluster import Controller
from tests.fixtures.serving import deploy_model
from tests.test_promote import Models, digest, mlflow_uri, models  # noqa: F401  (fixtures)

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = "<!-- readme-test: cluster (validated as YAML and for these rules) -->"
NS = "models"


def readme_rbac() -> list[dict]:
    """The YAML documents of the README's RBAC block."""
    text = README.read_text()
    after = text[text.index(MARK) + len(MARK):]
    block = re.search(r"```yaml\n(.*?)\n\s*```", after, re.S)
    assert block, "the README's RBAC block is not a ```yaml block right after its marker"
    return [d for d in yaml.safe_load_all(textwrap.dedent(block.group(1))) if d]


def identity(cluster, tmp_path: Path, name: str, docs: list[dict]) -> str:
    """A ServiceAccount bound to ``docs`` (a Role and a ClusterRole), as a kubeconfig with its token."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                    input="\n---\n".join(yaml.safe_dump(d) for d in docs))
    cluster.kubectl("-n", NS, "create", "serviceaccount", name, check=False)
    role = next(d for d in docs if d["kind"] == "Role")["metadata"]["name"]
    crole = next(d for d in docs if d["kind"] == "ClusterRole")["metadata"]["name"]
    cluster.kubectl("-n", NS, "create", "rolebinding", name, f"--role={role}", f"--serviceaccount={NS}:{name}",
                    check=False)
    cluster.kubectl("create", "clusterrolebinding", f"{name}-{NS}", f"--clusterrole={crole}",
                    f"--serviceaccount={NS}:{name}", check=False)
    token = cluster.kubectl("-n", NS, "create", "token", name).stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "local", "user": name, "namespace": NS}}],
        "current-context": name}))
    return str(path)


@pytest.fixture
def models_ns(kube_cluster):
    """Namespace ``models`` (as in the README) with its controller; tests pick unique object names."""
    if kube_cluster.kubectl("get", "namespace", NS, check=False).returncode != 0:
        kube_cluster.kubectl("create", "namespace", NS, check=False)
    ctl = Controller(kube_cluster, NS).start()
    yield ctl
    ctl.stop()


def test_the_readme_rules_are_enough_for_deploy_promote_and_rollback(models, kube_cluster, models_ns,  # noqa: F811
                                                                      tmp_path):
    kc = identity(kube_cluster, tmp_path, "modelhaul-deployer", readme_rbac())
    name = "rbac-" + digest(models.a)[7:15]

    def deploy(ref: str, **kw) -> dict:
        out = deploy_model(ref=ref, name=kw.pop("name", name), namespace=NS, kubeconfig=kc, timeout=10.0,
                           options=models.options, **kw)
        return {**out, "kubeconfig": kc, "context": None, "timeout": 10.0}

    stable = deploy(models.a, target="seldon", username="robot", password="example-password")
    assert stable["state"] == "Available"
    assert kube_cluster.get("Secret", "modelhaul-registry", NS) is not None
    assert models.promote(models.a, deployment=stable)["promoted"] is True
    canary = deploy(models.b, target="seldon", canary_percent=20)
    assert canary["state"] == "Available"
    promoted = models.promote(models.b, deployment=canary)
    assert promoted["deployment"]["state"] == "Available"
    back = models.rollback(deployment=canary)
    assert back["rolled_back"] is True and back["deployment"]["state"] == "Available"
    served = kube_cluster.get("SeldonDeployment", name, NS)
    assert digest(models.a) in json.dumps(served["spec"]) and digest(models.b) not in json.dumps(served["spec"])

    kserve = deploy(models.a, target="kserve", name=name + "-k")
    assert kserve["state"] == "Ready"
    kcanary = deploy(models.b, target="kserve", name=name + "-k", canary_percent=10)
    assert kcanary["state"] == "Ready"


def without(docs: list[dict], kind: str, resource: str, verb: str) -> list[dict]:
    """The README's rules with one verb taken away, under new names."""
    out = copy.deepcopy(docs)
    for d in out:
        d["metadata"]["name"] += f"-no-{verb}-{resource}"[:40]
        if d["kind"] == kind:
            for rule in d["rules"]:
                if resource in rule["resources"]:
                    rule["verbs"] = [v for v in rule["verbs"] if v != verb]
    return out


@pytest.mark.parametrize(("kind", "resource", "verb", "target"), [
    ("Role", "seldondeployments", "patch", "seldon"),
    ("Role", "seldondeployments", "create", "seldon"),
    ("Role", "secrets", "create", "seldon"),
    ("ClusterRole", "clusterstoragecontainers", "patch", "kserve"),
])
def test_a_missing_verb_is_named_and_nothing_is_written(models, kube_cluster, models_ns, tmp_path,  # noqa: F811
                                                         kind, resource, verb, target):
    sa = f"no-{verb}-{resource}"[:50]
    kc = identity(kube_cluster, tmp_path, sa, without(readme_rbac(), kind, resource, verb))
    name = "miss-" + digest(models.a)[7:15]

    with pytest.raises(DeployError) as err:
        deploy_model(ref=models.a, target=target, name=name, namespace=NS, kubeconfig=kc, timeout=5.0,
                     options=models.options, username="robot", password="example-password",
                     registry_secret=f"{name}-reg")
    msg = str(err.value)
    assert "\n" not in msg
    assert re.match(rf"system:serviceaccount:{NS}:{sa} may not {verb} {resource}\.?\S* ", msg), msg
    assert kube_cluster.get("Secret", f"{name}-reg", NS) is None
    assert kube_cluster.get("SeldonDeployment", name, NS) is None
    assert kube_cluster.get("InferenceService", name, NS) is None


def test_promote_and_rollback_without_patch_change_nothing(models, kube_cluster, models_ns, tmp_path):  # noqa: F811
    admin_deploy = deploy_model(ref=models.a, target="seldon", name="nopatch-" + digest(models.a)[7:15],
                                namespace=NS, kubeconfig=kube_cluster.kubeconfig, timeout=10.0,
                                options=models.options)
    models.promote(models.a)
    kc = identity(kube_cluster, tmp_path, "no-patch-promote",
                  without(readme_rbac(), "Role", "seldondeployments", "patch"))
    deployment = {**admin_deploy, "kubeconfig": kc, "context": None}

    with pytest.raises(DeployError, match=r"may not patch seldondeployments\.machinelearning\.seldon\.io"):
        models.promote(models.b, deployment=deployment)
    assert models.at("production") == digest(models.a) and models.at("production-previous") is None
    with pytest.raises(DeployError, match=r"may not patch seldondeployments\.machinelearning\.seldon\.io"):
        models.rollback(deployment=deployment)
    assert models.at("production") == digest(models.a)
