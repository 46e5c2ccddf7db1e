"""What writing 1 GiB into the page cache costs on this machine, run after run (issue 26's reading).

A verified pull writes every byte it receives; on this machine the kernel's cost for those writes
changes with the page cache's state (after a few GiB have just been written, a 1 GiB ``write()``
loop takes several times longer, nearly all of it system time), whatever the size of the writes.
Run it to see whether a slow pull row is the machine's writes or modelhaul::

    .venv/bin/python benchmarks/write_cost.py [DIR] [--sizes 1048576,65536] [--rounds 4]

Each round writes 1 GiB per write size into a new file under DIR (default: a temp dir beside the
repository), keeps it until the end (as a benchmark run keeps its outputs), and prints wall and
system seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

GiB = 1 << 30


def write_gib(path: Path, size: int) -> tuple[float, float]:
    """Wall and system seconds of writing 1 GiB to ``path`` in ``size``-byte writes."""
    view = memoryview(os.urandom(size))
    before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(GiB // size):
            f.write(view)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter() - t0, after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", nargs="?", help="where to write (default: a temp dir beside the repository)")
    ap.add_argument("--sizes", default="1048576,65536", help="write sizes in bytes, comma-separated")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="write-cost-", dir=args.dir or Path(__file__).resolve().parents[2]))
    try:
        for r in range(args.rounds):
            for size in (int(s) for s in args.sizes.split(",")):
                wall, system = write_gib(root / f"r{r}-{size}.bin", size)
                print(f"round {r + 1}: 1 GiB in {size // 1024:>5} KiB writes: "
                      f"{wall:5.2f} s wall, {system:5.2f} s system")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
