"""Which layers of an artifact are read, and how: one table from media type to reading plan.

A layer is either one file (ModelPack/CNAI ``.raw``, an ``oras push`` file) written under its
path annotation, or a tar (``.tar``, ``.tar+gzip``, ``.tar+zstd``) extracted at the model root. A
media type this table does not know is refused, naming the layer: writing compressed or foreign
bytes out as if they were the model file would corrupt the model silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelhaul import oci
from modelhaul.errors import BundleError
from modelhaul.oci import (
    CNAI_ANNOTATION_FILEPATH,
    CNAI_LAYER_PREFIX,
    ORAS_DIRECTORY,
    ORAS_UNPACK,
)

# the part after ".v1." in a ModelPack, CNAI or KitOps layer type -> compression of the tar (None: raw)
_PACKINGS = {"raw": None, "tar": "", "tar+gzip": "gzip", "tar+zstd": "zstd"}
_FAMILIES = (oci.MODELPACK_LAYER_PREFIX, CNAI_LAYER_PREFIX, oci.KITOPS_LAYER_PREFIX)
_IGNORED = oci.IGNORED_LAYER_TYPES


@dataclass(frozen=True)
class LayerPlan:
    """How to read one layer: ``file`` at ``path``, or ``tar`` (``compression``) at the model root."""

    how: str  # file | tar | skip
    path: str | None = None
    compression: str | None = None  # "" (plain tar), "gzip", "zstd"
    strip: str | None = None  # leading directory dropped from tar entries
    within: str | None = None  # the directory every entry must be in (an oras directory's title)


def _refuse(layer: dict[str, Any], why: str) -> BundleError:
    ann = layer.get("annotations") or {}
    name = ann.get(oci.ANNOTATION_FILEPATH) or ann.get(CNAI_ANNOTATION_FILEPATH) or ann.get(oci.ANNOTATION_TITLE)
    where = f" ({name})" if name else ""
    return BundleError(f"layer {layer.get('digest')}{where}: media type {layer.get('mediaType', '')!r} {why}")


def _packing(media_type: str) -> str | None:
    """``raw`` | ``tar`` | ``tar+gzip`` | ``tar+zstd`` for a ModelPack/CNAI/KitOps layer type, else None."""
    if not media_type.startswith(_FAMILIES) or ".v1." not in media_type:
        return None
    suffix = media_type.rsplit(".v1.", 1)[1]
    return suffix if suffix in _PACKINGS else None


def plan(bundle_format: str, layer: dict[str, Any]) -> LayerPlan:
    """The reading plan for ``layer`` of an artifact in ``bundle_format`` (modelpack|ormb|kitops|oras)."""
    mt = layer.get("mediaType", "")
    ann = layer.get("annotations") or {}
    if mt in _IGNORED:
        return LayerPlan("skip")
    if bundle_format == "ormb":
        if mt != oci.ORMB_LAYER:
            raise _refuse(layer, f"is not ormb's model layer ({oci.ORMB_LAYER}); refusing to guess")
        return LayerPlan("tar", compression="gzip", strip="model")
    if bundle_format == "oras":
        title = ann.get(oci.ANNOTATION_TITLE)
        if not title:
            raise _refuse(layer, f"has no {oci.ANNOTATION_TITLE} annotation, so no file name")
        if ann.get(ORAS_UNPACK) == "true" or mt == ORAS_DIRECTORY:  # a directory: under its title, as oras pull
            return LayerPlan("tar", compression="gzip" if mt.endswith("+gzip") else "", within=title.strip("/"))
        return LayerPlan("file", path=title)
    packing = _packing(mt)
    if packing is None:
        raise _refuse(layer, "is not one modelhaul reads (ModelPack, CNAI or KitOps layers that are .raw, .tar, "
                             ".tar+gzip or .tar+zstd); refusing to write it out as the file")
    if packing == "raw":
        rel = ann.get(oci.ANNOTATION_FILEPATH) or ann.get(CNAI_ANNOTATION_FILEPATH) or ann.get(oci.ANNOTATION_TITLE)
        if not rel:
            raise _refuse(layer, f"is a single file but has no {oci.ANNOTATION_FILEPATH} annotation")
        return LayerPlan("file", path=rel)
    # modctl and KitOps tars hold entries with their full relative paths: extract at the model root
    return LayerPlan("tar", compression=_PACKINGS[packing])
