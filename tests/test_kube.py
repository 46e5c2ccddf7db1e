"""Apply and wait through the real kubernetes client against the real kube-apiserver
(tests/fixtures/cluster.py), with the test playing the Seldon/KServe controllers.

The API emulator (tests/fixtures/kube.py) is kept for one case a real server cannot be made to
play on demand: a 409 Conflict on the next apply (:func:`test_a_conflict_is_retried`).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from modelhaul.errors import DeployError
from modelhaul.serving import kube

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
NS = "models"  # what the manifests below say; each test swaps in its own namespace


def seldon(name: str = "iris", *predictors: tuple[str, str, int]) -> dict:
    preds = predictors or (("main", DIGEST_A, 100),)
    return {
        "apiVersion": "machinelearning.seldon.io/v1", "kind": "SeldonDeployment",
        "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/managed-by": "modelhaul"}},
        "spec": {"predictors": [
            {"name": pname, "traffic": traffic, "replicas": 1,
             "graph": {"name": "classifier", "implementation": "SKLEARN_SERVER",
                       "modelUri": f"modelhaul://reg.test/team/iris@{digest}", "envSecretRefName": "reg"}}
            for pname, digest, traffic in preds]},
    }


def secret() -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "reg", "namespace": NS},
            "type": "Opaque", "stringData": {"MODELHAUL_USERNAME": "u", "MODELHAUL_PASSWORD": "p"}}


def isvc(name: str = "iris", digest: str = DIGEST_A, canary: int | None = None) -> dict:
    pred: dict = {"model": {"modelFormat": {"name": "sklearn"},
                            "storageUri": f"modelhaul://reg.test/team/iris@{digest}"}}
    if canary is not None:
        pred["canaryTrafficPercent"] = canary
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": NS}, "spec": {"predictor": pred}}


def storage_container() -> dict:
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ClusterStorageContainer",
            "metadata": {"name": "modelhaul"},
            "spec": {"container": {"name": "storage-initializer", "image": "modelhaul-initializer:0.1"},
                     "supportedUriFormats": [{"prefix": "modelhaul://"}]}}


def in_ns(manifests: list[dict], ns: str) -> list[dict]:
    out = json.loads(json.dumps(manifests))
    for m in out:
        if m["metadata"].get("namespace") == NS:
            m["metadata"]["namespace"] = ns
    return out


@pytest.fixture
def k(kube_cluster, kube_ns, controller):
    """The cluster, the test's namespace and its controller, with apply/get helpers."""
    class K:
        cluster, ns, ctl = kube_cluster, kube_ns, controller
        conn = {"kubeconfig": kube_cluster.kubeconfig, "context": kube_cluster.context}

        def apply(self, manifests, **kw):
            kw.setdefault("timeout", 10.0)
            return kube.apply_and_wait(in_ns(manifests, kube_ns), in_cluster=False, wait=kw.pop("wait", True),
                                       **self.conn, **kw)

        def get(self, kind, name, cluster_scoped=False):
            return kube_cluster.get(kind, name, None if cluster_scoped else kube_ns)

        def applied(self, out):
            return [a.replace(f"/{kube_ns}/", f"/{NS}/") for a in out["applied"]]

    return K()


def test_seldon_deployment_is_applied_with_its_secret_and_becomes_available(k):
    out = k.apply([secret(), seldon()])

    assert k.applied(out) == ["Secret/models/reg", "SeldonDeployment/models/iris"]
    assert out["state"] == "Available"
    assert out["url"] == f"http://iris.{k.ns}.example.test/api/v1.0/predictions"
    stored = k.get("Secret", "reg")
    assert base64.b64decode(stored["data"]["MODELHAUL_PASSWORD"]) == b"p"
    sdep = k.get("SeldonDeployment", "iris")
    assert {(f["manager"], f["operation"]) for f in sdep["metadata"]["managedFields"]
            if f.get("subresource") != "status"} == {("modelhaul", "Apply")}


def test_reapplying_the_same_manifests_creates_and_changes_nothing(k):
    first = k.apply([secret(), seldon(), storage_container()])
    # the ClusterStorageContainer is cluster-wide: other tests of the run apply it too
    before = {kind: k.get(kind, name)["metadata"] for kind, name in (("Secret", "reg"), ("SeldonDeployment", "iris"))}

    second = k.apply([secret(), seldon(), storage_container()])

    assert second == first
    assert second["applied"][-1] == "ClusterStorageContainer/modelhaul"
    for kind, meta in before.items():
        now = k.get(kind, meta["name"])["metadata"]
        assert now["uid"] == meta["uid"] and now["resourceVersion"] == meta["resourceVersion"], kind
    assert k.get("SeldonDeployment", "iris")["metadata"]["generation"] == 1


