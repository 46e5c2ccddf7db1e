"""The registry client: one repository of an OCI Distribution registry as a :class:`~modelhaul.oci.Target`.

Authentication goes through oras-py (bearer tokens, anonymous or with basic credentials, and the
docker config with its credential helpers, see :mod:`modelhaul.auth`). The transfer paths are
modelhaul's own, because oras-py's fall short for models:

* its monolithic upload reads the whole blob into memory (1 GB RSS for a 1 GiB file) and its
  chunked upload reads each chunk into memory and sends them one request at a time; here bodies
  stream from disk in MiB pieces (Python's default 8 KiB socket writes are the other slow path);
* its pull writes without verifying; here downloads hash while writing to a temp file beside the
  destination, verify, then rename, and resume an interrupted transfer with ``Range``;
* its retry sleeps 3**n seconds on any error, even a 404; here only transient failures (5xx,
  resets, 429 with ``Retry-After``) are retried, and an upload restarts its session.

Every read is bounded, so a hostile or broken registry cannot exhaust time, disk or memory: a
response body read whole (a manifest, a tag page, an error) is at most 4 MiB (containerd's manifest
limit), a blob stream is cut as soon as it exceeds its descriptor's size, tag pagination stops on
a repeated link or after :attr:`RegistryTarget.max_tag_pages` pages, and the connect timeout, read
timeout and total retry budget come from :class:`~modelhaul.registry_options.RegistryOptions`.

Thread safety: each thread gets its own connections (http.client ones, see ``wire.py``, and a
``requests.Session`` for what only requests does: proxies, redirects); the auth state is shared under a lock, so
``put_blob``/``fetch_blob`` may be called from a thread pool (see :meth:`RegistryTarget.put_blobs`).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urljoin

from modelhaul import oci
from modelhaul.errors import AuthError, DigestMismatch, NotFound, RegistryError
from modelhaul.registry.download import BlobDownloads
from modelhaul.registry.http import (
    MANIFEST_ACCEPT,
    _error_codes,
)
from modelhaul.registry.upload import BlobUploads
from modelhaul.registry_options import RegistryOptions


class RegistryTarget(BlobUploads, BlobDownloads):
    """One repository (``host/repository``) of a registry, with the :class:`~modelhaul.oci.Target` methods.

    ``mount_from`` names another repository of the same registry that may already hold the blobs
    (for example the source of a copy): :meth:`put_blob` then asks the registry to mount them
    instead of uploading. ``progress`` is called with byte counts as blob bytes move.
    """

    def get_manifest(self, reference: str) -> oci.Manifest:
        what = self._what(reference)
        resp = self._request("GET", f"{self.base}/manifests/{reference}", what=what,
                             headers={"Accept": MANIFEST_ACCEPT})
        if resp.status_code == 404:
            raise NotFound(f"{what}: not found in the registry")
        if resp.status_code != 200:
            raise self._error(resp, what)
        data = resp.content
        digest = oci.sha256_bytes(data)
        claimed = resp.headers.get("Docker-Content-Digest")
        if claimed and claimed.startswith("sha256:") and claimed != digest:
            raise DigestMismatch(f"{what}: the manifest hashes to {digest}, the registry says {claimed}")
        if reference.startswith("sha256:") and reference != digest:
            raise DigestMismatch(f"{what}: the manifest received hashes to {digest}")
        media_type = (resp.headers.get("Content-Type") or "").split(";", 1)[0].strip()
        if media_type not in oci.MANIFEST_TYPES:
            try:
                media_type = oci.Manifest(data, "", digest).json.get("mediaType") or oci.MANIFEST_V1
            except ValueError:
                raise RegistryError(f"{what}: the registry returned a manifest that is not JSON") from None
        return oci.Manifest(data=data, media_type=media_type, digest=digest)

    def put_manifest(self, data: bytes, media_type: str, tag: str | None) -> str:
        digest = oci.sha256_bytes(data)
        ref = tag or digest
        what = self._what(ref)
        resp = self._request("PUT", f"{self.base}/manifests/{ref}", what=what, body=data,
                             headers={"Content-Type": media_type})
        if resp.status_code in (200, 201, 202):
            claimed = resp.headers.get("Docker-Content-Digest")
            if claimed and claimed.startswith("sha256:") and claimed != digest:
                raise DigestMismatch(f"{what}: the registry stored the manifest as {claimed}, not {digest}")
            return digest
        codes = _error_codes(resp)
        if "MANIFEST_BLOB_UNKNOWN" in codes or "BLOB_UNKNOWN" in codes:
            raise RegistryError(f"{what}: the registry is missing blobs this manifest names; push them first")
        raise self._error(resp, what)

    def list_tags(self) -> list[str]:
        tags: list[str] = []
        url: str | None = f"{self.base}/tags/list?n=1000"
        seen: set[str] = set()
        while url:
            if url in seen:
                raise RegistryError(f"{self.name}: the registry's tag list links back to a page it already "
                                    "sent (a looping Link header); stopped listing")
            if len(seen) >= self.max_tag_pages:
                raise RegistryError(f"{self.name}: the tag list goes on past {self.max_tag_pages} pages; "
                                    "stopped listing (is the registry's Link header looping?)")
            seen.add(url)
            resp = self._request("GET", url, what=self.name)
            if resp.status_code == 404:
                raise NotFound(f"{self.name}: repository not found in the registry")
            if resp.status_code != 200:
                raise self._error(resp, self.name)
            tags.extend(resp.json().get("tags") or [])
            link = re.search(r"<([^>]+)>\s*;\s*rel=\"?next\"?", resp.headers.get("Link", ""))
            url = urljoin(resp.url, link.group(1)) if link else None
        return tags

    def resolve(self, reference: str) -> str:
        """The manifest digest a tag points at (HEAD first, GET when the registry omits the header)."""
        if reference.startswith("sha256:"):
            return reference
        what = self._what(reference)
        resp = self._request("HEAD", f"{self.base}/manifests/{reference}", what=what,
                             headers={"Accept": MANIFEST_ACCEPT})
        if resp.status_code == 404:
            raise NotFound(f"{what}: not found in the registry")
        if resp.status_code == 200 and resp.headers.get("Docker-Content-Digest"):
            return resp.headers["Docker-Content-Digest"]
        return self.get_manifest(reference).digest

    def delete(self, reference: str) -> None:
        """Delete the manifest ``reference`` names (a tag is resolved first: every tag on it goes)."""
        digest = self.resolve(reference)
        what = self._what(reference)
        resp = self._request("DELETE", f"{self.base}/manifests/{digest}", what=what)
        if resp.status_code in (200, 202, 204):
            return
        if resp.status_code == 404:
            raise NotFound(f"{what}: not found in the registry")
        if resp.status_code == 405:
            raise RegistryError(f"{what}: {self.host} does not allow deleting (its storage.delete setting)")
        raise self._error(resp, what)

    def get_referrers(self, digest: str) -> dict | None:
        """The referrers API's index for ``digest``, or None when the registry has no such API."""
        what = f"{self.name}@{digest} referrers"
        resp = self._request("GET", f"{self.base}/referrers/{digest}", what=what,
                             headers={"Accept": oci.INDEX_V1})
        if resp.status_code in (404, 405, 400):
            return None
        if resp.status_code != 200:
            raise self._error(resp, what)
        if len(resp.content) > 4 << 20:
            raise RegistryError(f"{what}: the referrers index is larger than 4 MiB")
        try:
            return resp.json()
        except ValueError:
            return None

    def ping(self) -> None:
        """GET /v2/ with the configured credentials; raises AuthError when they are refused."""
        url = self.base.split("/v2/", 1)[0] + "/v2/"
        resp = self._request("GET", url, what=self.host)
        if resp.status_code != 200:
            raise self._error(resp, self.host)

    def _what(self, reference: str) -> str:
        return f"{self.name}@{reference}" if ":" in reference else f"{self.name}:{reference}"



def check_login(host: str, options: RegistryOptions) -> None:
    """Raise :class:`AuthError` unless ``host`` accepts the credentials in ``options``."""
    target = RegistryTarget(host, "modelhaul-login-check", options)
    try:
        target.ping()
    finally:
        target.close()


def login(host: str, username: str, password: str, options: RegistryOptions | None = None,
          *, config_path: Path | None = None) -> Path:
    """Check the credentials against ``host``, then store them (a helper when one is configured).

    Returns the docker config path written. Raises :class:`AuthError` when the registry refuses them.
    """
    from dataclasses import replace

    from modelhaul.auth import normalize_host, store_credentials

    if not username or not password:
        raise AuthError(f"{host}: login needs a username and a password")
    check_login(normalize_host(host), replace(options or RegistryOptions(), username=username, password=password))
    return store_credentials(host, username, password, config_path=config_path)

