"""Triton Inference Server model repositories: ``<name>/config.pbtxt`` + ``<name>/1/<model file>``.

``config.pbtxt`` is generated from the model's signature: the platform from its format, Triton's
``TYPE_*`` for each dtype, and dims. When every input and output has a dynamic first dimension,
that dimension is the batch: ``max_batch_size`` is set and the dims are listed without it (a
tensor left with no dims after that, such as a classifier's ``label``, is declared ``[1]`` and
reshaped to ``[]``). Otherwise ``max_batch_size: 0`` and the full shapes are listed.

The text is written by hand (no tritonclient needed at run time); tests read it back with the
``ModelConfig`` protobuf that tritonclient ships.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from modelhaul import format_table as table
from modelhaul.config import Tensor
from modelhaul.errors import DeployError

DEFAULT_MAX_BATCH_SIZE = 64

# format -> (platform, file name in the version directory), from the format table
PLATFORMS = table.triton_platforms()

DATA_TYPES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64", "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32",
    "int64": "TYPE_INT64", "float16": "TYPE_FP16", "float32": "TYPE_FP32", "float64": "TYPE_FP64",
    "bfloat16": "TYPE_BF16", "string": "TYPE_STRING", "bytes": "TYPE_STRING",
}


def config_pbtxt(name: str, fmt: str, inputs: list[Tensor], outputs: list[Tensor], *,
                 max_batch_size: int = DEFAULT_MAX_BATCH_SIZE) -> str:
    """The text of ``config.pbtxt`` for a model of format ``fmt`` (ONNX, TorchScript, SavedModel)."""
    if fmt not in PLATFORMS:
        raise DeployError(f"Triton serves ONNX, TorchScript and SavedModel models, not {fmt}; convert it first "
                          "(modelhaul convert REF --to onnx)")
    if not inputs or not outputs:
        raise DeployError(f"model {name!r} has no {'inputs' if not inputs else 'outputs'} in its signature; "
                          "Triton needs every input and output declared (run modelhaul parse first)")
    tensors = [*inputs, *outputs]
    for t in tensors:
        if t.size is None or t.d_type is None:
            raise DeployError(f"model {name!r}: tensor {t.name!r} has no {'shape' if t.size is None else 'dtype'} "
                              "in the signature; Triton needs both (log the model with a signature)")
        if t.d_type not in DATA_TYPES:
            raise DeployError(f"model {name!r}: tensor {t.name!r} has dtype {t.d_type}, which Triton has no type "
                              "for")
    batching = max_batch_size > 0 and all(t.size and t.size[0] == -1 for t in tensors)
    lines = [f"name: {_q(name)}", f"platform: {_q(PLATFORMS[fmt][0])}",
             f"max_batch_size: {max_batch_size if batching else 0}"]
    for section, group in (("input", inputs), ("output", outputs)):
        entries = [_entry(t, batching) for t in group]
        lines.append(f"{section} [\n" + ",\n".join(entries) + "\n]")
    if batching:
        lines.append("dynamic_batching { }")
    return "\n".join(lines) + "\n"


def _entry(t: Tensor, batching: bool) -> str:
    dims = list(t.size[1:] if batching else t.size)  # type: ignore[index]
    body = [f"    name: {_q(t.name or '')}", f"    data_type: {DATA_TYPES[t.d_type]}"]  # type: ignore[index]
    if dims:
        body.append(f"    dims: [ {', '.join(str(d) for d in dims)} ]")
    else:  # a scalar per request (or per batch row): Triton wants at least one dim
        body.append("    dims: [ 1 ]")
        body.append("    reshape: { shape: [ ] }")
    return "  {\n" + "\n".join(body) + "\n  }"


def _q(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid protobuf text string literal


def tensor_names_for(fmt: str, inputs: list[Tensor], outputs: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """LibTorch models have no output names: Triton wants ``<name>__<index>``; inputs keep forward's names."""
    if fmt != "TorchScript":
        return inputs, outputs
    ins = [t if t.name else t.model_copy(update={"name": f"input__{i}"}) for i, t in enumerate(inputs)]
    outs = [t.model_copy(update={"name": f"output__{i}"}) for i, t in enumerate(outputs)]
    return ins, outs


def write_repository(dest: Path, name: str, fmt: str, inputs: list[Tensor], outputs: list[Tensor],
                     place_model: Callable[[Path], None], *, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE) -> Path:
    """Write ``dest/<name>/config.pbtxt`` and call ``place_model(version_dir / file_name)``."""
    inputs, outputs = tensor_names_for(fmt, inputs, outputs)
    text = config_pbtxt(name, fmt, inputs, outputs, max_batch_size=max_batch_size)
    model_root = dest / name
    version = model_root / "1"
    version.mkdir(parents=True, exist_ok=True)
    place_model(version / PLATFORMS[fmt][1])
    (model_root / "config.pbtxt").write_text(text, encoding="utf-8")
    return model_root
