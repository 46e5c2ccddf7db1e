"""The ormb-style verbs on the local store and registries: save, push, pull, export, inspect, tag, list, rm.

The ``modelhaul`` command reaches them through :mod:`modelhaul.steps` (``steps.save(...)``). Each takes
keyword arguments; ``registry`` holds the registry access arguments (``declarations.REGISTRY_ACCESS``).
``progress`` (optional) is
how a terminal shows a transfer: called with the bytes to move and a label, it returns a context
manager and a ``(digest, size)`` callback (or ``(None, None)`` for no display).
:mod:`modelhaul.steps` imports this module, so everything beyond the declarations is imported
inside the functions: importing the steps stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelhaul.declarations import registry_options
from modelhaul.errors import NotFound

if TYPE_CHECKING:
    from modelhaul.reference import Reference

Progress = Callable[[int, str], tuple[Any, Any]]


def _store_for(ref: str) -> tuple[Any, Reference]:
    from modelhaul.reference import parse
    from modelhaul.store import user_store

    r = parse(ref)
    return user_store(r.name), r


def _copy(src: Any, reference: str, dst: Any, tag: str | None, what: str, progress: Progress | None
          ) -> tuple[str, int]:
    from modelhaul.transfer import copy

    manifest = src.get_manifest(reference)
    total = sum(int(d.get("size", 0)) for d in manifest.blobs())
    shown, callback = progress(total, what) if progress else (None, None)
    if shown is None:
        return copy(src, reference, dst, tag), total
    with shown:
        return copy(src, reference, dst, tag, progress=callback), total


def save(*, directory: str, ref: str, bundle_format: str = "modelpack", config: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    """Pack a model directory into the local store (or straight into an ``oci:`` layout)."""
    from modelhaul import artifacts
    from modelhaul.reference import parse_destination

    r = parse_destination(ref, "save")
    if r.is_layout:
        return artifacts.publish(directory, ref, bundle_format=bundle_format, config=config)
    from modelhaul.bundle import pack
    from modelhaul.transfer import push_packed, upload_digester

    store, r = _store_for(ref)
    with store.writing(), pack(Path(directory), bundle_format=bundle_format, config=config,
                               digester=upload_digester(store)) as p:
        digest = push_packed(p, store, r.tag or "latest")
        return {"ref": str(r.with_tag(r.tag or "latest").with_digest(digest)), "digest": digest,
                "size": p.size, "format": p.config.format, "bundle_format": bundle_format}


def push(*, ref: str, directory: str | None = None, bundle_format: str = "modelpack",
         config: dict[str, Any] | None = None, progress: Progress | None = None, **registry: Any) -> dict[str, Any]:
    """Upload ``ref`` from the local store, or publish ``directory`` straight to it (no store copy)."""
    from modelhaul import artifacts

    options = registry_options(registry, "push")
    if directory:
        return artifacts.publish(directory, ref, bundle_format=bundle_format, config=config, options=options)
    store, r = _store_for(ref)
    tag = r.tag or "latest"
    try:
        store.get_manifest(r.digest or tag)
    except NotFound:
        raise NotFound(f"{ref}: not in the local store; run `modelhaul save DIR {ref}` first") from None
    digest, size = _copy(store, r.digest or tag, artifacts.open_target(r, options), tag, f"push {r.name}", progress)
    return {"ref": str(r.with_tag(tag).with_digest(digest)), "digest": digest, "size": size}


def pull(*, ref: str, include: list[str] | None = None, progress: Progress | None = None, **registry: Any
         ) -> dict[str, Any]:
    """Download ``ref`` into the local store; with ``include`` only the chosen files' blobs, untagged."""
    from modelhaul import artifacts

    options = registry_options(registry, "pull")
    store, r = _store_for(ref)
    if include:
        from modelhaul.transfer import ingest_chosen

        src = artifacts.open_target(r, options)
        manifest = src.get_manifest(r.reference)
        layers = ingest_chosen(src, manifest, store, include)
        return {"ref": str(r.with_digest(manifest.digest)), "digest": manifest.digest,
                "size": sum(int(d.get("size", 0)) for d in layers), "files": len(layers)}
    digest, size = _copy(artifacts.open_target(r, options), r.reference, store, r.tag, f"pull {r.name}", progress)
    return {"ref": str(r.with_digest(digest)), "digest": digest, "size": size}


