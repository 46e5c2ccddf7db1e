"""KitOps ModelKits: the config blob is the Kitfile as JSON; each Kitfile entry is one tar layer.

Reading maps the Kitfile onto a ModelConfig and keeps it whole in ``origin.kitfile``. Writing
builds the Kitfile a directory's own ``Kitfile`` gives (used as given), else one generated from
the files (one entry per file, its kind as the ModelPack writer classifies it), serialised as
kit v1.7 serialises its ``KitFile`` struct (field order, HTML escaping, layer digests last).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from modelhaul.config import ModelConfig, format_name
from modelhaul.errors import ConfigError
from modelhaul.origin import authors_of, overlay

KITFILE_NAMES = ("Kitfile", "kitfile", ".kitfile")  # what kit looks for, and never packs
IGNORE_FILE = ".kitignore"
MANIFEST_VERSION = "1.0.0"
LAYER_INFO = ("digest", "diffId")
# kit's Go struct field order, per section (encoding/json writes fields in struct order)
_ORDER: dict[str, tuple[str, ...]] = {
    "": ("manifestVersion", "package", "model", "code", "datasets", "docs"),
    "package": ("name", "version", "description", "license", "authors"),
    "model": ("name", "path", "license", "framework", "format", "version", "description", "parts", "parameters",
              *LAYER_INFO),
    "parts": ("name", "path", "license", "type", *LAYER_INFO),
    "code": ("path", "description", "license", *LAYER_INFO),
    "datasets": ("name", "path", "description", "license", "parameters", *LAYER_INFO),
    "docs": ("path", "description", *LAYER_INFO),
}


@dataclass
class Entry:
    """One layer of a ModelKit: its kind (model, modelpart, code, dataset, docs), path and entry."""

    kind: str
    path: str
    data: dict[str, Any]


def entries(kitfile: dict[str, Any]) -> list[Entry]:
    """The Kitfile's layer entries in the order kit packs them (model, parts, code, datasets, docs).

    A model whose path is another ModelKit's reference has no layer of its own.
    """
    out: list[Entry] = []
    model = kitfile.get("model") if isinstance(kitfile.get("model"), dict) else None
    if model is not None:
        path = str(model.get("path") or "")
        if path and not _is_reference(path):
            out.append(Entry("model", path, model))
        out += [Entry("modelpart", str(p.get("path") or ""), p) for p in _dicts(model.get("parts"))]
    for section, kind in (("code", "code"), ("datasets", "dataset"), ("docs", "docs")):
        out += [Entry(kind, str(e.get("path") or ""), e) for e in _dicts(kitfile.get(section))]
    return out


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _is_reference(path: str) -> bool:
    """kit's test for ``model.path`` naming another ModelKit (``registry/repo:tag``)."""
    return (":" in path or "@" in path) and not path.startswith((".", "/"))


def without_layer_info(kitfile: dict[str, Any]) -> dict[str, Any]:
    """The Kitfile with each entry's ``digest``/``diffId`` dropped (they belong to one packing)."""
    out = copy.deepcopy(kitfile)
    for entry in entries(out):
        for key in LAYER_INFO:
            entry.data.pop(key, None)
    return out


def hyper_parameters(params: Any) -> Any:
    """``model.parameters`` is any YAML: a mapping becomes named values, anything else is kept whole."""
    if params is None or params == {} or params == []:
        return []
    if isinstance(params, dict):
        return params
    text = params if isinstance(params, str) else json.dumps(params, ensure_ascii=False)
    return [{"name": "parameters", "value": text}]


def config_from_kitfile(kitfile: dict[str, Any]) -> ModelConfig:
    """Map a Kitfile (package, model, datasets, code, docs) onto a ModelConfig; the Kitfile itself
    is kept in ``origin.kitfile``."""
    if not isinstance(kitfile, dict):
        raise ConfigError("Kitfile: expected a mapping (manifestVersion, package, model...)")
    pkg = kitfile.get("package") or {}
    model = kitfile.get("model") or {}
    if not isinstance(pkg, dict) or not isinstance(model, dict):
        raise ConfigError("Kitfile: 'package' and 'model' must be mappings")
    authors = pkg.get("authors") or []
    labels = {f"kitops.{k}": str(v) for k, v in (("package.name", pkg.get("name")),
                                                  ("package.version", pkg.get("version")),
                                                  ("model.name", model.get("name")),
                                                  ("model.version", model.get("version"))) if v}
    data: dict[str, Any] = {
        "author": ", ".join(authors) if isinstance(authors, list) else str(authors),
        "description": model.get("description") or pkg.get("description"),
        "framework": model.get("framework"),
        "format": format_name(model.get("format")),
        "labels": labels,
        "hyperParameters": hyper_parameters(model.get("parameters")),
        "datasets": [
            {"name": d.get("name"), "source": d.get("path"), "digest": d.get("digest")}
            for d in _dicts(kitfile.get("datasets"))
        ],
        "origin": {"kitfile": without_layer_info(kitfile)},
    }
    return ModelConfig.from_dict({k: v for k, v in data.items() if v}, source="KitOps Kitfile")


# -- writing --------------------------------------------------------------------------------------


