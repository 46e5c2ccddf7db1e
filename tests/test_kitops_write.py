"""modelhaul writes KitOps ModelKits as kit v1.7 writes them (issue 21).

Checked here against kit's layout rules with Python alone (CI without ``../shared/tools``);
``tests/test_real_tools.py`` has the real ``kit`` pull, unpack, info and list what is written.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from modelhaul import artifacts, oci, steps
from modelhaul.cli import main
from modelhaul.errors import ConfigError
from tests.fixtures.registry import unique_repo
from tests.test_fidelity import manifest_and_config
from tests.test_readers import blob_bytes, target_of

KITFILE = """manifestVersion: 1.0.0
package:
  name: lin
  version: 1.0.0
  license: Apache-2.0
  authors: [Ann, Bob]
model:
  name: lin
  path: model.onnx
  format: onnx
  parameters: {alpha: 0.5}
code:
  - path: scripts
    description: how it was made
docs:
  - path: README.md
"""


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELHAUL_HOME", str(tmp_path / "home"))


def kit_dir(root: Path, kitfile: str | None = KITFILE) -> Path:
    (root / "scripts" / "lib").mkdir(parents=True)
    (root / "model.onnx").write_bytes(b"\x08\x07onnx-ish" * 100)
    (root / "scripts" / "run.txt").write_text("python train.py\n")
    (root / "scripts" / "lib" / "util.py").write_text("X = 1\n")
    (root / "README.md").write_text("# lin\n")
    if kitfile:
        (root / "Kitfile").write_text(kitfile)
    return root


def tar_members(data: bytes) -> list[tuple[str, str, int, int, int]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m.name, m.type.decode(), m.uid, m.gid, m.mtime) for m in tar.getmembers()]


def pushed(registry, src: Path, tmp_path: Path, **kw) -> tuple[dict, dict, dict[str, bytes]]:
    ref = registry.ref(unique_repo("kitw"), "v1")
    out = artifacts.publish(src, ref, bundle_format="kitops", options=registry.options, **kw)
    manifest, kitfile = manifest_and_config(registry, out["ref"], tmp_path)
    target = target_of(registry, out["ref"].split("/", 1)[1].split(":")[0])
    blobs = {ly["digest"]: blob_bytes(target, ly, tmp_path) for ly in manifest["layers"]}
    return manifest, kitfile, blobs | {"ref": out["ref"].encode()}


def test_a_kitfile_directory_is_packed_as_kit_packs_it(registry, tmp_path):
    src = kit_dir(tmp_path / "src")
    manifest, kitfile, blobs = pushed(registry, src, tmp_path)
    assert manifest["config"]["mediaType"] == oci.KITOPS_CONFIG and "artifactType" not in manifest
    kinds = [ly["mediaType"] for ly in manifest["layers"]]
    assert kinds == [f"{oci.KITOPS_LAYER_PREFIX}{k}.v1.tar" for k in ("model", "code", "docs")]
    model, code, docs = (blobs[ly["digest"]] for ly in manifest["layers"])
    assert tar_members(code) == [("scripts", "5", 1000, 0, 0), ("scripts/lib", "5", 1000, 0, 0),
                                 ("scripts/lib/util.py", "0", 1000, 0, 0), ("scripts/run.txt", "0", 1000, 0, 0)]
    assert [m[0] for m in tar_members(model)] == ["model.onnx"] and len(code) % 512 == 0
    # the Kitfile as given, as kit's JSON (struct order), each entry with its layer's digest and diffId
    assert list(kitfile) == ["manifestVersion", "package", "model", "code", "docs"]
    assert kitfile["model"]["parameters"] == {"alpha": 0.5} and kitfile["model"]["format"] == "onnx"
    assert kitfile["code"][0]["description"] == "how it was made"
    for entry, layer in zip((kitfile["model"], kitfile["code"][0], kitfile["docs"][0]), manifest["layers"],
                            strict=True):
        assert entry["digest"] == entry["diffId"] == layer["digest"]
    out = tmp_path / "out"
    artifacts.fetch(blobs["ref"].decode(), out, options=registry.options)
    for rel in ("model.onnx", "scripts/run.txt", "scripts/lib/util.py", "README.md"):
        assert (out / "model" / rel).read_bytes() == (src / rel).read_bytes()


def test_a_bare_directory_gets_one_entry_per_file(registry, tmp_path):
    src = kit_dir(tmp_path / "src", kitfile=None)
    (src / "config.json").write_text("{}")
    manifest, kitfile, _ = pushed(registry, src, tmp_path)
    assert kitfile["model"]["path"] == "model.onnx" and kitfile["model"]["format"] == "ONNX"
    assert [(p["path"], p.get("type")) for p in kitfile["model"]["parts"]] == [("config.json", "config")]
    assert [c["path"] for c in kitfile["code"]] == ["scripts/lib/util.py"]
    assert {d["path"] for d in kitfile["docs"]} == {"README.md", "scripts/run.txt"}
    assert len(manifest["layers"]) == 5


def test_gzip_compression_and_its_diff_ids(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELHAUL_KITOPS_COMPRESSION", "gzip")
    manifest, kitfile, blobs = pushed(registry, kit_dir(tmp_path / "src"), tmp_path)
    layer = manifest["layers"][0]
    assert layer["mediaType"] == f"{oci.KITOPS_LAYER_PREFIX}model.v1.tar+gzip"
    plain = gzip.decompress(blobs[layer["digest"]])
    assert kitfile["model"]["diffId"] == "sha256:" + hashlib.sha256(plain).hexdigest() != layer["digest"]
    monkeypatch.setenv("MODELHAUL_KITOPS_COMPRESSION", "zstd")
    with pytest.raises(ConfigError, match="MODELHAUL_KITOPS_COMPRESSION='zstd'"):
        artifacts.publish(kit_dir(tmp_path / "again"), registry.ref(unique_repo("kitw")), bundle_format="kitops",
                          options=registry.options)


def test_a_kitfile_entry_naming_no_file_is_one_clear_line(registry, tmp_path):
    src = kit_dir(tmp_path / "src", KITFILE.replace("path: scripts", "path: missing"))
    with pytest.raises(ConfigError, match="Kitfile code entry path 'missing' names no file"):
        artifacts.publish(src, registry.ref(unique_repo("kitw")), bundle_format="kitops", options=registry.options)


def test_parse_of_a_modelkit_keeps_it_a_modelkit_with_its_kitfile(registry, tmp_path):
    src = kit_dir(tmp_path / "src", KITFILE.replace("model.onnx", "model.joblib").replace("onnx", "sklearn"))
    from tests.test_fidelity import sklearn_model

    (src / "model.onnx").unlink()
    sklearn_model(src)
    (src / "README.md").write_text("# lin\n")
    _, before, _ = pushed(registry, src, tmp_path)
    ref = registry.ref(unique_repo("kitw"), "v1")
    artifacts.publish(src, ref, bundle_format="kitops", options=registry.options)
    out = steps.parse(ref=ref, trust=True, plain_http=True)
    manifest, after = manifest_and_config(registry, out["ref"], tmp_path)
    assert manifest["config"]["mediaType"] == oci.KITOPS_CONFIG
    assert after["model"].pop("framework") == "scikit-learn"  # what parse found out is added
    assert after == before  # the rest of the Kitfile as given: its entries, layers, parameters
    assert json.loads(manifest["annotations"][oci.ANNOTATION_CONFIG])["signature"]


def test_a_modelkit_in_modelpack_keeps_its_code_entries_and_package(registry, tmp_path):
    ref = registry.ref(unique_repo("kitw"), "v1")
    artifacts.publish(kit_dir(tmp_path / "src"), ref, bundle_format="kitops", options=registry.options)
    export = tmp_path / "out"
    artifacts.fetch(ref, export, options=registry.options)
    out = artifacts.publish(export, ref.replace(":v1", ":mp"), options=registry.options)
    manifest, doc = manifest_and_config(registry, out["ref"], tmp_path)
    kinds = {ly["annotations"][oci.ANNOTATION_FILEPATH]: ly["mediaType"] for ly in manifest["layers"]}
    assert {k: doc["descriptor"][k] for k in ("name", "version", "authors", "licenses")} == {
        "name": "lin", "version": "1.0.0", "authors": ["Ann", "Bob"], "licenses": ["Apache-2.0"]}
    assert kinds["scripts/run.txt"] == f"{oci.MODELPACK_LAYER_PREFIX}code.v1.raw"  # not doc, by its name
    assert kinds["README.md"] == f"{oci.MODELPACK_LAYER_PREFIX}doc.v1.raw"


def test_save_and_push_take_format_kitops(registry, tmp_path, capsys):
    src = kit_dir(tmp_path / "src")
    layout = tmp_path / "layout"
    assert main(["save", "--format", "kitops", str(src), f"oci:{layout}:v1"]) == 0
    assert main(["push", "--plain-http", "--format", "kitops", str(src), registry.ref(unique_repo("kitw"))]) == 0
    info = artifacts.inspect(f"oci:{layout}:v1")
    assert info["bundle_format"] == "kitops"
    assert [ly["path"] for ly in info["layers"]] == ["model.onnx", "scripts", "README.md"]


def test_converting_between_every_format_keeps_the_files_byte_for_byte(registry, tmp_path):
    from tests.test_readers import files_of

    src = kit_dir(tmp_path / "src")
    want = {k: v for k, v in files_of(src).items() if k != "Kitfile"}
    here, repo = src, unique_repo("kitw")
    for i, fmt in enumerate(["kitops", "ormb", "modelpack", "kitops"]):
        out = artifacts.publish(here, registry.ref(repo, f"v{i}"), bundle_format=fmt, options=registry.options)
        here = tmp_path / f"out{i}"
        artifacts.fetch(out["ref"], here, options=registry.options)
        assert files_of(here / "model") == want, fmt
    _, kitfile = manifest_and_config(registry, registry.ref(repo, "v3"), tmp_path)
    assert [c["path"] for c in kitfile["code"]] == ["scripts"]  # the Kitfile came through ormb and ModelPack


def test_a_kitignore_leaves_out_what_it_names_and_keeps_what_it_re_includes(registry, tmp_path):
    src = kit_dir(tmp_path / "src")
    (src / "scripts" / "__pycache__").mkdir()
    (src / "scripts" / "__pycache__" / "x.pyc").write_bytes(b"\x00")
    (src / "scripts" / "keep.pyc").write_bytes(b"\x01")
    (src / "scripts" / "drop.pyc").write_bytes(b"\x02")
    (src / ".kitignore").write_text("# caches\n**/__pycache__\nscripts/*.pyc\n!scripts/keep.pyc\n")
    manifest, kitfile, blobs = pushed(registry, src, tmp_path)
    code = blobs[manifest["layers"][1]["digest"]]
    assert [m[0] for m in tar_members(code)] == ["scripts", "scripts/keep.pyc", "scripts/lib", "scripts/lib/util.py",
                                                 "scripts/run.txt"]


def test_a_kitfile_without_a_format_is_written_without_one(registry, tmp_path):
    _, kitfile, _ = pushed(registry, kit_dir(tmp_path / "src", KITFILE.replace("  format: onnx\n", "")), tmp_path)
    assert "format" not in kitfile["model"] and "framework" not in kitfile["model"]  # as given: nothing inferred