def export(*, ref: str, directory: str, include: list[str] | None = None, **registry: Any) -> dict[str, Any]:
    """Write the model out as ``directory/ormbfile.yaml`` + ``directory/model/``: from the store, else the registry."""
    from modelhaul import artifacts
    from modelhaul.reference import parse

    options = registry_options(registry, "export")

    r = parse(ref)
    if not r.is_layout:
        store, r = _store_for(ref)
        try:
            manifest = store.get_manifest(r.reference)
        except NotFound:
            return artifacts.fetch(ref, directory, options=options, include=include)
        from modelhaul.bundle import unpack  # here, not above: fetch loads it once its downloads have started

        dest = artifacts.check_export_destination(directory)
        cfg = unpack(manifest, store, dest, include=include)
        return {"ref": str(r.with_digest(manifest.digest)), "digest": manifest.digest, "path": str(dest),
                "format": cfg.format}
    return artifacts.fetch(ref, directory, options=options, include=include)


def inspect(*, ref: str, local: bool = False, **registry: Any) -> dict[str, Any]:
    """Manifest digest, config and layers (and, from a registry, signatures and attestations), and
    ``unsafe_globals``: what parse found a pickle of the model would import outside the allow-list."""
    from modelhaul import artifacts
    from modelhaul.formats.pickle_safety import unsafe_of

    options = registry_options(registry, "inspect")
    if local:
        from modelhaul.bundle import read_config

        store, r = _store_for(ref)
        m = store.get_manifest(r.reference)
        out = {"ref": str(r.with_digest(m.digest)), "digest": m.digest, "config": read_config(m, store).to_dict(),
               "layers": m.layers}
    else:
        out = artifacts.inspect(ref, options)
    out["unsafe_globals"] = unsafe_of(out["config"].get("labels"))
    return out


def tag(*, src: str, dst: str, local: bool = False, **registry: Any) -> dict[str, Any]:
    """Point ``dst`` at the model ``src`` names (no bytes move within one registry or the store)."""
    from modelhaul import artifacts
    from modelhaul.reference import parse_destination

    options = registry_options(registry, "tag")
    if local:
        from modelhaul.transfer import copy

        source, s = _store_for(src)
        parse_destination(dst, "tag")
        dest, d = _store_for(dst)
        digest = copy(source, s.reference, dest, d.tag or "latest")
        return {"ref": str(d.with_digest(digest)), "digest": digest}
    return artifacts.retag(src, dst, options)


def list_models(*, ref: str | None = None, **registry: Any) -> dict[str, Any]:
    """The tags of ``ref``'s repository, or (no ``ref``) the models in the local store."""
    from modelhaul import artifacts

    if ref:
        return {"ref": ref, "tags": artifacts.list_tags(ref, registry_options(registry, "list"))}
    from modelhaul.paths import default_store_path
    from modelhaul.store import LayoutTarget

    refs = LayoutTarget(default_store_path()).list_refs()
    return {"models": [{"ref": name, "digest": digest} for name, digest in refs]}


def remove(*, ref: str) -> dict[str, Any]:
    """Remove ``ref`` from the local store (its blobs go once nothing else uses them)."""
    store, r = _store_for(ref)
    store.delete(r.reference)
    return {"removed": ref}


def login(*, host: str, username: str, password: str, **registry: Any) -> dict[str, Any]:
    """Check the credentials against ``host``, then store them in the docker config."""
    from modelhaul.registry import login as registry_login

    registry_login(host, username, password, registry_options(registry, "login"))
    return {"login": host, "username": username}


def logout(*, host: str) -> dict[str, Any]:
    """Forget the stored credentials of ``host``."""
    from modelhaul.auth import logout as auth_logout

    return {"logout": host, "had_credentials": auth_logout(host)}


def load_config(*, path: str) -> dict[str, Any]:
    """The fields of an ``ormbfile.yaml`` (``--config``), as a dict."""
    from modelhaul import config

    return config.load(path).to_dict()

