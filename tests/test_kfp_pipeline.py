"""``retrain_and_redeploy`` end to end on ``kfp.local``: real MLflow (SQLite), real registry, rendered deploy.

The pipeline runs on the local runtime: the checked-in pipeline minus the pip installs and the
Kubernetes Secret wiring, both meaningless in this process's environment. One good run promotes a
model; then a bad model and a failing run each must leave production where the good run put it, and
a run that fails after promoting (its smoke check) is rolled back by the exit handler.

What a cluster's metadata store would record is read from kfp.local's ``executor_output.json`` files:
each output artifact with its ``uri`` and ``metadata``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelhaul import artifacts
from tests.fixtures.registry import unique_repo

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(r"ignore:Task .* settings \['display_name'\] have no effect:UserWarning"),
]

GATE = ["accuracy >= 0.9"]


@pytest.fixture(scope="module")
def kfp_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """kfp.local set up once for the module, with one MLflow store (SQLite)."""
    import kfp.local

    from modelhaul.components.pipeline import build_pipeline
    from modelhaul.components.runtime import local

    tmp = tmp_path_factory.mktemp("kfp")
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp / "root"))
    return {"pipeline": build_pipeline(local()), "root": tmp / "root", "render_dir": tmp / "manifests",
            "tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}", "tmp": tmp, "runs": {}}


#: The artifact each task writes its step result on (the JSON file KFP stores at the artifact's path).
RESULT_OUTPUTS = ("model", "deployment", "promotion", "result")


def run(env: dict[str, Any], repository: str, **overrides: Any) -> dict[str, dict[str, Any]]:
    """Run the pipeline; return each task's step result (the JSON its model or result artifact holds)."""
    root: Path = env["root"]
    before = set(root.glob("*")) if root.exists() else set()
    args = {"repository": repository, "entry_point": "modelhaul.examples.iris:train",
            "params": {"dataset": "iris"}, "tracking_uri": env["tracking_uri"], "gate": GATE,
            "render_dir": str(env["render_dir"]), "deployment_name": "iris", "canary_percent": 20,
            "plain_http": True, **overrides}
    try:
        env["pipeline"](**args)
    finally:
        (run_dir,) = set(root.glob("*")) - before
        env["last_dir"] = run_dir
        env["runs"].setdefault(repository, run_dir)  # the first run of each repository
        env["last"] = {p.parent.name: json.loads(p.read_text()) for p in run_dir.glob("*/*")
                       if p.is_file() and p.name in RESULT_OUTPUTS}
    return env["last"]


def rendered(env: dict[str, Any]) -> str:
    return "\n".join(p.read_text() for p in sorted(env["render_dir"].rglob("*")) if p.is_file())


@pytest.fixture(scope="module")
def good(registry, kfp_env: dict[str, Any]) -> dict[str, Any]:
    """A first run with a good model, in a repository of its own."""
    repository = f"{registry.host}/{unique_repo('kfp')}"
    return {"repository": repository, "production": f"{repository}:production",
            "tasks": run(kfp_env, repository)}


def test_good_model_arrives_with_its_mlflow_metadata_and_is_promoted(registry, kfp_env, good) -> None:
    tasks = good["tasks"]
    assert {"train", "package", "parse", "convert", "deploy", "promote"} <= set(tasks)

    packaged = artifacts.inspect(tasks["package"]["ref"], registry.options)["config"]
    assert packaged["provenance"]["mlflow"]["runId"] == tasks["train"]["run_id"]
    assert {"name": "dataset", "value": "iris"} in packaged["hyperParameters"]
    assert any(m["name"] == "accuracy" for group in packaged["metrics"].values() for m in group)
    assert tasks["train"]["metrics"]["accuracy"] >= 0.9

    converted = tasks["convert"]
    assert converted["format"].lower() == "onnx"
    assert converted["parity"]["label_agreement"] == 1.0
    assert artifacts.inspect(converted["ref"], registry.options)["config"]["provenance"]["parent"] == \
        tasks["parse"]["ref"]

    assert tasks["deploy"]["state"] == "Skipped"  # a first model has nothing to canary beside
    assert tasks["promote"]["promoted"] is True
    assert "deploy-2" not in tasks
    assert artifacts.resolve(good["production"], registry.options).endswith(converted["digest"])
    assert converted["digest"] in rendered(kfp_env)


