"""torch.export archives (``.pt2``): an ExportedProgram serialized as JSON inside a zip.

The graph, its user inputs/outputs with dtypes and (symbolic) sizes, and the ATen ops are all in
``models/<name>.json``, so parsing reads that JSON and nothing else: no weights, no pickle, no torch.
"""

from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

from modelhaul.config import Tensor
from modelhaul.errors import FormatError
from modelhaul.formats.base import CONTENT, NAME_ONLY, NO, ParsedModel, Probe, fail, tensor

# torch._export.serde.schema.ScalarType
_SCALAR_TYPES = {
    1: "uint8", 2: "int8", 3: "int16", 4: "int32", 5: "int64", 6: "float16", 7: "float32", 8: "float64",
    9: "complex32", 10: "complex64", 11: "complex128", 12: "bool", 13: "bfloat16", 28: "uint16",
    34: "uint32", 35: "uint64",
}


def sniff(p: Probe) -> int:
    if p.is_zip:
        return CONTENT if is_pt2(p.zip_names) or p.suffix == ".pt2" else NO
    return NAME_ONLY if p.suffix == ".pt2" else NO


def is_pt2(names: list[str]) -> bool:
    return any(n.endswith("/archive_format") for n in names) or any("/models/" in n and n.endswith(".json")
                                                                     for n in names)


def parse(path: Path, *, trust: bool = False) -> ParsedModel:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            entries = sorted(n for n in names if "/models/" in n and n.endswith(".json"))
            if not entries:
                raise fail(path, "not a torch.export archive: no models/*.json inside")
            program = json.loads(zf.read(entries[0]))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, EOFError, UnicodeDecodeError) as exc:
        raise fail(path, f"not a readable .pt2 archive ({exc}); the file is corrupt or truncated") from None
    try:
        gm = program["graph_module"]
        graph, sig = gm["graph"], gm["signature"]
        values = graph.get("tensor_values", {})
        inputs = [_user_tensor(spec["user_input"]["arg"], values) for spec in sig["input_specs"]
                  if "user_input" in spec]
        outputs = [_user_tensor(spec["user_output"]["arg"], values) for spec in sig["output_specs"]
                   if "user_output" in spec]
        layers = Counter(_op_name(n.get("target", "")) for n in graph.get("nodes", []))
    except (KeyError, TypeError) as exc:
        raise fail(path, f"torch.export program lacks {exc}; the archive is damaged or from an unknown "
                         "torch version") from None
    opset = (program.get("opset_version") or {}).get("aten")
    details: dict[str, Any] = {"schema_version": program.get("schema_version"), "models": entries}
    return ParsedModel(format="PT2", framework="PyTorch", path=path, inputs=inputs, outputs=outputs,
                       layers=dict(layers), opset=opset, framework_version=program.get("torch_version"),
                       details=details)


def _op_name(target: str) -> str:
    """``torch.ops.aten.linear.default`` -> ``aten.linear``."""
    parts = target.split(".")
    if len(parts) >= 4 and parts[:2] == ["torch", "ops"]:
        return f"{parts[2]}.{parts[3]}"
    return target


def _user_tensor(arg: dict[str, Any], values: dict[str, Any]) -> Tensor:
    if "as_tensor" not in arg:
        kind = next(iter(arg), "unknown")
        return Tensor(name=str((arg.get(kind) or {}).get("name", kind)) if isinstance(arg.get(kind), dict)
                      else kind, op_type=kind)
    name = arg["as_tensor"]["name"]
    meta = values.get(name, {})
    shape = [s.get("as_int", -1) if isinstance(s, dict) else -1 for s in meta.get("sizes", [])]
    return tensor(name, _SCALAR_TYPES.get(meta.get("dtype")), shape if "sizes" in meta else None)


def load(path: Path, *, trust: bool = False) -> Any:
    """The ExportedProgram (for conversion). Needs trust: torch.export.load may unpickle constants."""
    if not trust:
        raise FormatError(f"{path}: loading a .pt2 archive may unpickle data from it; pass trust=True "
                          "(--trust) only for models from a source you trust")
    import torch

    try:
        return torch.export.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise fail(path, f"torch.export could not load the program: {exc}") from None
