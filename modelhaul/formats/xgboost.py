"""XGBoost models: JSON (``.json``), UBJSON (``.ubj``) and ``.bst`` files.

These are data formats (no code runs when loading them). JSON is read directly; UBJSON and ``.bst``
are turned into the same JSON by XGBoost itself (which detects the encoding from the content).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelhaul.formats.base import CONTENT, NAME_ONLY, NO, ParsedModel, Probe, fail, load_json, tensor


def sniff(p: Probe) -> int:
    """An XGBoost JSON model by content; by name: ``.ubj``, ``.bst``, ``.xgb``, ``.xgboost``."""
    if p.is_zip:
        return NO
    if p.suffix == ".json":
        return CONTENT if looks_like_json_model(p.path) else NO
    return NAME_ONLY if p.suffix in (".ubj", ".bst", ".xgb", ".xgboost") else NO


def looks_like_json_model(path: Path) -> bool:
    from modelhaul.formats.base import read_head

    head = read_head(path, 256).lstrip()
    return head.startswith(b"{") and b'"learner"' in head


def model_json(path: Path) -> dict[str, Any]:
    if path.suffix == ".json":
        data = load_json(path, "XGBoost model")
    else:
        import xgboost

        try:
            booster = xgboost.Booster(model_file=str(path))
        except xgboost.core.XGBoostError as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "unreadable"
            raise fail(path, f"not a readable XGBoost model ({first}); the file is corrupt or truncated") \
                from None
        data = json.loads(bytes(booster.save_raw("json")))
    if not isinstance(data, dict) or "learner" not in data:
        raise fail(path, "not an XGBoost model: no 'learner' object")
    return data


def parse(path: Path, *, trust: bool = False) -> ParsedModel:
    data = model_json(path)
    try:
        learner = data["learner"]
        params = learner["learner_model_param"]
        n_features = int(params.get("num_feature", 0)) or -1
        n_class = int(params.get("num_class", 0))
        n_target = int(params.get("num_target", 1) or 1)
        objective = learner["objective"]["name"]
        booster = learner["gradient_booster"]
    except (KeyError, TypeError, ValueError) as exc:
        raise fail(path, f"XGBoost model lacks {exc}; the file is damaged or from an unknown version") from None
    trees = _num_trees(booster)
    classifier = objective.startswith(("binary:", "multi:"))
    if classifier:
        outputs = [tensor("label", "int64", [-1]), tensor("probabilities", "float32", [-1, max(n_class, 2)])]
    else:
        outputs = [tensor("variable", "float32", [-1, n_target])]
    version = ".".join(str(x) for x in data.get("version", [])) or None
    details = {"objective": objective, "booster": booster.get("name"), "num_class": n_class,
               "classifier": classifier, "feature_names": learner.get("feature_names") or []}
    return ParsedModel(format="XGBoost", framework="XGBoost", path=path,
                       inputs=[tensor("input", "float32", [-1, n_features])], outputs=outputs,
                       layers={"Tree": trees} if trees else {"Linear": 1}, framework_version=version,
                       details=details)


def _num_trees(booster: dict[str, Any]) -> int:
    model = (booster.get("gbtree") or booster).get("model") or {}
    try:
        return int((model.get("gbtree_model_param") or {}).get("num_trees", len(model.get("trees", []))))
    except (TypeError, ValueError):
        return len(model.get("trees", []))
