"""README.md stays true: every shell and Python block is run, parsed or marked illustrative.

Each fenced block in README.md is preceded by a marker comment:

* ``<!-- readme-test: run -->``: run. The ``run`` blocks form one terminal session, in README
  order, as a newcomer types them: one bash process in an empty directory, with this checkout's
  venv first on PATH, a private ``HOME`` and ``MODELHAUL_HOME`` and ``REGISTRY_PORT`` set to a free
  port (the README's local registry listens there). A Python block runs with the venv's python at
  that point of the session.
* ``<!-- readme-test: output -->``: what the ``run`` block just before it prints on stdout. Digests,
  hex ids, times and the registry port are normalised; ``…`` stands for any text within a line, and
  a line holding only ``…`` for any number of lines.
* ``<!-- readme-test: cluster -->``: needs a cluster or an image build; only parsed (``bash -n``,
  ``ast.parse``, YAML).
* ``<!-- readme-test: illustrative -->``: not run (a note after the marker says why); shell and
  Python blocks are still parsed.

A block without a marker fails the test.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.fixtures.registry import ensure_tools, free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent
KINDS = ("run", "output", "cluster", "illustrative")
SHELL = {"bash", "sh", "shell"}
_MARKER = re.compile(r"<!--\s*readme-test:\s*(\w+)\b.*?-->")
_FENCE = re.compile(r"^( *)(```+)\s*([\w+-]*)")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    lang: str
    kind: str | None
    text: str


def blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text with the marker on the last non-blank line before each."""
    lines = text.splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m.group(1)), m.group(2), m.group(3).lower()  # a block in a list is indented
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = _MARKER.search(lines[k]) if k >= 0 else None
        body = "\n".join(line[indent:] for line in lines[i + 1:j]) + "\n"
        out.append(Block(i + 1, lang, marker.group(1) if marker else None, body))
        i = j + 1
    return out


README_BLOCKS = blocks(README.read_text())


def test_every_block_has_a_known_marker():
    bad = [f"README.md:{b.line}: ```{b.lang} block has {'marker ' + repr(b.kind) if b.kind else 'no marker'}"
           for b in README_BLOCKS if b.kind not in KINDS]
    assert not bad, ("mark each block with <!-- readme-test: run|output|cluster|illustrative -->:\n"
                     + "\n".join(bad))
    for prev, b in zip(README_BLOCKS, README_BLOCKS[1:], strict=False):
        if b.kind == "output":
            assert prev.kind == "run", f"README.md:{b.line}: an output block must follow a run block"


def test_blocks_that_are_not_run_still_parse():
    for b in README_BLOCKS:
        if b.kind not in ("cluster", "illustrative"):
            continue
        where = f"README.md:{b.line}"
        if b.lang in SHELL:
            res = subprocess.run(["bash", "-n"], input=b.text, capture_output=True, text=True)
            assert res.returncode == 0, f"{where}: {res.stderr}"
        elif b.lang == "python":
            ast.parse(b.text, filename=where)
        elif b.lang in ("yaml", "yml"):
            assert list(yaml.safe_load_all(b.text)), where


def test_cluster_rbac_snippet_grants_what_in_cluster_apply_needs():
    """The Role in the README lets deploy apply, watch and wait on both serving kinds."""
    docs = [d for b in README_BLOCKS if b.kind == "cluster" and b.lang == "yaml"
            for d in yaml.safe_load_all(b.text) if d]
    roles = [d for d in docs if d.get("kind") in ("Role", "ClusterRole")]
    assert roles, "README: no Role/ClusterRole block marked cluster"
    rules = [r for role in roles for r in role["rules"]]

    def granted(group: str, resource: str) -> set[str]:
        return {v for r in rules if group in r["apiGroups"] and resource in r["resources"] for v in r["verbs"]}

    needed = {"get", "list", "watch", "create", "patch"}
    assert needed <= granted("machinelearning.seldon.io", "seldondeployments")
    assert needed <= granted("serving.kserve.io", "inferenceservices")
    assert {"get", "list"} <= granted("", "events")


# -- the session -----------------------------------------------------------------------------------


_DIGEST = re.compile(r"sha256:[0-9a-f]{6,}…?")
_HEX = re.compile(r"\b(m-)?[0-9a-f]{8,}…?")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)?")
_PORT = re.compile(r"127\.0\.0\.1:\d+")


def normalise(text: str) -> str:
    text = _DIGEST.sub("sha256:<digest>", text)
    text = _TIME.sub("<time>", text)
    text = _HEX.sub("<hex>", text)
    return _PORT.sub("127.0.0.1:5000", text)


def _line_matches(expected: str, actual: str) -> bool:
    return re.fullmatch(".*".join(re.escape(p) for p in expected.rstrip().split("…")), actual.rstrip()) is not None


def shape_matches(expected: str, actual: str) -> bool:
    """``expected`` (README) against ``actual`` (stdout), both normalised; ``…`` is a wildcard.

    The runs of lines between ``…`` lines must appear in order; each is matched at its first
    possible place (which never rules out a later run), the last one at the end unless ``…`` follows.
    """
    exp = normalise(expected).rstrip("\n").splitlines()
    act = normalise(actual).rstrip("\n").splitlines()
    runs: list[list[str]] = [[]]
    for line in exp:
        if line.strip() == "…":
            runs.append([])
        else:
            runs[-1].append(line)
    pos = 0
    for k, run in enumerate(runs):
        first, last = k == 0, k == len(runs) - 1
        starts = [len(act) - len(run)] if last else range(pos, len(act) - len(run) + 1)
        if first:
            starts = [0] if not last else ([0] if len(act) == len(run) else [])
        found = next((p for p in starts if pos <= p <= len(act) - len(run) and all(_line_matches(e, a) for e, a in
                                                             zip(run, act[p:p + len(run)], strict=True))), None)
        if found is None:
            return False
        pos = found + len(run)
    return True


