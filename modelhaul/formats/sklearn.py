"""scikit-learn estimators saved with skops (``.skops``) or pickle/joblib (``.pkl``, ``.joblib``).

Parsing never loads an untrusted file: a pickle is scanned opcode by opcode
(:mod:`modelhaul.formats.pickle_scan`) and a skops archive is read from its ``schema.json`` and the
``.npy`` headers beside it. Only :func:`load` builds the estimator, and it needs trust: ``trust=True``
for a pickle; for skops, every type skops reports as untrusted must be a *class* (not a function:
a ``FunctionTransformer`` holding ``numpy.save`` would write files when called) defined by
scikit-learn, numpy or scipy.sparse (:data:`SAFE_SKOPS_PREFIXES`) and not one of the types skops
itself names as unsafe on crafted input (``skops.io.exceptions.UNTRUSTED_TYPE_REASONS``: the tree
node storage of DecisionTree/RandomForest/GradientBoosting models, indexed without bounds checks).
Anything else — those tree types, LightGBM/XGBoost wrappers, user classes — needs ``trust=True``.
"""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelhaul.config import Tensor
from modelhaul.errors import FormatError
from modelhaul.formats.base import CONTENT, NAME_ONLY, NO, ParsedModel, Probe, fail, norm_dtype, tensor
from modelhaul.formats.pickle_safety import unsafe_globals
from modelhaul.formats.pickle_scan import Obj, scan_file

# Types skops may construct without an explicit trust=True: constructing them runs no user code.
SAFE_SKOPS_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.", "collections.OrderedDict")

_FRAMEWORKS = {"sklearn": "scikit-learn", "xgboost": "XGBoost", "lightgbm": "LightGBM"}


@dataclass
class EstimatorFacts:
    """What an estimator's saved state says, gathered without building it."""

    root_class: str | None = None
    built: Counter = field(default_factory=Counter)
    n_features: int | None = None
    version: str | None = None
    classes_shape: tuple[int, ...] | None = None
    classes_dtype: str | None = None
    referenced: list[str] = field(default_factory=list)


def sniff(p: Probe) -> int:
    """A skops archive (a zip with ``schema.json``); by name: a pickle's suffix on a file that is not a zip."""
    if p.is_zip:
        return CONTENT if "schema.json" in p.zip_names or p.suffix == ".skops" else NO
    return NAME_ONLY if p.suffix in (".skops", ".pkl", ".pickle", ".joblib", ".sav") else NO


def parse(path: Path, *, trust: bool = False) -> ParsedModel:
    if path.suffix == ".skops":
        facts = _skops_facts(path)
        untrusted = untrusted_skops_types(path)
        details: dict[str, Any] = {"serialization": "skops", "untrusted_types": untrusted}
    else:
        facts = _pickle_facts(path)
        details = {"serialization": "joblib" if path.suffix == ".joblib" else "pickle",
                   "referenced_classes": facts.referenced, "unsafe_globals": unsafe_globals(facts.referenced)}
    if trust:
        _refine_with_model(facts, load(path, trust=True))
    return _parsed(path, facts, details)


def _parsed(path: Path, facts: EstimatorFacts, details: dict[str, Any]) -> ParsedModel:
    inputs: list[Tensor] = []
    outputs: list[Tensor] = []
    if facts.n_features is not None:
        inputs = [tensor("input", "float64", [-1, facts.n_features])]
    classifier = facts.classes_shape is not None
    if classifier:
        n_classes = facts.classes_shape[0] if facts.classes_shape else -1
        outputs = [tensor("label", facts.classes_dtype or "int64", [-1]),
                   tensor("probabilities", "float64", [-1, n_classes])]
    elif facts.root_class:
        outputs = [tensor("variable", "float64", [-1])]
    details["classifier"] = classifier
    if facts.root_class:
        details["estimator"] = facts.root_class
    top = (facts.root_class or "sklearn").split(".", 1)[0]
    layers = {k.rsplit(".", 1)[-1]: v for k, v in facts.built.items() if _is_layer(k)}
    return ParsedModel(format="SKLearn", framework=_FRAMEWORKS.get(top, "scikit-learn"), path=path,
                       inputs=inputs, outputs=outputs, layers=layers, framework_version=facts.version,
                       details=details)


def _is_layer(cls: str) -> bool:
    return cls.split(".", 1)[0] in _FRAMEWORKS and not cls.rsplit(".", 1)[-1].startswith("_")


# -- pickle / joblib ---------------------------------------------------------------------------

def _pickle_facts(path: Path) -> EstimatorFacts:
    scan = scan_file(path)
    facts = EstimatorFacts(built=scan.built, referenced=sorted(scan.globals))
    if isinstance(scan.root, Obj):
        facts.root_class = scan.root.class_name
    n = scan.first("n_features_in_")
    facts.n_features = n if isinstance(n, int) else None
    v = scan.first("_sklearn_version")
    facts.version = v if isinstance(v, str) else None
    classes = scan.last("classes_")
    if classes is not None:
        facts.classes_shape, facts.classes_dtype = _array_meta(classes)
    return facts


def _array_meta(v: Any) -> tuple[tuple[int, ...], str | None]:
    """Shape and dtype of a pickled numpy array (plain pickle or joblib wrapper), read symbolically."""
    if isinstance(v, list):
        return (len(v),), None
    if not isinstance(v, Obj):
        return (), None
    st = v.state
    if isinstance(st, dict):  # joblib NumpyArrayWrapper
        return tuple(st.get("shape") or ()), _dtype_of(st.get("dtype"))
    if isinstance(st, tuple) and len(st) >= 5 and isinstance(st[1], tuple):  # ndarray.__reduce__ state
        return st[1], _dtype_of(st[2])
    return (), None


