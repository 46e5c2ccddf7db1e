"""Promotions at the same time, against a real registry: one history, or one clear line.

A registry cannot swap ``production`` and ``production-previous`` atomically; ``modelhaul.stagelock``
makes each move claim the stage first and re-read the tags after it. The deliberately non-atomic
version (the claim and the re-read taken out) is run too, to show the check below catches it.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import pytest

from modelhaul import artifacts, stagelock
from modelhaul.promote import promote_model
from modelhaul.reference import parse
from tests.fixtures.registry import unique_repo

RUNS = 6


def publish(registry, repo: str, tag: str, tmp_path: Path) -> str:
    d = tmp_path / tag
    d.mkdir()
    (d / "model.joblib").write_bytes(f"weights of {tag}".encode())
    cfg = {"format": "SKLearn", "framework": "scikit-learn", "metrics": {"accuracy": 0.9}}
    return artifacts.publish(d, f"{repo}:{tag}", config=cfg, options=registry.options)["ref"]


def digest_at(registry, repo: str, tag: str) -> str | None:
    pinned = artifacts.try_resolve(f"{repo}:{tag}", registry.options)
    return parse(pinned).digest if pinned else None


def promote_at_once(registry, candidates: list[str]) -> list[dict]:
    """Every candidate promoted to production by its own thread, all released together."""
    start, results = threading.Barrier(len(candidates)), [None] * len(candidates)

    def one(i: int) -> None:
        start.wait()
        try:
            results[i] = promote_model(ref=candidates[i], stage="production", options=registry.options)
        except Exception as exc:  # noqa: BLE001 - collected and asserted on below
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(candidates))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results  # type: ignore[return-value]


def one_history(first: str, records: list[dict], production: str | None, previous: str | None) -> bool:
    """The promotions form one chain from ``first``, as if run one after another, and the tags end it.

    Each model at the stage was replaced by exactly one promotion (its ``previous``), so a rollback
    restores the model that was really in production before the one now there.
    """
    replaced = [parse(r["previous"]).digest if r["previous"] else None for r in records]
    if len(set(replaced)) != len(replaced):
        return False
    after = dict(zip(replaced, (r["digest"] for r in records), strict=True))
    chain = [first]
    while chain[-1] in after:
        chain.append(after[chain[-1]])
    return len(chain) == len(records) + 1 and chain[-1] == production and chain[-2] == previous


@pytest.fixture
def race(registry, tmp_path: Path):
    repo = f"{registry.host}/{unique_repo('race')}"
    first = publish(registry, repo, "v0", tmp_path)
    promote_model(ref=first, stage="production", options=registry.options)
    return repo, parse(first).digest, [publish(registry, repo, f"v{i}", tmp_path) for i in range(1, RUNS + 1)]


def test_promotions_at_the_same_time_make_one_history(registry, race):
    repo, first, candidates = race
    records = promote_at_once(registry, candidates)

    assert all(isinstance(r, dict) and r["promoted"] for r in records), records
    production, previous = digest_at(registry, repo, "production"), digest_at(registry, repo, "production-previous")
    assert production in {parse(c).digest for c in candidates}
    assert one_history(first, records, production, previous), records
    tags = artifacts.list_tags(f"{repo}:production", registry.options)
    assert not [t for t in tags if "claim" in t], tags  # every claim withdrawn
    for t in tags:  # every tag points at a manifest that exists
        assert artifacts.inspect(f"{repo}:{t}", registry.options)["digest"]


def test_the_check_catches_a_non_atomic_promotion(registry, race, monkeypatch: pytest.MonkeyPatch):
    """Without the claim and the re-read, promotions at once break the history (seen within a few rounds)."""
    repo, _, candidates = race
    monkeypatch.setattr(stagelock, "held", lambda *a, **k: contextlib.nullcontext())
    monkeypatch.setattr(stagelock, "check_moved", lambda *a, **k: None)
    for _ in range(5):
        first = digest_at(registry, repo, "production")
        records = promote_at_once(registry, candidates)
        if not one_history(first, records, digest_at(registry, repo, "production"),
                           digest_at(registry, repo, "production-previous")):
            return
        candidates = candidates[1:] + candidates[:1]  # a candidate already there would be a no-op
    pytest.fail("five rounds of unserialised promotions kept one history: the check would not catch a race")


def test_a_stage_moved_by_someone_else_fails_the_run_with_one_line(registry, race):
    repo, first, (a, b, *_) = race
    artifacts.retag(a, "production", registry.options)
    artifacts.retag(b, "production", registry.options)  # a mover that did not claim the stage

    with pytest.raises(stagelock.StageRace) as err:
        stagelock.check_moved(parse(a), "production", parse(a).digest, "production-previous", first,
                              registry.options)
    line = str(err.value)
    assert "\n" not in line and "lost a race" in line and parse(b).digest in line and "promote again" in line


def test_a_held_stage_makes_the_next_mover_wait_then_say_so(registry, race):
    repo, first, (a, *_) = race
    with stagelock.held(a, "production", registry.options) as claim:
        with pytest.raises(stagelock.StageRace) as err, stagelock.held(a, "production", registry.options, wait=0.3):
            pass
        assert claim in str(err.value) and "\n" not in str(err.value)
        assert claim in artifacts.list_tags(a, registry.options)
    assert not [t for t in artifacts.list_tags(a, registry.options) if "claim" in t]
    assert digest_at(registry, repo, "production") == first  # nothing moved


def test_a_crashed_runs_claim_does_not_block_the_stage(registry, race, monkeypatch: pytest.MonkeyPatch):
    repo, _, (a, *_) = race
    with stagelock.held(a, "production", registry.options):  # left behind, as by a killed worker
        monkeypatch.setattr(stagelock, "LEASE", 0.0)
        out = promote_model(ref=a, stage="production", options=registry.options)
    assert out["promoted"] and digest_at(registry, repo, "production") == parse(a).digest


def test_a_malformed_gate_is_refused_before_the_stage_is_claimed(tmp_path):
    from modelhaul.errors import GateError
    from modelhaul.registry_options import RegistryOptions

    nowhere = RegistryOptions(plain_http=True)  # no registry listens on port 1
    with pytest.raises(GateError):
        promote_model(ref="127.0.0.1:1/m:v1", stage="production", gate="accuracy >>= 0.9", options=nowhere)
