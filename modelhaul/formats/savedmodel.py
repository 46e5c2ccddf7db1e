"""TensorFlow SavedModel directories (``saved_model.pb`` + ``variables/``), read without TensorFlow.

``saved_model.pb`` is a protobuf. TensorFlow's own message classes are not available without
installing TensorFlow, so this module builds a minimal descriptor for just the fields it reads
(SavedModel -> MetaGraphDef -> MetaInfoDef / GraphDef / SignatureDef -> TensorInfo); protobuf skips
every other field. Variables are never read.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

from modelhaul.config import Tensor
from modelhaul.formats.base import NO, OWN_NAME, ParsedModel, Probe, fail, tensor

# tensorflow/core/framework/types.proto DataType
DT_NAMES = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string", 8: "complex64",
    9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 18: "complex128", 19: "float16", 20: "resource",
    21: "variant", 22: "uint32", 23: "uint64",
}

# (message, [(field name, number, type, label, type_name)]); type 9=string 3=int64 5=int32 8=bool 11=message
_MESSAGES: list[tuple[str, list[tuple[str, int, int, int, str]]]] = [
    ("SavedModel", [("saved_model_schema_version", 1, 3, 1, ""), ("meta_graphs", 2, 11, 3, "MetaGraphDef")]),
    ("MetaGraphDef", [("meta_info_def", 1, 11, 1, "MetaInfoDef"), ("graph_def", 2, 11, 1, "GraphDef"),
                      ("signature_def", 5, 11, 3, "MetaGraphDef.SignatureDefEntry")]),
    ("MetaInfoDef", [("meta_graph_version", 1, 9, 1, ""), ("tags", 4, 9, 3, ""),
                     ("tensorflow_version", 5, 9, 1, ""), ("tensorflow_git_version", 6, 9, 1, "")]),
    ("GraphDef", [("node", 1, 11, 3, "NodeDef"), ("library", 2, 11, 1, "FunctionDefLibrary"),
                  ("versions", 4, 11, 1, "VersionDef")]),
    ("VersionDef", [("producer", 1, 5, 1, ""), ("min_consumer", 2, 5, 1, "")]),
    ("NodeDef", [("name", 1, 9, 1, ""), ("op", 2, 9, 1, "")]),
    ("FunctionDefLibrary", [("function", 1, 11, 3, "FunctionDef")]),
    ("FunctionDef", [("signature", 1, 11, 1, "OpDef"), ("node_def", 3, 11, 3, "NodeDef")]),
    ("OpDef", [("name", 1, 9, 1, "")]),
    ("SignatureDef", [("inputs", 1, 11, 3, "SignatureDef.InputsEntry"),
                      ("outputs", 2, 11, 3, "SignatureDef.OutputsEntry"), ("method_name", 3, 9, 1, "")]),
    ("TensorInfo", [("name", 1, 9, 1, ""), ("dtype", 2, 5, 1, ""), ("tensor_shape", 3, 11, 1, "TensorShapeProto")]),
    ("TensorShapeProto", [("dim", 2, 11, 3, "TensorShapeProto.Dim"), ("unknown_rank", 3, 8, 1, "")]),
]
_MAPS = {  # map fields: owner -> (entry name, value type)
    "MetaGraphDef": [("SignatureDefEntry", "SignatureDef")],
    "SignatureDef": [("InputsEntry", "TensorInfo"), ("OutputsEntry", "TensorInfo")],
}
_PKG = "modelhaul_tf_subset"


@lru_cache(maxsize=1)
def _classes() -> dict[str, Any]:
    """Message classes for the subset of TensorFlow's protos that describe a SavedModel's interface."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name=f"{_PKG}.proto", package=_PKG, syntax="proto3")
    for name, fields in _MESSAGES:
        msg = fdp.message_type.add(name=name)
        for fname, num, ftype, label, tname in fields:
            f = msg.field.add(name=fname, number=num, type=ftype, label=label)
            if tname:
                f.type_name = f".{_PKG}.{tname}"
        for entry, value in _MAPS.get(name, []):
            e = msg.nested_type.add(name=entry)
            e.options.map_entry = True
            e.field.add(name="key", number=1, type=9, label=1)
            e.field.add(name="value", number=2, type=11, label=1, type_name=f".{_PKG}.{value}")
        if name == "TensorShapeProto":
            d = msg.nested_type.add(name="Dim")
            d.field.add(name="size", number=1, type=3, label=1)
            d.field.add(name="name", number=2, type=9, label=1)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PKG}.{name}"))
            for name, _ in _MESSAGES}


def sniff(p: Probe) -> int:
    """The graph file of a SavedModel directory (the directory is what is parsed)."""
    return OWN_NAME if p.name == "saved_model.pb" else NO


def find(model_dir: Path) -> Path | None:
    """The SavedModel directory: ``model_dir`` itself, or its highest numbered version directory."""
    if (model_dir / "saved_model.pb").is_file():
        return model_dir
    versions = sorted((int(p.name), p) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()
                      and (p / "saved_model.pb").is_file()) if model_dir.is_dir() else []
    return versions[-1][1] if versions else None


def read(pb: Path) -> Any:
    try:
        data = pb.read_bytes()
    except OSError as exc:
        raise fail(pb, f"cannot read: {exc.strerror or exc}") from None
    from google.protobuf.message import DecodeError

    msg = _classes()["SavedModel"]()
    try:
        msg.ParseFromString(data)
    except DecodeError:
        raise fail(pb, "not a readable SavedModel protobuf; the file is corrupt or truncated") from None
    if not msg.meta_graphs:
        raise fail(pb, "SavedModel has no MetaGraph; the file is corrupt, truncated or not a SavedModel")
    return msg


def parse(path: Path, *, trust: bool = False) -> ParsedModel:
    """``path``: the SavedModel directory (or its ``saved_model.pb``)."""
    pb = path if path.name == "saved_model.pb" else path / "saved_model.pb"
    msg = read(pb)
    meta = next((m for m in msg.meta_graphs if "serve" in m.meta_info_def.tags), msg.meta_graphs[0])
    sigs = dict(meta.signature_def)
    key = "serving_default" if "serving_default" in sigs else (sorted(sigs)[0] if sigs else None)
    inputs: list[Tensor] = []
    outputs: list[Tensor] = []
    if key is not None:
        sig = sigs[key]
        inputs = [_tensor(k, sig.inputs[k]) for k in sorted(sig.inputs)]
        outputs = [_tensor(k, sig.outputs[k]) for k in sorted(sig.outputs)]
    layers = Counter(n.op for n in meta.graph_def.node)
    for fn in meta.graph_def.library.function:
        layers.update(n.op for n in fn.node_def)
    details: dict[str, Any] = {"signatures": sorted(sigs), "signature": key,
                               "tags": list(meta.meta_info_def.tags),
                               "graph_producer": meta.graph_def.versions.producer}
    return ParsedModel(format="SavedModel", framework="TensorFlow", path=pb.parent, inputs=inputs,
                       outputs=outputs, layers=dict(layers),
                       framework_version=meta.meta_info_def.tensorflow_version or None, details=details)


def _tensor(key: str, info: Any) -> Tensor:
    shape = None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]
    return tensor(key, DT_NAMES.get(info.dtype, f"dt_{info.dtype}"), shape)
