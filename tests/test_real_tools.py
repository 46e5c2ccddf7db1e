"""Round trips with the real tools of the field, both ways, against the real registry (issue 21).

The binaries come from ``../shared/tools`` (modctl v0.2.1-59, kit v1.7.0-19, oras 1.3.3, ormb and
ormb-storage-initializer at 1e37e5c; each folder's README names the commit and build), unpacked once
into the test cache. Every file is compared byte for byte and every config field as written.
``MODELHAUL_SHARED_DIR`` points elsewhere than ``../shared`` beside the repository.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelhaul import artifacts, steps
from tests.fixtures.registry import unique_repo
from tests.test_fidelity import by_path, manifest_and_config, sklearn_model
from tests.test_readers import files_of

SHARED = Path(os.environ.get("MODELHAUL_SHARED_DIR") or Path(__file__).resolve().parents[1].parent / "shared")
CACHE = Path(os.environ.get("MODELHAUL_TEST_CACHE") or Path.home() / ".cache" / "modelhaul-tests")
ABSENT = "../shared/tools is absent: the real modctl, kit, oras and ormb binaries are not here"
pytestmark = pytest.mark.skipif(not (SHARED / "tools" / "unpack.sh").is_file(), reason=ABSENT)  # no server started
MODELFILE = """NAME lin
ARCH linear
FAMILY linfam
FORMAT sklearn
PARAMSIZE 5
PRECISION fp64
CONFIG config.json
MODEL model.joblib
DOC README.md
CODE sub/train.py
"""
KITFILE = """manifestVersion: 1.0.0
package:
  name: lin
  version: 1.0.0
  authors: [Ann, Bob]
  description: a linear model
model:
  name: lin
  path: model.joblib
  framework: scikit-learn
  format: joblib
  parameters: {alpha: 0.5, layers: [1, 2]}
  parts:
    - path: config.json
      type: config
code:
  - path: sub
    description: training code
datasets:
  - name: d
    path: data/d.csv
docs:
  - path: README.md
