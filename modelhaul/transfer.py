"""Moving artifacts between targets: push a packed artifact, copy a manifest and its blobs, pull.

The manifest always goes last, after every blob it names is in place, so a failed or interrupted
push never leaves a tag pointing at missing blobs. Blobs go up several at a time; blobs the
destination already has are skipped (the registry answers HEAD), so re-pushing an unchanged model
moves nothing but the manifest.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modelhaul import meter, oci, referrers
from modelhaul.errors import DigestMismatch
from modelhaul.store import LayoutTarget

if TYPE_CHECKING:
    from modelhaul.bundle import Downloader

PARALLEL = int(os.environ.get("MODELHAUL_PARALLEL", "4"))
SMALL_BLOB = 256 << 10  # up to this size, sending a blob again costs about what asking for it does
Progress = Callable[[str, int], None]


def _run_all(fn: Callable[[Any], None], items: list[Any], parallel: int) -> None:
    """Run ``fn`` over ``items`` (in threads when remote); the first failure — or Ctrl-C — is raised
    once the other threads stopped at their next piece (they do not finish their blobs first)."""
    if parallel <= 1 or len(items) <= 1:
        for it in items:
            fn(it)
        return
    with meter.cancellable_pool(min(parallel, len(items))) as pool:
        for fut in [pool.submit(fn, it) for it in items]:
            fut.result()


def _metered(fn: Callable[[Any], None], desc_of: Callable[[Any], dict[str, Any]], items: Sequence[Any] = ()
             ) -> Callable[[Any], None]:
    """``fn`` over one blob, its bytes counted for that blob (config blobs are not shown as layers);
    the watcher learns the bytes of all ``items`` first, for its total."""
    meter.expect(sum(int(desc_of(i).get("size", 0)) for i in items))

    def run(item: Any) -> None:
        desc = desc_of(item)
        if "config" in str(desc.get("mediaType", "")):
            return fn(item)
        with meter.layer(str(desc["digest"]), oci.label_of(desc), int(desc.get("size", 0))):
            fn(item)

    return run


@contextlib.contextmanager
def abandoning(target: Any) -> Iterator[None]:
    """A failed or interrupted push deletes the upload sessions it left open in the registry."""
    try:
        yield
    except BaseException:
        abandon = getattr(target, "abandon_uploads", None)
        if abandon is not None:
            abandon()
        raise


def _parallelism(target: oci.Target) -> int:
    return 1 if isinstance(target, LayoutTarget) else PARALLEL


class Pushable(Protocol):
    """An artifact ready to push: a :class:`~modelhaul.bundle.Packed`, or one the pack cache remembers."""

    manifest: bytes
    manifest_media_type: str
    blobs: list[oci.Blob]


def push_packed(packed: Pushable, target: oci.Target, tag: str | None, progress: Progress | None = None) -> str:
    """Upload a packed artifact's blobs, then its manifest (under ``tag``). Returns the manifest digest."""
    # biggest first, so the long uploads start early and small ones fill the gaps
    blobs = sorted(packed.blobs, key=lambda b: -b.size)

    def put(blob: oci.Blob) -> None:
        # put_blob skips a blob the target holds (a registry asks with a HEAD); one the pack cache
        # remembers by digest alone has no bytes here and must be there already
        if blob.data is not None or blob.path is not None or not target.has_blob(blob.digest):
            target.put_blob(blob)
        if progress:
            progress(blob.digest, blob.size)

    import json

    named = {d.get("digest"): d for d in json.loads(packed.manifest).get("layers", [])}  # with the file names
    small = [b.digest for b in blobs if b.size <= SMALL_BLOB]
    if len(small) > 1 and hasattr(target, "skip_asking_if_new"):
        target.skip_asking_if_new(small)
    with _writing(target), abandoning(target):
        _run_all(_metered(put, lambda b: named.get(b.digest) or b.descriptor(), blobs), blobs, _parallelism(target))
        return target.put_manifest(packed.manifest, packed.manifest_media_type, tag)


