"""PyTorch zip archives: TorchScript (``torch.jit.save``) and pickled modules (``torch.save``).

Both are zip files holding a ``data.pkl`` pickle. Parsing never runs it: the pickle is scanned
symbolically (:mod:`modelhaul.formats.pickle_scan`) for the module classes it builds (the layers) and
the tensors it holds. For TorchScript, the ``forward`` signature is read from the archive's
``code/`` sources, and shapes/dtypes from ``traced_inputs.pkl`` when ``torch.jit.trace`` recorded
them (the traced batch size is reported as dynamic, -1). Loading (for conversion) needs trust.
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

from modelhaul.config import Tensor
from modelhaul.errors import FormatError
from modelhaul.formats.base import CONTENT, NAME_ONLY, NO, ParsedModel, Probe, fail, tensor
from modelhaul.formats.pickle_safety import unsafe_globals
from modelhaul.formats.pickle_scan import Global, Obj, scan_bytes

_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
    "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
}
_MANGLE = re.compile(r"\.___torch_mangle_\d+")


def archive_prefix(names: list[str]) -> str:
    """The single top directory torch writes every entry under (``archive/`` or the file's stem)."""
    for n in names:
        if n.endswith("data.pkl") or n.endswith("/version"):
            return n.rsplit("/", 1)[0] + "/" if "/" in n else ""
    return names[0].split("/", 1)[0] + "/" if names and "/" in names[0] else ""


def sniff(p: Probe) -> int:
    """A torch zip archive (``data.pkl`` inside: TorchScript or ``torch.save``); by name: ``.pt``/``.pth``."""
    if p.is_zip:
        return CONTENT if any(n.endswith("data.pkl") for n in p.zip_names) or p.suffix in (".pt", ".pth") else NO
    return NAME_ONLY if p.suffix in (".pt", ".pth") else NO


def format_of(path: Path) -> str:
    """``TorchScript`` for a scripted/traced archive, ``PyTorch`` for a pickled module (``torch.save``)."""
    with zipfile.ZipFile(path) as zf:
        return "TorchScript" if is_torchscript(zf.namelist()) else "PyTorch"


def is_torchscript(names: list[str]) -> bool:
    prefix = archive_prefix(names)
    return any(n.startswith(prefix + "code/") for n in names) and (prefix + "data.pkl") in names


def parse(path: Path, *, trust: bool = False) -> ParsedModel:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            prefix = archive_prefix(names)
            scan = scan_bytes(zf.read(prefix + "data.pkl"))
            script = any(n.startswith(prefix + "code/") for n in names)
            version = zf.read(prefix + "version").decode().strip() if prefix + "version" in names else None
            inputs: list[Tensor] = []
            outputs: list[Tensor] = []
            if script:
                inputs, outputs = _script_signature(zf, prefix, scan.root, names)
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, IndexError, UnicodeDecodeError) as exc:
        raise fail(path, f"not a readable PyTorch archive ({exc}); the file is corrupt or truncated") from None
    root = scan.root.class_name if isinstance(scan.root, Obj) else None
    layers = Counter()
    for cls, n in scan.built.items():
        if cls == root or not _is_module_class(cls):
            continue
        layers[_MANGLE.sub("", cls).rsplit(".", 1)[-1]] += n
    details: dict[str, Any] = {"root_module": root, "parameters": _count_parameters(scan.root),
                               "archive_version": version}
    if not script:  # torch.load unpickles data.pkl (torch.jit.load reads only TorchScript types)
        details["referenced_classes"] = sorted(scan.globals)
        details["unsafe_globals"] = unsafe_globals(scan.globals)
    return ParsedModel(format="TorchScript" if script else "PyTorch", framework="PyTorch", path=path,
                       inputs=inputs, outputs=outputs, layers=dict(layers), details=details)


def _is_module_class(cls: str) -> bool:
    return cls.startswith(("__torch__.", "torch.nn.")) or (
        "." in cls and not cls.startswith(("torch.", "collections.", "__builtin__.", "builtins.", "<")))


