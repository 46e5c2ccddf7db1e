"""MLflow model directories (``MLmodel`` at the root).

The ``MLmodel`` file names the flavors and, inside each, the file that holds the model; its
signature (JSON strings, column-based or tensor-based) is what MLflow serving accepts, so it becomes
the parsed signature. The flavor's own file is parsed too, for layers and version, and its
signature is kept in ``details['model_inputs'|'model_outputs']``. Input examples are read for the
parity check of conversions. Nothing here imports mlflow.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from modelhaul import format_table as table
from modelhaul.config import Tensor
from modelhaul.errors import FormatError
from modelhaul.formats.base import ParsedModel, fail, tensor
from modelhaul.useryaml import MAX_MLMODEL_BYTES, read_yaml_file

MLMODEL = "MLmodel"

_VERSION_KEYS = ("sklearn_version", "xgb_version", "lgb_version", "pytorch_version", "onnx_version",
                 "keras_version", "tensorflow_version")
SIDE_FILES = {MLMODEL, "conda.yaml", "python_env.yaml", "requirements.txt", "input_example.json",
              "serving_input_example.json", "registered_model_meta", "metadata"}


def read_mlmodel(model_dir: Path) -> dict[str, Any]:
    p = model_dir / MLMODEL
    data = read_yaml_file(p, "MLflow MLmodel file", limit=MAX_MLMODEL_BYTES, error=FormatError) or {}
    if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
        raise fail(p, "MLmodel has no flavors mapping; it is not an MLflow model file")
    return data


def model_path(model_dir: Path, mlmodel: dict[str, Any]) -> tuple[str | None, Path | None]:
    """(flavor, the path its model lives at) for the first flavor modelhaul knows."""
    flavors = mlmodel["flavors"]
    for flavor in table.flavors():
        conf = flavors.get(flavor)
        if not isinstance(conf, dict):
            continue
        for key in table.of_flavor(flavor).flavor_keys:
            rel = conf.get(key)
            if isinstance(rel, str) and rel:
                p = (model_dir / rel).resolve()
                if model_dir.resolve() not in (p, *p.parents):
                    raise fail(model_dir / MLMODEL, f"flavor {flavor} points outside the model directory")
                if p.exists():
                    return flavor, p
    return None, None


def signature(mlmodel: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]] | None:
    sig = mlmodel.get("signature")
    if not isinstance(sig, dict) or not sig.get("inputs"):
        return None
    return _specs(sig.get("inputs")), _specs(sig.get("outputs"))


def _specs(raw: Any) -> list[Tensor]:
    if not raw:
        return []
    specs = json.loads(raw) if isinstance(raw, str) else raw
    out = []
    for s in specs:
        if s.get("type") == "tensor":
            ts = s.get("tensor-spec") or {}
            out.append(tensor(s.get("name"), ts.get("dtype"), ts.get("shape")))
        elif s.get("type") in ("array", "object", "map", "any"):
            out.append(Tensor(name=s.get("name"), d_type=s.get("type"), size=[-1]))
        else:
            out.append(tensor(s.get("name"), s.get("type"), [-1]))
    return out


def parse(model_dir: Path, *, trust: bool = False) -> ParsedModel:
    from modelhaul.formats import parse_path

    mlmodel = read_mlmodel(model_dir)
    flavor, inner_path = model_path(model_dir, mlmodel)
    inner = parse_path(inner_path, trust=trust) if inner_path is not None else None
    flavors = mlmodel["flavors"]
    fconf = flavors.get(flavor) or {}
    version = next((str(fconf[k]) for k in _VERSION_KEYS if fconf.get(k)), None)
    details: dict[str, Any] = {
        "flavors": sorted(flavors), "flavor": flavor, "mlflow_version": mlmodel.get("mlflow_version"),
        "model_file": str(inner_path.relative_to(model_dir.resolve())) if inner_path else None,
        "input_example": (mlmodel.get("saved_input_example_info") or {}).get("artifact_path"),
    }
    sig = signature(mlmodel)
    if inner is None:
        inputs, outputs = sig if sig else ([], [])
        return ParsedModel(format="MLflow", framework="MLflow", path=model_dir, inputs=inputs,
                           outputs=outputs, framework_version=version, details=details, container="MLflow")
    details.update({k: v for k, v in inner.details.items() if k not in details})
    details["model_inputs"] = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in inner.inputs]
    details["model_outputs"] = [t.model_dump(mode="json", by_alias=True, exclude_none=True)
                                for t in inner.outputs]
    inputs, outputs = sig if sig else (inner.inputs, inner.outputs)
    row = table.of_flavor(flavor or "")
    # a skops/pickle file of XGBoost's or LightGBM's scikit-learn API is still that flavor's format
    fmt = row.name if row and inner.format == "SKLearn" and inner.framework == row.framework else inner.format
    return ParsedModel(format=fmt, framework=inner.framework, path=inner.path, inputs=inputs,
                       outputs=outputs, layers=inner.layers, opset=inner.opset,
                       framework_version=version or inner.framework_version, details=details,
                       container="MLflow")


def input_example(model_dir: Path) -> Any:
    """The logged input example as JSON data (rows, a split DataFrame, or tensors), or None."""
    for name in ("input_example.json", "serving_input_example.json"):
        p = model_dir / name
        if not p.is_file():
            continue
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise fail(p, f"input example is not valid JSON ({exc})") from None
        for key in ("dataframe_split", "inputs", "instances", "dataframe_records"):
            if isinstance(data, dict) and key in data:
                data = data[key]
                break
        return data
    return None


def framework_and_format(flavors: dict[str, Any], model_dir: Path) -> tuple[str, str]:
    """``(framework, format)`` from the MLmodel flavors and, where a flavor saves several ways, the files.

    The first flavor of the format table wins; a flavor it does not list is the framework of an
    ``MLflow`` model (served as the MLflow directory it is).
    """
    for name in table.flavors():
        if name not in flavors or name == "python_function":
            continue
        conf = flavors[name] if isinstance(flavors[name], dict) else {}
        row = table.of_flavor(name)
        framework, fmt = row.framework or name, row.name
        if name == "pytorch":
            fmt = _torch_format(model_dir, str(conf.get("model_data", "data")))
        elif name == "tensorflow":
            if conf.get("model_type") == "keras" and conf.get("save_format") in ("keras", "h5"):
                fmt = "Keras"
        elif name == "keras" and conf.get("save_exported_model"):
            fmt = "SavedModel"
        return framework, fmt
    other = next((f for f in flavors if f != "python_function"), None)
    return (other or "MLflow"), "MLflow"


def _torch_format(model_dir: Path, model_data: str) -> str:
    """How MLflow's pytorch flavor saved the model, from the files under ``model_data`` (inside the model)."""
    data_dir = (model_dir / model_data).resolve()
    if not data_dir.is_relative_to(model_dir.resolve()):
        return "PyTorch"  # MLmodel points outside the model directory: nothing there is read
    if (data_dir / "model.pt2").exists() or any(data_dir.glob("*.pt2")):
        return "PT2"
    pth = data_dir / "model.pth"
    if pth.is_file() and zipfile.is_zipfile(pth):
        with zipfile.ZipFile(pth) as z:
            if any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist()):
                return "TorchScript"
    return "PyTorch"  # a pickled nn.Module: loadable only with the code that defined it