def _writing(target: oci.Target) -> contextlib.AbstractContextManager[None]:
    """A local layout's writer lock (garbage collection waits for it); nothing for a registry."""
    return target.writing() if isinstance(target, LayoutTarget) else contextlib.nullcontext()


STREAM_HASH_MIN = 32 << 20  # below this, hashing first costs little and lets HEAD skip the upload


def upload_digester(target: oci.Target) -> Callable[[Path], str] | None:
    """A digester that stores new large files in ``target`` while hashing them.

    A file whose digest the cache knows (unchanged since it was last hashed) is not read at all.
    A new or changed large file goes up to a registry in PATCH chunks with its digest computed on
    the way, so publishing reads it once instead of hash-then-upload; into a local layout it is
    copied by the kernel while another thread hashes it. A new or changed small file (a tokenizer's)
    is read once, hashed and sent to a registry without a HEAD, so hashing overlaps the upload;
    files in between are just hashed.
    """
    upload = getattr(target, "upload_file", None)
    if upload is None:
        return None
    upload_small = getattr(target, "upload_small", None)
    from modelhaul import digestcache

    def digest(path: Path) -> str:
        st = os.stat(path)
        known = digestcache.lookup(path, st)
        if known:
            return known
        if upload_small is not None and st.st_size <= SMALL_BLOB:
            with meter.layer(f"file:{path}", path.name, st.st_size):
                blob = upload_small(path, st.st_size)
        elif st.st_size < STREAM_HASH_MIN:
            return digestcache.file_digest(path)
        else:
            with meter.layer(f"file:{path}", path.name, st.st_size):
                blob = upload(path)
        if digestcache.unchanged(st, os.stat(path)):  # not written to while it was sent
            digestcache.remember(path, blob.digest, st)
        return blob.digest

    return digest


@contextlib.contextmanager
def early_uploads(digester: Callable[[Path], str] | None, src: Path, bundle_format: str
                  ) -> Iterator[Callable[[Path], str] | None]:
    """Start a publish's uploads now, before the code that packs the directory is loaded.

    Loading it (the config model: pydantic, yaml) and building the config costs ~0.15 s of one
    core before the first byte would go; with the files already going up it overlaps the
    transfer instead, as :func:`early_downloads` does for an export. Only for ModelPack, whose
    layers are exactly the files :func:`~modelhaul.bundle.source.open_source` lists, listed here
    by the same code. Yields the digester packing calls: a file started here is waited for, never
    sent twice. When packing fails (an ``ormbfile.yaml`` that does not parse, say), the uploads
    not started yet are cancelled and those under way stop at their next piece; no manifest ever
    names what went up.
    """
    if digester is None or bundle_format != "modelpack":
        yield digester
        return
    from modelhaul.errors import ModelhaulError
    from modelhaul.model_files import files_root, list_files

    try:
        files = list_files(files_root(Path(src)))
    except (ModelhaulError, OSError):  # packing finds it again and says what is wrong
        yield digester
        return
    with meter.cancellable_pool(max(1, min(PARALLEL, len(files)))) as pool:
        started = {f.path: pool.submit(digester, f.path) for f in sorted(files, key=lambda f: -f.size)}

        def digest(path: Path) -> str:
            upload = started.get(path)
            return digester(path) if upload is None else upload.result()

        try:
            yield digest
        except BaseException:
            for upload in started.values():
                upload.cancel()
            raise


def _same_registry(a: oci.Target, b: oci.Target) -> bool:
    host = getattr(a, "host", None)
    return host is not None and host == getattr(b, "host", None)


def copy(src: oci.Target, reference: str, dst: oci.Target, tag: str | None,
         progress: Progress | None = None, with_referrers: bool = True) -> str:
    """Copy the manifest at ``reference`` in ``src`` with all its blobs to ``dst`` under ``tag``.

    Within one target this moves no blob bytes (only the manifest is written again). Within one
    registry, blobs are mounted from the source repository. Across targets the manifest's
    referrers (signatures, attestations) come along. Returns the manifest digest.
    """
    with _writing(dst), abandoning(dst):
        return _copy(src, reference, dst, tag, progress, with_referrers)


