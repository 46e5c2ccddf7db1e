"""What a registry's 401/403 means to the user, said where the user is (command line, Airflow, KFP, Python).

"refused the credentials; run modelhaul login" is circular when the credentials came from
``modelhaul login`` and meaningless inside Airflow's Test button, so the line names which
credentials were refused (the registry connection's, MODELHAUL_USERNAME/_PASSWORD, those stored
in the docker config) and the one thing to do about them in that place.
"""

from __future__ import annotations

import os

from modelhaul.errors import AuthError, place
from modelhaul.registry_options import RegistryOptions


def credentials_source(options: RegistryOptions, found: tuple[str, str] | None) -> str | None:
    """``given`` (step arguments, a connection, a login), ``env`` (MODELHAUL_*/ORMB_*), ``docker`` or None."""
    if options.has_credentials:
        for prefix in ("MODELHAUL", "ORMB"):
            if os.environ.get(f"{prefix}_USERNAME") == options.username:
                return "env"
        return "given"
    return "docker" if found else None


def _where_to_set(host: str) -> str:
    return {"cli": f"log in with `modelhaul login {host}` (or set MODELHAUL_USERNAME and MODELHAUL_PASSWORD)",
            "airflow": "set Login and Password on the registry connection (modelhaul_registry)",
            "kfp": "mount a Secret with MODELHAUL_USERNAME and MODELHAUL_PASSWORD into the pod",
            }.get(place(), f"run `modelhaul login {host}` or set MODELHAUL_USERNAME and MODELHAUL_PASSWORD")


def auth_error(status: int, what: str, host: str, creds: tuple[str, str] | None, source: str | None) -> AuthError:
    """One line: what was refused, by whom, and what to do about it here."""
    user = creds[0] if creds else None
    if status == 403:
        who = f"user {user}" if user else "anonymous access"
        return AuthError(f"{what}: {host} denied {who} this repository (the credentials are valid but lack "
                         "permission; ask for pull/push rights on it, or use other credentials)")
    if not creds:
        return AuthError(f"{what}: {host} requires authentication; {_where_to_set(host)}")
    refused = f"{what}: {host} refused the credentials"
    if source == "env":
        prefix = "MODELHAUL" if os.environ.get("MODELHAUL_USERNAME") == user else "ORMB"
        return AuthError(f"{refused} in {prefix}_USERNAME/{prefix}_PASSWORD (user {user}); set valid ones")
    if source == "docker":
        from modelhaul.auth import docker_config_path

        again = (f"log in again: modelhaul login {host}" if place() != "airflow" else
                 "set Login and Password on the registry connection (modelhaul_registry) instead")
        return AuthError(f"{refused} stored for {user} in {docker_config_path()} (by modelhaul or docker login); "
                         f"{again}")
    if place() == "airflow":
        return AuthError(f"{refused} of the registry connection (Login {user}); correct Login and Password there")
    return AuthError(f"{refused} given for user {user}; check the username and password and try again")
