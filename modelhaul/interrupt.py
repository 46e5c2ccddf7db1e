"""SIGTERM as an exception, so a cancelled run cleans up after itself.

Airflow and Kubernetes cancel a task with SIGTERM, whose default action kills the process on the
spot: temp packs, ``.partial`` directories and half-copied blobs stay behind. The entry points
(``modelhaul``, ``modelhaul-initializer``) turn it into :class:`Terminated`, a ``SystemExit``
with status 143 (128 + 15, what a shell reports), so every ``finally`` and ``with`` cleanup runs.
"""

from __future__ import annotations

import signal
import threading


class Terminated(SystemExit):
    """Raised in the main thread when the process gets SIGTERM."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(128 + signum)


def exit_cleanly_on_sigterm() -> type[Terminated]:
    """Install the handler (only possible, and only needed, in the main thread); returns the
    exception class SIGTERM becomes, for an adapter to catch."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
    return Terminated
