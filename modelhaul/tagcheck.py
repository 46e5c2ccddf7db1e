"""Is a tag already this manifest? Asked with the standard library only.

Re-publishing an unchanged model moves no byte: the pack cache knows the manifest, so what is left
is asking the registry whether the tag already names it. The full registry client imports requests
and urllib3 (~75 ms, a third of the whole command), so this asks over one keep-alive
``http.client`` connection instead: one HEAD of the manifest by tag, whose ``Docker-Content-
Digest`` must be the remembered manifest's. Its blobs are not asked for one by one (a tokenizer-
style model has a thousand): a registry accepts a manifest only when it holds every blob it names,
and keeps them while a manifest refers to them. Only a plain yes is trusted. Anything else (another
digest, 404, a 401 asking for credentials, a proxy in the environment, a TLS or network error)
answers no and the full client publishes as before, with its auth flow, retries and error messages.
"""

from __future__ import annotations

import contextlib
import http.client
import os

from modelhaul.registry_options import RegistryOptions

DOCKER_HUB_API = "registry-1.docker.io"
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy")


def api_host(host: str) -> str:
    """Where a registry's API answers: Docker Hub's name differs from its reference name."""
    return DOCKER_HUB_API if host in ("docker.io", "index.docker.io") else host


def _connection(host: str, options: RegistryOptions) -> http.client.HTTPConnection:
    timeout = options.connect_timeout
    if options.plain_http:
        return http.client.HTTPConnection(host, timeout=timeout)
    import ssl

    if options.insecure:
        ctx = ssl._create_unverified_context()
    else:  # the CA bundle requests would use: the option, REQUESTS_CA_BUNDLE, else certifi's
        cafile = options.ca_file or os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if not cafile:
            import certifi

            cafile = certifi.where()
        ctx = ssl.create_default_context(cafile=cafile)
    return http.client.HTTPSConnection(host, timeout=timeout, context=ctx)


def already_tagged(host: str, repository: str, tag: str, manifest_digest: str, media_type: str,
                   options: RegistryOptions) -> bool:
    """True only when ``repository:tag`` resolves to ``manifest_digest`` in the registry."""
    if any(os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARS):
        return False  # requests would go through the proxy: let it
    conn = _connection(api_host(host), options)
    try:
        with contextlib.closing(conn):
            conn.request("HEAD", f"/v2/{repository}/manifests/{tag}",
                         headers={"User-Agent": "modelhaul", "Accept": media_type})
            resp = conn.getresponse()
            resp.read()
            return resp.status == 200 and resp.getheader("Docker-Content-Digest") == manifest_digest
    except (OSError, http.client.HTTPException, ValueError):
        return False