def _script(run_blocks: list[Block], tmp: Path) -> str:
    out = ["set -euo pipefail"]
    for n, b in enumerate(run_blocks):
        out.append(f"echo '@@readme-block {n}@@'")
        if b.lang in SHELL:
            out.append(b.text)
        elif b.lang == "python":
            path = tmp / f"block-{n}.py"
            path.write_text(b.text)
            out.append(f"python {path}")
        else:
            raise AssertionError(f"README.md:{b.line}: a run block must be bash or python, not {b.lang!r}")
    out.append("echo '@@readme-block end@@'")
    return "\n".join(out) + "\n"


def _stop_registry(workdir: Path) -> None:
    """Stop the registry the README's block started, if the session died before its stop block."""
    pid_file = workdir / "registry" / "pid"
    if not pid_file.exists():
        return
    try:
        os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
    except (ProcessLookupError, ValueError):
        pass


@pytest.mark.slow
def test_the_readme_session_runs_end_to_end_and_prints_what_it_shows(tmp_path):
    """Install check, local registry, the whole walkthrough, the CLI reference: as written."""
    ensure_tools("docker-registry")
    run_blocks = [b for b in README_BLOCKS if b.kind == "run"]
    expected = {n: README_BLOCKS[i + 1] for n, b in enumerate(run_blocks)
                if (i := README_BLOCKS.index(b)) + 1 < len(README_BLOCKS) and README_BLOCKS[i + 1].kind == "output"}
    work = tmp_path / "newcomer"
    work.mkdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MODELHAUL_", "ORMB_", "MLFLOW_", "DOCKER_", "KUBECONFIG", "AIRFLOW"))}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", HOME=str(tmp_path / "home"),
               MODELHAUL_HOME=str(tmp_path / "store"), REGISTRY_PORT=str(free_port()),
               MODELHAUL_CHECKOUT=str(ROOT), PYTHONWARNINGS="ignore")
    try:
        res = subprocess.run(["bash", "-c", _script(run_blocks, scratch)], cwd=work, env=env,
                             capture_output=True, text=True, timeout=600)
    finally:
        _stop_registry(work)
    chunks = re.split(r"^@@readme-block (\d+|end)@@\n", res.stdout, flags=re.M)
    printed = dict(zip(chunks[1::2], chunks[2::2], strict=True))
    if res.returncode != 0:
        last = max((int(k) for k in printed if k != "end"), default=0)
        b = run_blocks[last]
        pytest.fail(f"README.md:{b.line}: the block exits {res.returncode}\n--- stdout\n{printed.get(str(last))}"
                    f"--- stderr (tail)\n{res.stderr[-3000:]}")
    assert "end" in printed
    rejections = [n for n, b in enumerate(run_blocks) if "modelhaul promote" in b.text and "exit code" in b.text]
    assert rejections and all("exit code 3" in printed[str(n)] for n in rejections), "a rejection exits 3"
    for n, out_block in expected.items():
        got = printed[str(n)]
        assert shape_matches(out_block.text, got), (
            f"README.md:{out_block.line}: the output shown differs from what README.md:{run_blocks[n].line} "
            f"prints\n--- shown (normalised)\n{normalise(out_block.text)}--- printed (normalised)\n{normalise(got)}")


def test_shape_matching_normalises_and_tells_differences():
    printed = ("127.0.0.1:40123/ml/iris:v1@sha256:" + "ab" * 32 + "\nrun 329278d4fbe9486cb224ca21b199ae3f\n"
               "at 2026-12-01T13:09:27.490000Z\nextra\nlast\n")
    assert shape_matches("127.0.0.1:5000/ml/iris:v1@sha256:3d477262…\nrun 0123abcd…\nat <time>\n…\nlast\n", printed)
    assert not shape_matches("127.0.0.1:5000/ml/iris:v2@sha256:3d477262…\n…\n", printed)
    assert not shape_matches("127.0.0.1:5000/ml/iris:v1@sha256:3d477262…\nrun …\n", printed)
    assert shape_matches("127.0.0.1:5000/ml/iris:v1…\n…\n", printed)


def test_the_demo_and_the_suite_are_named_at_the_top():
    head = README.read_text().split("\n## ", 3)
    assert "bash scripts/run.sh" in "".join(head[:3]) and "bash scripts/test.sh" in "".join(head[:3])


def test_the_checkout_has_what_the_readme_points_at():
    text = README.read_text()
    for path in re.findall(r"`((?:scripts|tests|benchmarks|components|dags|modelhaul)/[\w./-]+\.\w+)`", text):
        assert (ROOT / path).exists(), f"README names {path}, which does not exist"
    assert shutil.which("bash")


def test_links_within_the_readme_land_on_a_heading():
    text = README.read_text()

    def slug(heading: str) -> str:  # GitHub's anchors: lower case, punctuation dropped, spaces to dashes
        return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")

    anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    missing = sorted(set(re.findall(r"\]\(#([^)]+)\)", text)) - anchors)
    assert not missing, f"README links to missing headings: {missing}"
