"""Model directory <-> OCI artifact (config blob + layers + manifest), in every supported format.

Writers: ModelPack (default), KitOps ModelKits and ormb. Readers: those, CNAI and ``oras push`` files. Whatever the
format, the full ModelConfig travels in the manifest annotation ``io.modelhaul.config`` and comes
back on read; foreign artifacts (no annotation) get a config mapped from their own config blob.

Modules, by what they hold (this package only re-exports what the rest of modelhaul imports):

* ``source``: model directories as users hand them over (files, layout, the config inferred);
* ``packing``: :func:`pack`, a directory -> config blob, layers and manifest;
* ``artifact_config``: :func:`read_config`, an artifact's ModelConfig from the annotation or mapped;
* ``unpacking``: :func:`unpack`, an artifact -> ``ormbfile.yaml`` + ``model/``;
* ``nofollow``: the writer of layer files that never follows a symlink;
* ``modelpack``, ``kitops``, ``kitwrite``, ``layers``, ``tarball``: each bundle format's own details.
"""

from __future__ import annotations

from modelhaul.bundle.artifact_config import config_blob_json, read_config
from modelhaul.bundle.nofollow import move_layer_file, write_layer_file
from modelhaul.bundle.packing import (
    Digester,
    LayerStreamer,
    Packed,
    ormb_config_bytes,
    ormb_gzip_level,
    pack,
)
from modelhaul.bundle.unpacking import Downloader, unpack

__all__ = ["Digester", "Downloader", "LayerStreamer", "Packed", "config_blob_json", "move_layer_file",
           "ormb_config_bytes", "ormb_gzip_level", "pack", "read_config", "unpack", "write_layer_file"]
