"""Whole commands side by side: modelhaul, its floors (curl, openssl) and its peers (oras, modctl, kit).

Run through ``transfer.py`` with the project's virtualenv python from the repository root::

    .venv/bin/python benchmarks/transfer.py --whole --repeat 3     # 1 GiB, 4 GiB, 10 x 100 MiB, 1000 x 4 KiB
    .venv/bin/python benchmarks/transfer.py --whole --quick        # 64 MiB, 10 x 8 MiB, 200 x 4 KiB

Every row is one command (or two, for kit's pack + push) as a user types it, timed around the
whole process: interpreter start-up and imports included, with modelhaul's compiled modules cached
as an installed package has them. The rows of one case run in rounds (each row once per round,
the best of ``--repeat`` kept), so a machine whose load changes hurts every row alike. Publishes
go to a fresh repository each time (nothing is skipped by a HEAD) from a fresh ``MODELHAUL_HOME``
(no digest cache), and pulls go into a fresh directory with an empty store.

The floors: curl's monolithic PUT and GET of the same blobs, and ``openssl dgst -sha256`` of the
files (one process; for several files also one per core, ``xargs -P``). A verified pull cannot
beat the slower of receiving the bytes and hashing them, so pull rows are compared with
max(curl GET, hash); publish rows with curl PUT (the registry hashes on its side too).

The peers come from ``../shared/tools`` (``unpack.sh``; ``MODELHAUL_SHARED_DIR`` when shared/ lies
elsewhere) when it is there: oras (``push``/``pull``),
modctl (``build --output-remote`` / ``pull --extract-from-remote``), kit (``pack`` + ``push`` /
``unpack``). Last, each puller gets a blob tampered with in the registry's storage: does it fail,
and does the corrupt file end up on disk?
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import transfer
from transfer import MiB, file_list, make_case, run_measured

SHARED_TOOLS = Path(os.environ.get("MODELHAUL_SHARED_DIR") or transfer.ROOT.parent / "shared") / "tools"
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def settle(*warm: Path) -> bool:
    """Start a row from the same page cache as every other: dirty pages written out, and (where this
    process may write ``/proc/sys/vm/drop_caches``, as root) the cache dropped and refilled with
    what the rows read (the registry's storage, the source files). On this machine a 1 GiB write
    costs 0.2 s or nearly 3 s by what the cache held before (``write_cost.py``), so without this a
    row's time depends on the rows before it. Returns whether the cache was dropped."""
    os.sync()
    try:
        DROP_CACHES.write_text("1\n")
    except OSError:
        return False
    for root in warm:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            with open(path, "rb", buffering=0) as f:
                while f.read(8 << 20):
                    pass
    return True


PEERS = ("oras", "modctl", "kit")
WARM_IMPORTS = ("import modelhaul.cli.commands, modelhaul.cli.progress, modelhaul.verbs, modelhaul.artifacts, "
                "modelhaul.bundle, modelhaul.registry, modelhaul.transfer, modelhaul.store, requests")


@dataclass
class Line:
    """One row of a case: a command measured in rounds; ``floor`` says what its ratio is against."""

    label: str
    floor: str  # "put", "get" (max of curl GET and the hash), or "" (no ratio)
    run: Callable[[], tuple[float, float]]
    note: str = ""
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)  # CPU seconds of the process tree, user + system
    rss: float = 0.0
    error: str = ""

    @property
    def best(self) -> float | None:
        return min(self.walls) if self.walls else None


def peer_tools(work: Path) -> dict[str, Path]:
    """The peers' binaries, unpacked from ``../shared/tools`` into ``work`` (none when it is absent)."""
    if not (SHARED_TOOLS / "unpack.sh").exists():
        return {}
    dest = work / "tools"
    subprocess.run(["bash", str(SHARED_TOOLS / "unpack.sh"), str(dest)], check=True, capture_output=True)
    return {name: dest / name for name in PEERS if (dest / name).exists()}


