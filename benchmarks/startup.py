"""Start-up benchmark: the whole ``modelhaul`` command when it has almost nothing to do.

Run with the project's virtualenv python from the repository root::

    .venv/bin/python benchmarks/startup.py                       # best of 5, a 64 MiB model
    .venv/bin/python benchmarks/startup.py --files 10            # ten files of 6.4 MiB
    .venv/bin/python benchmarks/startup.py --compare OLD_CHECKOUT  # before/after, runs interleaved
    .venv/bin/python benchmarks/startup.py --bytecode --importtime

It starts a ``docker-registry`` on 127.0.0.1 (the test suite's code), pushes a model directory once
per checkout (warming the caches in that checkout's own ``MODELHAUL_HOME``), then times whole
processes, best of N, the way ``transfer.py`` does (``python -m modelhaul.cli``, ``PYTHONPATH`` at
the checkout): ``python -c pass`` (the interpreter's floor), ``modelhaul --help`` and the unchanged
re-publish ``modelhaul push DIR REF --plain-http`` (issue 15's target: ≤ 0.35 s).

``--compare DIR`` times another checkout (a ``git archive`` of an older commit, say) in the same
run, one run of each in turn. ``--bytecode`` lets Python cache the compiled modules (in a temp
``PYTHONPYCACHEPREFIX``), as an installed modelhaul has them; without it the environment decides
(``PYTHONDONTWRITEBYTECODE=1`` compiles modelhaul's own modules on every run). ``--importtime``
prints the slowest imports of the re-publish.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_once(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; CPU (user + system) moves less on a busy machine.

    It runs in the checkout (``python -m`` puts the working directory first on ``sys.path``)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=env["PYTHONPATH"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed")
    return wall, usage.ru_utime + usage.ru_stime


def slowest_imports(cmd: list[str], env: dict, n: int = 12) -> list[str]:
    """The ``n`` imports with the largest cumulative time in ``python -X importtime``."""
    err = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], env=env, cwd=env["PYTHONPATH"], check=True,
                         capture_output=True, text=True).stderr
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            _, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
            rows.append((int(cumulative), name))
    return [f"{us / 1e6:7.3f} s  {name}" for us, name in sorted(rows, reverse=True)[:n]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size-mib", type=int, default=64, help="the model's size, split over --files files")
    ap.add_argument("--files", type=int, default=1)
    ap.add_argument("--compare", type=Path, help="another checkout to time in the same run")
    ap.add_argument("--bytecode", action="store_true", help="cache compiled modules, as an installed package has")
    ap.add_argument("--importtime", action="store_true")
    opts = ap.parse_args()

    from devtools.registry_server import ensure_tools, start_registry

    ensure_tools("docker-registry")
    roots = {"this checkout": ROOT, **({f"{opts.compare}": opts.compare.resolve()} if opts.compare else {})}
    with tempfile.TemporaryDirectory(prefix="mh-startup-") as tmp:
        work = Path(tmp)
        server = start_registry(work / "registry")
        try:
            model = work / "model"
            model.mkdir()
            for n in range(opts.files):
                (model / f"part-{n:02d}.bin").write_bytes(os.urandom((opts.size_mib << 20) // opts.files))
            rows: dict[tuple[str, str], tuple[list[str], dict]] = {}
            for i, (label, root) in enumerate(roots.items()):
                env = dict(os.environ, PYTHONPATH=str(root), MODELHAUL_HOME=str(work / f"home{i}"),
                           MODELHAUL_TMPDIR=str(work / "tmp"))
                if opts.bytecode:
                    env.pop("PYTHONDONTWRITEBYTECODE", None)
                    env["PYTHONPYCACHEPREFIX"] = str(work / f"pyc{i}")
                cli = [sys.executable, "-m", "modelhaul.cli"]
                push = [*cli, "push", str(model), f"{server.host}/bench/startup{i}:v1", "--plain-http"]
                subprocess.run(push, env=env, cwd=root, check=True, capture_output=True)  # warms the caches
                rows[(label, "python -c pass (floor)")] = ([sys.executable, "-c", "pass"], env)
                rows[(label, "modelhaul --help")] = ([*cli, "--help"], env)
                rows[(label, "modelhaul push DIR REF, unchanged")] = (push, env)
            runs: dict[tuple[str, str], list[tuple[float, float]]] = {k: [] for k in rows}
            for _ in range(opts.repeat):  # one run of each in turn: a busy moment weighs on all alike
                for k, (cmd, env) in rows.items():
                    runs[k].append(run_once(cmd, env))
            print(f"best of {opts.repeat}, whole process, Python {sys.version.split()[0]}"
                  f"{', bytecode cached' if opts.bytecode else ''}; wall s, CPU s")
            for (label, what), times in runs.items():
                print(f"{min(w for w, _ in times):6.3f} {min(c for _, c in times):6.3f}  {what}  [{label}]")
            if opts.importtime:
                cmd, env = rows[("this checkout", "modelhaul push DIR REF, unchanged")]
                print("slowest imports of the unchanged push (cumulative):")
                print("\n".join(slowest_imports(cmd, env)))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
