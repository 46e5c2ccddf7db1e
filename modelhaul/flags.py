"""Booleans that arrive as text: templated operator arguments, connection extras, environment variables.

``bool("False")`` is True, so a rendered ``'False'`` must never reach ``bool()``: a wrong guess on
``trust`` turns on unpickling of untrusted model files. Only the spellings below are accepted;
anything else is an error that names the argument.
"""

from __future__ import annotations

from typing import Any

from modelhaul.errors import ConfigError

TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no"})


def parse_bool(value: Any, name: str, *, default: bool = False) -> bool:
    """``value`` as a bool: a real bool, 0/1, or true/false/1/0/yes/no in any case.

    ``None`` and ``""`` (an unset template or variable) give ``default``.
    """
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if not word:
            return default
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ConfigError(f"{name}={value!r}: not a boolean; use true/false, yes/no or 1/0")


def env_flag(name: str, *, default: bool = False) -> bool:
    """The environment variable ``name`` as a bool (unset or empty: ``default``)."""
    import os

    return parse_bool(os.environ.get(name), name, default=default)