def _dtype_of(d: Any) -> str | None:
    if isinstance(d, Obj) and d.args and isinstance(d.args[0], str):
        return norm_dtype(d.args[0])
    return None


# -- skops -------------------------------------------------------------------------------------

def _skops_facts(path: Path) -> EstimatorFacts:
    try:
        with zipfile.ZipFile(path) as zf:
            schema = json.loads(zf.read("schema.json"))
            facts = EstimatorFacts()
            facts.root_class = _node_class(schema)
            _walk_skops(schema, zf, facts)
            return facts
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, EOFError, ValueError) as exc:
        raise fail(path, f"not a readable skops archive ({exc}); the file is corrupt or truncated") \
            from None


def _node_class(node: Any) -> str | None:
    if isinstance(node, dict) and "__class__" in node:
        return f"{node.get('__module__')}.{node['__class__']}"
    return None


def _walk_skops(node: Any, zf: zipfile.ZipFile, facts: EstimatorFacts) -> None:
    if isinstance(node, list):
        for x in node:
            _walk_skops(x, zf, facts)
        return
    if not isinstance(node, dict):
        return
    if node.get("__loader__") in ("ObjectNode", "ReduceNode") and (cls := _node_class(node)):
        facts.built[cls] += 1
    content = node.get("content")
    if node.get("__loader__") == "DictNode" and isinstance(content, dict):
        for key, value in content.items():
            if key == "n_features_in_" and facts.n_features is None:
                facts.n_features = _skops_json(value)
            elif key == "_sklearn_version" and facts.version is None:
                facts.version = _skops_json(value)
            elif key == "classes_":
                facts.classes_shape, facts.classes_dtype = _skops_array(value, zf)
    for key in ("content", "args", "attrs"):
        sub = node.get(key)
        if isinstance(sub, dict | list):
            _walk_skops(list(sub.values()) if isinstance(sub, dict) and "__class__" not in sub else sub,
                        zf, facts)


def _skops_json(node: Any) -> Any:
    if isinstance(node, dict) and node.get("is_json"):
        try:
            return json.loads(node["content"])
        except (KeyError, json.JSONDecodeError):
            return None
    return None


def _skops_array(node: Any, zf: zipfile.ZipFile) -> tuple[tuple[int, ...], str | None]:
    """Shape and dtype from the ``.npy`` header inside the archive (the array is not loaded)."""
    import numpy as np

    if not isinstance(node, dict) or "file" not in node:
        content = node.get("content") if isinstance(node, dict) else None
        return ((len(content),), None) if isinstance(content, list) else ((), None)
    with zf.open(node["file"]) as fh:
        version = np.lib.format.read_magic(fh)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = reader(fh)
    return tuple(shape), norm_dtype(dtype.str)


def untrusted_skops_types(path: Path) -> list[str]:
    from skops.io import get_untrusted_types

    try:
        return sorted(get_untrusted_types(file=str(path)))
    except Exception as exc:  # noqa: BLE001 - skops raises many kinds for a damaged archive
        raise fail(path, f"not a readable skops archive ({exc})") from None


# -- loading (needs trust) ---------------------------------------------------------------------

def load(path: Path, *, trust: bool = False, trusted_types: list[str] | None = None) -> Any:
    """Build the estimator. Pickle/joblib only with ``trust``; skops with the safe-type policy."""
    if path.suffix == ".skops":
        import skops.io as sio

        untrusted = untrusted_skops_types(path)
        unsafe = [t for t in untrusted if not _safe_type(t) and t not in (trusted_types or [])]
        if unsafe and not trust:
            from skops.io.exceptions import UNTRUSTED_TYPE_REASONS

            why = "; ".join(f"{t} is unsafe on crafted input (skops)" for t in unsafe if t in UNTRUSTED_TYPE_REASONS)
            raise FormatError(f"{path}: skops archive references types that are not known to be safe "
                              f"({', '.join(unsafe)}){'; ' + why if why else ''}; if you made this file "
                              "or trust its source, pass trust=True (--trust) to load it")
        try:
            return sio.load(path, trusted=untrusted)
        except Exception as exc:  # noqa: BLE001
            raise fail(path, f"skops could not load the estimator: {exc}") from None
    if not trust:
        raise FormatError(f"{path}: loading a pickle runs code from the file; pass trust=True "
                          "(--trust) only for models from a source you trust")
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:  # noqa: BLE001
        raise fail(path, f"could not unpickle the model: {exc}") from None


def _safe_type(name: str) -> bool:
    """A class (not a function) under one of the safe prefixes; resolved by importing its module."""
    import importlib

    from skops.io.exceptions import UNTRUSTED_TYPE_REASONS

    if not name.startswith(SAFE_SKOPS_PREFIXES) or name in UNTRUSTED_TYPE_REASONS:
        return False
    module, _, attr = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(obj, type)


def _refine_with_model(facts: EstimatorFacts, model: Any) -> None:
    """With a trusted, loaded model: exact feature count and classes."""
    import numpy as np

    facts.root_class = f"{type(model).__module__}.{type(model).__qualname__}"
    n = getattr(model, "n_features_in_", None)
    if isinstance(n, int | np.integer):
        facts.n_features = int(n)
    classes = getattr(model, "classes_", None)
    if classes is not None:
        arr = np.asarray(classes)
        facts.classes_shape, facts.classes_dtype = arr.shape, norm_dtype(arr.dtype.str)
    elif facts.classes_shape is not None and not hasattr(model, "predict_proba"):
        facts.classes_shape = None


