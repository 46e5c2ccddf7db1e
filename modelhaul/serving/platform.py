"""What one serving platform gives the rest of modelhaul: the row of the targets table.

Each platform module (:mod:`~modelhaul.serving.seldon`, :mod:`~modelhaul.serving.kserve`) builds
its manifests, reads its status, moves its traffic and states its admission rules, and ends with one
:class:`ServingTarget` naming those functions. :mod:`modelhaul.serving.targets` lists the rows;
deploy, status, kube, validate, rollout and routing ask it, never a platform by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Manifest = dict[str, Any]
#: The registry-credentials Secret's name when the user names none.
DEFAULT_SECRET = "modelhaul-registry"
#: The annotation of a predictor (and its pods) naming the digest it serves.
DIGEST_KEY = "modelhaul.io/digest"
_DIGEST_RE = re.compile(r"@(sha256:[0-9a-f]{64})")


@dataclass(frozen=True)
class Resource:
    """A kind of object in the Kubernetes API: where it lives and how kubectl calls it."""

    kind: str
    api_version: str
    plural: str
    namespaced: bool = True
    name: str | None = None  # the one object of this kind modelhaul applies, when its name is fixed
    # for a kind with no CRD file: its schema, given validate's ``crd_schema(api_version, kind)``
    schema: Callable[[Callable[[str, str], dict[str, Any]]], dict[str, Any]] | None = None


@dataclass(frozen=True)
class Crd:
    """Where a kind's schema comes from: the CRD file (in ``../shared/crds``), its version, and the
    compact copy vendored in ``modelhaul/serving/schemas`` (``devtools/vendor_crd_schemas.py``)."""

    file: str
    version: str
    vendored: str


@dataclass(frozen=True)
class ServingTarget:
    """One serving platform, as the rest of modelhaul uses it (each field says who asks)."""

    name: str  # what users write: ``target="seldon"``
    resource: Resource  # the serving object (kube, status, access)
    crd: Crd  # its schema (validate)
    # deploy: the manifests after the Secret, in apply order:
    # (model, *, name, namespace, image, secret_name, stable, canary_percent, plain_http, insecure)
    build: Callable[..., list[Manifest]]
    # deploy: a canary with no stable model to run beside is skipped (Seldon), or the platform keeps
    # the last revision itself (KServe)
    canary_needs_stable: bool
    # deploy: ``(modelhaul.io/ref, model URI)`` of the stable model in a manifest rendered before
    stable_in: Callable[[Manifest], tuple[str | None, str | None]]
    read_state: Callable[[dict[str, Any]], tuple[str, str, str | None]]  # status: (state, message, url)
    route_all_to: Callable[[dict[str, Any], str], bool]  # kube.set_traffic: edit a spec copy; changed?
    webhook_errors: Callable[[Manifest], list[str]]  # validate: the admission rules beyond the schema
    # rollout: ``(what, digest)`` per model the spec serves; the label the operator puts on what it
    # owns; is a Deployment the one of ``what``; is the object served by Knative revisions instead
    expected: Callable[[dict[str, Any]], list[tuple[str, str | None]]]
    owner_label: str
    serves: Callable[[dict[str, Any], str], bool]
    by_revisions: Callable[[dict[str, Any]], bool]
    # routing: warnings about a canary that will not split, DeployError when it would do harm:
    # (api, request, manifest, installed CRD names or None when unknown, where) -> warnings
    check_split: Callable[[Any, Any, Manifest, set[str] | None, str], list[str]]
    # runtimes: the image that serves an ONNX model by default (the tested release's chart), and the
    # one the cluster configures, read with (api, request) — raises when it cannot be read
    onnx_image: str
    cluster_onnx_image: Callable[[Any, Any], str]
    extra: tuple[Resource, ...] = field(default=())  # other kinds its manifests hold (kube, access)

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def api_version(self) -> str:
        return self.resource.api_version


def condition_message(conds: list[dict[str, Any]]) -> str:
    """``Type: message`` of every condition that is not True and says why, joined."""
    bad = [c for c in conds if str(c.get("status")) != "True" and (c.get("message") or c.get("reason"))]
    return "; ".join(f"{c.get('type')}: {c.get('message') or c.get('reason')}" for c in bad)


def contains(node: Any, needle: str) -> bool:
    """Does any string in a JSON tree contain ``needle`` (a digest in a spec)?"""
    if isinstance(node, dict):
        return any(contains(v, needle) for v in node.values())
    if isinstance(node, list):
        return any(contains(v, needle) for v in node)
    return isinstance(node, str) and needle in node


def no_revisions(obj: dict[str, Any]) -> bool:
    """For a platform whose objects are always served by Deployments of its own."""
    return False



def digest_in(uri: Any) -> str | None:
    """The ``sha256:...`` a model URI is pinned to, if any."""
    m = _DIGEST_RE.search(uri) if isinstance(uri, str) else None
    return m.group(1) if m else None
