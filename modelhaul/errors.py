"""Errors a user sees. Each carries a one-line message that names what is at fault and what to do.

The CLI prints ``str(error)`` and exits non-zero; the Airflow and KFP adapters let it propagate.
Nothing here ever holds a credential: build messages with :func:`redact` where a URL is involved.
"""

from __future__ import annotations

from modelhaul.redact import redact  # noqa: F401 - errors are built with it; callers import it from here


class ModelhaulError(Exception):
    """Base of every error modelhaul raises on purpose."""


class ConfigError(ModelhaulError, ValueError):
    """A model config (ormbfile.yaml, a config blob, a step argument) is invalid."""


class InvalidReference(ModelhaulError, ValueError):
    """A model reference (registry/repo:tag@digest or oci:PATH:TAG) cannot be parsed."""


class BundleError(ModelhaulError):
    """A model directory or archive cannot be packed or unpacked."""


class UnsafeArchive(BundleError):
    """An archive entry would escape the destination or is a device file."""


class RegistryError(ModelhaulError):
    """The registry refused or failed a request."""


class AuthError(RegistryError):
    """The registry wants credentials we do not have, or refused the ones we sent."""


class NotFound(RegistryError):
    """A tag, manifest or blob does not exist."""


class DigestMismatch(RegistryError):
    """Bytes do not hash to the digest that names them."""


class MLflowError(ModelhaulError):
    """An MLflow run, model, version or alias cannot be found or read."""


class FormatError(ModelhaulError):
    """A model file cannot be detected or parsed."""


class ConversionError(ModelhaulError):
    """A conversion failed or its parity check did not pass."""


class DeployError(ModelhaulError):
    """A manifest is invalid, or a deployment failed or timed out."""


class SignatureError(ModelhaulError):
    """A model is unsigned, signed by another key, or its files do not match its signature."""


class GateError(ModelhaulError):
    """A promotion gate expression is malformed (a gate that is *not met* is not an error)."""


# -- where the user is: the command line, an Airflow task or its Test button, a KFP pod, Python ---------------

_PLACE = ["python"]


def place() -> str:
    """``"cli"``, ``"airflow"``, ``"kfp"`` or ``"python"``: messages say what to do *there*."""
    return _PLACE[-1]


class said_in:  # noqa: N801 - used as a context manager, like contextlib's
    """Within ``with said_in("airflow"):`` error messages address a user of that place."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        _PLACE.append(self.where)

    def __exit__(self, *exc: object) -> None:
        _PLACE.pop()