def _copy(src: oci.Target, reference: str, dst: oci.Target, tag: str | None, progress: Progress | None,
          with_referrers: bool) -> str:
    manifest = src.get_manifest(reference)
    if src is not dst:
        mount_from = getattr(src, "repository", None) if _same_registry(src, dst) else None

        def move(desc: dict[str, Any]) -> None:
            digest, size = desc["digest"], int(desc.get("size", 0))
            if dst.has_blob(digest):
                pass
            elif isinstance(dst, LayoutTarget):
                dst.ingest(src, digest, size)
            elif mount_from and hasattr(dst, "mount_blob") and dst.mount_blob(digest, mount_from):
                pass
            else:
                local = src.blob_path(digest)
                if local is not None:
                    dst.put_blob(oci.Blob(desc.get("mediaType", ""), digest, size, path=local))
                else:
                    with _temp_blob(src, digest, size) as p:
                        dst.put_blob(oci.Blob(desc.get("mediaType", ""), digest, size, path=p))
            if progress:
                progress(digest, size)

        _run_all(_metered(move, dict, manifest.blobs()), manifest.blobs(), max(_parallelism(src), _parallelism(dst)))
    digest = dst.put_manifest(manifest.data, manifest.media_type, tag)
    if with_referrers and src is not dst:
        copy_referrers(src, dst, manifest.digest)
    return digest


@contextlib.contextmanager
def _temp_blob(src: oci.Target, digest: str, size: int) -> Iterator[Path]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="modelhaul-blob-", dir=os.environ.get("MODELHAUL_TMPDIR")) as d:
        p = Path(d) / "blob"
        src.fetch_blob(digest, size, p)
        yield p


