"""safetensors weights (``.safetensors``, and sharded ``model-0000x-of-0000n.safetensors``).

A safetensors file is an 8-byte little-endian header length, a JSON header naming every tensor's
dtype, shape and byte range, then the raw bytes. Parsing reads the header only and checks, with
``os.stat``, that the file is as long as the header says: a truncated file is caught without reading
a single weight. Weights carry no input/output signature; layers count tensors and parameters.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from pathlib import Path
from typing import Any

from modelhaul.formats.base import NO, OWN_NAME, ParsedModel, Probe, fail

MAX_HEADER = 100 << 20  # the reference implementation's own limit

_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
           "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "U16": "uint16", "U32": "uint32",
           "U64": "uint64", "BOOL": "bool", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


_FRAMEWORKS = {"pt": "PyTorch", "tf": "TensorFlow", "flax": "Flax", "np": "NumPy", "mlx": "MLX"}


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """(header JSON, data start offset)."""
    try:
        with open(path, "rb") as fh:
            raw_len = fh.read(8)
            if len(raw_len) < 8:
                raise fail(path, "safetensors file is shorter than its 8-byte header length: truncated")
            (n,) = struct.unpack("<Q", raw_len)
            if n > MAX_HEADER:
                raise fail(path, f"safetensors header claims {n} bytes (limit {MAX_HEADER}): not a "
                                 "safetensors file, or corrupt")
            raw = fh.read(n)
        size = path.stat().st_size
    except OSError as exc:
        raise fail(path, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) < n:
        raise fail(path, "safetensors header is cut short: the file is truncated")
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise fail(path, "safetensors header is not valid JSON: the file is corrupt") from None
    if not isinstance(header, dict):
        raise fail(path, "safetensors header is not a JSON object")
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise fail(path, f"safetensors tensor {name!r} has no data_offsets") from None
        end = max(end, int(stop))
    if size < 8 + n + end:
        raise fail(path, f"safetensors header needs {8 + n + end} bytes but the file has {size}: truncated")
    return header, 8 + n


def sniff(p: Probe) -> int:
    return OWN_NAME if p.suffix == ".safetensors" else NO


def parse(path: Path, *, trust: bool = False, shards: list[Path] | None = None) -> ParsedModel:
    """One safetensors file, or (when it has siblings) the whole sharded checkpoint it belongs to."""
    if shards is None and path.is_file():
        siblings = sorted(path.parent.glob("*.safetensors"))
        shards = siblings if len(siblings) > 1 else None
    files = shards or [path]
    dtypes: Counter = Counter()
    tensors = params = 0
    metadata: dict[str, Any] = {}
    for f in files:
        header, _ = read_header(f)
        metadata.update(header.get("__metadata__") or {})
        for name, info in header.items():
            if name == "__metadata__":
                continue
            tensors += 1
            n = 1
            for d in info.get("shape", []):
                n *= int(d)
            params += n
            dtypes[_DTYPES.get(info.get("dtype"), str(info.get("dtype")))] += 1
    framework = _FRAMEWORKS.get(str(metadata.get("format", "")))
    return ParsedModel(format="SafeTensors", framework=framework, path=path, layers={"tensors": tensors},
                       details={"parameters": params, "dtypes": dict(dtypes), "metadata": metadata,
                                "files": [f.name for f in files]})
