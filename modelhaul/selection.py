"""Partial pulls: which layers of a ModelPack artifact a set of ``--include`` globs chooses.

A ModelPack artifact has one layer per file, named by its ``org.cncf.model.filepath`` annotation
(the file's path under ``model/``), so a pull of chosen files needs only their layers (what KitOps'
``unpack --filter`` and modctl's extract of chosen files offer). A pattern is an ``fnmatch`` glob
(``*`` also crosses ``/``) matched against the path an export writes, relative to the export
directory (``model/sub/w.onnx``), or relative to ``model/`` (``sub/w.onnx``): ``'*.onnx'`` takes
every ONNX file, ``'model/*.onnx'`` the same, ``'model/tokenizer/*'`` one directory. A layer that
packs a directory (a tar) is chosen by its directory's path. The config blob always comes.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any

from modelhaul import oci
from modelhaul.errors import ConfigError


def layer_path(layer: dict[str, Any]) -> str | None:
    """The path under ``model/`` a layer is written to (its filepath annotation, else its title)."""
    ann = layer.get("annotations") or {}
    return ann.get(oci.ANNOTATION_FILEPATH) or ann.get(oci.ANNOTATION_TITLE)


def matches(path: str, patterns: Sequence[str]) -> bool:
    path = path.lstrip("/")
    return any(fnmatchcase(path, p) or fnmatchcase(f"model/{path}", p) for p in patterns)


def chosen_layers(manifest: oci.Manifest, include: Sequence[str] | None, what: str = "") -> list[dict[str, Any]]:
    """The layers of ``manifest`` that ``include`` chooses (all of them when it is empty).

    Raises :class:`ConfigError` for an artifact without per-file layers (ormb packs every file into
    one tar) and when no layer matches (naming a few of the paths there are).
    """
    layers = manifest.layers
    if not include:
        return layers
    from modelhaul.oci import bundle_format_of_manifest

    what = what or manifest.digest
    kind = bundle_format_of_manifest(manifest)
    if kind != "modelpack":
        raise ConfigError(f"{what}: --include needs a ModelPack artifact (one layer per file); this one is "
                          f"{kind}: pull it whole")
    chosen = [layer for layer in layers if (p := layer_path(layer)) and matches(p, include)]
    if not chosen:
        paths = sorted(p for layer in layers if (p := layer_path(layer)))
        shown = ", ".join(f"model/{p}" for p in paths[:5]) + (", ..." if len(paths) > 5 else "")
        raise ConfigError(f"{what}: --include {' '.join(include)} matches none of its {len(paths)} files "
                          f"({shown}); patterns are globs over model/<path>")
    return chosen
