"""The registry's auth flow: basic credentials and bearer tokens (through oras-py), shared by a target's threads."""

from __future__ import annotations

import base64
import threading
from typing import TYPE_CHECKING

from modelhaul.registry_options import RegistryOptions

if TYPE_CHECKING:
    import requests


class _Auth:
    """Authorization for one registry: basic credentials, or bearer tokens fetched through oras-py."""

    def __init__(self, host: str, options: RegistryOptions, verify: bool | str):
        self.host, self.options, self.verify = host, options, verify
        self.lock = threading.Lock()
        self.header: str | None = None  # the Authorization value to send pre-emptively
        self._creds: tuple[str, str] | None | bool = False  # False: not looked up yet

    def credentials(self) -> tuple[str, str] | None:
        if self._creds is False:
            if self.options.has_credentials:
                self._creds = (self.options.username or "", self.options.password or "")
            else:
                from modelhaul.auth import credentials_for

                self._creds = credentials_for(self.host)
        return self._creds  # type: ignore[return-value]

    def answer(self, resp: requests.Response, sent: str | None, what: str) -> bool:
        """Update :attr:`header` from a 401/403 challenge; False when there is nothing new to try."""
        challenge = resp.headers.get("Www-Authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        with self.lock:
            if self.header != sent:  # another thread already answered this challenge
                return True
            creds = self.credentials()
            if scheme == "basic":
                if not creds or sent and sent.startswith("Basic "):
                    return False
                self.header = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
                return True
            if scheme == "bearer":
                token = self._token(challenge, creds)
                if not token or self.header == f"Bearer {token}":
                    return False
                self.header = f"Bearer {token}"
                return True
        return False

    def _token(self, challenge: str, creds: tuple[str, str] | None) -> str | None:
        import oras.auth
        import requests
        from oras.auth.utils import parse_auth_header

        h = parse_auth_header(challenge)
        if not h.realm:
            return None
        if h.scope and " " in h.scope:  # several scopes (a mount): token servers want one param each
            h.scope = h.scope.split()  # type: ignore[assignment]  # requests repeats list params
        backend = oras.auth.get_auth_backend("token", session=requests.Session(),
                                             insecure=self.options.plain_http, tls_verify=self.verify)
        backend._basic_auth = None
        try:
            if creds:
                backend.set_basic_auth(*creds)
                return backend.request_token(h)
            return backend.request_anonymous_token(h)
        except requests.RequestException:
            return None
        finally:
            backend.session.close()

