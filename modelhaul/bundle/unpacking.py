"""Unpacking an OCI artifact into a model directory (``ormbfile.yaml`` + ``model/``), in every format read.

Readers: ModelPack, KitOps ModelKits, ormb, CNAI and ``oras push`` files. Everything is written to a
sibling temp directory first and renamed into place at the end.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from modelhaul import config as config_mod
from modelhaul import meter, oci
from modelhaul.bundle import layers as layers_mod
from modelhaul.bundle.artifact_config import read_config
from modelhaul.bundle.nofollow import move_layer_file, write_layer_file
from modelhaul.bundle.source import config_from_files
from modelhaul.bundle.tarball import decompress_zstd, extract_tar
from modelhaul.config import ModelConfig
from modelhaul.errors import BundleError
from modelhaul.oci import bundle_format_of_manifest
from modelhaul.selection import chosen_layers

# brings the chosen layers' blobs a layout lacks into a directory, verified: {digest: owned file}
Downloader = Callable[[list[dict[str, Any]], Path], dict[str, Path]]


def _move_into_place(work: Path, dest: Path) -> None:
    """Rename the finished ``work`` directory to ``dest``; an existing (empty) ``dest`` is kept as it is."""
    from modelhaul import fscopy

    if dest.is_dir() and not dest.is_symlink():
        for child in work.iterdir():
            os.rename(child, dest / child.name)
        work.rmdir()
        return
    os.chmod(work, 0o777 & ~fscopy.UMASK)  # mkdtemp made it 0700
    os.rename(work, dest)


def _extract_layer(layer: dict[str, Any], blob: Path, how: layers_mod.LayerPlan, model: Path, work: Path) -> None:
    """Extract a tar layer at the model root, decompressing zstd first (tarfile reads no zstd)."""
    plain = blob
    try:
        if how.compression == "zstd":
            plain = decompress_zstd(blob, work / ".layer.tar")
        extract_tar(plain, model, strip=how.strip, within=how.within)
    except tarfile.TarError as exc:
        raise BundleError(f"layer {layer['digest']}: media type {layer.get('mediaType')!r} but not a readable "
                          f"tar ({exc}); refusing") from None
    finally:
        if plain != blob:
            plain.unlink(missing_ok=True)


def unpack(manifest: oci.Manifest, layout: Any, dest: Path, include: Sequence[str] | None = None,
           download: Downloader | None = None) -> ModelConfig:
    """Write ``dest/ormbfile.yaml`` + ``dest/model/...`` from an artifact whose blobs are in ``layout``.

    ``include`` (globs, see :mod:`modelhaul.selection`) writes only the chosen files. ``download``
    (a pull straight into the export, see :func:`modelhaul.artifacts.fetch`) brings the blobs
    ``layout`` lacks into a directory beside ``dest`` first; a raw layer's downloaded blob is then
    renamed into place, so each byte is written once.

    Everything is written to a sibling temp directory first and renamed into place at the end, so
    a refused entry or a corrupt blob leaves nothing at ``dest``.
    """
    cfg = read_config(manifest, layout)
    kind = bundle_format_of_manifest(manifest)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        model = work / "model"
        model.mkdir()
        planned = [(layer, how) for layer in chosen_layers(manifest, include)
                   if (how := layers_mod.plan(kind, layer)).how != "skip"]
        owned = download([layer for layer, _ in planned], work / ".blobs") if download else {}
        uses = collections.Counter(layer["digest"] for layer, _ in planned)
        for layer, how in planned:
            digest = layer["digest"]
            uses[digest] -= 1
            blob = owned.get(digest) or layout.blob_path(digest)
            if blob is None:
                raise BundleError(f"blob {digest} is missing from the local store; pull again")
            last_use = digest in owned and uses[digest] == 0
            if how.how == "file" and last_use:
                move_layer_file(blob, model, how.path or "")
                continue
            # a copy out of the store is shown as it moves (a download was shown as it arrived)
            with contextlib.nullcontext() if digest in owned else meter.layer(
                    f"out:{digest}", oci.label_of(layer), int(layer.get("size", 0))):
                if how.how == "file":
                    write_layer_file(blob, model, how.path or "")
                    continue
                _extract_layer(layer, blob, how, model, work)
                if digest not in owned:
                    meter.moved(int(layer.get("size", 0)))  # the tar reader reports nothing itself
            if last_use:
                blob.unlink()  # room on the disk for the next layer of a big model
        shutil.rmtree(work / ".blobs", ignore_errors=True)
        if oci.ANNOTATION_CONFIG not in (manifest.json.get("annotations") or {}) and (
            kind == "oras" or not cfg.format
        ):  # a foreign artifact that does not say its format: the files are out, infer it from them
            seen = config_from_files([], model)
            cfg = seen.model_copy(update={"origin": cfg.origin}) if kind == "oras" else cfg.model_copy(
                update={"format": seen.format, "framework": cfg.framework or seen.framework})
        config_mod.dump(cfg, work / config_mod.ORMBFILE)
        _move_into_place(work, dest)  # dest is absent or empty (checked by the caller)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return cfg
