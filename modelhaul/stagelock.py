"""One mover of a stage at a time: a registry cannot swap two tags atomically, so a move claims the stage.

Promotion moves ``<stage>-previous`` and then ``<stage>``; two promotions at once (two DAG runs on two
workers) would otherwise both read the same model at the stage, and the later write would win with
a ``<stage>-previous`` that skips the earlier one: rollback would restore a model that was not the
one in production before. OCI Distribution has no compare-and-swap on tags, so the claim is built
from writes and re-reads alone (a mutual exclusion that needs no clock agreement):

1. write a claim: a tiny manifest of this move's own, tagged ``<stage>-claim-<time>-<token>``;
2. re-read the repository's tag list: when another live claim on the stage is there, withdraw
   (remove the claim), wait a random moment and start again; else the stage is this move's until
   it removes its claim.

Two movers may both withdraw, never both hold: the one whose re-read saw no other claim read before
the other wrote, so the other's re-read (after its own write) sees it. This holds on a registry whose
tag list shows every finished write (one distribution instance, Harbor, zot; an ``oci:`` layout).
A claim older than :data:`LEASE` seconds is a crashed run's and is ignored. A registry that refuses
deletes keeps each withdrawn claim as a "released" manifest (prune ``<stage>-claim-*`` tags there).

After the move, :func:`check_moved` re-reads both tags: whatever else moved them (a mover that does
not claim, ``modelhaul tag`` by hand) makes the run fail with one line instead of a silent mix.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from modelhaul import artifacts, oci
from modelhaul.errors import ModelhaulError, NotFound, RegistryError
from modelhaul.reference import TAG_RE, Reference, parse
from modelhaul.registry_options import RegistryOptions

LEASE = 900.0  # seconds a claim stays live: longer than any promotion's rollout wait
CLAIM_TYPE = "application/vnd.modelhaul.stage-claim.v1"
_EMPTY = oci.Blob.from_bytes(oci.EMPTY_CONFIG, b"{}")

F = TypeVar("F", bound=Callable[..., Any])


class StageRace(ModelhaulError):
    """A stage tag moved under a promotion or rollback (another mover), or stayed claimed too long."""


def _claim_prefix(stage: str) -> str:
    return f"{stage}-claim-"


def _claim_manifest(tag: str, released: bool) -> bytes:
    return oci.canonical_json({
        "schemaVersion": 2, "mediaType": oci.MANIFEST_V1, "artifactType": CLAIM_TYPE,
        "config": _EMPTY.descriptor(), "layers": [_EMPTY.descriptor()],
        "annotations": {"io.modelhaul.claim": tag, "io.modelhaul.claim.released": str(released).lower()},
    })


def _age(tag: str, prefix: str, now: float) -> float | None:
    """Seconds since the claim was written (from its name), or None for a tag that is not a claim."""
    try:
        return now - int(tag[len(prefix):].split("-", 1)[0], 16) / 1000
    except ValueError:
        return None


def _live(target: oci.Target, tag: str, prefix: str, now: float) -> bool:
    age = _age(tag, prefix, now)
    if age is None or age > LEASE:
        return False
    try:
        manifest = target.get_manifest(tag)
    except NotFound:  # withdrawn between the listing and now
        return False
    return (manifest.json.get("annotations") or {}).get("io.modelhaul.claim.released") != "true"


def _withdraw(target: oci.Target, tag: str) -> None:
    """Remove the claim tag; where that does not stick, leave it as a released claim (which blocks nobody).

    distribution deletes a manifest and then its tags in two steps; under concurrent deletes in the same
    repository it can answer 404 or 500 with the tag still listed. The tag is then pointed at a released
    claim and deleted again. A registry that refuses deletes keeps the released claim.
    """
    for _ in range(3):
        try:
            target.delete(tag)
        except RegistryError:  # NotFound included: the tag may still be listed, checked below
            pass
        if tag not in target.list_tags():
            return
        target.put_manifest(_claim_manifest(tag, True), oci.MANIFEST_V1, tag)


@contextlib.contextmanager
def held(ref: str, stage: str, options: RegistryOptions | None = None, *,
         wait: float = LEASE) -> Iterator[str | None]:
    """Hold ``stage`` of ``ref``'s repository for the ``with`` block; yields the claim tag.

    Raises :class:`StageRace` after ``wait`` seconds of other claims. A stage whose claim tag would
    not be a valid tag yields None (the move itself then refuses the stage name).
    """
    prefix = _claim_prefix(stage)
    repo = parse(ref).unpinned()
    mine = f"{prefix}{int(time.time() * 1000):x}-{secrets.token_hex(4)}"
    if not stage or not TAG_RE.match(mine):
        yield None
        return
    target = artifacts.open_target(repo, options)
    if not target.has_blob(_EMPTY.digest):
        target.put_blob(_EMPTY)
    deadline, attempt = time.monotonic() + wait, 0
    while True:
        target.put_manifest(_claim_manifest(mine, False), oci.MANIFEST_V1, mine)
        now = time.time()
        others = [t for t in target.list_tags()
                  if t.startswith(prefix) and t != mine and _live(target, t, prefix, now)]
        if not others:
            break
        _withdraw(target, mine)
        if time.monotonic() > deadline:
            raise StageRace(f"{repo.with_tag(stage)}: another promotion or rollback has held this stage for over "
                            f"{wait:.0f} s (claim {others[0]}); wait for it, or delete that tag if its run died")
        attempt += 1
        time.sleep(random.uniform(0.02, 0.1) * min(2 ** attempt, 20))
        mine = f"{prefix}{int(time.time() * 1000):x}-{secrets.token_hex(4)}"
    try:
        yield mine
    finally:
        _withdraw(target, mine)


def serialised(check: Callable[..., Any] | None = None) -> Callable[[F], F]:
    """Run a stage move (keyword arguments ``ref``, ``stage``, ``options``) while holding the stage.

    ``check`` (called with the same keywords) refuses bad arguments before anything is claimed.
    """

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            if check:
                check(**kwargs)
            with held(kwargs["ref"], kwargs.get("stage", "production"), kwargs.get("options")):
                return fn(**kwargs)

        return wrapper  # type: ignore[return-value]

    return wrap


def check_moved(repo: Reference, stage_tag: str, digest: str, previous_tag: str, previous: str | None,
                options: RegistryOptions | None = None) -> None:
    """Re-read after the write: ``stage_tag`` must hold ``digest`` and ``previous_tag`` ``previous``."""
    def at(tag: str) -> str | None:
        pinned = artifacts.try_resolve(str(repo.with_tag(tag).unpinned()), options)
        return parse(pinned).digest if pinned else None

    now_at, prev_at = at(stage_tag), at(previous_tag) if previous else None
    if now_at != digest or prev_at != previous:
        seen = json.dumps({stage_tag: now_at, previous_tag: prev_at} if previous else {stage_tag: now_at})
        raise StageRace(f"{repo.with_tag(stage_tag)}: lost a race — right after this run moved it to {digest}"
                        f"{f' (and {previous_tag} to {previous})' if previous else ''}, the registry shows "
                        f"{seen}: something moved the tags at the same time without claiming the stage; "
                        "check the stage and promote again")