"""


@pytest.fixture(scope="session")
def tools() -> Path:
    """The real binaries, unpacked into the test cache (``unpack.sh`` skips those already current)."""
    unpack = SHARED / "tools" / "unpack.sh"
    if not unpack.is_file():
        pytest.skip(ABSENT)
    dest = CACHE / "tools"
    subprocess.run(["bash", str(unpack), str(dest)], check=True, capture_output=True)
    return dest


@pytest.fixture
def tool(tools, tmp_path, monkeypatch):
    """Run a tool with its own HOME (its local store), returning stdout; a failure shows its stderr."""
    monkeypatch.setenv("MODELHAUL_HOME", str(tmp_path / "mh-home"))
    home = tmp_path / "tool-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KITOPS_"))} | {"HOME": str(home)}

    def run(name: str, *args: str, cwd: Path | None = None) -> str:
        # the initializer keeps a cache/ and a config.json in its working directory: never the repository's
        r = subprocess.run([str(tools / name), *args], env=env, cwd=cwd or home, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, f"{name} {' '.join(args)}: {r.stderr.strip()[-2000:]}"
        return r.stdout

    return run


def model_dir(root: Path) -> Path:
    """An sklearn model with a config, docs, code and a dataset: every kind of file."""
    sklearn_model(root)
    (root / "config.json").write_text('{"alpha": 0.5}\n')
    (root / "sub").mkdir()
    (root / "sub" / "train.py").write_text("print('train')\n")
    (root / "data").mkdir()
    (root / "data" / "d.csv").write_text("a,b\n1,2\n")
    return root


def without(files: dict[str, bytes], *names: str) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if k not in names}


def exported(ref: str, dest: Path, registry) -> dict[str, bytes]:
    artifacts.fetch(ref, dest, options=registry.options)
    return files_of(dest / "model")


# -- modctl ---------------------------------------------------------------------------------------


def test_modctl_artifact_reads_republishes_and_reads_back_in_modctl(registry, tool, tmp_path):
    src = model_dir(tmp_path / "src")
    (src / "Modelfile").write_text(MODELFILE)
    ref = registry.ref(unique_repo("modctl"), "v1")
    tool("modctl", "build", "--plain-http", "-t", ref, ".", cwd=src)
    tool("modctl", "push", "--plain-http", ref)
    written, doc = manifest_and_config(registry, ref, tmp_path)
    assert doc["config"] == {"architecture": "linear", "format": "sklearn", "paramSize": "5", "precision": "fp64"}

    packed = without(files_of(src), "Modelfile", "data/d.csv")  # modctl build ignores DATASET lines
    assert exported(ref, tmp_path / "out", registry) == packed
    info = artifacts.inspect(ref, options=registry.options)
    assert info["config"]["origin"]["modelpack"] == {k: v for k, v in doc.items() if k != "modelfs"}
    assert info["config"]["created"] == doc["descriptor"]["createdAt"]  # nanoseconds as written
    assert {ly["path"] for ly in info["layers"]} == set(packed)

    out = steps.parse(ref=ref, dest_ref=ref.replace(":v1", ":parsed"), trust=True, plain_http=True)
    after, after_doc = manifest_and_config(registry, out["ref"], tmp_path)
    assert after_doc["descriptor"] == doc["descriptor"] and after_doc["config"] == doc["config"]
    assert after["annotations"]["org.cncf.modctl.modelfile"] == written["annotations"]["org.cncf.modctl.modelfile"]
    assert by_path(after) == by_path(written)

    back = tmp_path / "modctl-out"
    tool("modctl", "pull", "--plain-http", "--extract-dir", str(back), out["ref"].split("@")[0])
    assert files_of(back) == packed
    tool("modctl", "inspect", out["ref"].split("@")[0])


def test_modctl_reads_what_modelhaul_writes(registry, tool, tmp_path):
    src = model_dir(tmp_path / "src")
    out = artifacts.publish(src, registry.ref(unique_repo("modctl"), "v1"), options=registry.options)
    back = tmp_path / "modctl-out"
    tool("modctl", "pull", "--plain-http", "--extract-dir", str(back), out["ref"].split("@")[0])
    assert files_of(back) == files_of(src)
    _, doc = manifest_and_config(registry, out["ref"], tmp_path)
    shown = tool("modctl", "inspect", "--config", out["ref"].split("@")[0])
    assert json.loads(shown) == doc


# -- kit ------------------------------------------------------------------------------------------


def kit_layers(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    return [(ly["mediaType"], ly["digest"]) for ly in manifest["layers"]]


def kit_packed(registry, tool, src: Path, kitfile: str = KITFILE) -> str:
    """``src`` with ``kitfile``, packed and pushed by kit; its reference."""
    (src / "Kitfile").write_text(kitfile)
    ref = registry.ref(unique_repo("kit"), "v1")
    tool("kit", "pack", ".", "-t", ref, cwd=src)
    tool("kit", "push", "--plain-http", ref)
    return ref


def test_modelhaul_writes_the_modelkit_kit_packs_byte_for_byte(registry, tool, tmp_path):
    src = model_dir(tmp_path / "src")
    kit_ref = kit_packed(registry, tool, src)
    same_as_kit(registry, src, kit_ref, tmp_path)

    assert exported(kit_ref, tmp_path / "out", registry) == without(files_of(src), "Kitfile")
    cfg = artifacts.inspect(kit_ref, options=registry.options)
    assert [ly["path"] for ly in cfg["layers"]] == ["model.joblib", "config.json", "sub", "data/d.csv", "README.md"]
    assert cfg["config"]["origin"]["kitfile"] == yaml.safe_load(KITFILE)


def same_as_kit(registry, src: Path, kit_ref: str, tmp_path: Path) -> None:
    ours = artifacts.publish(src, registry.ref(unique_repo("kit"), "v1"), bundle_format="kitops",
                             options=registry.options)
    theirs_m, theirs_cfg = manifest_and_config(registry, kit_ref, tmp_path)
    ours_m, ours_cfg = manifest_and_config(registry, ours["ref"], tmp_path)
    assert kit_layers(ours_m) == kit_layers(theirs_m) and ours_m["config"] == theirs_m["config"]
    assert ours_cfg == theirs_cfg


def test_a_catch_all_entry_and_a_kitignore_pack_as_kit_packs_them(registry, tool, tmp_path):
    src = model_dir(tmp_path / "src")
    (src / "sub" / "__pycache__").mkdir()
    (src / "sub" / "__pycache__" / "train.pyc").write_bytes(b"\x00")
    (src / "sub" / "keep.pyc").write_bytes(b"\x01")
    (src / "run.log").write_text("log\n")
    (src / ".kitignore").write_text("# caches\n**/__pycache__\n*.log\nsub/*.pyc\n!sub/keep.pyc\n")
    kitfile = "manifestVersion: 1.0.0\nmodel:\n  path: .\ncode:\n  - path: sub\ndocs:\n  - path: README.md\n"
    same_as_kit(registry, src, kit_packed(registry, tool, src, kitfile), tmp_path)


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_kit_pulls_unpacks_lists_and_shows_a_modelkit_modelhaul_wrote(registry, tool, tmp_path, monkeypatch,
                                                                        compression):
    monkeypatch.setenv("MODELHAUL_KITOPS_COMPRESSION", compression)
    src = model_dir(tmp_path / "src")
    ref = registry.ref(unique_repo("kit"), "v1")
    first = steps.package(source=str(src), ref=ref, bundle_format="kitops", plain_http=True)
    out = steps.parse(ref=first["ref"], trust=True, plain_http=True)  # a re-publish, read by kit too
    tag_ref = out["ref"].split("@")[0]
    tool("kit", "pull", "--plain-http", tag_ref)
    assert tag_ref.split(":")[0] in tool("kit", "list")
    kitfile = yaml.safe_load(tool("kit", "info", tag_ref))
    assert kitfile["model"]["path"] == "model.joblib" and kitfile["model"]["format"] == "SKLearn"
    assert [c["path"] for c in kitfile["code"]] == ["sub/train.py"]
    unpacked = tmp_path / "kit-out"
    tool("kit", "unpack", tag_ref, "-d", str(unpacked))
    assert without(files_of(unpacked), "Kitfile") == files_of(src)
    assert exported(out["ref"], tmp_path / "out", registry) == files_of(src)


def test_a_modelkit_kit_wrote_parses_into_a_modelkit_kit_reads(registry, tool, tmp_path):
    src = model_dir(tmp_path / "src")
    ref = kit_packed(registry, tool, src)
    out = steps.parse(ref=ref, dest_ref=ref.replace(":v1", ":parsed"), trust=True, plain_http=True)
    unpacked = tmp_path / "kit-out"
    tool("kit", "unpack", "--plain-http", out["ref"].split("@")[0], "-d", str(unpacked))
    assert without(files_of(unpacked), "Kitfile") == without(files_of(src), "Kitfile")
    kitfile = yaml.safe_load((unpacked / "Kitfile").read_text())
    assert [c["path"] for c in kitfile["code"]] == ["sub"] and kitfile["model"]["parameters"]["layers"] == [1, 2]


# -- oras -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("names", [["weights"], ["weights", "model.onnx"]])
def test_modelhaul_writes_out_what_oras_pull_writes(registry, tool, tmp_path, names):
    work = tmp_path / "work"
    (work / "weights" / "sub").mkdir(parents=True)
    (work / "weights" / "README.md").write_text("# w\n")
    (work / "weights" / "sub" / "x.bin").write_bytes(os.urandom(1000))
    (work / "model.onnx").write_bytes(b"\x08\x07onnx")
    ref = registry.ref(unique_repo("oras"), "v1")
    tool("oras", "push", "--plain-http", ref, *names, cwd=work)
    pulled = tmp_path / "oras-out"
    pulled.mkdir()
    tool("oras", "pull", "--plain-http", ref, cwd=pulled)
    assert exported(ref, tmp_path / "out", registry) == files_of(pulled)


def test_oras_copy_keeps_a_modelhaul_artifact_whole(registry, tool, tmp_path):
    src = model_dir(tmp_path / "src")
    out = artifacts.publish(src, registry.ref(unique_repo("oras"), "v1"), options=registry.options)
    copy = registry.ref(unique_repo("oras"), "copy")
    tool("oras", "copy", "--from-plain-http", "--to-plain-http", out["ref"].split("@")[0], copy)
    assert artifacts.resolve(copy, options=registry.options).endswith(out["digest"])
    assert exported(copy, tmp_path / "out", registry) == files_of(src)


# -- ormb -----------------------------------------------------------------------------------------


def ormb_dir(root: Path) -> Path:
    (root / "model").mkdir(parents=True)
    (root / "model" / "model.onnx").write_bytes(os.urandom(2000))
    (root / "ormbfile.yaml").write_text("format: ONNX\nauthor: ormb\ncreated: 2026-08-05T02:27:51.123456789Z\n")
    return root


def test_ormb_and_its_initializer_round_trip_with_modelhaul(registry, tool, tmp_path):
    src = ormb_dir(tmp_path / "src")
    ref = registry.ref(unique_repo("ormb"), "v1")
    tool("ormb", "save", str(src), ref)
    tool("ormb", "push", "--plain-http", ref)
    assert exported(ref, tmp_path / "out", registry) == files_of(src / "model")
    _, theirs = manifest_and_config(registry, ref, tmp_path)

    again = artifacts.publish(tmp_path / "out", ref.replace(":v1", ":again"), bundle_format="ormb",
                              options=registry.options)
    _, ours = manifest_and_config(registry, again["ref"], tmp_path)
    assert {k: v for k, v in ours.items() if k in theirs} == theirs  # every field as ormb wrote it
    tag_ref = again["ref"].split("@")[0]
    tool("ormb", "pull", "--plain-http", tag_ref)
    tool("ormb", "export", tag_ref, "-d", str(tmp_path / "ormb-out"))
    assert files_of(tmp_path / "ormb-out" / "model") == files_of(src / "model")
    tool("ormb-storage-initializer", "pull-and-export", "--relayout=false", tag_ref, str(tmp_path / "init-out"))
    assert files_of(tmp_path / "init-out" / "model") == files_of(src / "model")
