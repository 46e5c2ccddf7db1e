"""Strict validation of the manifests modelhaul renders, as a strict API server and the platforms' webhooks would.

CRD schemas leave ``additionalProperties`` open, so an API server without strict field validation
silently drops a misspelt field. We add ``additionalProperties: false`` to every object that lists
its properties (except at and below ``x-kubernetes-preserve-unknown-fields``), turn
``x-kubernetes-int-or-string`` into ``anyOf[integer, string]``, check ``metadata`` as ObjectMeta,
and then apply the rules only each platform's admission webhook enforces (each target's
``webhook_errors``, beside its builder: Seldon's protocol values, traffic summing to 100, ...;
KServe's canary range).

Each target's CRD schema (SeldonDeployment v1, InferenceService v1beta1; the ``crd`` of its row in
:mod:`modelhaul.serving.targets`) is vendored as compact JSON under ``schemas/`` (descriptions
removed), so an installed package validates without the CRD files. Regenerate them from the CRD
files with ``python devtools/vendor_crd_schemas.py [CRD_DIR]``.
A kind with no CRD file (KServe's ``ClusterStorageContainer``) brings its own schema in its
target's row (``Resource.schema``); ``Secret`` is core and checked by a small schema of its own.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

from modelhaul.errors import DeployError
from modelhaul.serving import targets

Manifest = dict[str, Any]


_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"

OBJECT_META: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "maxLength": 253, "pattern": f"^{_DNS_SUBDOMAIN}$"},
        "namespace": {"type": "string", "maxLength": 63, "pattern": _DNS_LABEL},
        "labels": {
            "type": "object",
            "propertyNames": {"maxLength": 317, "pattern": f"^({_DNS_SUBDOMAIN}/)?{_LABEL_NAME}$"},
            "additionalProperties": {"type": "string", "maxLength": 63, "pattern": LABEL_VALUE},
        },
        "annotations": {
            "type": "object",
            "propertyNames": {"maxLength": 317, "pattern": f"^({_DNS_SUBDOMAIN}/)?{_LABEL_NAME}$"},
            "additionalProperties": {"type": "string"},
        },
        **{k: {} for k in ("generateName", "finalizers", "ownerReferences", "uid", "resourceVersion",
                           "generation", "creationTimestamp", "deletionTimestamp",
                           "deletionGracePeriodSeconds", "managedFields", "selfLink")},
    },
}

SECRET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata"],
    "properties": {
        "apiVersion": {"const": "v1"},
        "kind": {"const": "Secret"},
        "metadata": {},
        "type": {"type": "string"},
        "immutable": {"type": "boolean"},
        "data": {"type": "object", "propertyNames": {"pattern": "^[-._a-zA-Z0-9]+$"},
                 "additionalProperties": {"type": "string", "pattern": "^[A-Za-z0-9+/]*={0,2}$"}},
        "stringData": {"type": "object", "propertyNames": {"pattern": "^[-._a-zA-Z0-9]+$"},
                       "additionalProperties": {"type": "string"}},
    },
}


# -- the vendored schemas ----------------------------------------------------------------------


def vendored_dir() -> Any:
    return resources.files("modelhaul.serving") / "schemas"


@functools.cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The vendored (non-strict) schema of a CRD kind."""
    row = targets.of_kind(kind)
    if row is None or row.api_version != api_version:
        raise DeployError(f"no schema for {api_version} {kind}")
    return json.loads((vendored_dir() / row.crd.vendored).read_text(encoding="utf-8"))


def strict(node: Any) -> Any:
    """A copy of a schema that rejects unknown fields (see the module docstring)."""
    if isinstance(node, list):
        return [strict(x) for x in node]
    if not isinstance(node, dict):
        return node
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return copy.deepcopy(node)
    out = dict(node)
    if out.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in out:
        out["properties"] = {k: strict(v) for k, v in out["properties"].items()}
        out.setdefault("additionalProperties", False)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in out:
            out[key] = strict(out[key])
    return out


def _with_meta(schema: dict[str, Any], *, namespaced: bool) -> dict[str, Any]:
    out = strict(schema)
    meta = copy.deepcopy(OBJECT_META)
    if not namespaced:
        meta["properties"].pop("namespace")
    out["properties"] = {**out["properties"], "metadata": meta}
    out["required"] = sorted({*out.get("required", []), "apiVersion", "kind", "metadata"})
    return out


@functools.cache
def strict_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The strict schema used to validate a manifest of this kind."""
    if (api_version, kind) == ("v1", "Secret"):
        return _with_meta(SECRET_SCHEMA, namespaced=True)
    known = targets.resource(kind)
    if known and known.api_version == api_version and known.schema:  # a kind with no CRD file of its own
        return _with_meta(known.schema(crd_schema), namespaced=known.namespaced)
    return _with_meta(crd_schema(api_version, kind), namespaced=known.namespaced if known else True)


@functools.cache
def _validator(api_version: str, kind: str) -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(strict_schema(api_version, kind))


# -- validating ----------------------------------------------------------------------------------


def describe(manifest: Manifest) -> str:
    """``Kind/name`` (with the namespace when there is one) for messages."""
    meta = manifest.get("metadata") or {}
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{manifest.get('kind', '?')}/{ns}{meta.get('name', '?')}"


def _path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _message(err: Any) -> tuple[str, str]:
    """(json path, message) of one jsonschema error, naming an unknown field by its own path."""
    where = list(err.absolute_path)
    if err.validator == "additionalProperties" and err.validator_value is False:
        known = set(err.schema.get("properties", {}))
        extra = sorted(k for k in err.instance if k not in known)
        if extra:
            return _path([*where, extra[0]]), "unknown field" + (
                f" (also: {', '.join(extra[1:])})" if len(extra) > 1 else "")
    if err.validator == "required":
        return _path(where), err.message.replace("is a required property", "is required")
    if err.validator == "pattern" and where and where[0] == "metadata":
        return _path(where), f"{err.instance!r} is not a valid name or label value here"
    return _path(where), err.message


def schema_errors(manifest: Manifest) -> list[str]:
    """``path: message`` for each way ``manifest`` breaks its (strict) schema, sorted by path."""
    if not isinstance(manifest, dict):
        return [f"(top level): expected a mapping, got {type(manifest).__name__}"]
    api, kind = manifest.get("apiVersion"), manifest.get("kind")
    try:
        validator = _validator(api, kind)
    except DeployError:  # a kind no target (nor Secret, ClusterStorageContainer) has, at that apiVersion
        return [f"(top level): unsupported apiVersion/kind {api} {kind}"]
    found = sorted((_message(e) for e in validator.iter_errors(manifest)), key=lambda x: x[0])
    return [f"{p}: {m}" for p, m in found]


def errors(manifest: Manifest) -> list[str]:
    """Every schema and webhook error of ``manifest`` (empty when it is valid)."""
    errs = schema_errors(manifest)
    row = targets.of_kind(manifest.get("kind")) if isinstance(manifest, dict) else None
    if row is not None:
        errs += row.webhook_errors(manifest)
    return errs


def validate(manifest: Manifest) -> Manifest:
    """Raise :class:`DeployError` naming the manifest and JSON paths when it is invalid."""
    errs = errors(manifest)
    if errs:
        more = f" (and {len(errs) - 3} more)" if len(errs) > 3 else ""
        raise DeployError(f"{describe(manifest)}: invalid manifest: " + "; ".join(errs[:3]) + more)
    return manifest


def validate_all(manifests: list[Manifest]) -> list[Manifest]:
    for m in manifests:
        validate(m)
    return manifests
