"""Reading YAML a user hands us (ormbfile.yaml, Kitfile, MLmodel) without letting it hurt us.

Three things a hostile or broken file must not do:

* expand: YAML aliases let a few hundred bytes stand for gigabytes (``a: &a [x, x]``,
  ``b: &b [*a, *a]``...). Model configs never need them, so aliases are refused outright (the
  pyyaml way: a SafeLoader whose composer rejects alias events), and the file size is capped;
* lead elsewhere: a symlinked config is refused (``ormbfile.yaml -> ~/.aws/credentials`` would
  otherwise be read, and its lines echoed in the error), and the file is opened with
  ``O_NOFOLLOW`` so a link swapped in after the check is refused too;
* crash: binary or non-UTF-8 bytes, deep nesting and syntax errors all become one line naming the
  file (and the line), never the file's content.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from modelhaul.errors import ConfigError, ModelhaulError

MAX_CONFIG_BYTES = 1 << 20  # ormbfile.yaml, Kitfile: a few KiB in practice
MAX_MLMODEL_BYTES = 8 << 20  # MLmodel may inline a large signature


class _NoAliasLoader(yaml.SafeLoader):
    """pyyaml's SafeLoader, refusing aliases (``*name``) so that no node is ever shared or expanded."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML alias *{event.anchor} is not allowed (write the value out)", event.start_mark)
        return super().compose_node(parent, index)


def load_yaml_text(text: str, source: str, error: type[ModelhaulError] = ConfigError) -> Any:
    """Parse ``text`` (from ``source``, named in errors) with aliases refused."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise error(f"{source}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise error(f"{source}: YAML nested too deeply; flatten it") from None


def read_yaml_file(path: str | Path, what: str, *, limit: int = MAX_CONFIG_BYTES,
                   error: type[ModelhaulError] = ConfigError) -> Any:
    """The YAML document in the regular file ``path``: no symlink, at most ``limit`` bytes, UTF-8, no aliases.

    ``what`` names the file's role in messages (e.g. ``"ormbfile.yaml"``).
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error(f"{p}: no such file") from None
    except OSError as exc:
        if p.is_symlink():
            raise error(f"{p}: {what} is a symlink; modelhaul reads it only as a regular file "
                        "(replace the link with the file itself)") from None
        raise error(f"{p}: cannot read the {what}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{p}: {what} is not a regular file")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise error(f"{p}: {what} is larger than {limit} bytes; is it the right file?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{p}: {what} is not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x}; "
                    "a binary file?)") from None
    if "\x00" in text:
        raise error(f"{p}: {what} holds NUL bytes; it is not a YAML text file")
    return load_yaml_text(text, str(p), error)
