"""Registry credentials in the docker config: where they are found, and ``login`` / ``logout``.

oras-py reads only ``~/.docker/config.json`` (it ignores ``DOCKER_CONFIG``) and writes credentials
with the file's default mode; modelhaul follows docker instead: ``$DOCKER_CONFIG/config.json`` when
that variable is set, files written atomically with mode 0600, and credential helpers
(``credHelpers`` / ``credsStore``) used for ``store`` and ``erase`` as well as ``get``. Reading a
helper goes through oras-py's own auth backend, so helpers behave as they do for oras.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from modelhaul.errors import AuthError, ConfigError

DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json`` (which may not exist)."""
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def normalize_host(key: str) -> str:
    """A docker config key (``https://host:5000/v1/``, ``host:5000``) as a bare ``host[:port]``."""
    k = key.strip()
    if "://" in k:
        k = k.split("://", 1)[1]
    k = k.split("/", 1)[0].lower()
    return "docker.io" if k in DOCKER_HUB_KEYS or k == "index.docker.io" else k


def _host_aliases(host: str) -> list[str]:
    h = normalize_host(host)
    names = [h]
    if h.startswith("localhost"):
        names.append(h.replace("localhost", "127.0.0.1", 1))
    elif h.startswith("127.0.0.1"):
        names.append(h.replace("127.0.0.1", "localhost", 1))
    return names


def read_docker_config(path: Path | None = None) -> dict[str, Any]:
    path = path or docker_config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: unreadable docker config ({type(e).__name__}); fix or remove it") from e
    return data if isinstance(data, dict) else {}


def credentials_for(host: str, path: Path | None = None) -> tuple[str, str] | None:
    """``(username, password)`` for ``host`` from the docker config (inline auth or a helper), or None."""
    import oras.auth

    cfg = read_docker_config(path)
    if not cfg:
        return None
    backend = oras.auth.get_auth_backend("basic")
    # oras-py looks keys up verbatim; docker writes them in several spellings, so normalise first
    backend._auth_config = {
        "auths": {normalize_host(k): v for k, v in (cfg.get("auths") or {}).items() if isinstance(v, dict)},
        "credHelpers": {normalize_host(k): v for k, v in (cfg.get("credHelpers") or {}).items()},
        "credsStore": cfg.get("credsStore"),
    }
    for name in _host_aliases(host):
        backend._basic_auth = None
        with contextlib.suppress(Exception):  # a broken helper means "no credentials", not a crash
            if backend._load_auth(name) and backend._basic_auth:
                user, _, secret = base64.b64decode(backend._basic_auth).decode().partition(":")
                if user and secret and user != "<token>":
                    return user, secret
    return None


def store_credentials(host: str, username: str, password: str, *, config_path: Path | None = None) -> Path:
    """Store the credentials of ``host`` in the docker config (through its helper when one is configured).

    Returns the docker config path written. Checking them first is the registry's job
    (:func:`modelhaul.registry.login`).
    """
    if not username or not password:
        raise AuthError(f"{host}: login needs a username and a password")
    host = normalize_host(host)
    path = config_path or docker_config_path()
    cfg = read_docker_config(path)
    helper = _helper_for(cfg, host)
    if helper:
        entry = {"ServerURL": host, "Username": username, "Secret": password}
        _run_helper(helper, "store", json.dumps(entry))
        cfg.setdefault("auths", {}).setdefault(host, {})
        cfg["auths"][host].pop("auth", None)
    else:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        cfg.setdefault("auths", {})[host] = {"auth": token}
    _write_config(path, cfg)
    return path


def logout(host: str, *, config_path: Path | None = None) -> bool:
    """Forget the credentials of ``host``; True when there were any."""
    path = config_path or docker_config_path()
    cfg = read_docker_config(path)
    names = set(_host_aliases(host))
    auths = cfg.get("auths") or {}
    removed = [k for k in auths if normalize_host(k) in names]
    for k in removed:
        del auths[k]
    helper = _helper_for(cfg, normalize_host(host))
    erased = False
    if helper:
        with contextlib.suppress(AuthError):
            _run_helper(helper, "erase", normalize_host(host))
            erased = True
    if removed:
        _write_config(path, cfg)
    return bool(removed) or erased


def _helper_for(cfg: dict[str, Any], host: str) -> str | None:
    for k, v in (cfg.get("credHelpers") or {}).items():
        if normalize_host(k) == host:
            return str(v)
    return cfg.get("credsStore") or None


def _run_helper(helper: str, verb: str, stdin: str) -> str:
    binary = f"docker-credential-{helper}"
    try:
        r = subprocess.run([binary, verb], input=stdin.encode(), capture_output=True, timeout=60)
    except FileNotFoundError as e:
        raise AuthError(f"credential helper {binary} is not on PATH; install it or edit the docker config"
                        ) from e
    if r.returncode != 0:
        raise AuthError(f"credential helper {binary} {verb} failed (exit {r.returncode})")
    return r.stdout.decode(errors="replace")


def _write_config(path: Path, cfg: dict[str, Any]) -> None:
    """Write atomically with mode 0600: the file holds credentials."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