def _count_parameters(root: Any) -> int:
    total = 0
    seen: set[int] = set()
    stack = [root]
    while stack:
        v = stack.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        if isinstance(v, Obj):
            if v.class_name == "torch._utils._rebuild_tensor_v2":
                shape = v.args[2] if len(v.args) > 2 and isinstance(v.args[2], tuple) else ()
                n = 1
                for d in shape:
                    n *= int(d)
                total += n
                continue
            stack.extend([v.args, v.state])
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
    return total


def _tensor_meta(v: Any) -> tuple[str | None, tuple[int, ...] | None]:
    """dtype and shape of a pickled ``_rebuild_tensor_v2`` call."""
    if not (isinstance(v, Obj) and v.class_name == "torch._utils._rebuild_tensor_v2" and len(v.args) > 2):
        return None, None
    storage = v.args[0]
    dtype = None
    if isinstance(storage, Obj) and storage.args and isinstance(storage.args[0], tuple):
        kind = storage.args[0][1] if len(storage.args[0]) > 1 else None
        if isinstance(kind, Global):
            dtype = _STORAGE_DTYPES.get(kind.name)
    return dtype, v.args[2] if isinstance(v.args[2], tuple) else None


def _script_signature(zf: zipfile.ZipFile, prefix: str, root: Any, names: list[str]
                      ) -> tuple[list[Tensor], list[Tensor]]:
    if not isinstance(root, Obj) or not isinstance(root.cls, Global):
        return [], []
    module, cls = root.cls.module, root.cls.name
    code = prefix + "code/" + module.replace(".", "/") + ".py"
    if code not in names:
        return [], []
    src = zf.read(code).decode("utf-8")
    m = re.search(rf"class {re.escape(cls)}\(.*?\n  def forward\(self[^,)]*(?:,(?P<args>.*?))?\)\s*->\s*"
                  rf"(?P<ret>[^:]+):", src, re.S)
    if not m:
        return [], []
    args = [a.strip() for a in _split_top(m.group("args") or "") if a.strip()]
    traced = _traced_inputs(zf, prefix, names)
    inputs = []
    for i, arg in enumerate(args):
        name, _, typ = arg.partition(":")
        dtype, shape = traced[i] if i < len(traced) else (None, None)
        size = [-1, *shape[1:]] if shape else None
        inputs.append(tensor(name.strip(), dtype, size) if typ.strip() == "Tensor" else
                      Tensor(name=name.strip(), op_type=typ.strip()))
    ret = m.group("ret").strip()
    parts = _split_top(ret[len("Tuple["):-1]) if ret.startswith("Tuple[") else [ret]
    outputs = [Tensor(name=f"output_{i}", op_type=None if p.strip() == "Tensor" else p.strip())
               for i, p in enumerate(parts)]
    return inputs, outputs


def _traced_inputs(zf: zipfile.ZipFile, prefix: str, names: list[str]) -> list[tuple[Any, Any]]:
    entry = prefix + "traced_inputs.pkl"
    if entry not in names:
        return []
    scan = scan_bytes(zf.read(entry))
    root = scan.root
    while isinstance(root, Obj) and root.class_name == "torch.jit._pickle.restore_type_tag" and root.args:
        root = root.args[0]
        if isinstance(root, dict):
            root = root.get("forward")
    return [_tensor_meta(t) for t in root] if isinstance(root, list) else []


def _split_top(s: str) -> list[str]:
    """Split on commas that are not inside brackets (``Tuple[Tensor, Tensor], int``)."""
    out, depth, cur = [], 0, ""
    for ch in s:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out


def load(path: Path, *, trust: bool = False) -> Any:
    """The module, for conversion: TorchScript via ``torch.jit.load``, pickles via ``torch.load``."""
    if not trust:
        raise FormatError(f"{path}: loading a PyTorch archive runs code from it; pass trust=True (--trust) "
                          "only for models from a source you trust")
    import torch

    try:
        with zipfile.ZipFile(path) as zf:
            script = is_torchscript(zf.namelist())
        if script:
            return torch.jit.load(str(path), map_location="cpu").eval()
        return torch.load(str(path), map_location="cpu", weights_only=False).eval()
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad archive
        raise fail(path, f"PyTorch could not load the model: {exc}") from None