def test_failed_deployment_reports_status_message_and_events(k):
    k.ctl.behave("iris", "failed")
    with pytest.raises(DeployError) as err:
        k.apply([seldon()])
    msg = str(err.value)
    assert "SeldonDeployment/" + k.ns + "/iris failed" in msg
    assert "container classifier crashed" in msg
    assert "readiness probe failed: model could not be loaded" in msg


def test_a_stale_available_status_is_not_trusted_after_a_spec_change(k):
    k.apply([seldon()])
    # the new generation (serving digest B) fails; until the controller sees it, status still says Available
    k.ctl.behave("iris", lambda obj: "failed" if DIGEST_B in str(obj["spec"]) else "available")

    with pytest.raises(DeployError, match="failed"):
        k.apply([seldon("iris", ("main", DIGEST_B, 100))])
    assert k.get("SeldonDeployment", "iris")["metadata"]["generation"] == 2


def test_never_ready_times_out_with_the_state_it_was_in(k):
    k.ctl.behave("iris", "never")
    with pytest.raises(DeployError) as err:
        k.apply([seldon()], timeout=1.5)
    assert "not ready before the timeout" in str(err.value)
    assert "state Creating" in str(err.value)


def test_a_timeout_names_no_status_text_of_an_older_generation(k):
    """Generation 1 failed with a message; generation 2 is never looked at: its timeout is about 2 only."""
    k.ctl.behave("iris", "failed")
    with pytest.raises(DeployError, match="container classifier crashed"):
        k.apply([seldon()])
    k.ctl.stop()  # no controller any more: generation 2 stays unobserved

    with pytest.raises(DeployError) as err:
        k.apply([seldon("iris", ("main", DIGEST_B, 100))], timeout=1.0)
    msg = str(err.value)
    assert "state Stale, observedGeneration 1 of generation 2" in msg
    assert "container classifier crashed" not in msg


def test_events_of_another_kind_with_the_same_name_are_not_reported(k):
    """A SeldonDeployment and an InferenceService are both called iris; only the InferenceService's
    own events belong in its timeout, not the SeldonDeployment's (issue 22)."""
    k.ctl.behave("iris", "never")
    k.apply([seldon(), storage_container(), isvc()], wait=False)
    sdep, inf = k.get("SeldonDeployment", "iris"), k.get("InferenceService", "iris")
    k.cluster.event(sdep, "InitContainerFailed", "seldon: init container modelhaul-initializer failed")
    k.cluster.event(inf, "InternalError", "kserve: revision iris-predictor-00001 failed")
    old = {**inf, "metadata": {**inf["metadata"], "uid": "0d0d0d0d-0000-0000-0000-000000000000"}}
    k.cluster.event(old, "Gone", "an earlier InferenceService of the same name")

    with pytest.raises(DeployError) as err:
        k.apply([isvc()], timeout=1.0)
    msg = str(err.value)
    assert "kserve: revision iris-predictor-00001 failed" in msg
    assert "InitContainerFailed" not in msg and "an earlier InferenceService" not in msg


def test_a_conflict_is_retried(kube_emulator):
    """Emulator only: a real API server answers 409 to a racing writer, which cannot be staged on demand."""
    kube_emulator.conflict_once("iris")
    out = kube.apply_and_wait([seldon()], kubeconfig=kube_emulator.kubeconfig, context=kube_emulator.context,
                              in_cluster=False, timeout=2.0)
    assert out["state"] == "Available"
    patches = [status for method, path, status in kube_emulator.requests if method == "PATCH"]
    assert patches == [409, 201]


def test_without_wait_apply_returns_at_once(k):
    k.ctl.behave("iris", "never")
    out = k.apply([seldon()], wait=False)
    assert out == {"applied": [f"SeldonDeployment/{k.ns}/iris"], "state": "Applied", "url": None}


def test_kserve_inference_service_ready_and_failed(k):
    out = k.apply([storage_container(), isvc()])
    assert out["state"] == "Ready"
    assert out["url"] == f"http://iris.{k.ns}.example.test"

    k.ctl.behave("bad", "failed")
    with pytest.raises(DeployError, match="invalid protobuf"):
        k.apply([isvc("bad")])


