"""What a parser returns, and the small vocabulary every format module shares.

Every format module turns its own files into a :class:`ParsedModel`; this module holds that type,
the dtype names all formats are mapped onto (numpy's: ``float32``, ``int64``, ``string`` ...), and
helpers for reading bounded headers so that parsing never reads a model's weights.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from modelhaul.config import ModelConfig, Signature, Tensor
from modelhaul.errors import FormatError

# Names used by other tools mapped onto numpy's dtype names (what ModelConfig's dType carries).
_DTYPE_ALIASES = {
    "float": "float32", "float32": "float32", "fp32": "float32", "single": "float32",
    "double": "float64", "float64": "float64", "fp64": "float64",
    "half": "float16", "float16": "float16", "fp16": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "long": "int64", "int64": "int64", "integer": "int32", "int32": "int32",
    "int": "int64", "int16": "int16", "int8": "int8",
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64",
    "bool": "bool", "boolean": "bool",
    "string": "string", "str": "string", "object": "string", "binary": "bytes", "bytes": "bytes",
    "datetime": "datetime64",
}
# the config label that carries a model's unsafe pickle globals (pickle_safety.py), comma-separated
UNSAFE_LABEL = "modelhaul.unsafe-globals"


def norm_dtype(name: str | None) -> str | None:
    """A dtype name from any format (MLflow ``double``, safetensors ``F32``, numpy ``<f8``) in numpy terms."""
    if name is None:
        return None
    key = str(name).strip().lower()
    if key in _DTYPE_ALIASES:
        return _DTYPE_ALIASES[key]
    try:
        import numpy as np

        dt = np.dtype(key)
    except (TypeError, ValueError):
        return key
    return "string" if dt.kind in "OUS" else dt.name


def tensor(name: str | None, dtype: str | None, shape: list[int | None] | None) -> Tensor:
    """A Tensor with -1 for every dimension that is not a known non-negative integer."""
    size = None if shape is None else [d if isinstance(d, int) and d >= 0 else -1 for d in shape]
    return Tensor(name=name, d_type=norm_dtype(dtype), size=size)


@dataclass
class ParsedModel:
    """What parsing a model's files tells us: enough to fill ModelConfig and to serve or convert it."""

    format: str  # ormb's format names: ONNX, TorchScript, PT2, SavedModel, Keras, H5, SKLearn, ...
    framework: str | None
    path: Path  # the model file (or SavedModel directory) that was parsed
    inputs: list[Tensor] = field(default_factory=list)
    outputs: list[Tensor] = field(default_factory=list)
    layers: dict[str, int] = field(default_factory=dict)
    opset: int | None = None
    framework_version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # format-specific facts (JSON-able)
    container: str | None = None  # "MLflow" when the model sits in an MLflow model directory

    @property
    def signature(self) -> Signature:
        return Signature(inputs=self.inputs, outputs=self.outputs, layers=dict(self.layers))

    @property
    def classifier(self) -> bool:
        return bool(self.details.get("classifier"))

    def applied_to(self, cfg: ModelConfig) -> ModelConfig:
        """``cfg`` with what this parse found; it replaces the signature as a whole (merging would keep
        stale layer counts) and an earlier parse's unsafe mark."""
        patch = self.config_patch()
        base = cfg.model_copy(update={"signature": None} if patch.get("signature") else {})
        base.labels = {k: v for k, v in base.labels.items() if k != UNSAFE_LABEL}
        return base.merged(patch)

    def config_patch(self) -> dict[str, Any]:
        """ModelConfig fields (camelCase) that parsing established."""
        patch: dict[str, Any] = {
            "format": self.format,
            "signature": self.signature.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        if self.framework:
            patch["framework"] = self.framework
        labels = {}
        if self.opset is not None:
            labels["modelhaul.opset"] = str(self.opset)
        if self.details.get("ir_version") is not None:  # what a runtime checks before loading an ONNX model
            labels["modelhaul.onnx-ir"] = str(self.details["ir_version"])
        if self.framework_version:
            labels["modelhaul.framework-version"] = self.framework_version
        if self.details.get("unsafe_globals"):  # deploy and promote read it back
            labels[UNSAFE_LABEL] = ",".join(self.details["unsafe_globals"])
        if labels:
            patch["labels"] = labels
        return patch


def fail(path: Path, what: str) -> FormatError:
    """A FormatError whose one-line message names the file at fault."""
    return FormatError(f"{path}: {' '.join(str(what).split())}")


def read_head(path: Path, n: int = 64) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as exc:
        raise fail(path, f"cannot read: {exc.strerror or exc}") from None


def load_json(path: Path, what: str, limit: int = 256 << 20) -> Any:
    """A JSON file that must be at most ``limit`` bytes (model metadata, never weights)."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise fail(path, f"{what} is {size} bytes, larger than the {limit} allowed for metadata")
        return json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise fail(path, f"{what} is not valid JSON (line {exc.lineno}): the file is corrupt or truncated") \
            from None
    except OSError as exc:
        raise fail(path, f"cannot read {what}: {exc.strerror or exc}") from None


# what a format module's ``sniff`` returns: how sure it is that a file is its format
NO = 0
NAME_ONLY = 1  # only the name says so (the right suffix on content no parser recognises)
CONTENT = 2  # the bytes say so (magic number, zip members, a header)
OWN_NAME = 3  # a file name no other format uses (``.onnx``, ``saved_model.pb``): decided unread


class Probe:
    """One file as the ``sniff`` functions see it: name and suffix, and, read once when first asked,
    its first bytes and (for a zip) its member names.

    Each format module's ``sniff(probe)`` answers ``OWN_NAME``, ``CONTENT``, ``NAME_ONLY`` or ``NO``;
    the surest answer wins, and between equally sure ones the format table's order.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name
        self.suffix = path.suffix.lower()

    @cached_property
    def head(self) -> bytes:
        return read_head(self.path, 16)

    @property
    def is_zip(self) -> bool:
        return self.head.startswith(b"PK")

    @cached_property
    def zip_names(self) -> list[str]:
        """The member names of a zip archive ([] for anything else, or a zip that cannot be read)."""
        if not self.is_zip:
            return []
        try:
            with zipfile.ZipFile(self.path) as zf:
                return zf.namelist()
        except zipfile.BadZipFile:
            return []