class Whole:
    """The whole-command rows of one case."""

    def __init__(self, bench: transfer.Bench, tools: dict[str, Path], src: Path):
        self.b, self.tools, self.src = bench, tools, src
        self.host = bench.host
        self.pyc = bench.work / "pycache"  # compiled once, as an installed modelhaul has them
        self.last: dict[str, str] = {}  # tool -> the reference it published last (what its pull reads)
        self.cpu: list[float] = []  # CPU seconds of each measured command, in order
        self.settled = False  # whether rows start from a dropped and re-warmed page cache

    def env(self, home: Path | None = None) -> dict:
        env = self.b.env(home)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.pyc)
        return env

    def tool_env(self) -> dict:
        home = Path(tempfile.mkdtemp(prefix="tool-home-", dir=self.b.work))
        return {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KITOPS_"))} | {"HOME": str(home)}

    def settle(self) -> None:
        """The page cache as every row finds it (see :func:`settle`): the registry's storage and the source,
        and each command's own program files, read back as a user's next command finds them."""
        self.settled = settle(self.b.server.storage, self.src)
        if self.settled:
            self.warm_programs()

    def warm_programs(self) -> None:
        """Read back what dropping the cache evicted of the commands themselves: the peers' binaries,
        and the Python modules a transfer command imports (without this, a modelhaul row would
        also pay for reading its interpreter and libraries from disk, a peer row one binary)."""
        for tool in [*self.tools.values(), *map(shutil.which, ("curl", "openssl"))]:
            if tool:
                Path(tool).read_bytes()
        subprocess.run([sys.executable, "-c", WARM_IMPORTS], env=self.env(), check=True, capture_output=True)

    def measured(self, cmd: list[str], env: dict, cwd: Path | None = None) -> tuple[float, float]:
        self.settle()
        wall, rss, _ = run_measured(cmd, env=env, cwd=str(cwd) if cwd else None, cpu=self.cpu)
        return wall, rss

    def fresh_dir(self, what: str) -> Path:
        d = Path(tempfile.mkdtemp(prefix=f"{what}-", dir=self.b.work))
        d.rmdir()  # the tools create it (modelhaul wants a new or empty one)
        return d

    @contextlib.contextmanager
    def pull_dir(self, what: str) -> Iterator[Path]:
        """A destination that does not exist yet, removed after the measured pull."""
        dest = self.fresh_dir(what)
        try:
            yield dest
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    # -- modelhaul ----------------------------------------------------------------------------------

    def mh(self, *argv: str, home: Path | None = None) -> tuple[float, float]:
        return self.measured([sys.executable, "-m", "modelhaul.cli", *argv, "--plain-http"], self.env(home))

    def mh_push(self, fmt: str = "modelpack") -> tuple[float, float]:
        ref = f"{self.host}/{self.b.repo(f'mh-{fmt}')}:v1"
        self.last[f"mh-{fmt}"] = ref
        return self.mh("push", str(self.src), ref, *(["--format", fmt] if fmt != "modelpack" else []))

    def mh_push_unchanged(self) -> tuple[float, float]:
        if "unchanged" not in self.last:
            self.last["unchanged"] = f"{self.host}/{self.b.repo('mh-again')}:v1"
            self.last["home"] = tempfile.mkdtemp(prefix="home-again-", dir=self.b.work)
            self.mh("push", str(self.src), self.last["unchanged"], home=Path(self.last["home"]))
        return self.mh("push", str(self.src), self.last["unchanged"], home=Path(self.last["home"]))

    def mh_pull(self) -> tuple[float, float]:
        home = Path(tempfile.mkdtemp(prefix="home-pull-", dir=self.b.work))  # an empty store each time
        try:
            return self.mh("pull", self.last["mh-modelpack"], home=home)
        finally:
            shutil.rmtree(home, ignore_errors=True)

    def mh_export(self) -> tuple[float, float]:
        with self.pull_dir("mh-export") as dest:
            return self.mh("export", self.last["mh-modelpack"], str(dest))

    # -- peers ----------------------------------------------------------------------------------------

    def oras_push(self) -> tuple[float, float]:
        ref = self.last["oras"] = f"{self.host}/{self.b.repo('oras')}:v1"
        names = sorted(p.name for p in self.src.iterdir())
        return self.measured([str(self.tools["oras"]), "push", "--plain-http", ref, *names], self.tool_env(),
                             cwd=self.src)

    def oras_pull(self) -> tuple[float, float]:
        with self.pull_dir("oras-pull") as dest:
            return self.measured([str(self.tools["oras"]), "pull", "--plain-http", "-o", str(dest),
                                  self.last["oras"]], self.tool_env())

    def modctl_build(self) -> tuple[float, float]:
        ref = self.last["modctl"] = f"{self.host}/{self.b.repo('modctl')}:v1"
        env = self.tool_env()
        modelfile = Path(env["HOME"]) / "Modelfile"
        modelfile.write_text("NAME bench\n" + "".join(f"MODEL {p.name}\n" for p in sorted(self.src.iterdir())))
        return self.measured([str(self.tools["modctl"]), "build", "--plain-http", "--no-progress",
                              "--output-remote", "-f", str(modelfile), "-t", ref, "."], env, cwd=self.src)

    def modctl_pull(self) -> tuple[float, float]:
        with self.pull_dir("modctl-pull") as dest:
            return self.measured([str(self.tools["modctl"]), "pull", "--plain-http", "--no-progress",
                                  "--extract-from-remote", "--extract-dir", str(dest), self.last["modctl"]],
                                 self.tool_env())

    def kit_pack_push(self) -> tuple[float, float]:
        ref = self.last["kit"] = f"{self.host}/{self.b.repo('kit')}:v1"
        env = self.tool_env()
        kitfile = Path(env["HOME"]) / "Kitfile"
        kitfile.write_text("manifestVersion: 1.0.0\npackage:\n  name: bench\nmodel:\n  name: bench\n  path: .\n")
        kit = str(self.tools["kit"])
        script = (f"set -e\n'{kit}' pack . -f '{kitfile}' -t '{ref}' --progress none\n"
                  f"'{kit}' push --plain-http '{ref}' --progress none\n")
        return self.measured(["bash", "-c", script], env, cwd=self.src)

    def kit_unpack(self) -> tuple[float, float]:
        with self.pull_dir("kit-unpack") as dest:
            return self.measured([str(self.tools["kit"]), "unpack", "--plain-http", "--progress", "none",
                                  self.last["kit"], "-d", str(dest)], self.tool_env())

    # -- floors ---------------------------------------------------------------------------------------

    def curl(self, run: Callable[[], tuple[float, float, dict]]) -> tuple[float, float]:
        self.settle()
        wall, rss, _ = run()
        return wall, rss

    def hash_floor(self, parallel: bool) -> tuple[float, float]:
        files = [str(p) for p in sorted(self.src.iterdir())]
        if not parallel:
            return self.measured(["openssl", "dgst", "-sha256", *files], dict(os.environ))
        script = f"printf '%s\\0' \"$@\" | xargs -0 -P {os.cpu_count() or 1} -n 1 openssl dgst -sha256 >/dev/null"
        return self.measured(["bash", "-c", script, "hash", *files], dict(os.environ))

    def lines(self, files: int, small: bool) -> list[Line]:
        """The rows, in the order each round runs them (every pull after the publish it reads)."""
        flist = file_list(self.src)
        out: list[Line] = []
        if not small:  # 1000 curl processes measure curl's start-up, not the registry
            out.append(Line("curl PUT, monolithic (floor)", "", lambda: self.curl(
                lambda: self.b.curl_put(flist, self.cpu))))
            out.append(Line("curl GET (floor)", "", lambda: self.curl(
                lambda: self.b.curl_get(self.last["curl"], flist, self.cpu))))
        out.append(Line("`openssl dgst -sha256` of the files (hash floor)", "", lambda: self.hash_floor(False)))
        if files > 1:
            out.append(Line(f"  the same, {os.cpu_count()} processes at once", "", lambda: self.hash_floor(True)))
        out += [
            Line("modelhaul `push DIR REF`", "put", self.mh_push, "new repository, no digest cache"),
            Line("modelhaul `push DIR REF`, unchanged", "", self.mh_push_unchanged, "moves no byte"),
            Line("modelhaul `push DIR REF --format ormb`", "put", lambda: self.mh_push("ormb"),
                 "stored gzip, streamed in one pass"),
            Line("modelhaul `export REF DIR` (verified)", "get", self.mh_export, "straight into DIR"),
            Line("modelhaul `pull REF` (verified)", "get", self.mh_pull, "into an empty store"),
        ]
        if "oras" in self.tools:
            out += [Line("oras `push`", "put", self.oras_push), Line("oras `pull`", "get", self.oras_pull)]
        if "modctl" in self.tools:
            out += [Line("modctl `build --output-remote`", "put", self.modctl_build),
                    Line("modctl `pull --extract-from-remote`", "get", self.modctl_pull)]
        if "kit" in self.tools:
            out += [Line("kit `pack` + `push`", "put", self.kit_pack_push, "pack copies into kit's store"),
                    Line("kit `unpack`", "get", self.kit_unpack)]
        return out


def measure(bench: transfer.Bench, tools: dict[str, Path], name: str, files: int, size: int, repeat: int,
            log: Callable[[str], None]) -> dict:
    log(f"== {name}: generating {files} x {size} bytes")
    src = make_case(bench.work, name.replace(" ", "_"), files, size)
    w = Whole(bench, tools, src)
    small = size < MiB
    if not small:  # the blobs curl's GET reads, pushed once
        w.last["curl"] = bench.curl_put(file_list(src))[2]["repo"]
    lines = w.lines(files, small)
    for r in range(repeat):
        for line in lines:
            if line.error:
                continue
            try:
                del w.cpu[:]
                wall, rss = line.run()
            except Exception as e:  # a peer that fails is a result, not the end of the run
                line.error = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                log(f"   {line.label:50s} FAILED: {line.error}")
                continue
            line.walls.append(wall)
            line.cpus.append(w.cpu[-1] if w.cpu else float("nan"))
            line.rss = max(line.rss, rss)
            log(f"   [{r + 1}/{repeat}] {line.label:50s} {wall:7.2f} s {line.cpus[-1]:6.2f} s CPU {rss:6.0f} MB")
    shutil.rmtree(src, ignore_errors=True)
    return {"name": name, "bytes": files * size, "lines": lines}


def tampered(bench: transfer.Bench, tools: dict[str, Path], log: Callable[[str], None]) -> list[tuple[str, str]]:
    """Each puller against a blob whose bytes were changed in the registry's storage (same size)."""
    pushes = {"modelhaul `export`": ("mh_push", "mh-modelpack", "export"),
              "oras `pull`": ("oras_push", "oras", "oras"),
              "modctl `pull --extract-from-remote`": ("modctl_build", "modctl", "modctl"),
              "kit `unpack`": ("kit_pack_push", "kit", "kit")}
    out = []
    for label, (push_name, key, tool) in pushes.items():
        if tool != "export" and tool not in tools:
            continue
        src = make_case(bench.work, f"tamper-{tool}", 1, MiB)  # bytes of its own: no blob shared with another tool
        w = Whole(bench, tools, src)
        push = getattr(w, push_name)
        before = set(transfer.storage_blobs(bench.server))
        push()
        new = set(transfer.storage_blobs(bench.server)) - before
        blob = max((bench.server.storage / f"docker/registry/v2/blobs/sha256/{d[:2]}/{d}/data" for d in new),
                   key=lambda p: p.stat().st_size)
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
        dest = w.fresh_dir("tampered")
        cmd = {"export": [sys.executable, "-m", "modelhaul.cli", "export", w.last[key], str(dest), "--plain-http"],
               "oras": [str(tools.get("oras")), "pull", "--plain-http", "-o", str(dest), w.last[key]],
               "modctl": [str(tools.get("modctl")), "pull", "--plain-http", "--no-progress", "--extract-from-remote",
                          "--extract-dir", str(dest), w.last[key]],
               "kit": [str(tools.get("kit")), "unpack", "--plain-http", "--progress", "none", w.last[key], "-d",
                       str(dest)]}[tool]
        done = subprocess.run(cmd, env=w.env() if tool == "export" else w.tool_env(), capture_output=True, text=True)
        written = [p for p in dest.rglob("*") if p.is_file() and p.stat().st_size == MiB] if dest.exists() else []
        corrupt = [p for p in written if p.read_bytes() != (src / "model.bin").read_bytes()]
        said = done.stderr.strip().splitlines()[-1].replace(str(bench.work), "WORK") if done.stderr.strip() else ""
        verdict = (f"exit {done.returncode}; " + ("the corrupt file is on disk" if corrupt else
                   "nothing corrupt written") + (f"; says: {said[:240]}" if done.returncode and said else ""))
        log(f"   tampered: {label:40s} {verdict}")
        out.append((label, verdict))
        shutil.rmtree(dest, ignore_errors=True)
    return out


def render(cases: list[dict], checks: list[tuple[str, str]], started: str, minutes: float, repeat: int,
           load: str) -> str:
    """The results as Markdown."""
    lines = ["# Whole commands, side by side (issue 26)", "",
             f"Run {started} on this machine ({os.cpu_count()} cores, Python {sys.version.split()[0]}), "
             f"{minutes:.1f} min, one docker-registry (distribution) on 127.0.0.1 over plain HTTP; every row starts "
             "from the same page cache (dirty pages written; as root, the cache dropped and refilled with the "
             "registry's storage and the source: `settle`); "
             f"load average {load} (other work on the machine: compare within the run). Command: "
             f"`.venv/bin/python benchmarks/transfer.py --whole --repeat {repeat}`. Best of {repeat}, in rounds; "
             "whole processes (start-up included); CPU s: user + system of the process tree, the least of the "
             "runs (on a loaded machine the steadier figure); peak RSS of the largest process (GNU time).", "",
             "Publish rows: ratio to curl's PUT. Pull rows: ratio to the floor of a verified pull, the slower of "
             "curl's GET and the hash (for several files the hash spread over the cores), and to curl's GET alone.",
             ""]
    for c in cases:
        by = {ln.label: ln for ln in c["lines"]}
        put = by.get("curl PUT, monolithic (floor)")
        get = by.get("curl GET (floor)")
        hashes = [ln.best for label, ln in by.items() if label.endswith("(hash floor)") or "processes at once" in label]
        hash_floor = min([h for h in hashes if h is not None], default=None)
        pull_floor = max([x for x in (get.best if get else None, hash_floor) if x is not None], default=None)
        lines += [f"## {c['name']}", "",
                  "| command | wall s | ratio to its floor | ratio to curl | CPU s | peak RSS MB | note |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for ln in c["lines"]:
            if ln.best is None:
                lines.append(f"| {ln.label} | failed | | | | | {ln.error} |")
                continue
            floor = {"put": put.best if put else None, "get": pull_floor}.get(ln.floor)
            curl = {"put": put.best if put else None, "get": get.best if get else None}.get(ln.floor)
            ratio = f"{ln.best / floor:.2f}x" if floor else ""
            to_curl = f"{ln.best / curl:.2f}x" if curl and ln.floor == "get" else ""
            cpu = min(ln.cpus) if ln.cpus else float("nan")
            lines.append(f"| {ln.label} | {ln.best:.2f} | {ratio} | {to_curl} | {cpu:.2f} | {ln.rss:.0f} | {ln.note} |")
        lines.append("")
    if checks:
        lines += ["## A blob tampered with in the registry (1 MiB, same size)", "", "| puller | result |", "|---|---|"]
        lines += [f"| {label} | {verdict} |" for label, verdict in checks]
        lines.append("")
    return "\n".join(lines)


def run(work: Path, quick: bool, repeat: int, out: str | None, log: Callable[[str], None],
        skip: set[str] = frozenset()) -> str:
    cases = ([("64 MiB single file", 1, 64 * MiB), ("10 x 8 MiB directory", 10, 8 * MiB),
              ("200 x 4 KiB files", 200, 4096)] if quick else
             [("1 GiB single file", 1, 1 << 30), ("10 x 100 MiB directory", 10, 100 * MiB),
              ("1000 x 4 KiB files (a tokenizer-style directory)", 1000, 4096),
              # last: the page cache it leaves makes this machine's writes slower for a while
              ("4 GiB single file", 1, 4 << 30)])
    cases = [c for c in cases if not ("4gib" in skip and c[2] >= 4 << 30)]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()[0]
    t0 = time.time()
    bench = transfer.Bench(work, repeat)
    try:
        tools = peer_tools(work)
        log(f"peers: {', '.join(sorted(tools)) or 'none (../shared/tools absent)'}")
        results = [measure(bench, tools, name, n, size, repeat, log) for name, n, size in cases]
        checks = tampered(bench, tools, log)
    finally:
        bench.server.stop()
    load = f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    text = render(results, checks, started, (time.time() - t0) / 60, repeat, load)
    if out:
        Path(out).write_text(text)
    return text