def test_get_status_is_one_look(k):
    k.ctl.behave("iris", "never")
    k.apply([seldon()], wait=False)

    st = kube.get_status("SeldonDeployment", "iris", k.ns, **k.conn)
    assert st["ready"] is False and st["generation"] == 1
    assert kube.get_status("SeldonDeployment", "gone", k.ns, **k.conn)["state"] == "NotFound"

    k.ctl.behave("other", "failed")
    k.apply([seldon("other")], wait=False)
    for _ in range(50):
        st = kube.get_status("SeldonDeployment", "other", k.ns, **k.conn)
        if st["failed"] and "recent events" in st["message"]:
            break
    assert st["failed"] is True and st["state"] == "Failed"
    assert "recent events" in st["message"]


def test_set_traffic_moves_everything_to_the_canary(k):
    k.apply([seldon("iris", ("main", DIGEST_A, 80), ("canary", DIGEST_B, 20))])

    out = kube.set_traffic("SeldonDeployment", "iris", k.ns, to_digest=DIGEST_B, timeout=10.0, **k.conn)

    assert out["changed"] is True and out["state"] == "Available"
    preds = k.get("SeldonDeployment", "iris")["spec"]["predictors"]
    assert [(p["name"], p["traffic"]) for p in preds] == [("main", 0), ("canary", 100)]
    again = kube.set_traffic("SeldonDeployment", "iris", k.ns, to_digest=DIGEST_B, **k.conn)
    assert again["changed"] is False


def test_set_traffic_on_a_kserve_canary(k):
    k.apply([storage_container(), isvc(digest=DIGEST_B, canary=10)])
    out = kube.set_traffic("InferenceService", "iris", k.ns, to_digest=DIGEST_B, timeout=10.0, **k.conn)
    assert out["changed"] is True
    assert k.get("InferenceService", "iris")["spec"]["predictor"]["canaryTrafficPercent"] == 100


def test_a_resource_the_cluster_does_not_have_is_named(k):
    model = {"apiVersion": "ml.example.test/v1", "kind": "Model",
             "metadata": {"name": "iris", "namespace": NS}, "spec": {"storageUri": "x"}}
    with pytest.raises(DeployError, match=r"Model/t-\w+/iris: the cluster has no models resource of "
                                          r"ml.example.test/v1 \(is its CustomResourceDefinition installed\?\)$"):
        k.apply([model])


def test_a_missing_cluster_scoped_resource_is_named_without_namespace_or_bytes(k):
    """Issue 22: was '... does namespace None exist?): b'404 page not found\\n''."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v9", "kind": "ClusterRole", "metadata": {"name": "w"}}
    with pytest.raises(DeployError) as err:
        k.apply([role])
    assert str(err.value) == ("cannot apply ClusterRole/w: the cluster has no clusterroles resource of "
                              "rbac.authorization.k8s.io/v9 (is its CustomResourceDefinition installed?)")


def test_a_missing_namespace_is_named(k):
    doc = in_ns([secret()], "nowhere-ns")
    with pytest.raises(DeployError, match=r"Secret/nowhere-ns/reg: not found: namespace 'nowhere-ns' does not exist "
                                          r"\(kubectl create namespace nowhere-ns\)"):
        kube.apply_and_wait(doc, wait=False, **k.conn)


def test_the_context_chooses_the_cluster(k, tmp_path):
    cfg = yaml.safe_load(Path(k.cluster.kubeconfig).read_text())
    cfg["clusters"].append({"name": "nowhere", "cluster": {"server": "https://127.0.0.1:9"}})
    cfg["contexts"].append({"name": "nowhere", "context": {"cluster": "nowhere", "user": "admin"}})
    (tmp_path / "kc").write_text(yaml.safe_dump(cfg))
    with pytest.raises(DeployError, match="cannot reach the Kubernetes API"):
        kube.apply_and_wait([secret()], kubeconfig=str(tmp_path / "kc"), context="nowhere",
                            in_cluster=False, wait=False, timeout=2.0)
    with pytest.raises(DeployError, match="has no context 'missing'"):
        kube.apply_and_wait([secret()], kubeconfig=str(tmp_path / "kc"), context="missing",
                            in_cluster=False, wait=False, timeout=2.0)


def test_in_cluster_outside_a_pod_says_so(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(DeployError, match="in-cluster service account"):
        kube.get_status("SeldonDeployment", "iris", "models", in_cluster=True)
