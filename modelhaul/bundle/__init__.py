"""Model directory <-> OCI artifact (config blob + layers + manifest), in every supported format.

Writers: ModelPack (default), KitOps ModelKits and ormb. Readers: those, CNAI and ``oras push`` files. Whatever the
format, the full ModelConfig travels in the manifest annotation ``io.modelhaul.config`` and comes
back on read; foreign artifacts (no annotation) get a config mapped from their own config blob.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from modelhaul import config as config_mod
from modelhaul import digestcache, meter, oci
from modelhaul.bundle import layers as layers_mod
from modelhaul.bundle import modelpack
from modelhaul.bundle.source import ModelFile, infer_format, list_files, open_source
from modelhaul.bundle.tarball import decompress_zstd, extract_tar, write_tar
from modelhaul.config import ModelConfig
from modelhaul.declarations import BUNDLE_FORMATS  # declared once, with the steps' choices
from modelhaul.errors import BundleError, ConfigError, UnsafeArchive
from modelhaul.meter import cancellable_pool
from modelhaul.oci import bundle_format_of_manifest
from modelhaul.selection import chosen_layers


# ormb's single layer must be gzip, but weights barely compress and deflate runs at ~45 MB/s:
# stored (level 0) gzip blocks are valid gzip at disk speed. MODELHAUL_GZIP_LEVEL=1..9 to compress.
def ormb_gzip_level() -> int:
    """``MODELHAUL_GZIP_LEVEL`` (0-9, default 0), read when packing so a bad value is one clear line."""
    text = os.environ.get("MODELHAUL_GZIP_LEVEL", "").strip() or "0"
    if not (text.isascii() and text.isdigit() and 0 <= int(text) <= 9):
        raise ConfigError(f"MODELHAUL_GZIP_LEVEL={text!r}: expected a gzip level from 0 (stored, fastest) to 9")
    return int(text)


@dataclass
class Packed:
    """An artifact ready to push: blobs (config first) and the manifest that names them."""

    manifest: bytes
    manifest_media_type: str
    config: ModelConfig
    blobs: list[oci.Blob]
    bundle_format: str
    _tmp: Path | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return sum(b.size for b in self.blobs)

    @property
    def digest(self) -> str:
        return oci.sha256_bytes(self.manifest)


Digester = Callable[[Path], str]
# brings the chosen layers' blobs a layout lacks into a directory, verified: {digest: owned file}
Downloader = Callable[[list[dict[str, Any]], Path], dict[str, Path]]
# uploads what a producer writes to a stream, returning (digest, size), or None when it cannot
LayerStreamer = Callable[[Callable[[Any], tuple[str, int]]], "tuple[str, int] | None"]


def _hash_files(paths: list[Path], digester: Digester | None = None) -> list[str]:
    """File digests, from the digest cache where unchanged, else from ``digester`` (default: hash).

    A publish to a registry passes a digester that uploads a new file while hashing it, so the
    file is read once instead of twice (see :func:`modelhaul.transfer.upload_digester`).
    """
    fn = digester or digestcache.file_digest
    if len(paths) <= 1:
        return [fn(p) for p in paths]
    with cancellable_pool(min(4, len(paths))) as pool:  # Ctrl-C stops an upload under way too
        return list(pool.map(fn, paths))


def _manifest(cfg_blob: oci.Blob, layers: list[oci.Blob], cfg: ModelConfig, bundle_format: str,
              artifact_type: str | None) -> bytes:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": oci.MANIFEST_V1}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = cfg_blob.descriptor()
    doc["layers"] = [b.descriptor() for b in layers]
    kept = cfg.origin.annotations if cfg.origin else {}
    carried = cfg.model_copy(update={"origin": cfg.origin.without_layers()}) if cfg.origin else cfg
    doc["annotations"] = {  # other tools' annotations kept; the layers' own travel in the layers
        **kept,
        oci.ANNOTATION_CONFIG: carried.to_json().decode(),
        oci.ANNOTATION_FORMAT: bundle_format,
    }
    if cfg.created:
        doc["annotations"][oci.ANNOTATION_CREATED] = config_mod.rfc3339(cfg.created)
    return oci.canonical_json(doc)


def ormb_config_bytes(cfg: ModelConfig) -> bytes:
    """ormb's config blob: raw UTF-8 (its yaml.v2 parser rejects JSON's surrogate-pair escapes)."""
    return json.dumps(cfg.to_ormb_dict(), sort_keys=True, ensure_ascii=False).encode()


@contextlib.contextmanager
def pack(
    src: Path,
    *,
    bundle_format: str = "modelpack",
    config: ModelConfig | dict[str, Any] | None = None,
    digester: Digester | None = None,
    stream_layer: LayerStreamer | None = None,
) -> Iterator[Packed]:
    """Pack a model directory; the result is valid inside the ``with`` block (temp files for ormb).

    ``stream_layer`` (a registry's ``upload_stream``) sends ormb's tar+gzip layer while it is
    built, in one pass and without a temp file; the layer blob is then already in the registry.
    """
    if bundle_format not in BUNDLE_FORMATS:
        raise ConfigError(f"unknown bundle format {bundle_format!r}; use one of {', '.join(BUNDLE_FORMATS)}")
    source = open_source(Path(src), config)
    cfg = source.config
    if bundle_format == "modelpack":
        digests = _hash_files([f.path for f in source.files], digester)
        layers = [modelpack.layer_blob(f, d, cfg.origin) for f, d in zip(source.files, digests, strict=True)]
        doc = modelpack.config_document(cfg, [b.digest for b in layers])
        cfg_blob = oci.Blob.from_bytes(oci.MODELPACK_CONFIG, oci.canonical_json(doc))
        manifest = _manifest(cfg_blob, layers, cfg, bundle_format, oci.MODELPACK_ARTIFACT)
        yield Packed(manifest, oci.MANIFEST_V1, cfg, [cfg_blob, *layers], bundle_format)
        return
    tmp = Path(tempfile.mkdtemp(prefix="modelhaul-pack-", dir=os.environ.get("MODELHAUL_TMPDIR")))
    try:
        if bundle_format == "kitops":
            from modelhaul.bundle.kitwrite import pack_source

            cfg_blob, layers = pack_source(source, config, tmp)
            manifest = _manifest(cfg_blob, layers, cfg, bundle_format, None)
            yield Packed(manifest, oci.MANIFEST_V1, cfg, [cfg_blob, *layers], bundle_format, tmp)
            return
        tar_path = tmp / "model.tar.gz"
        dirs = sorted({"model/"} | {
            f"model/{PurePosixPath(*PurePosixPath(f.relpath).parts[:i]).as_posix()}/"
            for f in source.files for i in range(1, len(PurePosixPath(f.relpath).parts))
        })
        def tar_to(out: Path | Any) -> tuple[str, int]:
            digest, size, _ = write_tar(((f"model/{f.relpath}", f.path) for f in source.files), out,
                                        gzip_level=ormb_gzip_level(), dirs=dirs)
            return digest, size

        streamed = stream_layer(tar_to) if stream_layer is not None else None
        if streamed is not None:
            layer = oci.Blob(oci.ORMB_LAYER, *streamed)
        else:
            layer = oci.Blob(oci.ORMB_LAYER, *tar_to(tar_path), path=tar_path)
        cfg_blob = oci.Blob.from_bytes(oci.ORMB_CONFIG, ormb_config_bytes(cfg))
        manifest = _manifest(cfg_blob, [layer], cfg, bundle_format, None)
        yield Packed(manifest, oci.MANIFEST_V1, cfg, [cfg_blob, layer], bundle_format, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- reading --------------------------------------------------------------------------------------


def _read_small_blob(target: oci.Target, desc: dict[str, Any]) -> bytes:
    if int(desc.get("size", 0)) > 16 << 20:
        raise BundleError(f"config blob {desc.get('digest')} is larger than 16 MiB; not a model config")
    path = target.blob_path(desc["digest"])
    if path is not None:
        data = path.read_bytes()
        if oci.sha256_bytes(data) != desc["digest"]:
            raise BundleError(f"blob {desc['digest']} in the local store is corrupt; pull it again")
        return data
    with tempfile.TemporaryDirectory(prefix="modelhaul-cfg-") as d:
        p = Path(d) / "blob"
        target.fetch_blob(desc["digest"], int(desc.get("size", 0)), p)
        return p.read_bytes()


def config_blob_json(manifest: oci.Manifest, target: oci.Target) -> Any:
    """The artifact's config blob as JSON (a Kitfile, a ModelPack or ormb config), as written."""
    try:
        return json.loads(_read_small_blob(target, manifest.config) or b"{}")
    except json.JSONDecodeError:
        raise ConfigError(f"manifest {manifest.digest}: config blob is not JSON") from None


def read_config(manifest: oci.Manifest, target: oci.Target) -> ModelConfig:
    """The ModelConfig of an artifact: modelhaul's annotation, else mapped from its config blob.

    What other tools wrote (their config, manifest and layer annotations) comes along in
    ``origin`` (see :mod:`modelhaul.origin`), so whatever re-publishes the model keeps it.
    """
    ann = (manifest.json.get("annotations") or {}).get(oci.ANNOTATION_CONFIG)
    if ann:
        try:
            cfg = ModelConfig.from_dict(json.loads(ann), source=f"manifest {manifest.digest}")
        except json.JSONDecodeError:
            raise ConfigError(f"manifest {manifest.digest}: {oci.ANNOTATION_CONFIG} is not JSON") from None
        return _with_origin(cfg, manifest) if cfg.origin else cfg
    return _with_origin(_foreign_config(manifest, target), manifest)


def _with_origin(cfg: ModelConfig, manifest: oci.Manifest) -> ModelConfig:
    """``cfg`` with the manifest's foreign annotations and each file's layer in ``origin``."""
    from modelhaul.origin import Origin, kept_of_manifest

    annotations, layers = kept_of_manifest(manifest.json)
    origin = cfg.origin or Origin()
    return cfg.model_copy(update={"origin": origin.model_copy(update={
        "annotations": {**annotations, **origin.annotations}, "layers": layers})})


def _foreign_config(manifest: oci.Manifest, target: oci.Target) -> ModelConfig:
    """The ModelConfig mapped from a foreign artifact's own config blob (or its files' names)."""
    kind = bundle_format_of_manifest(manifest)
    if kind == "unknown":
        mt = manifest.config.get("mediaType")
        raise BundleError(f"manifest {manifest.digest}: config type {mt!r} is not a model (ModelPack, ormb, KitOps, "
                          "or files pushed with oras push)")
    if kind == "oras":
        return _config_from_files([layer["annotations"][oci.ANNOTATION_TITLE] for layer in manifest.layers])
    doc = config_blob_json(manifest, target)
    if kind == "modelpack":
        return modelpack.config_from_document(doc)
    if kind == "ormb":
        return ModelConfig.from_ormb_dict(doc, source="ormb config")
    from modelhaul.bundle.kitops import config_from_kitfile

    return config_from_kitfile(doc)


def _config_from_files(relpaths: list[str], root: Path | None = None) -> ModelConfig:
    """What an artifact with no model config says of itself: format and framework from its files
    (from their names alone until they are written out under ``root``)."""
    files = list_files(root) if root is not None else [ModelFile(r, Path(r), 0, False) for r in sorted(relpaths)]
    fmt, framework = infer_format(files, root, by_content=root is not None)
    return ModelConfig(format=fmt, framework=framework, directory_structure=[f.relpath for f in files])


def _safe_relpath(relpath: str) -> PurePosixPath:
    p = PurePosixPath(relpath)
    if not relpath or p.is_absolute() or ".." in p.parts or relpath.startswith("/"):
        raise UnsafeArchive(f"layer file path {relpath!r} would be written outside the destination; refusing")
    return p


def _open_dir_inside(root: Path, parts: tuple[str, ...]) -> int:
    """An fd of ``root/parts...``, created as needed, never following a symlink on the way."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    fd = os.open(root, flags)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o777, dir_fd=fd)
            try:
                nxt = os.open(part, flags, dir_fd=fd)
            except OSError:  # ELOOP / ENOTDIR: a symlink or a file an earlier layer put there
                raise UnsafeArchive(
                    f"layer path component {part!r} is a symlink or a file, not a directory; refusing the artifact"
                ) from None
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_layer_file(blob: Path, root: Path, relpath: str) -> None:
    """Copy a raw layer's blob to ``root/relpath``, refusing to follow any symlink an earlier layer made."""
    from modelhaul import fscopy

    parts = _safe_relpath(relpath).parts
    dir_fd = _open_dir_inside(root, parts[:-1])
    try:
        try:
            out = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            raise UnsafeArchive(f"layer file path {relpath!r} is written twice by the artifact; refusing") from None
        try:
            with open(blob, "rb") as src:
                fscopy.copy_fd(src.fileno(), out)
            os.fchmod(out, fscopy.default_mode())
        finally:
            os.close(out)
    finally:
        os.close(dir_fd)


def move_layer_file(blob: Path, root: Path, relpath: str) -> None:
    """Move a verified blob this pull downloaded (same filesystem) to ``root/relpath``: no second copy.

    The directories are opened as :func:`write_layer_file` opens them (never through a link), and
    the rename refuses a name that exists (a path written twice, or a link an earlier layer made).
    """
    from modelhaul import fscopy

    parts = _safe_relpath(relpath).parts
    dir_fd = _open_dir_inside(root, parts[:-1])
    try:
        os.chmod(blob, fscopy.default_mode())
        fscopy.rename_noreplace(blob, parts[-1], dir_fd)
    except FileExistsError:
        raise UnsafeArchive(f"layer file path {relpath!r} is written twice by the artifact; refusing") from None
    finally:
        os.close(dir_fd)


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
            seen = _config_from_files([], model)
            cfg = seen.model_copy(update={"origin": cfg.origin}) if kind == "oras" else cfg.model_copy(
                update={"format": seen.format, "framework": cfg.framework or seen.framework})
        config_mod.dump(cfg, work / config_mod.ORMBFILE)
        _move_into_place(work, dest)  # dest is absent or empty (checked by the caller)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return cfg
