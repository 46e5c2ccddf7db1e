"""Transfer benchmark: modelhaul against the registry's own floor (curl) and the tools people use today.

Run with the project's virtualenv python from the repository root::

    .venv/bin/python benchmarks/transfer.py            # 1 GiB, 4 GiB, 10 x 100 MiB (~15 min)
    .venv/bin/python benchmarks/transfer.py --quick    # 256 MiB and 10 x 25 MiB (smoke run)
    .venv/bin/python benchmarks/transfer.py --skip 4gib,oras,gzip6   # the issue-15 rows only, faster
    .venv/bin/python benchmarks/transfer.py --whole --repeat 3   # whole commands beside curl, openssl,
                                                                 # oras, modctl, kit (benchmarks/peers.py)

It starts its own ``docker-registry`` on 127.0.0.1 (installing it when missing), runs every tool in
a child process (wall time, and peak RSS from ``wait4``), and writes ``benchmarks/RESULTS.md``.
Python tools time themselves around the call (interpreter start-up excluded); command-line tools
(curl, skopeo) are timed around the whole process. Every measurement pushes to a fresh repository,
so nothing is skipped by a HEAD that an earlier tool made true.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MiB = 1 << 20
GiB = 1 << 30


# -- child mode: one measurement of a Python tool, printed as JSON on stdout ------------------------


def child(kind: str, args: dict) -> dict:
    import modelhaul.artifacts  # noqa: F401  # imports are start-up cost, not transfer: load them first
    import modelhaul.bundle  # noqa: F401
    import modelhaul.registry  # noqa: F401
    import modelhaul.transfer  # noqa: F401
    from modelhaul.registry_options import RegistryOptions

    opts = RegistryOptions(plain_http=True)
    t0 = time.perf_counter()
    out: dict = {}
    if kind == "publish":
        from modelhaul import artifacts

        t0 = time.perf_counter()
        res = artifacts.publish(args["dir"], args["ref"], options=opts,
                                bundle_format=args.get("format", "modelpack"))
        out["digest"] = res["digest"]
    elif kind == "fetch":
        from modelhaul import artifacts

        t0 = time.perf_counter()
        artifacts.fetch(args["ref"], args["dest"], options=opts, include=args.get("include"))
    elif kind == "save_store":  # `modelhaul save`: hash while the kernel copies each new file into the store
        from modelhaul import verbs

        t0 = time.perf_counter()
        out["digest"] = verbs.save(directory=args["dir"], ref=args["ref"])["digest"]
    elif kind == "push_store":  # `modelhaul push`: the store's blobs to the registry
        from modelhaul import artifacts, transfer
        from modelhaul.reference import parse
        from modelhaul.store import user_store

        r = parse(args["ref"])
        t0 = time.perf_counter()
        transfer.copy(user_store(r.name), "v1", artifacts.open_target(r, opts), "v1")
    elif kind == "store_copy":  # the store's copy alone (reflink where possible, else copy_file_range)
        from modelhaul import fscopy

        t0 = time.perf_counter()
        out["how"] = sorted({fscopy.copy_file(p, Path(args["dest"]) / f"copy-{i}", mode=0o444)
                             for i, (p, _, _) in enumerate(args["files"])})
    elif kind == "put_blobs":  # the registry client alone, digests already known
        from modelhaul import oci
        from modelhaul.registry import RegistryTarget

        blobs = [oci.Blob("application/octet-stream", d, s, path=Path(p)) for p, d, s in args["files"]]
        target = RegistryTarget(args["host"], args["repo"], opts)
        if args.get("chunked"):
            target.chunk_threshold = 0
        else:
            target.chunk_threshold = 1 << 62
        t0 = time.perf_counter()
        target.put_blobs(blobs)
    elif kind == "upload_files":  # the registry client hashing while it sends (digest not known)
        from concurrent.futures import ThreadPoolExecutor

        from modelhaul.registry import RegistryTarget

        target = RegistryTarget(args["host"], args["repo"], opts)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda f: target.upload_file(Path(f[0])), args["files"]))
    elif kind == "fetch_blobs":  # the registry client alone: GET, hash, verify, rename
        from modelhaul.registry import RegistryTarget

        target = RegistryTarget(args["host"], args["repo"], opts)
        t0 = time.perf_counter()
        for i, (_, d, s) in enumerate(args["files"]):
            target.fetch_blob(d, s, Path(args["dest"]) / f"blob-{i}")
    elif kind in ("oras", "oras_chunked"):
        from oras.provider import Registry

        os.chdir(args["dir"])
        client = Registry(hostname=args["host"], insecure=True)
        files = sorted(p.name for p in Path(args["dir"]).iterdir())
        t0 = time.perf_counter()
        kw = {"do_chunked": True, "chunk_size": 64 * MiB} if kind == "oras_chunked" else {}
        client.push(target=args["ref"], files=files, **kw)
    elif kind == "ormb_gzip":  # what ormb does: one tar+gzip (level 6) layer, hashed, then uploaded
        import hashlib
        import tarfile

        from modelhaul import oci
        from modelhaul.registry import RegistryTarget

        t0 = time.perf_counter()
        tgz = Path(args["tmp"]) / "model.tar.gz"
        with tarfile.open(tgz, "w:gz", compresslevel=6) as tar:
            for p in sorted(Path(args["dir"]).iterdir()):
                tar.add(p, arcname=f"model/{p.name}")
        h = hashlib.sha256()
        with open(tgz, "rb") as f:
            while b := f.read(4 * MiB):
                h.update(b)
        blob = oci.Blob(oci.ORMB_LAYER, "sha256:" + h.hexdigest(), tgz.stat().st_size, path=tgz)
        RegistryTarget(args["host"], args["repo"], opts).put_blob(blob)
    else:
        raise SystemExit(f"unknown child kind {kind}")
    out["seconds"] = time.perf_counter() - t0
    return out


# -- parent ------------------------------------------------------------------------------------


@dataclass
class Row:
    tool: str
    seconds: float | None
    rss_mb: float | None
    floor: str = ""  # "put" or "get": which curl figure the ratio is against
    note: str = ""
    extra: dict = field(default_factory=dict)


def run_measured(cmd: list[str], env: dict | None = None, cwd: str | None = None,
                 cpu: list[float] | None = None) -> tuple[float, float, str]:
    """Run ``cmd``; returns (wall seconds, peak RSS in MB of the largest process in its tree, stdout).

    ``cpu``, when given, gets the CPU seconds (user + system) of the whole process tree appended.

    The RSS comes from GNU time when installed: a child forked straight from this (large) Python
    process starts with its parent's peak RSS on Linux, which would hide small tools' figures.
    """
    gnu_time = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    with tempfile.NamedTemporaryFile() as rss_file, tempfile.TemporaryFile() as out, \
            tempfile.TemporaryFile() as err:
        full = [gnu_time, "-f", "%M", "-o", rss_file.name, *cmd] if gnu_time else cmd
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        if cpu is not None:
            cpu.append(usage.ru_utime + usage.ru_stime)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
        rss_kb = float(usage.ru_maxrss)
        if gnu_time:
            text = Path(rss_file.name).read_text().strip().splitlines()
            rss_kb = float(text[-1]) if text and text[-1].isdigit() else rss_kb
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... failed ({code}): {stderr.strip()[-1500:]}")
    return wall, rss_kb / 1024, stdout


class Bench:
    def __init__(self, work: Path, repeat: int):
        from devtools.registry_server import ensure_tools, start_registry

        ensure_tools()
        self.work = work
        self.repeat = repeat
        self.server = start_registry(work / "registry")
        self.host = self.server.host
        self.n = 0

    def repo(self, what: str) -> str:
        self.n += 1
        return f"bench/{what}-{self.n}"

    def env(self, home: Path | None = None) -> dict:
        env = dict(os.environ, PYTHONPATH=str(ROOT), MODELHAUL_TMPDIR=str(self.work / "tmp"))
        env["MODELHAUL_HOME"] = str(home or Path(tempfile.mkdtemp(prefix="home-", dir=self.work)))
        return env

    def py(self, kind: str, args: dict, home: Path | None = None) -> tuple[float, float, dict]:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, json.dumps(args)]
        _, rss, stdout = run_measured(cmd, env=self.env(home))
        res = json.loads(stdout.strip().splitlines()[-1])
        return res["seconds"], rss, res

    def best(self, fn) -> tuple[float, float, dict]:
        runs = []
        for _ in range(self.repeat):
            os.sync()  # the previous step's dirty pages are written now, not during this measurement
            runs.append(fn())
        return min(runs, key=lambda r: r[0])

    # curl: the floor
    def curl_put(self, files: list[tuple[str, str, int]], cpu: list[float] | None = None
                 ) -> tuple[float, float, dict]:
        repo = self.repo("curl")
        script = "set -e\n"
        for path, digest, _ in files:
            script += (
                f"loc=$(curl -sf -X POST -D - -o /dev/null http://{self.host}/v2/{repo}/blobs/uploads/ "
                "| tr -d '\\r' | sed -n 's/^[Ll]ocation: //p')\n"
                f"curl -sf -T '{path}' -H 'Content-Type: application/octet-stream' \"$loc&digest={digest}\"\n"
            )
        wall, rss, _ = run_measured(["bash", "-c", script], cpu=cpu)
        return wall, rss, {"repo": repo}

    def curl_get(self, repo: str, files: list[tuple[str, str, int]], cpu: list[float] | None = None
                 ) -> tuple[float, float, dict]:
        dest = Path(tempfile.mkdtemp(prefix="curl-get-", dir=self.work))
        script = "set -e\n" + "".join(
            f"curl -sf -o '{dest}/b{i}' http://{self.host}/v2/{repo}/blobs/{d}\n"
            for i, (_, d, _) in enumerate(files))
        try:
            wall, rss, _ = run_measured(["bash", "-c", script], cpu=cpu)
        finally:
            shutil.rmtree(dest, ignore_errors=True)
        return wall, rss, {}

    def cli(self, *argv: str, home: Path | None = None) -> tuple[float, float, dict]:
        """One ``modelhaul`` command, timed around the whole process (start-up included)."""
        return (*run_measured([sys.executable, "-m", "modelhaul.cli", *argv], env=self.env(home))[:2], {})

    def skopeo_pull(self, repo: str) -> tuple[float, float, dict]:
        dest = Path(tempfile.mkdtemp(prefix="skopeo-pull-", dir=self.work))
        try:
            return (*run_measured(["skopeo", "copy", "--src-tls-verify=false", f"docker://{self.host}/{repo}:v1",
                                   f"oci:{dest}/layout:v1"])[:2], {})
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    def skopeo(self, layout: Path) -> tuple[float, float, dict]:
        repo = self.repo("skopeo")
        return (*run_measured(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:v1",
                               f"docker://{self.host}/{repo}:v1"])[:2], {})


def make_case(work: Path, name: str, files: int, size: int) -> Path:
    d = work / "src" / name
    d.mkdir(parents=True)
    piece = 16 * MiB
    for i in range(files):
        with open(d / (f"model-{i:02d}.bin" if files > 1 else "model.bin"), "wb") as f:
            left = size
            while left:
                n = min(piece, left)
                f.write(os.urandom(n))
                left -= n
    return d


def file_list(d: Path) -> list[tuple[str, str, int]]:
    from modelhaul import oci

    return [(str(p), oci.sha256_file(p), p.stat().st_size) for p in sorted(d.iterdir())]


def storage_blobs(server) -> dict[str, int]:
    base = server.storage / "docker/registry/v2/blobs/sha256"
    if not base.exists():
        return {}
    return {p.name: (p / "data").stat().st_size for p in base.glob("*/*") if (p / "data").exists()}


def measure_case(b: Bench, name: str, files: int, size: int, log, skip: set[str] = frozenset()) -> dict:
    total = files * size
    log(f"== {name}: generating {files} x {size // MiB} MiB")
    src = make_case(b.work, name.replace(" ", "_"), files, size)
    flist = file_list(src)
    rows: list[Row] = []

    def add(tool: str, res: tuple[float, float, dict] | None, floor: str = "", note: str = "") -> None:
        rows.append(Row(tool, res[0] if res else None, res[1] if res else None, floor, note,
                        res[2] if res else {}))
        log(f"   {tool:45s} {res[0] if res else float('nan'):8.2f} s  {res[1] if res else 0:7.0f} MB  {note}")

    put = b.best(lambda: b.curl_put(flist))
    add("curl -T monolithic PUT (floor)", put, "put")
    floor_repo = put[2]["repo"]
    get = b.best(lambda: b.curl_get(floor_repo, flist))
    add("curl GET (floor)", get, "get")

    # modelhaul publish (pack + push in one process, no store) with an empty digest cache, to a new repository
    homes: list[Path] = []

    def publish() -> tuple[float, float, dict]:
        home = Path(tempfile.mkdtemp(prefix="home-", dir=b.work))
        homes.append(home)
        repo = b.repo("mh")
        r = b.py("publish", {"dir": str(src), "ref": f"{b.host}/{repo}:v1"}, home)
        r[2]["repo"], r[2]["home"] = repo, home
        return r

    pub = b.best(publish)
    add("modelhaul publish (direct, in-process)", pub, "put")
    mh_repo, mh_home = pub[2]["repo"], pub[2]["home"]
    put_only = b.best(lambda: b.py("put_blobs", {"files": flist, "host": b.host, "repo": b.repo("put")}))
    add("  registry client alone: put_blobs, digest known", put_only, "put", "monolithic streamed PUT")
    put_chunked = b.best(lambda: b.py("put_blobs", {"files": flist, "host": b.host, "repo": b.repo("put"),
                                                     "chunked": True}))
    from modelhaul.registry import RegistryTarget

    add(f"  registry client alone: chunked {RegistryTarget.chunk_size // MiB} MiB PATCH", put_chunked, "put")

    add("  registry client alone: upload_file, hashing while sending", b.best(lambda: b.py(
        "upload_files", {"files": flist, "host": b.host, "repo": b.repo("upl")})), "put")

    # the CLI path: save into the store (which now copies: it owns its bytes), then push from it
    def save_then_push() -> tuple[float, float, dict]:
        home = Path(tempfile.mkdtemp(prefix="home-", dir=b.work))
        homes.append(home)
        ref = f"{b.host}/{b.repo('cli')}:v1"
        saved = b.py("save_store", {"dir": str(src), "ref": ref}, home)
        pushed = b.py("push_store", {"ref": ref}, home)
        return saved[0] + pushed[0], max(saved[1], pushed[1]), {"save": saved, "push": pushed}

    cli = b.best(save_then_push)
    add("modelhaul save, then push (CLI, via the store)", cli, "put")
    add("  save into the store (hash + copy)", cli[2]["save"], "put")
    add("  push from the store", cli[2]["push"], "put")

    def store_copy() -> tuple[float, float, dict]:
        dest = Path(tempfile.mkdtemp(prefix="copy-", dir=b.work))
        try:
            return b.py("store_copy", {"files": flist, "dest": str(dest)})
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    copied = b.best(store_copy)
    add("  the store's copy alone (fscopy.copy_file)", copied, "",
        f"{'+'.join(copied[2].get('how', []))}, {total / MiB / copied[0]:.0f} MiB/s")

    def fetch() -> tuple[float, float, dict]:
        dest = Path(tempfile.mkdtemp(prefix="fetch-", dir=b.work))
        try:
            return b.py("fetch", {"ref": f"{b.host}/{mh_repo}:v1", "dest": str(dest / "out")})
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    add("modelhaul fetch (pull + export, verified)", b.best(fetch), "get")

    def fetch_blobs() -> tuple[float, float, dict]:
        dest = Path(tempfile.mkdtemp(prefix="fetchb-", dir=b.work))
        try:
            return b.py("fetch_blobs", {"files": flist, "host": b.host, "repo": mh_repo, "dest": str(dest)})
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    add("  registry client alone: fetch_blob, verified", b.best(fetch_blobs), "get")
    # skopeo's blob-info cache (system-wide for root) remembers where it saw a blob and mounts it
    # from there: its push runs once, before its pull has shown it where modelhaul's copy is
    layout = b.work / "layout" / name.replace(" ", "_")
    subprocess.run([sys.executable, "-c", "import sys; from modelhaul import artifacts; "
                    "artifacts.publish(sys.argv[1], 'oci:' + sys.argv[2] + ':v1')", str(src), str(layout)],
                   check=True, env=b.env(), capture_output=True)
    add("skopeo copy oci: -> registry", b.skopeo(layout), "put", "one run (repeats would mount)")
    shutil.rmtree(layout, ignore_errors=True)
    add("skopeo copy registry -> oci: (verified pull)", b.best(lambda: b.skopeo_pull(mh_repo)), "get")

    partial = None
    if files > 1:  # one file of ten: only its layer (and the config) leaves the registry
        chosen = sorted(src.iterdir())[0].name

        def fetch_one() -> tuple[float, float, dict]:
            dest = Path(tempfile.mkdtemp(prefix="fetch1-", dir=b.work))
            try:
                return b.py("fetch", {"ref": f"{b.host}/{mh_repo}:v1", "dest": str(dest / "out"),
                                      "include": [f"*{chosen}"]})
            finally:
                shutil.rmtree(dest, ignore_errors=True)

        res = b.best(fetch_one)
        partial = {"seconds": res[0], "moved": size}
        add(f"modelhaul fetch --include one of {files} files", res, "get",
            f"moves {size // MiB} MiB (test_partial_pull counts it)")

    # re-publish of the unchanged model: same store, same digest cache
    again = b.py("publish", {"dir": str(src), "ref": f"{b.host}/{mh_repo}:v1"}, mh_home)
    per_gib = again[0] / (total / GiB)
    add("modelhaul re-publish, unchanged", again, "", f"{per_gib:.3f} s/GiB")
    whole = b.best(lambda: b.cli("push", str(src), f"{b.host}/{mh_repo}:v1", "--plain-http", home=mh_home))
    add("`modelhaul push DIR REF`, unchanged, whole command", whole, "", "interpreter start-up included")
    direct = b.best(lambda: b.cli("push", str(src), f"{b.host}/{b.repo('cli')}:v1", "--plain-http"))
    add("`modelhaul push DIR REF`, new, whole command", direct, "put", "interpreter start-up included")

    def save_push() -> tuple[float, float, dict]:
        home = Path(tempfile.mkdtemp(prefix="home-", dir=b.work))
        ref = f"{b.host}/{b.repo('sp')}:v1"
        try:
            s1 = b.cli("save", str(src), ref, home=home)
            s2 = b.cli("push", ref, "--plain-http", home=home)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        return s1[0] + s2[0], max(s1[1], s2[1]), {}

    add("`modelhaul save` + `modelhaul push`, whole commands", b.best(save_push), "put",
        "with the store's copy")

    if "oras" not in skip:
        oras_res = b.best(lambda: b.py("oras", {"dir": str(src), "host": b.host,
                                                 "ref": f"{b.host}/{b.repo('oras')}:v1"}))
        add("oras-py push (default)", oras_res, "put")
        add("oras-py push (chunked, 64 MiB)", b.best(lambda: b.py(
            "oras_chunked", {"dir": str(src), "host": b.host, "ref": f"{b.host}/{b.repo('orasc')}:v1"})), "put")


    def ormb() -> tuple[float, float, dict]:
        tmp = Path(tempfile.mkdtemp(prefix="ormb-", dir=b.work))
        try:
            return b.py("ormb_gzip", {"dir": str(src), "host": b.host, "repo": b.repo("ormb"),
                                      "tmp": str(tmp)})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    if "gzip6" not in skip:
        add("ormb-style tar+gzip -6 layer, then push", b.best(ormb), "put")
    add("modelhaul publish --format ormb (stored gzip, streamed in one pass)", b.best(lambda: b.py(
        "publish", {"dir": str(src), "ref": f"{b.host}/{b.repo('mhormb')}:v1", "format": "ormb"})), "put")

    changed = None
    if files > 1:  # a new version that changes one file of ten uploads only that file
        before = storage_blobs(b.server)
        victim = sorted(src.iterdir())[files // 2]
        with open(victim, "r+b") as f:
            f.write(os.urandom(MiB))
        res = b.py("publish", {"dir": str(src), "ref": f"{b.host}/{mh_repo}:v2"}, mh_home)
        new = {k: v for k, v in storage_blobs(b.server).items() if k not in before}
        big = sum(v for v in new.values() if v >= MiB)
        changed = {"seconds": res[0], "new_blobs": len(new), "new_big_bytes": big, "file_size": size}
        n_big = len([v for v in new.values() if v >= MiB])
        add("modelhaul publish, 1 of 10 files changed", res, "",
            f"{n_big} large blob(s) new in the registry, {big // MiB} MiB")

    for h in homes:
        shutil.rmtree(h, ignore_errors=True)
    shutil.rmtree(src, ignore_errors=True)
    return {"name": name, "total": total, "rows": rows, "put": put[0], "get": get[0],
            "republish_per_gib": per_gib, "changed": changed, "partial": partial}


def render(cases: list[dict], started: str, duration: float, quick: bool, skip: set[str] = frozenset(),
           repeat: int = 1) -> str:
    skipped = (f" --repeat {repeat}" if repeat > 1 else "") + (f" --skip {','.join(sorted(skip))}" if skip else "")
    lines = [
        "# Transfer benchmark results",
        "",
        f"Run {started} on this machine ({os.cpu_count()} cores, Python "
        f"{platform.python_version()}), {duration / 60:.1f} min, "
        f"{'--quick' if quick else 'full'} mode, one docker-registry (distribution) on 127.0.0.1 "
        "over plain HTTP, page cache warm. Command: `.venv/bin/python benchmarks/transfer.py"
        f"{' --quick' if quick else ''}{skipped}`.",
        "",
        "Ratios are wall time over curl's for the same bytes (PUT for uploads, GET for downloads). "
        "Peak RSS is the largest process of each child's tree (GNU time). Every measurement starts "
        "after a `sync`, so the previous step's writeback does not weigh on it. Absolute times are "
        "noisy on a shared machine: compare within one run.",
        "",
    ]
    for c in cases:
        lines += [f"## {c['name']}", "", "| tool | wall s | ratio to curl | peak RSS MB | note |",
                  "|---|---:|---:|---:|---|"]
        for r in c["rows"]:
            floor = c["put"] if r.floor == "put" else c["get"] if r.floor == "get" else None
            ratio = f"{r.seconds / floor:.2f}x" if (floor and r.seconds is not None) else ""
            secs = f"{r.seconds:.2f}" if r.seconds is not None else "—"
            rss = f"{r.rss_mb:.0f}" if r.rss_mb is not None else "—"
            lines.append(f"| {r.tool} | {secs} | {ratio} | {rss} | {r.note} |")
        lines.append("")
    def row(tool: str, c: dict) -> Row | None:
        return next((r for r in c["rows"] if r.tool.startswith(tool)), None)

    def target(what: str, c: dict, tool: str, floor: str, limit: float) -> None:
        r = row(tool, c)
        base = c["put"] if floor == "put" else c["get"]
        if r and r.seconds:
            ratio = r.seconds / base
            lines.append(f"| {what} ≤ {limit}x curl {floor.upper()} | {c['name']} | {ratio:.2f}x | "
                         f"{'yes' if ratio <= limit else 'no'} |")

    lines += ["## The store's own copy", "",
              "The local store owns its bytes (a reflink where the filesystem has one, else a kernel "
              "`copy_file_range`), so `modelhaul save` writes each file once more than a hardlink did; "
              "a new large file is copied while another thread hashes it, so the copy hides behind the "
              "hash. Publishing straight to a registry copies nothing.", "",
              "| case | save into the store | of which the copy alone | copy speed, method |",
              "|---|---:|---:|---|"]
    for c in cases:
        saved = row("  save into the store (hash + copy)", c)
        copied = row("  the store's copy alone (fscopy.copy_file)", c)
        if saved and copied and saved.seconds and copied.seconds:
            lines.append(f"| {c['name']} | {saved.seconds:.2f} s | {copied.seconds:.2f} s | {copied.note} |")
    lines += ["", "## Targets (issue 15)", "", "| target | case | measured | met |", "|---|---|---|---|"]

    for c in cases:
        big = c["total"] >= 4 * GiB
        target("verified pull + export", c, "modelhaul fetch (pull", "get", 1.1 if big else 1.5)
        fet, sko = row("modelhaul fetch (pull", c), row("skopeo copy registry", c)
        if fet and sko and fet.seconds and sko.seconds:
            lines.append(f"| pull never slower than skopeo | {c['name']} | {fet.seconds:.2f} s vs "
                         f"{sko.seconds:.2f} s | {'yes' if fet.seconds <= sko.seconds else 'no'} |")
        target("direct publish", c, "modelhaul publish (direct, in-process)", "put", 1.1)
        target("`save` + `push`", c, "`modelhaul save` + `modelhaul push`", "put", 1.3)
        target("`--format ormb` publish", c, "modelhaul publish --format ormb", "put", 1.3)
        whole = row("`modelhaul push DIR REF`, unchanged", c)
        if whole and whole.seconds:
            lines.append(f"| re-publish unchanged ≤ 0.35 s, whole command | {c['name']} | "
                         f"{whole.seconds:.2f} s | {'yes' if whole.seconds <= 0.35 else 'no'} |")
        if c.get("partial"):
            lines.append(f"| partial pull of one file of ten moves ≤ 101 MiB | {c['name']} | "
                         f"{c['partial']['moved'] // MiB} MiB, {c['partial']['seconds']:.2f} s | "
                         f"{'yes' if c['partial']['moved'] <= 101 * MiB else 'no'} |")
        if c["changed"]:
            ch = c["changed"]
            ok = ch["new_big_bytes"] <= ch["file_size"]
            lines.append(f"| one changed file of ten uploads only it | {c['name']} | "
                         f"{ch['new_big_bytes'] // MiB} MiB of large blobs new | {'yes' if ok else 'no'} |")
    ours = ("modelhaul", "  registry", "`modelhaul")
    rss = {c["name"]: max((r.rss_mb or 0) for r in c["rows"] if r.tool.startswith(ours)) for c in cases}
    worst = max(rss.values()) if rss else 0
    lines.append(f"| peak RSS ≤ 100 MB at every size | all | max {worst:.0f} MB | {'yes' if worst <= 100 else 'no'} |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true",
                    help="256 MiB and 10 x 25 MiB instead of 1 GiB, 4 GiB, 10 x 100 MiB")
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement (the fastest is kept)")
    ap.add_argument("--workdir", help="scratch directory (needs ~3x the largest case free)")
    ap.add_argument("--out", help="where to write the results (default: benchmarks/RESULTS.md for a full "
                    "run; a --quick run only prints them)")
    ap.add_argument("--skip", default="", help="comma-separated: 4gib (the 4 GiB case), oras (oras-py "
                    "pushes), gzip6 (the ormb-style gzip -6 row): what a loaded machine can spare")
    ap.add_argument("--whole", action="store_true", help="whole commands only, beside curl, openssl and the "
                    "peers (oras, modctl, kit from ../shared/tools): benchmarks/peers.py, RESULTS_whole.md")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "JSON"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], json.loads(a.child[1]))))
        return
    if a.whole:
        import peers

        work = Path(tempfile.mkdtemp(prefix="modelhaul-bench-", dir=a.workdir))
        (work / "tmp").mkdir()
        out = a.out or (None if a.quick else str(ROOT / "benchmarks" / "RESULTS_whole.md"))
        try:
            skip = {x.strip() for x in a.skip.split(",") if x.strip()}
            print(peers.run(work, a.quick, a.repeat, out, lambda s: print(s, flush=True), skip))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    cases = ([("256 MiB single file", 1, 256 * MiB), ("10 x 25 MiB directory", 10, 25 * MiB)] if a.quick else
             [("1 GiB single file", 1, GiB), ("4 GiB single file", 1, 4 * GiB),
              ("10 x 100 MiB directory", 10, 100 * MiB)])
    skip = {x.strip() for x in a.skip.split(",") if x.strip()}
    cases = [c for c in cases if not ("4gib" in skip and c[2] >= 4 * GiB)]
    work = Path(tempfile.mkdtemp(prefix="modelhaul-bench-", dir=a.workdir))
    (work / "tmp").mkdir()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    t0 = time.time()
    bench = Bench(work, a.repeat)
    results = []
    try:
        for name, n, size in cases:
            results.append(measure_case(bench, name, n, size, lambda s: print(s, flush=True), skip))
    finally:
        bench.server.stop()
        shutil.rmtree(work, ignore_errors=True)
    text = render(results, started, time.time() - t0, a.quick, skip, a.repeat)
    out = a.out or (None if a.quick else str(ROOT / "benchmarks" / "RESULTS.md"))
    if out:
        Path(out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