def _own_kitfile(cfg: ModelConfig, kinds: dict[str, str]) -> dict[str, Any]:
    """The Kitfile modelhaul writes for ``cfg``: one entry per file (``kinds``: path -> ModelPack kind)."""
    labels = cfg.labels
    mlflow = cfg.provenance.mlflow if cfg.provenance else None
    pkg = {"name": labels.get("kitops.package.name") or labels.get("name") or (mlflow.registered_model if mlflow
                                                                               else None),
           "version": labels.get("kitops.package.version") or (mlflow.version if mlflow else None),
           "description": cfg.description, "authors": authors_of(cfg.author, cfg.origin) if cfg.author else None}
    weights = [p for p, k in kinds.items() if k == "weight"] or [p for p, k in kinds.items() if k == "weight.config"]
    model: dict[str, Any] = {
        "name": labels.get("kitops.model.name"), "path": weights[0] if weights else None,
        # "Others" says no more than a Kitfile without a format
        "framework": cfg.framework, "format": cfg.format if cfg.format != "Others" else None,
        "version": labels.get("kitops.model.version"),
        "parts": [{"path": p, "type": "config"} if kinds[p] == "weight.config" else {"path": p}
                  for p in kinds if kinds[p].startswith("weight") and p not in weights[:1]],
        "parameters": {p.name: p.value for p in cfg.hyper_parameters} or None,
    }
    doc: dict[str, Any] = {"manifestVersion": MANIFEST_VERSION, "package": _set_only(pkg), "model": _set_only(model)}
    for section, kind in (("code", "code"), ("datasets", "dataset"), ("docs", "doc")):
        doc[section] = [{"path": p} for p, k in kinds.items() if k == kind]
    return _set_only(doc, keep=("package",))


def _set_only(d: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, "", [], {}) or k in keep}


def _covers(path: str, relpath: str) -> bool:
    path = path.strip("/")
    return path in ("", ".") or relpath == path or relpath.startswith(path + "/")


def kitfile_for(cfg: ModelConfig, kinds: dict[str, str], *, given: bool = False) -> dict[str, Any]:
    """The Kitfile to write: the one the model came with (a directory's ``Kitfile``, a ModelKit's
    config) with modelhaul's changes over it, else one generated from the files.

    The given Kitfile's entries are kept when they still name the files (each entry holds a file,
    each file is in an entry); otherwise (a converted model) its entries are generated anew and
    its other fields kept. ``given``: a directory's own Kitfile, whose entries are always kept.
    """
    mine = _own_kitfile(cfg, kinds)
    theirs = cfg.origin.kitfile if cfg.origin else None
    if not theirs:
        return mine
    as_read = _own_kitfile(config_from_kitfile(theirs), kinds)
    theirs = copy.deepcopy(theirs)
    paths = [e.path for e in entries(theirs)]
    if not given and not (all(any(_covers(p, f) for f in kinds) for p in paths)
                          and all(any(_covers(p, f) for p in paths) for f in kinds)):
        for key in ("code", "datasets", "docs"):
            theirs.pop(key, None)
        if isinstance(theirs.get("model"), dict):
            theirs["model"] = {k: v for k, v in theirs["model"].items() if k not in ("path", "parts")}
        as_read = {k: v for k, v in as_read.items() if k not in ("code", "datasets", "docs")}
        as_read["model"] = {k: v for k, v in (as_read.get("model") or {}).items() if k not in ("path", "parts")}
    return overlay(theirs, mine, as_read)


def _ordered(value: Any, section: str = "") -> Any:
    if isinstance(value, dict):
        if section not in _ORDER:  # parameters: any YAML, maps sorted as Go sorts map keys
            return {k: _ordered(value[k], "*") for k in sorted(value)}
        order = _ORDER[section]
        keys = [k for k in order if k in value] + sorted(k for k in value if k not in order)
        return {k: _ordered(value[k], k if k in _ORDER and section != "parameters" else "*") for k in keys}
    if isinstance(value, list):
        return [_ordered(v, section) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)  # Go writes float64 1.0 as 1
    return value


def kitfile_json(kitfile: dict[str, Any]) -> bytes:
    """The Kitfile as kit's ``json.Marshal`` writes it: struct field order, compact, ``<>&`` escaped."""
    doc = _ordered(kitfile)
    doc.setdefault("package", {})  # not a pointer in kit's struct: always written
    doc = {k: doc[k] for k in [*_ORDER[""], *(k for k in doc if k not in _ORDER[""])] if k in doc}
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text.encode()


def layer_paths(kitfile: dict[str, Any] | None, layers: list[dict[str, Any]]) -> list[str | None]:
    """The Kitfile path of each ModelKit layer, matched as ``kit unpack`` matches them: the n-th layer
    of a kind is the n-th entry of that kind."""
    from modelhaul.oci import KITOPS_LAYER_PREFIX

    by_kind: dict[str, list[str]] = {}
    for entry in entries(kitfile or {}):
        by_kind.setdefault(entry.kind, []).append(entry.path)
    out: list[str | None] = []
    for layer in layers:
        kind = str(layer.get("mediaType", "")).removeprefix(KITOPS_LAYER_PREFIX).split(".v1.", 1)[0]
        queue = by_kind.get(kind) or []
        out.append(queue.pop(0) if queue else None)
    return out
