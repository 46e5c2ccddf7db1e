"""Reading KitOps ModelKits: their config is the Kitfile as JSON; layers are tars of its entries."""

from __future__ import annotations

import json
from typing import Any

from modelhaul.config import ModelConfig, format_name


def hyper_parameters(params: Any) -> Any:
    """``model.parameters`` is any YAML: a mapping becomes named values, anything else is kept whole."""
    if params is None or params == {} or params == []:
        return []
    if isinstance(params, dict):
        return params
    text = params if isinstance(params, str) else json.dumps(params, ensure_ascii=False)
    return [{"name": "parameters", "value": text}]


def config_from_kitfile(kitfile: dict[str, Any]) -> ModelConfig:
    """Map a Kitfile (package, model, datasets, code, docs) onto a ModelConfig."""
    pkg = kitfile.get("package") or {}
    model = kitfile.get("model") or {}
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
            for d in kitfile.get("datasets") or []
        ],
    }
    return ModelConfig.from_dict({k: v for k, v in data.items() if v}, source="KitOps Kitfile")
