"""Detect and parse model files of every common format, without running them.

``detect(model_dir)`` names the format of a model directory; ``parse_directory(model_dir)`` returns a
:class:`ParsedModel` (signature with -1 for dynamic dims, layer/op counts, opset or framework
version). One module per format does the recognising (``sniff``) and the reading (``parse``); this
package only dispatches, in the order and with the names of the format table (:mod:`.table`).
Importing it is cheap: no ML framework is imported until a parser needs one.

Untrusted files are never executed: pickles are scanned, not loaded, unless ``trust=True``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelhaul import format_table as table
from modelhaul.errors import FormatError
from modelhaul.formats.base import NO, OWN_NAME, ParsedModel, Probe

__all__ = ["ParsedModel", "detect", "find_model", "parse_directory", "parse_path"]

_SKIP_NAMES = {"ormbfile.yaml", "Kitfile", "README.md", "LICENSE", "conda.yaml", "python_env.yaml",
               "requirements.txt", "input_example.json", "serving_input_example.json", "MLmodel",
               "config.pbtxt", "model-settings.json"}
_MAX_DEPTH = 3


def _module(key: str):
    return importlib.import_module(f"modelhaul.formats.{key}")


_SNIFFERS: list[Any] = [None, ()]  # (the table they were read from, ((parser, its sniff), ...))


def _sniffers() -> tuple[tuple[str, Callable[[Probe], int]], ...]:
    """Each parser's ``sniff`` in the table's order, looked up once per table (not once per file)."""
    if _SNIFFERS[0] is not table.FORMATS:
        found = ((key, getattr(_module(key), "sniff", None)) for key in table.parsers())
        _SNIFFERS[:] = [table.FORMATS, tuple((k, f) for k, f in found if f)]  # MLflow has none: a directory
    return _SNIFFERS[1]


def sniff(path: Path) -> str | None:
    """The parser key for one file, from its name and first bytes (and a zip's member names).

    Each parser's ``sniff`` says how sure it is (see :class:`~modelhaul.formats.base.Probe`); the
    surest wins, and between equally sure parsers the format table's order.
    """
    if path.name in _SKIP_NAMES:
        return None
    probe, best, best_level = Probe(path), None, NO
    for key, sniffer in _sniffers():
        level = sniffer(probe)
        if level == OWN_NAME:
            return key
        if level > best_level:
            best, best_level = key, level
    return best


def detect_file(path: Path) -> tuple[str, str | None] | None:
    """(format, framework) of one file from its content, or None when no parser recognises it."""
    key = sniff(path)
    if not key:
        return None
    row = table.of_parser(key)
    return row.name, row.framework


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
        raise FormatError(f"{root}: no model file of a known format found "
                          f"({', '.join(f.name for f in table.FORMATS if f.parser)})")
    wanted, parsers = table.hint(hint), table.parsers()

    def rank(c: tuple[str, Path]) -> tuple[int, int, int, str]:
        key, p = c
        return (0 if key == wanted else 1, parsers.index(key), len(p.relative_to(root).parts), str(p))

    key, path = min(cands, key=rank)
    return key, path


def detect(model_dir: str | Path) -> str:
    """The format of a model directory (or file), in ormb's names: ``ONNX``, ``SKLearn``, ``MLflow`` ..."""
    key, path = find_model(model_dir)
    format_of = getattr(_module(key), "format_of", None)  # a parser that reads several formats tells which
    return format_of(path) if format_of else table.of_parser(key).name


def parse_path(path: Path, *, trust: bool = False, key: str | None = None) -> ParsedModel:
    """Parse one model file (or SavedModel / MLflow directory)."""
    path = Path(path)
    if key is None:
        key, path = find_model(path)
    return _module(key).parse(path, trust=trust)


def parse_directory(model_dir: str | Path, *, trust: bool = False, hint: str | None = None) -> ParsedModel:
    """Parse the model in ``model_dir`` (``hint``: the format the config claims, preferred if present).

    Raises FormatError (naming the file) for an unknown, corrupt or truncated model.
    """
    key, path = find_model(model_dir, hint)
    return parse_path(path, trust=trust, key=key)
