"""Keras models: ``.keras`` (a zip with ``config.json`` and ``metadata.json``) and legacy ``.h5``.

Both carry the model's architecture as JSON (the zip's ``config.json``; the HDF5 root attribute
``model_config``). Parsing reads that JSON only: no weights, no TensorFlow, and no deserialization
of layers (which could run a ``Lambda`` layer's code). ``.h5`` needs ``h5py`` to read the attribute.
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

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def sniff(p: Probe) -> int:
    """HDF5 under a Keras name, or a zip with Keras' ``config.json``; by name: ``.keras``, or ``.h5`` not a zip."""
    if p.head.startswith(HDF5_MAGIC) and p.suffix in (".h5", ".hdf5", ".keras"):
        return CONTENT
    if p.is_zip and "config.json" in p.zip_names and ("metadata.json" in p.zip_names or p.suffix == ".keras"):
        return CONTENT
    return NAME_ONLY if p.suffix == ".keras" or (p.suffix == ".h5" and not p.is_zip) else NO


def parse(path: Path, *, trust: bool = False) -> ParsedModel:
    if path.suffix == ".keras" or zipfile.is_zipfile(path):
        config, meta, fmt = _keras_zip(path), {}, "Keras"
        try:
            with zipfile.ZipFile(path) as zf:
                if "metadata.json" in zf.namelist():
                    meta = json.loads(zf.read("metadata.json"))
        except (zipfile.BadZipFile, json.JSONDecodeError):
            meta = {}
        version = meta.get("keras_version")
    else:
        config, version, fmt = *_h5(path), "H5"
    if not isinstance(config, dict) or "class_name" not in config:
        raise fail(path, "Keras model config has no class_name; the file is not a saved Keras model")
    layers: Counter = Counter()
    _count_layers(config, layers, top=True)
    inputs, outputs = _signature(config)
    return ParsedModel(format=fmt, framework="Keras", path=path, inputs=inputs, outputs=outputs,
                       layers=dict(layers), framework_version=version,
                       details={"model_class": config.get("class_name")})


def _keras_zip(path: Path) -> Any:
    try:
        with zipfile.ZipFile(path) as zf:
            return json.loads(zf.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, EOFError) as exc:
        raise fail(path, f"not a readable .keras archive ({exc}); the file is corrupt or truncated") from None


def _h5(path: Path) -> tuple[Any, str | None]:
    try:
        import h5py
    except ImportError:
        raise FormatError(f"{path}: reading Keras .h5 files needs h5py (pip install h5py)") from None
    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            version = f.attrs.get("keras_version")
    except OSError as exc:
        raise fail(path, f"not a readable HDF5 file ({exc}); the file is corrupt or truncated") from None
    if raw is None:
        raise fail(path, "HDF5 file has no model_config attribute: it holds weights only, not a Keras model")
    raw = raw.decode() if isinstance(raw, bytes) else str(raw)
    version = version.decode() if isinstance(version, bytes) else (str(version) if version is not None else None)
    try:
        return json.loads(raw), version
    except json.JSONDecodeError:
        raise fail(path, "model_config attribute is not valid JSON") from None


def _count_layers(node: dict[str, Any], counts: Counter, *, top: bool = False) -> None:
    cfg = node.get("config") or {}
    sub = cfg.get("layers") if isinstance(cfg, dict) else None
    if not top:
        counts[node.get("class_name", "?")] += 1
    if isinstance(sub, list):
        for layer in sub:
            if isinstance(layer, dict):
                _count_layers(layer, counts)


def _dtype(cfg: dict[str, Any]) -> str:
    d = cfg.get("dtype", "float32")
    if isinstance(d, dict):  # Keras 3 DTypePolicy
        d = (d.get("config") or {}).get("name", "float32")
    return "float32" if d in (None, "mixed_float16", "mixed_bfloat16") else str(d)


def _signature(config: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
    cfg = config.get("config") or {}
    layers = [x for x in cfg.get("layers", []) if isinstance(x, dict)]
    by_name = {(x.get("config") or {}).get("name", x.get("name")): x for x in layers}
    inputs: list[Tensor] = []
    if config.get("class_name") == "Sequential":
        first = layers[0] if layers else {}
        fc = first.get("config") or {}
        shape = fc.get("batch_shape") or fc.get("batch_input_shape") or cfg.get("build_input_shape") \
            or (config.get("build_config") or {}).get("input_shape")
        if shape is not None:
            inputs = [tensor(fc.get("name", "input") if first.get("class_name") == "InputLayer" else "input",
                             _dtype(fc), list(shape))]
        out_layers = [layers[-1]] if layers else []
    else:
        for ref in _refs(cfg.get("input_layers")):
            layer = by_name.get(ref, {})
            lc = layer.get("config") or {}
            shape = lc.get("batch_shape") or lc.get("batch_input_shape")
            inputs.append(tensor(ref, _dtype(lc), list(shape) if shape is not None else None))
        out_layers = [by_name[r] for r in _refs(cfg.get("output_layers")) if r in by_name]
    outputs = []
    for layer in out_layers:
        lc = layer.get("config") or {}
        units = lc.get("units")
        outputs.append(tensor(lc.get("name", layer.get("name")), _dtype(lc),
                              [-1, int(units)] if isinstance(units, int) else None))
    return inputs, outputs


def _refs(spec: Any) -> list[str]:
    """``input_layers`` is ``[name, 0, 0]`` or a list of those."""
    if not isinstance(spec, list) or not spec:
        return []
    if isinstance(spec[0], str):
        return [spec[0]]
    return [s[0] for s in spec if isinstance(s, list) and s and isinstance(s[0], str)]
