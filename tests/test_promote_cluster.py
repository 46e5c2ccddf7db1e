"""Promote and roll back with a deployment on the real kube-apiserver (tests/fixtures/cluster.py):
traffic moves, nothing moves when the cluster would refuse, and a failed rollout puts the tags back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from modelhaul.errors import DeployError
from tests.fixtures.serving import deploy_model
from tests.test_promote import Models, digest, mlflow_uri, models  # noqa: F401  (fixtures)


def served_digests(obj: dict) -> list[tuple[str, int, str]]:
    """``(predictor, traffic, digest)`` of each Seldon predictor."""
    out = []
    for p in obj["spec"]["predictors"]:
        uri = p["graph"]["modelUri"]
        out.append((p["name"], p.get("traffic"), uri.split("@", 1)[1].split("?", 1)[0]))
    return out


@pytest.fixture
def kc(kube_cluster, kube_ns, controller):
    return kube_cluster, kube_ns, controller


def deploy(models: Models, kc, ref: str, **kw) -> dict:  # noqa: F811
    cluster, ns, _ = kc
    result = deploy_model(ref=ref, target=kw.pop("target", "seldon"), name="iris", namespace=ns,
                          kubeconfig=cluster.kubeconfig, context=cluster.context, timeout=10.0,
                          options=models.options, **kw)
    # the deploy result names the service; how to reach the cluster is added by the caller
    return {**result, "kubeconfig": cluster.kubeconfig, "context": cluster.context, "timeout": 10.0}


def sdep(kc) -> dict:
    return kc[0].get("SeldonDeployment", "iris", kc[1])


def test_promoting_a_canary_moves_all_traffic_to_it(models, kc):  # noqa: F811
    stable = deploy(models, kc, models.a)
    models.promote(models.a, deployment=stable)
    canary = deploy(models, kc, models.b, canary_percent=20)
    assert served_digests(sdep(kc)) == [("main", 80, digest(models.a)), ("canary", 20, digest(models.b))]

    out = models.promote(models.b, gate="accuracy >= 0.9", deployment=canary)

    assert out["promoted"] is True
    assert out["deployment"]["state"] == "Available"
    live = sdep(kc)
    assert served_digests(live) == [("main", 100, digest(models.b))]
    # traffic went to the warm canary first (one generation), then the canary became the only predictor
    assert live["metadata"]["generation"] == 4
    assert models.at("production") == digest(models.b)
    assert models.alias() == "2"


def test_a_failed_rollout_puts_the_tags_back_and_serves_the_previous_model(models, kc):  # noqa: F811
    first = deploy(models, kc, models.a)
    models.promote(models.a, deployment=first)
    bad = digest(models.b)
    kc[2].behave("iris", lambda obj: "failed" if bad in json.dumps(obj["spec"]) else "available")

    with pytest.raises(DeployError) as err:
        models.promote(models.b, deployment=first)
    msg = str(err.value)
    assert "rollout of" in msg and "container classifier crashed" in msg
    assert f"production put back on {digest(models.a)} and serving it again" in msg
    assert models.at("production") == digest(models.a)
    assert models.at("production-previous") == digest(models.a)  # it held nothing before: left where it is
    assert models.alias() == "1"  # the alias moves only after a good rollout
    assert served_digests(sdep(kc)) == [("main", 100, digest(models.a))]

    out = models.rollback(deployment=first)  # nothing of the failed attempt is left to undo
    assert out["reason"].startswith(f"production already holds {digest(models.a)}")
    assert served_digests(sdep(kc)) == [("main", 100, digest(models.a))]


def test_rollback_restores_traffic_and_is_safe_to_rerun(models, kc):  # noqa: F811
    first = deploy(models, kc, models.a)
    models.promote(models.a, deployment=first)
    models.promote(models.b, deployment=first)
    assert served_digests(sdep(kc)) == [("main", 100, digest(models.b))]

    out = models.rollback(deployment=first)

    assert out["rolled_back"] is True and out["deployment"]["state"] == "Available"
    live = sdep(kc)
    assert served_digests(live) == [("main", 100, digest(models.a))]
    assert models.at("production") == digest(models.a)
    assert models.at("production-rolledback") == digest(models.b)
    again = models.rollback(deployment=first)
    assert again["rolled_back"] is True
    assert sdep(kc)["metadata"]["generation"] == live["metadata"]["generation"]


def test_a_rollback_whose_redeploy_fails_puts_the_stage_back(models, kc):  # noqa: F811
    first = deploy(models, kc, models.a)
    models.promote(models.a, deployment=first)
    models.promote(models.b, deployment=first)
    old = digest(models.a)  # the model rollback would restore cannot start any more
    kc[2].behave("iris", lambda obj: "failed" if old in json.dumps(obj["spec"]) else "available")

    with pytest.raises(DeployError) as err:
        models.rollback(deployment=first)

    assert f"production put back on {digest(models.b)} and serving it again" in str(err.value)
    assert models.at("production") == digest(models.b)
    assert served_digests(sdep(kc)) == [("main", 100, digest(models.b))]


def test_a_refused_identity_is_not_asked_when_rollback_has_nothing_of_this_run(models, kc, tmp_path):  # noqa: F811
    first = deploy(models, kc, models.a)
    models.promote(models.a, deployment=first)
    nowhere = {**first, "kubeconfig": str(tmp_path / "missing.yaml")}  # would fail any cluster call

    out = models.rollback(deployment=nowhere, only_if_digest=digest(models.b))

    assert out["skipped"] is True and models.at("production") == digest(models.a)


def test_kserve_canary_promotion(models, kc, knative):  # noqa: F811
    stable = deploy(models, kc, models.a, target="kserve")
    models.promote(models.a)
    canary = deploy(models, kc, models.b, target="kserve", canary_percent=10)

    out = models.promote(models.b, deployment=canary)

    assert out["deployment"]["state"] == "Ready"
    pred = kc[0].get("InferenceService", "iris", kc[1])["spec"]["predictor"]
    assert "canaryTrafficPercent" not in pred
    assert digest(models.b) in json.dumps(pred)
    assert stable["name"] == canary["name"]


def test_a_cluster_deployment_without_connection_settings_changes_nothing(models, kc):  # noqa: F811
    first = deploy(models, kc, models.a)
    models.promote(models.a)
    bare = {k: v for k, v in first.items() if k not in ("kubeconfig", "context")}
    with pytest.raises(Exception, match="add kubeconfig/context"):
        models.promote(models.b, deployment=bare)
    assert models.at("production") == digest(models.a)


def reader_kubeconfig(kc, tmp_path: Path, verbs: list[str]) -> str:
    """A ServiceAccount of the test's namespace that may only ``verbs`` SeldonDeployments, as a kubeconfig."""
    cluster, ns, _ = kc
    cluster.kubectl("-n", ns, "create", "serviceaccount", "reader")
    cluster.kubectl("-n", ns, "create", "role", "reader", f"--verb={','.join(verbs)}",
                    "--resource=seldondeployments.machinelearning.seldon.io")
    cluster.kubectl("-n", ns, "create", "rolebinding", "reader", "--role=reader", f"--serviceaccount={ns}:reader")
    token = cluster.kubectl("-n", ns, "create", "token", "reader").stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    path = tmp_path / "reader.yaml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
        "users": [{"name": "reader", "user": {"token": token}}],
        "contexts": [{"name": "reader", "context": {"cluster": "local", "user": "reader", "namespace": ns}}],
        "current-context": "reader"}))
    return str(path)


