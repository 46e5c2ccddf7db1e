"""How to reach a registry: TLS choices and credentials, resolved once per step.

Credentials never appear in ``repr``, logs or results. Order of precedence: explicit arguments,
then ``MODELHAUL_USERNAME``/``MODELHAUL_PASSWORD`` (or ormb's ``ORMB_USERNAME``/``ORMB_PASSWORD``),
then the docker config (``DOCKER_CONFIG`` or ``~/.docker/config.json``, credential helpers
included), then anonymous (with bearer tokens when the registry asks for them).

Time limits bound a registry that stops answering: ``connect_timeout`` (seconds to open a
connection, ``MODELHAUL_CONNECT_TIMEOUT``), ``read_timeout`` (seconds of silence tolerated inside a
request, ``MODELHAUL_TIMEOUT``) and ``retry_budget`` (seconds spent retrying one operation after its
first transient failure, ``MODELHAUL_RETRY_BUDGET``). A registry that accepts connections and
never answers fails after about ``read_timeout + retry_budget`` seconds instead of hanging.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from modelhaul.errors import ConfigError
from modelhaul.flags import env_flag

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 120.0
RETRY_BUDGET = 300.0


@dataclass(frozen=True)
class RegistryOptions:
    plain_http: bool = False
    insecure: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    retry_budget: float = RETRY_BUDGET

    @classmethod
    def resolve(
        cls,
        *,
        plain_http: bool = False,
        insecure: bool = False,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        retry_budget: float | None = None,
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
            connect_timeout=_seconds(connect_timeout, "MODELHAUL_CONNECT_TIMEOUT", CONNECT_TIMEOUT),
            read_timeout=_seconds(read_timeout, "MODELHAUL_TIMEOUT", READ_TIMEOUT),
            retry_budget=_seconds(retry_budget, "MODELHAUL_RETRY_BUDGET", RETRY_BUDGET, zero_ok=True),
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


def _seconds(value: float | None, env_name: str, default: float, zero_ok: bool = False) -> float:
    """An explicit value, else the environment's, else ``default``; refuses what is not a duration."""
    raw: object = value if value is not None else os.environ.get(env_name, "").strip() or default
    try:
        seconds = float(raw)  # type: ignore[arg-type]
    except ValueError:
        seconds = -1.0
    if not (seconds > 0 or zero_ok and seconds == 0) or seconds != seconds or seconds == float("inf"):
        raise ConfigError(f"{env_name}={raw!r}: expected a number of seconds"
                          f"{' (0 or more)' if zero_ok else ' above 0'}")
    return seconds
