"""Model artifacts by reference: publish, fetch, inspect, retag — on a registry or an ``oci:`` layout.

This is the layer the steps use. It joins the bundles (directory <-> config + layers), the local
store and the registry client, and hides which kind of target a reference points at.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelhaul import oci
from modelhaul.errors import ConfigError, NotFound
from modelhaul.paths import scratch_dir
from modelhaul.reference import Reference, parse, parse_destination
from modelhaul.registry_options import RegistryOptions

if TYPE_CHECKING:  # pydantic and yaml cost a re-publish more than its HEADs: imported where a config is built
    from modelhaul.config import ModelConfig


def open_target(ref: Reference, options: RegistryOptions | None = None) -> oci.Target:
    """The target (registry repository or OCI layout) that ``ref`` lives in."""
    if ref.is_layout:
        from modelhaul.store import LayoutTarget

        return LayoutTarget(ref.layout)
    from modelhaul.registry import RegistryTarget

    target = RegistryTarget(ref.registry, ref.repository, options or RegistryOptions.resolve())
    target.label = str(ref)  # errors about the registry name the user's reference, not a blob digest
    return target


def publish(
    src: str | Path,
    ref: str,
    *,
    bundle_format: str = "modelpack",
    config: ModelConfig | dict[str, Any] | None = None,
    options: RegistryOptions | None = None,
) -> dict[str, Any]:
    """Pack the model directory ``src`` and push it to ``ref`` in one go.

    ``config`` is laid over what the directory says of itself (its ``ormbfile.yaml``, else what is
    inferred from the files). Returns ``{ref, digest, size, format, framework, media_type,
    bundle_format}`` where ``ref`` is digest-pinned.
    """
    from modelhaul import digestcache, packcache

    r = parse_destination(ref, "publishing")
    seen = packcache.look(src, bundle_format, config)
    known = packcache.lookup(seen)
    if known is not None and not r.is_layout:  # the tag may name it already: asked without requests
        from modelhaul.tagcheck import already_tagged

        opts = options or RegistryOptions.resolve()
        if already_tagged(r.registry, r.repository, r.tag or "latest", oci.sha256_bytes(known.manifest),
                          known.manifest_media_type, opts):
            return _result(r, oci.sha256_bytes(known.manifest), known, known.format, known.framework,
                           bundle_format)
    from modelhaul.transfer import abandoning, early_uploads, push_packed, upload_digester

    target = open_target(r, options)
    if known is not None and known.sendable_to(target):  # packed before, unchanged since: HEADs and the manifest
        digest = push_packed(known, target, tag=r.tag or "latest")
        return _result(r, digest, known, known.format, known.framework, bundle_format)
    writing = target.writing() if r.is_layout else contextlib.nullcontext()  # blobs go in before the manifest
    with writing, abandoning(target), digestcache.batch(), \
            early_uploads(upload_digester(target), Path(src), bundle_format) as digester:
        from modelhaul.bundle import pack  # the config model: loaded while the files go up

        with pack(Path(src), bundle_format=bundle_format, config=config, digester=digester,
                  stream_layer=getattr(target, "upload_stream", None)) as p:
            digest = push_packed(p, target, tag=r.tag or "latest")
            packcache.remember(seen, p)
            return _result(r, digest, p, p.config.format, p.config.framework, bundle_format)


def _result(r: Reference, digest: str, packed: Any, fmt: str | None, framework: str | None, bundle_format: str
            ) -> dict[str, Any]:
    return {
        "ref": str(r.with_tag(r.tag or "latest").with_digest(digest)),  # the tag it was given, said
        "digest": digest,
        "size": packed.size,
        "format": fmt,
        "framework": framework,
        "media_type": packed.manifest_media_type,
        "bundle_format": bundle_format,
    }


def resolve(ref: str, options: RegistryOptions | None = None) -> str:
    """The digest-pinned form of ``ref`` (``repo:tag@sha256:...``). Raises NotFound."""
    r = parse(ref)
    m = open_target(r, options).get_manifest(r.reference)
    return str(r.with_digest(m.digest))


def try_resolve(ref: str, options: RegistryOptions | None = None) -> str | None:
    """Like :func:`resolve`, but ``None`` when the tag does not exist."""
    try:
        return resolve(ref, options)
    except NotFound:
        return None


def read(ref: str, options: RegistryOptions | None = None) -> tuple[ModelConfig, str, oci.Manifest]:
    """The ModelConfig of ``ref`` (whatever its bundle format), its pinned ref and its manifest."""
    from modelhaul.bundle import read_config

    r = parse(ref)
    target = open_target(r, options)
    manifest = target.get_manifest(r.reference)
    cfg = read_config(manifest, target)
    return cfg, str(r.with_digest(manifest.digest)), manifest


def load_config(ref: str, options: RegistryOptions | None = None) -> tuple[ModelConfig, str]:
    """The ModelConfig of ``ref`` and its digest-pinned reference."""
    cfg, pinned, _ = read(ref, options)
    return cfg, pinned


def inspect(ref: str, options: RegistryOptions | None = None) -> dict[str, Any]:
    """Manifest digest, media/artifact type, bundle format, full config, layers, signatures and
    attestations of ``ref``."""
    from modelhaul.oci import bundle_format_of_manifest
    from modelhaul.referrers import attached

    r = parse(ref)
    cfg, pinned, manifest = read(ref, options)
    m = manifest.json
    return {
        **attached(open_target(r, options), manifest),  # signatures, attestations (OCI referrers)
        "ref": pinned,
        "digest": manifest.digest,
        "media_type": manifest.media_type,
        "artifact_type": m.get("artifactType") or manifest.config.get("mediaType"),
        "bundle_format": bundle_format_of_manifest(manifest),
        "config": cfg.to_dict(),
        "layers": [
            {
                "media_type": layer.get("mediaType"),
                "digest": layer.get("digest"),
                "size": layer.get("size"),
                "path": (layer.get("annotations") or {}).get(oci.ANNOTATION_FILEPATH)
                or (layer.get("annotations") or {}).get("org.cnai.model.filepath")
                or (layer.get("annotations") or {}).get(oci.ANNOTATION_TITLE) or kit_path,
            }
            for layer, kit_path in zip(manifest.layers, _kit_paths(manifest, open_target(r, options)), strict=True)
        ],
        "annotations": {k: v for k, v in (m.get("annotations") or {}).items() if k != oci.ANNOTATION_CONFIG},
        "size": sum(int(d.get("size", 0)) for d in manifest.blobs()),
    }


def _kit_paths(manifest: oci.Manifest, target: oci.Target) -> list[str | None]:
    """A ModelKit layer's path is its Kitfile entry's (its layers carry no path annotation)."""
    from modelhaul.bundle import config_blob_json
    from modelhaul.bundle.kitops import layer_paths
    from modelhaul.oci import bundle_format_of_manifest

    if bundle_format_of_manifest(manifest) != "kitops":
        return [None] * len(manifest.layers)
    kitfile = config_blob_json(manifest, target)
    return layer_paths(kitfile if isinstance(kitfile, dict) else None, manifest.layers)


def fetch(ref: str, dest: str | Path, *, options: RegistryOptions | None = None,
          include: Sequence[str] | None = None) -> dict[str, Any]:
    """Pull ``ref`` and write it out as ``dest/ormbfile.yaml`` + ``dest/model/...`` (ormb's layout).

    Straight from the registry into ``dest`` (verified; each byte written once), using the blobs
    the local store already has; ``modelhaul pull`` is what fills the store.
    ``dest`` must not exist or be empty; on any failure nothing is left behind there. ``include``
    (globs over ``model/<path>``, see :mod:`modelhaul.selection`) fetches and writes only the chosen
    files of a ModelPack artifact. Returns ``{ref, digest, path, model_dir, format, framework}``.
    """
    from modelhaul.transfer import early_downloads, pull_for_export

    r = parse(ref)
    dest = check_export_destination(dest)
    src = open_target(r, options)
    with pull_for_export(src, r.reference) as (layout, manifest, download), \
            early_downloads(download, manifest, dest, include) as download:
        from modelhaul.bundle import unpack  # the config code loads while the blobs arrive

        cfg = unpack(manifest, layout, dest, include=include, download=download)
    return {
        "ref": str(r.with_digest(manifest.digest)),
        "digest": manifest.digest,
        "path": str(dest),
        "model_dir": str(dest / "model"),
        "format": cfg.format,
        "framework": cfg.framework,
    }


def check_export_destination(dest: str | Path) -> Path:
    """``dest`` if a model can be written out there: a new path, or an empty real directory.

    A symlink is refused rather than written through (its target is not what the user named), a
    file is not replaced, and a non-empty directory is never mixed with a model's files.
    """
    dest = Path(dest)
    if dest.is_symlink():
        raise ConfigError(f"{dest}: destination is a symlink; export into a new directory (modelhaul does not "
                          "write through links)")
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest}: destination exists and is not a directory; choose a new directory")
    if dest.exists() and any(dest.iterdir()):
        raise ConfigError(f"{dest}: destination is not empty; choose a new directory")
    for parent in dest.absolute().parents:
        if parent.is_symlink() or parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{dest}: {parent} is not a directory; choose a destination inside a directory")
            break
    return dest


@contextlib.contextmanager
def checkout(ref: str, options: RegistryOptions | None = None) -> Iterator[tuple[Path, ModelConfig, str]]:
    """Fetch ``ref`` into a scratch directory; yields ``(model_dir, config, pinned_ref)``."""
    from modelhaul import config as config_mod

    with scratch_dir() as d:
        res = fetch(ref, d / "x", options=options)
        cfg = config_mod.load(d / "x")
        yield Path(res["model_dir"]), cfg, res["ref"]


def with_parent(cfg: ModelConfig, parent: str) -> ModelConfig:
    """``cfg`` with ``provenance.parent`` set to the digest-pinned ``parent``."""
    from modelhaul.config import Provenance

    prov = cfg.provenance or Provenance()
    return cfg.model_copy(update={"provenance": prov.model_copy(update={"parent": parent})})


def retarget(pinned: str) -> str:
    """The same repository and tag as ``pinned``, without the digest (where a new version goes)."""
    return str(parse(pinned).unpinned())


def bundle_format_of(ref: str, options: RegistryOptions | None = None) -> str:
    """``modelpack``, ``kitops`` or ``ormb`` — the format to write a version derived from ``ref`` in.

    Files pushed with ``oras push`` (a format modelhaul reads but does not write) give ModelPack.
    """
    from modelhaul.oci import bundle_format_of_manifest

    r = parse(ref)
    fmt = bundle_format_of_manifest(open_target(r, options).get_manifest(r.reference))
    return fmt if fmt in ("ormb", "kitops") else "modelpack"


def retag(src: str, dst: str, options: RegistryOptions | None = None) -> dict[str, Any]:
    """Point ``dst`` (a tag name, or a full reference) at the manifest of ``src``.

    Within one registry (or one layout) this moves no blob bytes: only the manifest is written
    under the new tag. Across targets the blobs are copied (skipping those already there).
    Returns ``{ref, digest, previous}`` with ``previous`` the digest ``dst`` had before (or None).
    """
    from modelhaul.transfer import copy

    s = parse(src)
    d = s.with_tag(dst).unpinned() if ":" not in dst and "/" not in dst else parse_destination(dst, "tag")
    if not d.tag:
        raise ConfigError(f"{dst!r}: the destination of a tag needs a tag name")
    src_t = open_target(s, options)
    dst_t = src_t if (d.name == s.name) else open_target(d, options)
    previous = None
    with contextlib.suppress(NotFound):
        previous = dst_t.get_manifest(d.tag).digest
    digest = copy(src_t, s.reference, dst_t, d.tag)
    return {"ref": str(d.with_digest(digest)), "digest": digest, "previous": previous}


def delete(ref: str, options: RegistryOptions | None = None) -> None:
    r = parse(ref)
    open_target(r, options).delete(r.reference)


def list_tags(ref: str, options: RegistryOptions | None = None) -> list[str]:
    r = parse(ref)
    return sorted(open_target(r, options).list_tags())


def dumps(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, sort_keys=True, default=str)
