"""What the command shows while bytes move: live bars on a terminal, one line per layer otherwise.

On a terminal (stderr), every layer in flight gets a bar with its bytes, speed and time left, under
a total; the bars follow the bytes as the registry client reports them (every MiB), redrawn a few
times a second by rich's own thread. The phases that move no bytes (packing, converting) show a
spinner until the first layer starts. Not on a terminal — a pipe, a CI log — each finished layer
is one line. ``--quiet`` shows neither.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

from modelhaul import steps

BUSY = {"save": "packing", "export": "exporting", "import-mlflow": "importing from MLflow", "convert": "converting",
        "parse": "parsing"}


class _Bars:
    """A rich Progress with one task per layer and one for the total, started at the first layer.

    The total is what moved so far, plus what the layers in flight still have to move, plus the
    layers announced (:func:`expect`) but not started; a layer the other side already had moves
    nothing and drops out of it.
    """

    def __init__(self, status: Any) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.status = status
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
                                 TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                                 refresh_per_second=8)
        self.lock = threading.Lock()
        self.layers: dict[str, list[Any]] = {}  # key -> [task id, size, bytes moved]
        self.total: Any = None
        self.pending = 0  # announced, not started
        self.moved = 0

    def _retotal(self) -> None:
        if self.total is not None:
            left = sum(max(size - done, 0) for _, size, done in self.layers.values())
            self.progress.update(self.total, total=self.moved + left + self.pending)

    def expect(self, total: int) -> None:
        with self.lock:
            self.pending += total
            self._retotal()

    def start(self, key: str, label: str, size: int) -> None:
        from rich.markup import escape

        with self.lock:
            if self.total is None:
                if self.status is not None:
                    self.status.stop()
                self.progress.start()
                self.total = self.progress.add_task("total", total=None)
            self.pending = max(self.pending - size, 0)
            self.layers[key] = [self.progress.add_task(escape(label), total=size), size, 0]
            self._retotal()

    def advance(self, key: str | None, n: int) -> None:
        entry = self.layers.get(key) if key else None
        if entry is None and len(self.layers) == 1:
            entry = next(iter(self.layers.values()), None)
        if entry is not None:
            entry[2] += n
            self.progress.advance(entry[0], n)
        if self.total is not None:
            self.moved += n
            self.progress.advance(self.total, n)

    def finish(self, key: str, ok: bool) -> None:
        with self.lock:
            entry = self.layers.pop(key, None)
            if entry is None:
                return
            if not entry[2]:  # nothing moved: the other side had it (or it failed at once)
                self.progress.remove_task(entry[0])
            self._retotal()

    def stop(self) -> None:
        if self.total is not None:
            self.progress.stop()


@contextlib.contextmanager
def showing(args: argparse.Namespace) -> Iterator[None]:
    """Progress for the command ``args`` runs, where and as the user can see it."""
    if getattr(args, "quiet", False):
        yield
        return
    if not sys.stderr.isatty():
        held = steps.HeldLines(lambda line: print(line, file=sys.stderr, flush=True))
        with steps.watching(steps.LogLines(held, what=args.command)):
            yield
        held.flush()  # not reached on failure: a quick command that fails says one line
        return
    status = None
    if args.command in BUSY:
        from rich.console import Console

        status = Console(stderr=True).status(f"{BUSY[args.command]} {getattr(args, 'ref', '') or ''}")
        status.start()
    bars = _Bars(status)
    try:
        with steps.watching(bars):
            yield
    finally:
        bars.stop()
        if status is not None:
            status.stop()
