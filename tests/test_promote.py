"""Promote and roll back against a real registry (tags) and a real MLflow store (aliases); on a
cluster: tests/test_promote_cluster.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelhaul import artifacts
from modelhaul.errors import GateError
from modelhaul.promote import promote_model, rollback_model
from modelhaul.reference import parse
from modelhaul.registry_options import RegistryOptions
from tests.fixtures.registry import unique_repo
from tests.fixtures.serving import deploy_model


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()  # creates the tables
    return uri


@dataclass
class Models:
    """Three versions of one model in a fresh repository, each a registered MLflow version."""

    repo: str  # host/repository, no tag
    name: str  # registered model name
    uri: str
    options: RegistryOptions
    a: str  # v1: accuracy 0.90, registered version 1
    b: str  # v2: accuracy 0.93, version 2
    c: str  # v3: accuracy 0.80, version 3

    def at(self, tag: str) -> str | None:
        pinned = artifacts.try_resolve(f"{self.repo}:{tag}", self.options)
        return parse(pinned).digest if pinned else None

    def alias(self, alias: str = "production") -> str | None:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        try:
            return str(MlflowClient(self.uri, self.uri).get_model_version_by_alias(self.name, alias).version)
        except MlflowException:
            return None

    def promote(self, ref: str, **kw) -> dict:
        return promote_model(ref=ref, stage=kw.pop("stage", "production"), gate=kw.pop("gate", None),
                             beats=kw.pop("beats", None), min_delta=kw.pop("min_delta", 0.0),
                             tracking_uri=self.uri, deployment=kw.pop("deployment", None),
                             options=self.options, **kw)

    def rollback(self, **kw) -> dict:
        return rollback_model(ref=f"{self.repo}:latest", stage=kw.pop("stage", "production"),
                              tracking_uri=self.uri, deployment=kw.pop("deployment", None),
                              options=self.options, **kw)


def digest(pinned: str) -> str:
    return parse(pinned).digest


@pytest.fixture
def models(registry, mlflow_uri, tmp_path: Path) -> Models:
    from mlflow import MlflowClient

    name = f"iris-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(mlflow_uri, mlflow_uri)
    client.create_registered_model(name)
    repo = f"{registry.host}/{unique_repo('promote')}"
    refs = []
    for version, (tag, acc, loss) in enumerate([("v1", 0.90, 0.30), ("v2", 0.93, 0.22), ("v3", 0.80, 0.45)], 1):
        client.create_model_version(name, source=f"s3://models/{name}/{version}")
        d = tmp_path / tag / "model"
        d.mkdir(parents=True)
        (d / "model.joblib").write_bytes(f"weights of {tag}".encode())
        cfg = {"format": "SKLearn", "framework": "scikit-learn", "metrics": {"accuracy": acc, "loss": loss},
               "provenance": {"mlflow": {"registeredModel": name, "version": str(version),
                                         "trackingUri": mlflow_uri}}}
        refs.append(artifacts.publish(d, f"{repo}:{tag}", config=cfg, options=registry.options)["ref"])
    return Models(repo, name, mlflow_uri, registry.options, *refs)


def test_first_promotion_moves_the_tag_and_sets_the_alias(models):
    out = models.promote(models.a, gate="accuracy >= 0.85")

    assert out["promoted"] is True
    assert out["previous"] is None
    assert out["ref"] == f"{models.repo}:production@{digest(models.a)}"
    assert out["reason"] == "gate passed: accuracy >= 0.85: accuracy is 0.9"
    assert models.at("production") == digest(models.a)
    assert models.alias() == "1"


def test_a_better_candidate_replaces_production_and_the_old_one_is_kept(models):
    models.promote(models.a)
    out = models.promote(models.b, gate=["accuracy >= 0.9", "loss < 0.3"], beats="accuracy", min_delta=0.02)

    assert out["promoted"] is True, out["reason"]
    assert out["previous"] == f"{models.repo}:production-previous@{digest(models.a)}"
    assert models.at("production") == digest(models.b)
    assert models.at("production-previous") == digest(models.a)
    assert "production-previous" in artifacts.list_tags(f"{models.repo}:v1", models.options)
    assert models.alias() == "2"
    assert out["alias"] == {"registered_model": models.name, "alias": "production", "version": "2",
                            "previous_version": "1"}

    again = models.promote(models.b, beats="accuracy", min_delta=0.02)
    assert again["promoted"] is True and again["reason"].startswith("already at production")
    assert again["previous"] == out["previous"]
    assert models.at("production") == digest(models.b)
    assert models.at("production-previous") == digest(models.a)
    assert models.alias() == "2"


def test_a_rejected_gate_leaves_production_untouched(models):
    models.promote(models.a)
    models.promote(models.b)

    out = models.promote(models.c, gate="accuracy >= 0.85")
    assert out["promoted"] is False
    assert out["reason"] == "gate not met: accuracy >= 0.85: accuracy is 0.8 — not met"
    assert out["previous"] == f"{models.repo}:production@{digest(models.b)}"

    worse = models.promote(models.c, beats="-loss")
    assert worse["promoted"] is False and "candidate 0.45 vs current 0.22" in worse["reason"]
    missing = models.promote(models.c, gate="auc > 0.5")
    assert missing["promoted"] is False and "no numeric metric 'auc'" in missing["reason"]

    assert models.at("production") == digest(models.b)
    assert models.at("production-previous") == digest(models.a)
    assert models.alias() == "2"


def test_a_malformed_gate_is_an_error_before_anything_moves(models):
    with pytest.raises(GateError, match="'accuracy => 0.9' is malformed"):
        models.promote(models.a, gate="accuracy => 0.9")
    with pytest.raises(GateError, match="beats '-' is malformed"):
        models.promote(models.a, beats="-")
    assert models.at("production") is None
    assert models.alias() is None


def test_rollback_restores_the_previous_tag_and_alias_and_is_safe_to_rerun(models):
    models.promote(models.a)
    models.promote(models.b)

    out = models.rollback()
    assert out["rolled_back"] is True
    assert out["restored"] == f"{models.repo}:production-previous@{digest(models.a)}"
    assert out["replaced"] == f"{models.repo}:production-rolledback@{digest(models.b)}"
    assert models.at("production") == digest(models.a)
    assert models.at("production-rolledback") == digest(models.b)
    assert models.alias() == "1"

    again = models.rollback()
    assert again["rolled_back"] is True and "already holds" in again["reason"]
    assert again["replaced"] == out["replaced"]
    assert models.at("production") == digest(models.a)
    assert models.alias() == "1"


def test_rollback_of_a_first_promotion_has_nothing_to_restore(models):
    models.promote(models.a)
    out = models.rollback()
    assert out["rolled_back"] is False
    assert "nothing to roll back to" in out["reason"]
    assert models.at("production") == digest(models.a)


def test_a_rollback_guarded_by_a_candidate_only_undoes_that_candidates_promotion(models):
    models.promote(models.a)
    models.promote(models.b)

    # a run whose candidate (c) was never promoted must not undo the good promotion of b
    other = models.rollback(only_if_digest=digest(models.c))
    assert other["rolled_back"] is False and other["skipped"] is True
    assert f"points at {digest(models.b)}, not at this run's candidate {digest(models.c)}" in other["reason"]
    assert models.at("production") == digest(models.b)
    assert models.alias() == "2"

    out = models.rollback(only_if_digest=digest(models.b))
    assert out["rolled_back"] is True
    assert models.at("production") == digest(models.a)
    assert models.alias() == "1"


def test_rollback_removes_an_alias_that_did_not_exist_before(models, tmp_path):
    # the model at production came from outside the model registry: no alias to go back to
    d = tmp_path / "plain" / "model"
    d.mkdir(parents=True)
    (d / "model.joblib").write_bytes(b"hand-made")
    plain = artifacts.publish(d, f"{models.repo}:plain", config={"metrics": {"accuracy": 0.5}},
                              options=models.options)["ref"]
    models.promote(plain)
    models.promote(models.b)
    assert models.alias() == "2"

    models.rollback()
    assert models.at("production") == digest(plain)
    assert models.alias() is None


def test_stages_are_independent(models):
    models.promote(models.a, stage="staging")
    models.promote(models.b, stage="staging")
    models.promote(models.a, stage="production")
    assert models.at("staging") == digest(models.b)
    assert models.at("production") == digest(models.a)
    assert models.alias("staging") == "2" and models.alias("production") == "1"


# -- with a deployment ----------------------------------------------------------------------------


def test_promote_in_render_mode_rewrites_the_manifests(models, tmp_path: Path):
    render = tmp_path / "manifests"
    first = deploy_model(ref=models.a, target="seldon", name="iris", namespace="models",
                         render_dir=str(render), options=models.options)
    models.promote(models.a)

    out = models.promote(models.b, deployment=first)

    assert out["deployment"]["state"] == "Rendered"
    text = (render / "seldondeployment-iris.yaml").read_text()
    assert digest(models.b) in text and digest(models.a) not in text
    models.rollback(deployment=first)
    assert digest(models.a) in (render / "seldondeployment-iris.yaml").read_text()


def test_a_rejected_canary_stops_serving_and_production_stays(models, tmp_path: Path):
    render = tmp_path / "manifests"
    deploy_model(ref=models.a, target="seldon", name="iris", render_dir=str(render), options=models.options)
    models.promote(models.a)
    canary = deploy_model(ref=models.c, target="seldon", name="iris", render_dir=str(render),
                          canary_percent=10, options=models.options)
    assert digest(models.c) in (render / "seldondeployment-iris.yaml").read_text()

    out = models.promote(models.c, gate="accuracy >= 0.85", deployment=canary)

    assert out["promoted"] is False and "canary retired" in out["reason"]
    text = (render / "seldondeployment-iris.yaml").read_text()
    assert digest(models.c) not in text and digest(models.a) in text
    assert "name: canary" not in text and "traffic: 100" in text
    assert models.at("production") == digest(models.a)


def test_promote_and_rollback_in_a_local_oci_layout(tmp_path: Path):
    refs = []
    for tag, acc in (("v1", 0.9), ("v2", 0.95)):
        d = tmp_path / tag
        d.mkdir()
        (d / "model.joblib").write_bytes(tag.encode())
        refs.append(artifacts.publish(d, f"oci:{tmp_path}/layout:{tag}", config={"metrics": {"accuracy": acc}})["ref"])
    assert promote_model(ref=refs[0], gate="accuracy >= 0.8")["promoted"] is True
    assert promote_model(ref=refs[1], beats="accuracy", min_delta=0.01)["promoted"] is True
    out = rollback_model(ref=f"oci:{tmp_path}/layout")
    assert out["rolled_back"] is True and out["alias"] is None
    assert digest(artifacts.resolve(f"oci:{tmp_path}/layout:production")) == digest(refs[0])
    assert {"production-previous", "production-rolledback"} <= set(artifacts.list_tags(f"oci:{tmp_path}/layout"))
