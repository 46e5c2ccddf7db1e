"""ONNX models (``.onnx``), including models whose weights live in external data files.

The graph is read with ``load_external_data=False``: weights kept outside the ``.onnx`` file are
never read, only checked to exist with the size the graph declares (``os.stat``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from modelhaul.config import Tensor
from modelhaul.formats.base import NO, OWN_NAME, ParsedModel, Probe, fail, tensor

_PRODUCERS = {
    "pytorch": "PyTorch", "skl2onnx": "scikit-learn", "onnxmltools": "ONNX", "tf2onnx": "TensorFlow",
    "keras2onnx": "Keras", "OnnxMLTools": "ONNX",
}


def load_graph(path: Path) -> Any:
    """The ModelProto without external weights; FormatError for anything protobuf cannot decode."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise fail(path, f"not a readable ONNX model ({exc.__class__.__name__}); the file is corrupt "
                         "or truncated") from None
    except OSError as exc:
        raise fail(path, f"cannot read: {exc.strerror or exc}") from None
    if not model.graph.node and not model.graph.output:
        raise fail(path, "ONNX model has an empty graph; the file is corrupt or truncated")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        return model  # the checker would open the weights; parse() checks their files by size instead
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        raise fail(path, f"ONNX model fails the checker: {first}") from None
    return model


def sniff(p: Probe) -> int:
    return OWN_NAME if p.suffix == ".onnx" else NO


def parse(path: Path, *, trust: bool = False) -> ParsedModel:
    model = load_graph(path)
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    inputs = [_tensor(v) for v in graph.input if v.name not in weights]
    outputs = [_tensor(v) for v in graph.output]
    layers = Counter(n.op_type for n in graph.node)
    for fn in model.functions:
        layers.update(n.op_type for n in fn.node)
    opsets = {imp.domain or "ai.onnx": imp.version for imp in model.opset_import}
    external = _external_data(path, graph)
    producer = model.producer_name or ""
    details: dict[str, Any] = {
        "opsets": opsets, "ir_version": model.ir_version, "producer": producer,
        "producer_version": model.producer_version,
    }
    if external:
        details["external_data"] = external
    prob_like = [o for o in outputs if o.name and "prob" in o.name.lower()]
    details["classifier"] = bool(prob_like) and any(o.name == "label" for o in outputs)
    return ParsedModel(
        format="ONNX", framework="ONNX", path=path, inputs=inputs, outputs=outputs, layers=dict(layers),
        opset=opsets.get("ai.onnx"), framework_version=f"{producer} {model.producer_version}".strip() or None,
        details=details,
    )


def _tensor(value_info: Any) -> Tensor:
    import onnx

    t = value_info.type
    kind = t.WhichOneof("value")
    if kind == "tensor_type":
        elem = t.tensor_type.elem_type
        dtype = "string" if elem == onnx.TensorProto.STRING else (
            onnx.helper.tensor_dtype_to_np_dtype(elem).name if elem else None)
        shape = None
        if t.tensor_type.HasField("shape"):
            shape = [d.dim_value if d.HasField("dim_value") else -1 for d in t.tensor_type.shape.dim]
        if dtype == "float32" and elem == onnx.TensorProto.BFLOAT16:
            dtype = "bfloat16"
        return tensor(value_info.name, dtype, shape)
    return Tensor(name=value_info.name, d_type=kind.replace("_type", "") if kind else None)


def _external_data(path: Path, graph: Any) -> dict[str, int]:
    """Bytes declared per external data file; FormatError when a file is missing or too short."""
    import onnx

    declared: dict[str, int] = {}
    for init in graph.initializer:
        if init.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in init.external_data}
        loc = info.get("location", "")
        target = (path.parent / loc).resolve()
        if not loc or Path(loc).is_absolute() or path.parent.resolve() not in target.parents:
            raise fail(path, f"tensor {init.name!r} names external data outside the model directory ({loc!r})")
        end = int(info.get("offset", 0) or 0) + int(info.get("length", 0) or 0)
        declared[loc] = max(declared.get(loc, 0), end)
    for loc, end in declared.items():
        try:
            size = (path.parent / loc).stat().st_size
        except FileNotFoundError:
            raise fail(path, f"external data file {loc!r} is missing; copy it next to the model") from None
        if size < end:
            raise fail(path.parent / loc, f"external data is {size} bytes but the model needs {end}: "
                                          "the file is truncated")
    return declared
