"""deploy, canary, promote and rollback through the real Seldon Core v1.17.1 and KServe v0.20.0
operators (tests/fixtures/operators.py), with pods played per namespace (tests/fixtures/kubelet.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelhaul import artifacts
from modelhaul.errors import DeployError
from modelhaul.reference import parse
from modelhaul.registry_options import RegistryOptions
from tests.fixtures.operators import Operators
from tests.fixtures.registry import unique_repo
from tests.fixtures.serving import deploy_model


@dataclass
class Models:
    repo: str
    options: RegistryOptions
    a: str  # :v1
    b: str  # :v2


@pytest.fixture
def models(registry, tmp_path: Path) -> Models:
    repo = f"{registry.host}/{unique_repo('ops')}"
    refs = []
    for tag in ("v1", "v2"):
        d = tmp_path / tag / "model"
        d.mkdir(parents=True)
        (d / "model.joblib").write_bytes(f"weights of {tag}".encode())
        cfg = {"format": "SKLearn", "framework": "scikit-learn"}
        refs.append(artifacts.publish(d, f"{repo}:{tag}", config=cfg, options=registry.options)["ref"])
    return Models(repo, registry.options, *refs)


def deploy(ops: Operators, ns: str, models: Models, ref: str, target: str = "seldon", **kw) -> dict:
    return deploy_model(ref=ref, target=target, name="iris", namespace=ns, kubeconfig=ops.kubeconfig,
                        timeout=kw.pop("timeout", 180.0), options=models.options, **kw)


def kubelet(ops: Operators, ns: str, mode: str) -> None:
    """From now on the played kubelet treats new pods of ``ns`` as ``mode``."""
    ops.kubectl("label", "namespace", ns, f"modelhaul.test/kubelet={mode}", "--overwrite")


def deployments(ops: Operators, ns: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in ops.get("deployments", ns)}


def digest(ref: str) -> str:
    return parse(ref).digest or ""


def template_digest(dep: dict) -> str:
    return dep["spec"]["template"]["metadata"]["annotations"]["modelhaul.io/digest"]


# -- 1. a stale Available / Ready is not ready -----------------------------------------------------


def test_seldon_canary_whose_pods_never_get_ready_is_not_reported_available(operators, operator_ns, models):
    # the canary's pods are scheduled and never report
    msg = candidate_error(operators, operator_ns, models, "pending", 8.0, canary_percent=10, stable_ref=models.a)

    assert "not ready before the timeout" in msg
    assert "iris-canary-0-iris (predictor canary)" in msg and "0 of 1 updated replicas available" in msg


def test_seldon_available_only_once_the_new_digest_serves(operators, operator_ns, models):
    deploy(operators, operator_ns, models, models.a)

    out = deploy(operators, operator_ns, models, models.b)

    assert out["state"] == "Available"
    main = deployments(operators, operator_ns)["iris-main-0-iris"]
    assert template_digest(main) == digest(models.b)
    # no pod of the old model answers any more (the operator may still re-roll the new one: Seldon
    # patches its Deployment again after it is ready, so replica counts of the new digest vary)
    serving = {template_digest(rs) for rs in operators.get("replicasets", operator_ns)
               if any(o.get("uid") == main["metadata"]["uid"] for o in rs["metadata"].get("ownerReferences", []))
               and (rs.get("status") or {}).get("availableReplicas")}
    assert serving == {digest(models.b)}


def candidate_error(ops: Operators, ns: str, models: Models, mode: str, timeout: float, **kw) -> str:
    """Serve ``a``, let new pods fare as ``mode``, deploy ``b``: the one-line error it fails with."""
    target = kw.pop("target", "seldon")
    deploy(ops, ns, models, models.a, target=target)
    kubelet(ops, ns, mode)
    with pytest.raises(DeployError) as err:
        deploy(ops, ns, models, models.b, target=target, timeout=timeout, **kw)
    return str(err.value)


def test_kserve_ready_only_once_the_candidate_pod_is(operators, operator_ns, models):
    msg = candidate_error(operators, operator_ns, models, "pending", 8.0, target="kserve")

    assert "not ready before the timeout" in msg and "iris-predictor" in msg
    assert "old replica(s) still running" in msg or "updated replicas available" in msg


# -- 5. pods that cannot start fail at once, with the reason ----------------------------------------


@pytest.mark.parametrize(("mode", "expected"), [
    ("crash", "container iris: CrashLoopBackOff"),
    ("init-fail", "init container iris-model-initializer: CrashLoopBackOff (last exit code 1): "
                  "modelhaul-initializer: error: cannot reach the registry"),
    ("image-pull", "ImagePullBackOff: Back-off pulling image"),
    ("unschedulable", "cannot be scheduled (Unschedulable): 0/1 nodes are available: 1 Insufficient cpu."),
])
def test_seldon_pods_that_cannot_start_fail_with_their_reason(operators, models, mode, expected):
    said = "modelhaul-initializer: error: cannot reach the registry" if mode == "init-fail" else ""
    ns = operators.namespace(mode, said)

    with pytest.raises(DeployError) as err:
        deploy(operators, ns, models, models.a, timeout=45.0)

    msg = str(err.value)
    assert "before the timeout" not in msg
    assert expected in msg and "pod iris-main-0-iris-" in msg


def test_kserve_crash_looping_candidate_fails_with_the_pod_reason(operators, operator_ns, models):
    msg = candidate_error(operators, operator_ns, models, "crash", 45.0, target="kserve")

    assert "before the timeout" not in msg
    assert "pod iris-predictor-" in msg and "container kserve-container: CrashLoopBackOff" in msg


def test_kserve_serverless_without_knative_is_surfaced(operators, operator_ns, models):
    from modelhaul.serving import kube
    from modelhaul.serving.deploy import build_manifests
    from modelhaul.serving.model import ServedModel

    cfg, pinned = artifacts.load_config(models.a, models.options)
    manifests = build_manifests(ServedModel(pinned, cfg), target="kserve", name="iris", namespace=operator_ns,
                                plain_http=True)
    manifests[-1]["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "Serverless"

    with pytest.raises(DeployError) as err:
        kube.apply_and_wait(manifests, kubeconfig=operators.kubeconfig, timeout=45.0)

    assert "ServerlessModeRejected" in str(err.value) and "before the timeout" not in str(err.value)


# -- 4. adding or removing a canary leaves the stable pods alone -------------------------------------


def test_a_canary_added_and_removed_does_not_roll_the_stable_deployment(operators, operator_ns, models):
    deploy(operators, operator_ns, models, models.a)  # served as ...:v1@X
    main = deployments(operators, operator_ns)["iris-main-0-iris"]
    artifacts.retag(models.a, f"{models.repo}:production", models.options)

    # the stable model is found through the production tag: ...:production@X
    canary = deploy(operators, operator_ns, models, models.b, canary_percent=10)
    assert canary["stable_ref"].startswith(f"{models.repo}:production@")
    after_add = deployments(operators, operator_ns)["iris-main-0-iris"]
    deploy(operators, operator_ns, models, canary["stable_ref"])  # the canary rejected: stable alone
    after_remove = deployments(operators, operator_ns)

    assert after_add["spec"]["template"] == main["spec"]["template"]
    assert after_remove["iris-main-0-iris"]["spec"]["template"] == main["spec"]["template"]
    rs = [r for r in operators.get("replicasets", operator_ns) if r["metadata"]["name"].startswith("iris-main-")]
    assert len(rs) == 1, "the stable Deployment rolled"


# -- promote and rollback through the operator -----------------------------------------------------


def served(ops: Operators, ns: str) -> dict[str, tuple[str, int]]:
    """``{Deployment: (digest its pods serve, available replicas)}`` of what the operator made."""
    return {n: (template_digest(d), int(d["status"].get("availableReplicas") or 0))
            for n, d in deployments(ops, ns).items()}


@pytest.mark.xfail(strict=False, reason=(
    "Seldon Core v1.17.1's operator, on a loaded 2-core machine, sometimes does not converge while a canary "
    "predictor is removed (status Failed 'Service ...-canary-... not found', or Creating 'Not all services "
    "created'); passes alone and with its own file under -n 2. The same flow on the played cluster is "
    "tests/test_promote_cluster.py."))
def test_canary_promote_and_rollback_return_once_the_model_serves(operators, operator_ns, models):
    from modelhaul.promote import promote_model, rollback_model

    def reach(result: dict) -> dict:
        return {**result, "kubeconfig": operators.kubeconfig, "timeout": 180.0}  # a loaded CI machine rolls slowly

    stable = reach(deploy(operators, operator_ns, models, models.a))
    promote_model(ref=models.a, deployment=stable, options=models.options)
    canary = reach(deploy(operators, operator_ns, models, models.b, canary_percent=10))
    assert served(operators, operator_ns)["iris-canary-0-iris"] == (digest(models.b), 1)

    out = promote_model(ref=models.b, deployment=canary, options=models.options)

    assert out["promoted"] is True and out["deployment"]["state"] == "Available"
    assert served(operators, operator_ns)["iris-main-0-iris"] == (digest(models.b), 1)
    main = deployments(operators, operator_ns)["iris-main-0-iris"]["status"]
    assert main.get("replicas") == main.get("updatedReplicas") == 1  # the old model's pod is gone

    back = rollback_model(ref=f"{models.repo}:latest", deployment=canary, options=models.options)

    assert back["rolled_back"] is True and back["deployment"]["state"] == "Available"
    assert served(operators, operator_ns)["iris-main-0-iris"] == (digest(models.a), 1)


# -- 6. a canary only where it can split -------------------------------------------------------------


def test_seldon_canary_without_a_router_warns(operators, operator_ns, models):
    deploy(operators, operator_ns, models, models.a)

    out = deploy(operators, operator_ns, models, models.b, canary_percent=10, stable_ref=models.a)

    assert out["state"] == "Available"
    assert any("no traffic split" in w and "Istio or Ambassador" in w for w in out["warnings"])


def test_kserve_canary_in_standard_mode_is_refused_before_anything_changes(operators, operator_ns, models):
    deploy(operators, operator_ns, models, models.a, target="kserve")
    before = operators.get("inferenceservice", operator_ns, "iris")

    with pytest.raises(DeployError) as err:
        deploy(operators, operator_ns, models, models.b, target="kserve", canary_percent=10)

    assert "Standard mode" in str(err.value) and "canaryTrafficPercent" in str(err.value)
    after = operators.get("inferenceservice", operator_ns, "iris")
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert digest(models.a) in json.dumps(after["spec"])


# -- 3. an ONNX model the runtime the operator picks can load ----------------------------------------


@pytest.fixture
def sklearn_ref(registry, tmp_path: Path) -> str:
    import joblib
    from sklearn.linear_model import LogisticRegression

    d = tmp_path / "skl" / "model"
    d.mkdir(parents=True)
    joblib.dump(LogisticRegression().fit([[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.8, 0.1]], [0, 1, 0, 1]),
                d / "model.joblib")
    cfg = {"format": "SKLearn", "framework": "scikit-learn"}
    return artifacts.publish(d, f"{registry.host}/{unique_repo('onnx')}:v1", config=cfg,
                             options=registry.options)["ref"]


def convert(ref: str, **kw) -> str:
    from modelhaul import steps

    return steps.convert(ref=ref, to="onnx", dest_ref=ref.split("@")[0] + "-onnx", trust=True, plain_http=True,
                         **kw)["ref"]


def onnx_versions(ref: str, options: RegistryOptions, tmp: Path) -> tuple[int, int]:
    import onnx

    got = artifacts.fetch(ref, tmp / "fetched", options=options)
    m = onnx.load(str(next(Path(got["model_dir"]).rglob("*.onnx"))))
    return m.ir_version, max(i.version for i in m.opset_import if i.domain in ("", "ai.onnx"))


def test_a_converted_model_loads_in_the_triton_the_seldon_operator_picks(operators, operator_ns, sklearn_ref,
                                                                         registry, tmp_path):
    onnx_ref = convert(sklearn_ref)

    ir, opset = onnx_versions(onnx_ref, registry.options, tmp_path)
    assert ir <= 7 and opset <= 14  # tritonserver:21.08 (ONNX Runtime 1.8)
    deploy_model(ref=onnx_ref, target="seldon", name="iris", namespace=operator_ns, kubeconfig=operators.kubeconfig,
                 timeout=60.0, options=registry.options)
    pod = operators.get("deployment", operator_ns, "iris-main-0-iris")["spec"]["template"]["spec"]
    assert any(c["image"] == "nvcr.io/nvidia/tritonserver:21.08-py3" for c in pod["containers"])


def test_deploy_refuses_an_onnx_model_newer_than_the_operators_runtime(operators, operator_ns, sklearn_ref,
                                                                        registry):
    onnx_ref = convert(sklearn_ref, opset=19)  # IR 9: fine for KServe's Triton 23.05, not Seldon's 21.08

    with pytest.raises(DeployError) as err:
        deploy_model(ref=onnx_ref, target="seldon", name="iris", namespace=operator_ns,
                     kubeconfig=operators.kubeconfig, timeout=60.0, options=registry.options)

    msg = str(err.value)
    assert "ONNX IR 9" in msg and "nvcr.io/nvidia/tritonserver:21.08-py3" in msg and "--opset 14" in msg
    assert operators.get("seldondeployments", operator_ns) == []
