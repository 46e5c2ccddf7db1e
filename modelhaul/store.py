"""The local store: an OCI image layout directory used as a registry that needs no server.

``oci:PATH:TAG`` references open a :class:`LayoutTarget` on PATH, with tags kept as
``org.opencontainers.image.ref.name`` annotations in ``index.json`` — skopeo's and oras' syntax,
so those tools read what modelhaul writes. The user's cache (``modelhaul save``/``pull``) is one such
layout under ``MODELHAUL_HOME`` whose tag names are full references (``host/repo:tag``), as ormb's
cache does.

The store owns its bytes: a blob is a reflink or a kernel copy of the user's file, never a
hardlink, and is read-only (0444), so rewriting a source in place or editing an exported file
cannot change a saved version (see :mod:`modelhaul.fscopy`). Layout files other users' tools read
(``index.json``, ``oci-layout``) get the umask's usual 0644.

Garbage collection (``rm``) and writers share one lock: a ``save``/``pull`` holds it shared for
its whole run (:meth:`LayoutTarget.writing`), GC takes it exclusively, so GC never removes a blob
of a version still being written; ``put_manifest`` also refuses to tag a manifest whose blobs are
missing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from modelhaul import fscopy, oci
from modelhaul.errors import DigestMismatch, NotFound, RegistryError
from modelhaul.paths import default_store_path

OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}


def _blob_rel(digest: str) -> Path:
    algo, _, hexd = digest.partition(":")
    if not hexd or "/" in hexd or "/" in algo or ".." in digest:
        raise RegistryError(f"invalid digest {digest!r}")
    return Path("blobs") / algo / hexd


BLOB_MODE = 0o444  # stored blobs are read-only: nothing edits a version in place


def store_copy(src: Path, dst: Path) -> str:
    """Copy ``src`` into the store at ``dst`` (reflink or kernel copy, read-only). See :mod:`modelhaul.fscopy`."""
    return fscopy.copy_file(src, dst, mode=BLOB_MODE)


class LayoutTarget:
    """An OCI image layout directory as a :class:`modelhaul.oci.Target`.

    ``prefix`` namespaces tag names (``"host/repo:"`` in the user's store; empty for ``oci:``
    layouts, where the tag *is* the ref name, as skopeo expects).
    """

    def __init__(self, root: str | Path, prefix: str = ""):
        self.root = Path(root)
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"LayoutTarget({str(self.root)!r}, prefix={self.prefix!r})"

    # -- layout files --------------------------------------------------------------------------

    def _init(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        lay = self.root / "oci-layout"
        if not lay.exists():
            lay.write_text(json.dumps(OCI_LAYOUT))
        if not (self.root / "index.json").exists():
            self._write_index({"schemaVersion": 2, "mediaType": oci.INDEX_V1, "manifests": []})

    def _read_index(self) -> dict:
        try:
            return json.loads((self.root / "index.json").read_text())
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": oci.INDEX_V1, "manifests": []}
        except json.JSONDecodeError:
            raise RegistryError(f"{self.root}/index.json is not valid JSON; the layout is damaged") from None

    def _write_index(self, index: dict) -> None:
        self._write_file(self.root / "index.json", json.dumps(index, indent=2).encode(), fscopy.default_mode())

    @staticmethod
    def _write_file(dst: Path, data: bytes, mode: int) -> None:
        """``data`` at ``dst`` with ``mode`` (not mkstemp's 0600), via temp file + rename."""
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                os.fchmod(f.fileno(), mode)
            os.replace(tmp, dst)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Held (shared) for a whole save or pull, so garbage collection waits for it to finish."""
        return self._flock(".gc.lock", fcntl.LOCK_SH)

    def _collecting(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive against every :meth:`writing` (in any process), for garbage collection."""
        return self._flock(".gc.lock", fcntl.LOCK_EX)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return self._flock(".lock", fcntl.LOCK_EX)

    @contextlib.contextmanager
    def _flock(self, name: str, mode: int) -> Iterator[None]:
        """``flock`` on the layout's lock file ``name``, across processes, for the block."""
        self._init()
        with open(self.root / name, "a+") as lk:
            fcntl.flock(lk, mode)
            try:
                yield
            finally:
                fcntl.flock(lk, fcntl.LOCK_UN)

    # -- blobs -----------------------------------------------------------------------------------

    def path_for(self, digest: str) -> Path:
        return self.root / _blob_rel(digest)

    def has_blob(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    def blob_path(self, digest: str) -> Path | None:
        """The blob's file; a stat against the digest cache (no re-read) says it is still the stored one."""
        from modelhaul import digestcache

        p = self.path_for(digest)
        if not p.is_file():
            return None
        if not digestcache.verify(p, digest):
            p.unlink()
            raise DigestMismatch(
                f"blob {digest} in {self.root} changed since it was stored; it has been removed: "
                "save or pull the model again"
            )
        return p

    def put_blob(self, blob: oci.Blob) -> None:
        from modelhaul import digestcache

        self._init()
        dst = self.path_for(blob.digest)
        if dst.is_file() and digestcache.verify(dst, blob.digest):
            return
        if blob.data is not None:
            if oci.sha256_bytes(blob.data) != blob.digest:
                raise DigestMismatch(f"blob bytes do not match {blob.digest}")
            self._write_file(dst, blob.data, BLOB_MODE)
            digestcache.remember(dst, blob.digest)
            return
        if blob.path is None:
            raise RegistryError(f"blob {blob.digest} has neither bytes nor a file")
        changed = DigestMismatch(f"{blob.path} changed after it was hashed (expected {blob.digest}); "
                                 "save the model again")
        before = os.stat(blob.path)
        if not digestcache.verify(blob.path, blob.digest):
            raise changed
        store_copy(blob.path, dst)
        after = os.stat(blob.path)
        if not digestcache.unchanged(before, after):
            dst.unlink()  # the source was written to while we copied it: the copy is not that digest
            raise changed
        digestcache.remember(dst, blob.digest)  # copied from verified, unchanged bytes: trusted without a re-read

    def upload_file(self, path: Path, media_type: str = "application/octet-stream",
                    annotations: dict[str, str] | None = None) -> oci.Blob:
        """Store a file whose digest is not known yet: hash it on one thread while the kernel copies it.

        The two passes over the file run at once (hashing ~0.7 s per GiB on one core, the copy
        ~0.4 s on another), so ``save`` costs about the hash alone instead of hash plus copy. The
        copy lands in a temp file in the store and is renamed to its digest; a file written to
        meanwhile is refused, as in :meth:`put_blob`.
        """
        from concurrent.futures import ThreadPoolExecutor

        from modelhaul import digestcache

        self._init()
        path = Path(path)
        before = os.stat(path)
        tmp = self.root / "blobs" / f".upload.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="modelhaul-hash") as pool:
                hashed = pool.submit(oci.sha256_file, path)
                store_copy(path, tmp)
                digest = hashed.result()
            after = os.stat(path)
            if not digestcache.unchanged(before, after):
                raise DigestMismatch(f"{path} changed while it was saved; save the model again")
            dst = self.path_for(digest)
            if dst.is_file() and digestcache.verify(dst, digest):
                tmp.unlink()
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, dst)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        digestcache.remember(dst, digest)  # copied from unchanged bytes while they were hashed
        digestcache.remember(path, digest, before)
        return oci.Blob(media_type, digest, before.st_size, path=path, annotations=dict(annotations or {}))

    def fetch_blob(self, digest: str, size: int, dest: Path) -> None:
        from modelhaul import fscopy

        src = self.blob_path(digest)
        if src is None:
            raise NotFound(f"blob {digest} is not in {self.root}")
        fscopy.copy_file(src, Path(dest))

    def ingest(self, source: oci.Target, digest: str, size: int) -> None:
        """Bring a blob from another target straight into this layout (verified, temp + rename)."""
        from modelhaul import digestcache

        self._init()
        if self.has_blob(digest):
            return
        dst = self.path_for(digest)
        source.fetch_blob(digest, size, dst)
        os.chmod(dst, BLOB_MODE)
        digestcache.remember(dst, digest)

    # -- manifests and tags -------------------------------------------------------------------------

    def _entries(self) -> list[dict]:
        return list(self._read_index().get("manifests", []))

    def get_manifest(self, reference: str) -> oci.Manifest:
        digest, media_type = None, oci.MANIFEST_V1
        if reference.startswith("sha256:"):
            digest = reference
            for e in self._entries():
                if e.get("digest") == digest:
                    media_type = e.get("mediaType", media_type)
        else:
            name = self.prefix + reference
            for e in self._entries():
                if (e.get("annotations") or {}).get(oci.ANNOTATION_REF_NAME) == name:
                    digest, media_type = e["digest"], e.get("mediaType", media_type)
        if digest is None or not self.has_blob(digest):
            where = f"oci:{self.root}" if not self.prefix else f"{self.prefix}{reference} in the local store"
            raise NotFound(f"{where}: no manifest {reference!r}")
        data = self.path_for(digest).read_bytes()
        if oci.sha256_bytes(data) != digest:
            raise DigestMismatch(f"manifest {digest} in {self.root} is corrupt")
        media_type = json.loads(data).get("mediaType", media_type)
        return oci.Manifest(data=data, media_type=media_type, digest=digest)

    def put_manifest(self, data: bytes, media_type: str, tag: str | None) -> str:
        digest = oci.sha256_bytes(data)
        with self._locked():
            missing = [d for d in _blobs_named(data) if not self.has_blob(d)]
            if missing:
                raise RegistryError(
                    f"manifest {digest} names {len(missing)} blob(s) missing from {self.root} (first: {missing[0]}); "
                    "not tagging it: save or pull again"
                )
            self.put_blob(oci.Blob(media_type, digest, len(data), data=data))
            index = self._read_index()
            entries = index.get("manifests", [])
            desc = {"mediaType": media_type, "digest": digest, "size": len(data)}
            art = json.loads(data).get("artifactType")
            if art:
                desc["artifactType"] = art
            if tag:
                name = self.prefix + tag
                entries = [e for e in entries if (e.get("annotations") or {}).get(oci.ANNOTATION_REF_NAME) != name]
                desc["annotations"] = {oci.ANNOTATION_REF_NAME: name}
                entries.append(desc)
            elif not any(e.get("digest") == digest for e in entries):
                entries.append(desc)
            index["manifests"] = entries
            self._write_index(index)
        return digest

    def list_tags(self) -> list[str]:
        out = []
        for e in self._entries():
            name = (e.get("annotations") or {}).get(oci.ANNOTATION_REF_NAME)
            if name and name.startswith(self.prefix):
                out.append(name[len(self.prefix):])
        return sorted(out)

    def list_refs(self) -> list[tuple[str, str]]:
        """All ``(ref name, digest)`` pairs in the layout (for ``modelhaul list``)."""
        return sorted(
            ((e.get("annotations") or {}).get(oci.ANNOTATION_REF_NAME, ""), e["digest"])
            for e in self._entries()
            if (e.get("annotations") or {}).get(oci.ANNOTATION_REF_NAME)
        )

    def delete(self, reference: str) -> None:
        """Remove a tag (or every tag of a digest); blobs no manifest uses any more are removed too."""
        with self._collecting(), self._locked():
            index = self._read_index()
            entries = index.get("manifests", [])
            if reference.startswith("sha256:"):
                keep = [e for e in entries if e.get("digest") != reference]
            else:
                name = self.prefix + reference
                keep = [e for e in entries if (e.get("annotations") or {}).get(oci.ANNOTATION_REF_NAME) != name]
            if len(keep) == len(entries):
                raise NotFound(f"{reference!r} is not in {self.root}")
            index["manifests"] = keep
            self._write_index(index)
            self._collect_garbage(keep)

    def _collect_garbage(self, entries: list[dict]) -> None:
        live: set[str] = set()
        for e in entries:
            live.add(e["digest"])
            p = self.path_for(e["digest"])
            if p.is_file():
                with contextlib.suppress(json.JSONDecodeError):
                    m = json.loads(p.read_bytes())
                    live.update(d["digest"] for d in [m.get("config") or {}, *m.get("layers", [])] if d)
        for p in (self.root / "blobs" / "sha256").glob("*"):
            if p.is_file() and f"sha256:{p.name}" not in live and not p.name.startswith("."):
                p.unlink()


def _blobs_named(manifest: bytes) -> list[str]:
    """Digests of the config and layers a manifest names (an index names manifests: not checked here)."""
    with contextlib.suppress(json.JSONDecodeError, AttributeError, TypeError):
        m = json.loads(manifest)
        return [d["digest"] for d in [m.get("config") or {}, *(m.get("layers") or [])] if d.get("digest")]
    return []


def user_store(ref_name: str) -> LayoutTarget:
    """The user's local store, namespaced to one repository (``host/repo``)."""
    return LayoutTarget(default_store_path(), prefix=f"{ref_name}:")
