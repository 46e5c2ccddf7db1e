"""A download in progress: the partial file beside the destination, the hash of what it holds, and
the thread that hashes received pieces while the next ones arrive."""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from pathlib import Path
from typing import Any

from modelhaul.errors import ModelhaulError
from modelhaul.registry.bodies import RECV_PIECE, MiB


def _local_write_failed(where: str, e: OSError) -> ModelhaulError:
    """A failed write on this machine (disk full, file too large): said at once, not retried as a
    network failure. A pull into the store keeps its partial file, and the next process resumes it
    (re-hashing what the file holds, torn last piece included)."""
    return ModelhaulError(f"{Path(where).parent}: writing the download failed ({e.strerror or e}); free space there "
                          "(or choose another destination) and run the command again")


class _Hasher:
    """Hashes received pieces on another thread while the receiving thread writes the next ones.

    The receiving thread reads each piece into one buffer of a fixed pool, writes it to the file
    and hands it here; hashlib releases the GIL, so hashing (the slowest stage, ~0.7 s per GiB on
    one core) overlaps receiving and writing. The pool bounds memory, also with four blobs
    downloading at once: the receiver waits when hashing falls behind. (A separate writer thread
    as a third stage measured slower here: one more hand-off per piece, and the piece is no longer
    in the cache when it is written.)
    """

    def __init__(self, part: _Partial, buffers: int = 6):
        self.part = part
        self.free: queue.Queue[bytearray] = queue.Queue()
        self.work: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        for _ in range(buffers):
            self.free.put(bytearray(RECV_PIECE))
        self.thread = threading.Thread(target=self._hash, name="modelhaul-hash", daemon=True)
        self.thread.start()

    def _hash(self) -> None:
        while (item := self.work.get()) is not None:
            buf, n = item
            self.part.h.update(memoryview(buf)[:n])
            self.free.put(buf)

    def close(self) -> None:
        """Wait until every written piece is hashed."""
        self.work.put(None)
        self.thread.join()


class _Partial:
    """A download in progress: the open partial file and the hash of the bytes it holds."""

    def __init__(self, f: Any, algo: str, size: int):
        self.f, self.algo, self.size = f, algo, size if size is not None else -1
        self.h = hashlib.new(algo)
        end = f.seek(0, os.SEEK_END)
        if self.size >= 0 and end > self.size:
            self.reset()
            return
        self.resync()

    def resync(self) -> None:
        """Re-hash what the file holds (what an earlier attempt wrote: cheaper than downloading it again)."""
        self.f.flush()
        self.h = hashlib.new(self.algo)
        end = self.f.seek(0, os.SEEK_END)
        if end:  # a new partial file (nearly every download) has nothing to re-hash, nor a buffer to fill
            self.f.seek(0)
            buf = bytearray(min(4 * MiB, end))
            view = memoryview(buf)
            while n := self.f.readinto(buf):
                self.h.update(view[:n])
        self.offset = self.f.seek(0, os.SEEK_END)

    def reset(self) -> None:
        self.f.seek(0)
        self.f.truncate(0)
        self.h = hashlib.new(self.algo)
        self.offset = 0

    def append(self, data: memoryview) -> None:
        self.write(data)
        self.h.update(data)

    def write(self, data: memoryview) -> None:
        """Write without hashing (the caller hashes, in order)."""
        try:
            self.f.write(data)
        except OSError as e:
            raise _local_write_failed(self.f.name, e) from None
        self.offset += len(data)

    def digest(self) -> str:
        self.f.flush()
        return f"{self.algo}:{self.h.hexdigest()}"