def test_bad_model_is_rejected_and_its_canary_retired(registry, kfp_env, good) -> None:
    serving = good["tasks"]["convert"]["digest"]
    bad = run(kfp_env, good["repository"], params={"dataset": "iris", "label_noise": 1.0})
    assert bad["train"]["metrics"]["accuracy"] < 0.5
    assert bad["deploy"]["canary_percent"] == 20  # it ran as a canary beside the good model
    # and promote retired it on the rejection (no separate retire task since the core does it)
    assert bad["promote"]["deployment"]["ref"].endswith(serving)
    assert "deploy-2" not in bad
    assert bad["deploy"]["stable_ref"].endswith(serving)
    assert bad["promote"]["promoted"] is False
    assert "accuracy" in bad["promote"]["reason"]
    assert artifacts.resolve(good["production"], registry.options).endswith(serving)
    text = rendered(kfp_env)
    assert serving in text and bad["convert"]["digest"] not in text  # the good model serves alone


def test_failed_run_leaves_production_alone(registry, kfp_env, good) -> None:
    """The exit handler runs on failure; a run that never promoted has nothing to roll back."""
    serving = good["tasks"]["convert"]["digest"]
    with pytest.raises(RuntimeError, match="train"):
        run(kfp_env, good["repository"], params={"dataset": "no-such-dataset"})
    exit_task = json.loads((kfp_env["last_dir"] / "rollback-on-failure" / "executor_output.json").read_text())
    assert exit_task["parameterValues"]["Output"] == "run failed before promoting: production untouched"
    assert artifacts.resolve(good["production"], registry.options).endswith(serving)
    assert serving in rendered(kfp_env)


def test_rollback_component_restores_the_previous_model(registry, kfp_env, good) -> None:
    """The rollback component on its own: the stage goes back to the model it held before."""
    from modelhaul.components.factory import build
    from modelhaul.components.runtime import local

    tasks = good["tasks"]
    repository = f"{registry.host}/{unique_repo('kfp-rollback')}"
    artifacts.retag(tasks["convert"]["ref"], f"{repository}:production-previous", registry.options)
    artifacts.retag(tasks["parse"]["ref"], f"{repository}:production", registry.options)

    task = build("rollback", local())(ref=f"{repository}:production", plain_http=True)
    assert task.outputs["rolled_back"] is True
    restored = artifacts.resolve(f"{repository}:production", registry.options)
    assert restored.endswith(tasks["convert"]["digest"])
    # the result is an Artifact, not a Model (issue 14: a rollback result is not a model)
    assert task.outputs["result"].schema_title == "system.Artifact"
    assert task.outputs["result"].metadata["digest"] == tasks["convert"]["digest"]
    assert artifacts.resolve(f"{repository}:production-rolledback", registry.options).endswith(
        tasks["parse"]["digest"])


