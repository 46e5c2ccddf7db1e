"""How to reach a registry: TLS choices and credentials, resolved once per step.

Credentials never appear in ``repr``, logs or results. Order of precedence: explicit arguments,
then ``MODELHAUL_USERNAME``/``MODELHAUL_PASSWORD`` (or ormb's ``ORMB_USERNAME``/``ORMB_PASSWORD``),
then the docker config (``DOCKER_CONFIG`` or ``~/.docker/config.json``, credential helpers
included), then anonymous (with bearer tokens when the registry asks for them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from modelhaul.errors import ConfigError
from modelhaul.flags import env_flag


@dataclass(frozen=True)
class RegistryOptions:
    plain_http: bool = False
    insecure: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None

    @classmethod
    def resolve(
        cls,
        *,
        plain_http: bool = False,
        insecure: bool = False,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
    ) -> RegistryOptions:
        env = os.environ
        if not username and not password:
            username, password = _env_credentials(env)
        return cls(
            plain_http=bool(plain_http) or env_flag("MODELHAUL_PLAIN_HTTP"),
            insecure=bool(insecure) or env_flag("MODELHAUL_INSECURE"),
            username=username,
            password=password,
            ca_file=ca_file or env.get("MODELHAUL_CA_FILE") or None,
        )

    @property
    def has_credentials(self) -> bool:
        return bool(self.username and self.password)


def _env_credentials(env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """``(username, password)`` from MODELHAUL_* (else ORMB_*); half a pair is a mistake, not anonymous."""
    for prefix in ("MODELHAUL", "ORMB"):
        user, password = env.get(f"{prefix}_USERNAME") or None, env.get(f"{prefix}_PASSWORD") or None
        if user and password:
            return user, password
        if user or password:
            have, missing = ("PASSWORD", "USERNAME") if password else ("USERNAME", "PASSWORD")
            raise ConfigError(f"{prefix}_{have} is set but {prefix}_{missing} is not; set both "
                              "(or neither, to use the docker config or anonymous access)")
    return None, None
