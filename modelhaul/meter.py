"""Bytes as they move, for whoever watches; and Ctrl-C reaching every transfer thread.

The transfer layer opens each layer it moves with :func:`layer`; the registry client reports every
piece it sends or receives through :func:`moved` (about one call per MiB). Who watches is set once
per process by an adapter with :func:`watching`: the command line's live bars on a terminal, one
line per layer in a log (:class:`LogLines`), an Airflow task's lines at an interval. With nobody
watching, :func:`moved` costs one attribute read.

A transfer thread cannot be interrupted from outside, so Ctrl-C in the main thread sets
:data:`CANCELLED` and every thread's next piece raises :class:`Cancelled`: a 500 MB blob stops
within a MiB instead of being sent to the end.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # imported when a pool starts: modelhaul.steps imports this module, and stays cheap
    from concurrent.futures import ThreadPoolExecutor


class Cancelled(BaseException):
    """The transfer was cancelled (Ctrl-C, SIGTERM, a failure elsewhere): stop moving bytes now."""


CANCELLED = threading.Event()


class Watcher(Protocol):
    def start(self, key: str, label: str, total: int) -> None: ...
    def advance(self, key: str | None, n: int) -> None: ...
    def finish(self, key: str, ok: bool) -> None: ...


_WATCHER: list[Watcher | None] = [None]
_LOCAL = threading.local()


@contextlib.contextmanager
def watching(watcher: Watcher | None) -> Iterator[None]:
    """Report the bytes of every transfer in this process to ``watcher`` while the block runs."""
    before = _WATCHER[0]
    _WATCHER[0] = watcher
    try:
        yield
    finally:
        _WATCHER[0] = before


@contextlib.contextmanager
def layer(key: str, label: str, total: int) -> Iterator[None]:
    """The bytes this thread moves in the block belong to layer ``key`` (``total`` bytes)."""
    watcher, before = _WATCHER[0], getattr(_LOCAL, "key", None)
    _LOCAL.key = key
    if watcher is not None:
        watcher.start(key, label, total)
    ok = False
    try:
        yield
        ok = True
    finally:
        _LOCAL.key = before
        if watcher is not None:
            watcher.finish(key, ok)


def expect(total: int) -> None:
    """``total`` more bytes are about to move (the watcher's total and time left count them)."""
    watcher = _WATCHER[0]
    if watcher is not None and hasattr(watcher, "expect"):
        watcher.expect(total)


def moved(n: int) -> None:
    """``n`` more bytes went over the wire in this thread; raises :class:`Cancelled` once cancelled."""
    if CANCELLED.is_set():
        raise Cancelled()
    watcher = _WATCHER[0]
    if watcher is not None:
        watcher.advance(getattr(_LOCAL, "key", None), n)


def carrying(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run in another thread still counts for the caller's layer (a ranged download's parts)."""
    key = getattr(_LOCAL, "key", None)

    def run(*args: Any, **kwargs: Any) -> Any:
        _LOCAL.key = key
        return fn(*args, **kwargs)

    return run


@contextlib.contextmanager
def cancellable_pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    """A thread pool whose first failure — or Ctrl-C in the waiting thread — stops the other threads
    at their next piece, before the pool waits for them; the cancellation ends with the pool."""
    from concurrent.futures import ThreadPoolExecutor

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="modelhaul") as pool:
            try:
                yield pool
            except BaseException:
                CANCELLED.set()
                raise
    finally:
        CANCELLED.clear()


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class LogLines:
    """Progress as log lines: one per finished layer, and with ``every`` seconds one with the totals
    at most that often (an Airflow task's log, the initializer's)."""

    def __init__(self, emit: Callable[[str], None], every: float | None = None, what: str = "moved"):
        self.emit, self.every, self.what = emit, every, what
        self.lock = threading.Lock()
        self.layers: dict[str, list[Any]] = {}  # key -> [label, total, done, started]
        self.t0 = time.monotonic()
        self.last = self.t0
        self.done = 0

    def start(self, key: str, label: str, total: int) -> None:
        with self.lock:
            self.layers[key] = [label, total, 0, time.monotonic()]

    def advance(self, key: str | None, n: int) -> None:
        with self.lock:
            entry = self.layers.get(key) if key else None
            if entry is None and len(self.layers) == 1:
                entry = next(iter(self.layers.values()))
            if entry is not None:
                entry[2] += n
            self.done += n
            now = time.monotonic()
            if self.every is None or now - self.last < self.every:
                return
            self.last = now
            total = sum(e[1] for e in self.layers.values())
            rate = self.done / max(now - self.t0, 1e-6)
            running = ", ".join(f"{e[0]} {_percent(e[2], e[1])}" for e in self.layers.values())
            line = f"{self.what} {human(self.done)} at {human(rate)}/s; in flight: {running} (of {human(total)})"
        self.emit(line)

    def finish(self, key: str, ok: bool) -> None:
        with self.lock:
            label, total, done, started = self.layers.pop(key, [key, 0, 0, time.monotonic()])
        if not ok or not done:  # a layer the other side had already: nothing to report
            return
        took = max(time.monotonic() - started, 1e-6)
        self.emit(f"{self.what} {label}: {human(max(total, done))} in {took:.1f}s ({human(done / took)}/s)")


class HeldLines:
    """Log lines held while the command is quick, so that a failure is still one line, and passed on
    as they come once it has run for :attr:`after` seconds (someone may be tailing the log)."""

    after = 2.0

    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit = emit
        self.lines: list[str] = []
        self.t0 = time.monotonic()
        self.live = False
        self.lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self.lock:
            self.lines.append(line)
            if self.live or time.monotonic() - self.t0 >= self.after:
                self.live = True
                self._send()

    def flush(self) -> None:
        """At the end of a command that succeeded: the lines still held."""
        with self.lock:
            self._send()

    def _send(self) -> None:
        for line in self.lines:
            self.emit(line)
        self.lines.clear()


def _percent(done: int, total: int) -> str:
    return f"{100 * done / total:.0f}%" if total else human(done)