def outputs_of(run_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Each task's output artifacts as kfp.local recorded them: ``{task: {output: {uri, metadata}}}``."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for path in run_dir.glob("*/executor_output.json"):
        arts = json.loads(path.read_text()).get("artifacts", {})
        out[path.parent.name] = {name: a["artifacts"][0] for name, a in arts.items()}
    return out


#: (consumer task, its input, producer task, the producer's output) along the pipeline.
CHAIN = [("package", "source", "train", "model"), ("parse", "source", "package", "model"),
         ("convert", "source", "parse", "model"), ("sign", "source", "convert", "model"),
         ("deploy", "source", "sign", "model"), ("promote", "candidate", "sign", "model"),
         ("promote", "deployment", "deploy", "deployment"), ("smoke-check", "promotion", "promote", "promotion")]


def test_artifact_chain_is_linked(registry, kfp_env, good) -> None:
    """Every step reads the previous step's artifact (not a string), and each artifact names ref and digest."""
    import yaml

    from modelhaul.components import PIPELINE, yaml_path

    run_dir = kfp_env["runs"][good["repository"]]
    outs = outputs_of(run_dir)
    # the wiring KFP's metadata store records: each input artifact is an upstream task's output
    ir = next(yaml.safe_load_all(yaml_path(PIPELINE).read_text()))
    tasks = ir["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    for consumer, inp, producer, output in CHAIN:
        wired = tasks[consumer]["inputs"]["artifacts"][inp]["taskOutputArtifact"]
        assert (wired["producerTask"], wired["outputArtifactKey"]) == (producer, output), consumer
        assert "ref" not in tasks[consumer]["inputs"].get("parameters", {}), consumer
    # what ran: each consumer read exactly the artifact its producer wrote
    for consumer, inp, producer, output in CHAIN:
        if consumer == "smoke-check" or inp == "deployment":
            continue  # no output artifact of their own to record it on
        produced = outs[producer][output]
        assert outs[consumer][{"deploy": "deployment", "promote": "promotion"}.get(consumer, "model")][
            "metadata"]["upstream_uri"] == produced["uri"], consumer
        assert produced["metadata"]["ref"], producer
        if producer != "train":  # train's model lives in MLflow: a models:/ URI, no registry digest
            assert produced["metadata"]["ref"].endswith("@" + produced["metadata"]["digest"]), producer
    assert outs["train"]["model"]["metadata"]["ref"].startswith("models:/")
    assert outs["promote"]["promotion"]["metadata"]["digest"] == outs["convert"]["model"]["metadata"]["digest"]


def test_metrics_artifacts_hold_accuracy_and_parity(kfp_env, good) -> None:
    outs = outputs_of(kfp_env["runs"][good["repository"]])
    trained = outs["train"]["metrics"]["metadata"]
    assert trained["accuracy"] >= 0.9
    assert trained["accuracy"] == good["tasks"]["train"]["metrics"]["accuracy"]
    parity = outs["convert"]["parity"]["metadata"]
    assert parity["label_agreement"] == 1.0
    assert 0.0 <= parity["max_abs_diff"] <= 1e-3


def test_failure_after_promotion_is_rolled_back_by_the_exit_handler(registry, kfp_env, good) -> None:
    """A good model is promoted, then the post-promotion smoke check fails: the exit handler puts
    production, and what serves, back to the model the run replaced."""
    serving = artifacts.resolve(good["production"], registry.options).rpartition("@")[2]
    with pytest.raises(RuntimeError, match="smoke-check"):
        run(kfp_env, good["repository"], smoke_check="tests.fixtures.smoke:always_fails")
    failed = kfp_env["last"]
    assert failed["promote"]["promoted"] is True  # the run had moved production to its candidate
    candidate = failed["convert"]["digest"]
    assert candidate != serving
    exit_task = json.loads((kfp_env["last_dir"] / "rollback-on-failure" / "executor_output.json").read_text())
    assert exit_task["parameterValues"]["Output"].startswith("run failed after promoting: production restored to")
    assert artifacts.resolve(good["production"], registry.options).endswith(serving)
    assert artifacts.resolve(f"{good['repository']}:production-rolledback", registry.options).endswith(candidate)
    text = rendered(kfp_env)
    assert serving in text and candidate not in text  # the previous model serves alone again


def test_passing_smoke_check_keeps_the_promotion(registry, kfp_env, good) -> None:
    repository = f"{registry.host}/{unique_repo('kfp-smoke')}"
    tasks = run(kfp_env, repository, smoke_check="tests.fixtures.smoke:passes", render_dir=str(kfp_env["tmp"] / "m2"))
    assert tasks["promote"]["promoted"] is True
    check = json.loads((kfp_env["last_dir"] / "smoke-check" / "executor_output.json").read_text())
    assert check["parameterValues"]["Output"].startswith("smoke check tests.fixtures.smoke:passes passed on ")
    assert artifacts.resolve(f"{repository}:production", registry.options).endswith(tasks["convert"]["digest"])


def test_training_without_a_tracking_uri_fails_with_one_line(kfp_env, monkeypatch, capfd) -> None:
    """In a pod MLflow's default store vanishes with the pod: no URI anywhere is an error, before training."""
    from modelhaul import steps
    from modelhaul.components.factory import build
    from modelhaul.components.runtime import local
    from modelhaul.errors import ConfigError

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(ConfigError, match="tracking_uri: not set and MLFLOW_TRACKING_URI is not in the environment"):
        steps.require_tracking_uri("")
    with pytest.raises(RuntimeError, match="train"):
        build("train", local())(entry_point="modelhaul.examples.iris:train", params={"dataset": "iris"})
    logs = capfd.readouterr()
    assert "ConfigError: tracking_uri: not set" in logs.out + logs.err
    monkeypatch.setenv("MLFLOW_TRACKING_URI", kfp_env["tracking_uri"])
    assert steps.require_tracking_uri("") == kfp_env["tracking_uri"]


def test_a_pipeline_can_start_from_a_reference(registry, kfp_env, good) -> None:
    """A model already in the registry enters as an importer's Model artifact and is promoted like any other."""
    from kfp import dsl

    from modelhaul.components.factory import build
    from modelhaul.components.pipeline import import_model
    from modelhaul.components.runtime import local

    repository = f"{registry.host}/{unique_repo('kfp-import')}"
    ref = artifacts.retag(good["tasks"]["convert"]["ref"], f"{repository}:v1", registry.options)["ref"]
    promote = build("promote", local())

    @dsl.pipeline(name="promote-a-reference")
    def promote_ref():  # no annotations: this module's are strings, which KFP cannot read
        promote(candidate=import_model(ref).output, stage="production", plain_http=True)

    before = set(kfp_env["root"].glob("*"))
    promote_ref()
    (run_dir,) = set(kfp_env["root"].glob("*")) - before
    promotion = outputs_of(run_dir)["promote"]["promotion"]["metadata"]
    assert promotion["promoted"] is True and promotion["candidate"] == ref
    assert artifacts.resolve(f"{repository}:production", registry.options).endswith(good["tasks"]["convert"]["digest"])
