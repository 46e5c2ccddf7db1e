"""What every modelhaul hook shares: reading a connection's extras, a missing default, the Test button.

The step functions take connection details as plain arguments; the hooks (one module per connection
type: :mod:`.registry_hook`, :mod:`.mlflow_hook`, :mod:`.kubernetes_hook`) turn an Airflow connection
(from the metadata DB, a secrets backend or ``AIRFLOW_CONN_*`` in URI or JSON form) into those
arguments. A missing *default* connection is not an error: the steps then fall back to their own
environment variables and to the embedded defaults, so a DAG runs unchanged on one laptop and
against real services once the connections exist.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

from modelhaul.declarations import parse_bool
from modelhaul.operators._compat import AirflowNotFoundException, BaseHook


def as_bool(value: Any, name: str = "connection extra") -> bool:
    """Extras from a URI-form connection arrive as strings: ``"true"`` must mean True, ``"False"`` False."""
    return parse_bool(value, name)


def extra_field(conn: Any, name: str, default: Any = None) -> Any:
    """An extra field, stored plain (``name``) or UI-prefixed (``extra__<conn_type>__name``)."""
    extra = conn.extra_dejson or {}
    if name in extra and extra[name] not in (None, ""):
        return extra[name]
    prefixed = f"extra__{conn.conn_type}__{name}"
    if prefixed in extra and extra[prefixed] not in (None, ""):
        return extra[prefixed]
    return default


def optional_connection(conn_id: str | None) -> Any | None:
    """The connection ``conn_id``, or None when it is not defined anywhere."""
    if not conn_id:
        return None
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def tested(check: Callable[[], str]) -> tuple[bool, str]:
    """A Test button's answer: ``check``'s line, or the error's, said to an Airflow user.

    ``airflow connections test`` prints the line as rich markup, which eats ``[kube]`` and any other
    ``[word]``; there it is escaped (the UI shows the line as text, so it is not escaped there).
    """
    import sys

    from modelhaul.errors import redact, said_in

    try:
        with said_in("airflow"):
            ok, text = True, check()
    except Exception as exc:
        ok, text = False, redact(" ".join(str(exc).split())) or type(exc).__name__
    if sys.argv[1:3] == ["connections", "test"]:
        from rich.markup import escape

        text = escape(text)
    return ok, text


@contextlib.contextmanager
def scoped_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a step call, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
