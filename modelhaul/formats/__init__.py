"""Detect and parse model files of every common format, without running them.

``detect(model_dir)`` names the format of a model directory; ``parse_directory(model_dir)`` returns a
:class:`ParsedModel` (signature with -1 for dynamic dims, layer/op counts, opset or framework
version). One module per format does the reading; this package only dispatches. Importing it is
cheap: no ML framework is imported until a parser needs one.

Untrusted files are never executed: pickles are scanned, not loaded, unless ``trust=True``.
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path

from modelhaul.errors import FormatError
from modelhaul.formats.base import ParsedModel, read_head

__all__ = ["ParsedModel", "detect", "find_model", "parse_directory", "parse_path"]

# parser module per format key, in the order a directory holding several model files prefers them
_ORDER = ["onnx", "pt2", "torchscript", "savedmodel", "keras", "sklearn", "xgboost", "lightgbm", "pmml",
          "safetensors"]
_FORMAT_NAMES = {"onnx": "ONNX", "pt2": "PT2", "torchscript": "TorchScript", "savedmodel": "SavedModel",
                 "keras": "Keras", "sklearn": "SKLearn", "xgboost": "XGBoost", "lightgbm": "LightGBM",
                 "pmml": "PMML", "safetensors": "SafeTensors"}
_HINTS = {"onnx": "onnx", "pt2": "pt2", "torchscript": "torchscript", "pytorch": "torchscript",
          "savedmodel": "savedmodel", "keras": "keras", "h5": "keras", "sklearn": "sklearn",
          "xgboost": "xgboost", "lightgbm": "lightgbm", "pmml": "pmml", "safetensors": "safetensors"}
_SKIP_NAMES = {"ormbfile.yaml", "Kitfile", "README.md", "LICENSE", "conda.yaml", "python_env.yaml",
               "requirements.txt", "input_example.json", "serving_input_example.json", "MLmodel",
               "config.pbtxt", "model-settings.json"}
_MAX_DEPTH = 3


def _module(key: str):
    return importlib.import_module(f"modelhaul.formats.{key}")


def sniff(path: Path) -> str | None:
    """The parser key for one file, from its name and first bytes (and a zip's member names)."""
    name, suffix = path.name, path.suffix.lower()
    if name in _SKIP_NAMES:
        return None
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".safetensors":
        return "safetensors"
    if name == "saved_model.pb":
        return "savedmodel"
    head = read_head(path, 16)
    if suffix in (".pmml",) or (suffix == ".xml" and _module("pmml").looks_like(path)):
        return "pmml"
    if head.startswith(b"\x89HDF\r\n\x1a\n") and suffix in (".h5", ".hdf5", ".keras"):
        return "keras"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile:
            names = []
        if "schema.json" in names or suffix == ".skops":
            return "sklearn"
        if "config.json" in names and ("metadata.json" in names or suffix == ".keras"):
            return "keras"
        if _module("pt2").is_pt2(names) or suffix == ".pt2":
            return "pt2"
        if any(n.endswith("data.pkl") for n in names) or suffix in (".pt", ".pth"):
            return "torchscript"
        return {".keras": "keras"}.get(suffix)
    if suffix in (".skops", ".pkl", ".pickle", ".joblib", ".sav"):
        return "sklearn"
    if suffix in (".pt", ".pth", ".pt2", ".keras", ".h5"):  # the right suffix but the wrong content
        return {".pt": "torchscript", ".pth": "torchscript", ".pt2": "pt2"}.get(suffix, "keras")
    if _module("lightgbm").looks_like(head):
        return "lightgbm"
    if suffix in (".ubj", ".bst", ".xgb", ".xgboost") or (suffix == ".json" and
                                                            _module("xgboost").looks_like_json_model(path)):
        return "xgboost"
    return None


_FRAMEWORKS = {"xgboost": "XGBoost", "lightgbm": "LightGBM", "sklearn": "scikit-learn", "onnx": "ONNX",
               "pmml": "PMML", "keras": "Keras", "pt2": "PyTorch", "torchscript": "PyTorch",
               "savedmodel": "TensorFlow", "safetensors": "PyTorch"}


def detect_file(path: Path) -> tuple[str, str | None] | None:
    """(format, framework) of one file from its content, or None when no parser recognises it."""
    key = sniff(path)
    return (_FORMAT_NAMES[key], _FRAMEWORKS.get(key)) if key else None


def _candidates(model_dir: Path) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []

    def walk(d: Path, depth: int) -> None:
        for p in sorted(d.iterdir()):
            if p.name.startswith("."):
                continue
            if p.is_dir() and not p.is_symlink():
                if (p / "saved_model.pb").is_file():
                    found.append(("savedmodel", p))
                elif depth < _MAX_DEPTH:
                    walk(p, depth + 1)
            elif p.is_file():
                key = sniff(p)
                if key == "savedmodel":
                    found.append((key, p.parent))
                elif key:
                    found.append((key, p))

    walk(model_dir, 0)
    return found


def find_model(model_dir: str | Path, hint: str | None = None) -> tuple[str, Path]:
    """(parser key, model path) of the model in ``model_dir``: the MLflow dir, a file or SavedModel dir."""
    root = Path(model_dir)
    if root.is_file():
        key = sniff(root)
        if key is None:
            raise FormatError(f"{root}: not a model file modelhaul can read (unknown format)")
        return key, root
    if not root.is_dir():
        raise FormatError(f"{root}: no such model file or directory")
    if (root / "MLmodel").is_file():
        return "mlflow", root
    sm = _module("savedmodel").find(root)
    if sm is not None:
        return "savedmodel", sm
    cands = _candidates(root)
    if not cands:
        raise FormatError(f"{root}: no model file of a known format found (ONNX, TorchScript, .pt2, SavedModel, "
                          "Keras, scikit-learn, XGBoost, LightGBM, PMML, safetensors, MLflow)")
    wanted = _HINTS.get((hint or "").lower().replace("-", "").replace(" ", ""))
    def rank(c: tuple[str, Path]) -> tuple[int, int, int, str]:
        key, p = c
        return (0 if key == wanted else 1, _ORDER.index(key), len(p.relative_to(root).parts), str(p))
    key, path = min(cands, key=rank)
    return key, path


def detect(model_dir: str | Path) -> str:
    """The format of a model directory (or file), in ormb's names: ``ONNX``, ``SKLearn``, ``MLflow`` ..."""
    key, path = find_model(model_dir)
    if key == "mlflow":
        return "MLflow"
    if key == "torchscript":
        with zipfile.ZipFile(path) as zf:
            return "TorchScript" if _module("torchscript").is_torchscript(zf.namelist()) else "PyTorch"
    return _FORMAT_NAMES[key]


def parse_path(path: Path, *, trust: bool = False, key: str | None = None) -> ParsedModel:
    """Parse one model file (or SavedModel / MLflow directory)."""
    path = Path(path)
    if key is None:
        key, path = find_model(path)
    mod = _module(key)
    if key == "safetensors" and path.is_file():
        shards = sorted(path.parent.glob("*.safetensors"))
        return mod.parse(path, trust=trust, shards=shards if len(shards) > 1 else None)
    return mod.parse(path, trust=trust)


def parse_directory(model_dir: str | Path, *, trust: bool = False, hint: str | None = None) -> ParsedModel:
    """Parse the model in ``model_dir`` (``hint``: the format the config claims, preferred if present).

    Raises FormatError (naming the file) for an unknown, corrupt or truncated model.
    """
    key, path = find_model(model_dir, hint)
    return parse_path(path, trust=trust, key=key)