def test_promote_refuses_before_moving_a_tag_when_the_deployment_cannot_be_patched(models, kc, tmp_path):  # noqa: F811
    """Issue 22: the tag used to move, then the traffic shift failed: registry and cluster disagreed."""
    cluster, ns, _ = kc
    stable = deploy(models, kc, models.a)
    models.promote(models.a, deployment=stable)
    canary = deploy(models, kc, models.b, canary_percent=20)
    reader = reader_kubeconfig(kc, tmp_path, ["get", "list", "watch"])
    before = sdep(kc)

    with pytest.raises(DeployError) as err:
        models.promote(models.b, deployment={**canary, "kubeconfig": reader, "context": "reader"})

    assert str(err.value) == (
        f"system:serviceaccount:{ns}:reader may not patch seldondeployments.machinelearning.seldon.io 'iris' in "
        f"namespace {ns} on {cluster.server}: nothing changed, promote of {models.b} to production refused "
        "(grant it, or pass --kubeconfig/--context of an identity that may)")
    assert models.at("production") == digest(models.a) and models.at("production-previous") is None
    assert models.alias() == "1"
    assert sdep(kc)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    with pytest.raises(DeployError, match=r"may not patch .* rollback of stage production refused"):
        models.rollback(deployment={**canary, "kubeconfig": reader, "context": "reader"})
    assert models.at("production") == digest(models.a)


def test_kubeconfig_and_context_replace_what_the_deploy_result_recorded(models, kc, tmp_path):  # noqa: F811
    """Issue 22: a deploy result naming a context that is gone made promote fail; now the caller says where."""
    cluster, ns, _ = kc
    stable = deploy(models, kc, models.a)
    gone = {**stable, "kubeconfig": cluster.kubeconfig, "context": "deployer"}
    with pytest.raises(DeployError, match="has no context 'deployer'"):
        models.promote(models.a, deployment=gone)
    assert models.at("production") is None

    out = models.promote(models.a, deployment=gone, kubeconfig=cluster.kubeconfig, context="local")
    assert out["promoted"] is True and out["deployment"]["state"] == "Available"
    models.promote(models.b, deployment=gone, kubeconfig=cluster.kubeconfig)  # its current context

    back = models.rollback(deployment=gone, kubeconfig=cluster.kubeconfig, context="local")
    assert back["rolled_back"] is True
    assert served_digests(sdep(kc)) == [("main", 100, digest(models.a))]