def ingest_chosen(src: oci.Target, manifest: oci.Manifest, cache: LayoutTarget,
                  include: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Bring the config and the layers ``include`` chooses (all without it) into ``cache``.

    The manifest itself is recorded in ``cache`` only when every blob is there, so a partial pull
    never leaves a tag in the store that names blobs it lacks. Returns the chosen layers.
    """
    from modelhaul.selection import chosen_layers

    layers = chosen_layers(manifest, include, getattr(src, "name", ""))
    blobs = [manifest.config, *layers] if manifest.config else layers
    _run_all(_metered(lambda d: cache.ingest(src, d["digest"], int(d.get("size", 0))), dict, blobs), blobs,
             _parallelism(src))
    return layers


def _user_store_of(src: oci.Target) -> LayoutTarget:
    """The user's store, namespaced to the registry repository ``src``."""
    from modelhaul.store import default_store_path

    return LayoutTarget(default_store_path(), prefix=f"{src.host}/{src.repository}:")  # type: ignore[attr-defined]


@contextlib.contextmanager
def pull_to_layout(src: oci.Target, reference: str) -> Iterator[tuple[LayoutTarget, oci.Manifest]]:
    """Make the artifact's blobs available in a local layout: ``src`` itself when it is one, else
    the user's store (the cache that makes a second pull free)."""
    if isinstance(src, LayoutTarget):
        yield src, src.get_manifest(reference)
        return
    cache = _user_store_of(src)
    with cache.writing():
        manifest = src.get_manifest(reference)
        ingest_chosen(src, manifest, cache)
        cache.put_manifest(manifest.data, manifest.media_type, None)
        yield cache, manifest


class _StoreFirst:
    """Blobs from the user's store where it holds them (a local copy beats a download), else ``src``."""

    def __init__(self, store: LayoutTarget, src: oci.Target):
        self.store, self.src = store, src

    def blob_path(self, digest: str) -> Path | None:
        try:
            return self.store.blob_path(digest)
        except DigestMismatch:  # a stored blob edited in place: it is gone now, download it instead
            return None

    def fetch_blob(self, digest: str, size: int, dest: Path) -> None:
        (self.store if self.blob_path(digest) else self.src).fetch_blob(digest, size, dest)


@contextlib.contextmanager
def pull_for_export(src: oci.Target, reference: str) -> Iterator[tuple[Any, oci.Manifest, Downloader | None]]:
    """What :func:`modelhaul.bundle.unpack` needs to write ``reference`` out straight from ``src``.

    Yields ``(layout, manifest, download)``: from a registry, the blobs the user's store already
    holds are copied from it and the rest are downloaded (verified, several at once) into the
    export's own temp directory by ``download``, so each byte is written once: a pull for an
    export does not fill the store. From an ``oci:`` layout, ``src`` itself and no download.
    """
    if isinstance(src, LayoutTarget):
        yield src, src.get_manifest(reference), None
        return
    store = _user_store_of(src)
    layout = _StoreFirst(store, src)

    def download(layers: list[dict[str, Any]], into: Path) -> dict[str, Path]:
        descs = {d["digest"]: d for d in layers if layout.blob_path(d["digest"]) is None}
        sizes = {digest: int(d.get("size", 0)) for digest, d in descs.items()}
        into.mkdir(exist_ok=True)
        paths = {digest: into / f"blob-{i}" for i, digest in enumerate(sizes)}  # digests are not file names
        _run_all(_metered(lambda digest: src.fetch_blob(digest, sizes[digest], paths[digest]), descs.get, descs),
                 list(sizes), _parallelism(src))
        return paths

    with store.writing():  # garbage collection keeps the store's blobs while they are copied out
        yield layout, src.get_manifest(reference), download


@contextlib.contextmanager
def early_downloads(download: Downloader | None, manifest: oci.Manifest, dest: Path,
                    include: Sequence[str] | None) -> Iterator[Downloader | None]:
    """Start an export's downloads now, before the code that writes the model out is loaded.

    Loading that code (the config model: pydantic, yaml) costs ~0.15-0.3 s of one core, a sixth
    of a 1 GiB pull on loopback; with the blobs already arriving it overlaps the transfer instead
    of preceding it. Only for a whole model artifact (no ``include``, a known bundle format): every
    layer the store lacks is needed then, except ignored thumbnails. The blobs land in a temp
    directory beside ``dest`` (same filesystem: moved into place, never copied) that is removed
    on the way out, after the downloads have stopped. Yields the downloader :func:`unpack` calls.
    """
    if download is None or include or oci.bundle_format_of_manifest(manifest) == "unknown":
        yield download
        return
    layers = [d for d in manifest.layers if d.get("mediaType") not in oci.IGNORED_LAYER_TYPES]
    dest.parent.mkdir(parents=True, exist_ok=True)
    into = Path(tempfile.mkdtemp(prefix=f".{dest.name}.blobs-", dir=dest.parent))
    pool = ThreadPoolExecutor(1, thread_name_prefix="modelhaul-early")
    started = pool.submit(download, layers, into)

    def arrived(wanted: list[dict[str, Any]], elsewhere: Path) -> dict[str, Path]:
        got = dict(started.result())
        rest = [d for d in wanted if d["digest"] not in got]
        return {**got, **(download(rest, elsewhere) if rest else {})}

    try:
        yield arrived
    finally:
        pool.shutdown(wait=True)  # nothing writes into ``into`` any more
        shutil.rmtree(into, ignore_errors=True)


def copy_referrers(src: oci.Target, dst: oci.Target, subject_digest: str) -> int:
    """Copy every referrer of ``subject_digest`` (manifests and blobs) and list them in ``dst``'s index."""
    n = 0
    for desc in referrers.find(src, subject_digest):
        if desc.get("mediaType", oci.MANIFEST_V1) != oci.MANIFEST_V1:
            continue  # only image-manifest referrers (what modelhaul, cosign and oras attach)
        copy(src, desc["digest"], dst, None, with_referrers=False)
        kept = ("mediaType", "digest", "size", "artifactType", "annotations")
        referrers.index_add(dst, subject_digest, {k: desc[k] for k in kept if k in desc})
        n += 1
    return n
