"""The serving targets modelhaul deploys to: one row per platform, asked by everything else.

A row (:class:`~modelhaul.serving.platform.ServingTarget`) names the platform's kind, apiVersion,
plural, scope, CRD schema, manifest builder, status reader, traffic setter, admission rules and
rollout hooks; deploy, status, kube, validate, rollout, routing and access look a target up here and
never branch on its name. An unknown target is refused in one line naming it and the choices.

Adding a target: a module beside ``seldon.py`` ending in its ``TARGET`` row, one line in ``TABLE``
below, its name and kind in ``modelhaul.declarations.TARGET_KINDS`` (the vocabulary adapters see;
a test checks the two agree), and its CRD schema vendored with ``devtools/vendor_crd_schemas.py``.
"""

from __future__ import annotations

from modelhaul.errors import DeployError
from modelhaul.serving import kserve, seldon
from modelhaul.serving.platform import Resource, ServingTarget

TABLE: dict[str, ServingTarget] = {t.name: t for t in (
    seldon.TARGET,
    kserve.TARGET,
)}


def names() -> tuple[str, ...]:
    return tuple(TABLE)


def unknown(value: object) -> DeployError:
    """The one error for a target modelhaul does not know."""
    return DeployError(f"target {value!r}: expected one of {', '.join(TABLE)}")


def get(target: object) -> ServingTarget:
    """The row of ``target`` (``seldon``, any case), or of its kind (``SeldonDeployment``)."""
    row = TABLE.get(str(target).lower()) or of_kind(target)
    if row is None:
        raise unknown(target)
    return row


def of_kind(kind: object) -> ServingTarget | None:
    """The target whose serving object has this kind; None for any other object (a Secret)."""
    return next((t for t in TABLE.values() if t.kind == kind), None)


def resource(kind: object) -> Resource | None:
    """What the table knows about a kind its manifests hold (serving object or extra), else None."""
    return next((r for t in TABLE.values() for r in (t.resource, *t.extra) if r.kind == kind), None)


def serving_kinds() -> dict[str, str]:
    """``{kind: apiVersion}`` of every serving object."""
    return {t.kind: t.api_version for t in TABLE.values()}
