"""What other tools wrote survives modelhaul: inspect shows it, every re-publish keeps it (issue 21).

Foreign artifacts are built here as modctl, ormb and kit write them (every ModelPack config field,
a field no spec has, modctl's manifest annotation, per-file layer annotations with real times,
nanosecond timestamps) and pushed to the real test registry; ``tests/test_real_tools.py`` does the
same with the real binaries.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelhaul import artifacts, oci, steps
from modelhaul.bundle import modelpack
from tests.fixtures.registry import unique_repo
from tests.test_readers import blob_bytes, push_artifact, target_of

NANO = "2026-08-05T02:27:51.123456789Z"
MODELFILE = "NAME lin\nARCH linear\nFAMILY linfam\nFORMAT sklearn\nPARAMSIZE 5\nPRECISION fp64\n"
DESCRIPTOR = {
    "createdAt": NANO, "authors": ["Ann <ann@example.com>", "Bob"], "vendor": "acme", "family": "linfam",
    "name": "lin", "version": "1.2.3", "title": "Linear", "description": "a linear model",
    "docURL": "https://example.com/doc", "sourceURL": "https://example.com/src.git",
    "datasetsURL": ["https://example.com/data"], "revision": "abc123", "licenses": ["Apache-2.0"],
    "language": ["en"],
}
MODEL_CONFIG = {"architecture": "linear", "format": "sklearn", "paramSize": "5", "precision": "fp64",
                "quantization": "none", "capabilities": {"inputTypes": ["text"], "reasoning": False},
                "futureField": {"kept": True}}


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELHAUL_HOME", str(tmp_path / "home"))


def sklearn_model(d: Path) -> Path:
    import joblib
    import numpy as np
    from sklearn.linear_model import LinearRegression

    d.mkdir(parents=True, exist_ok=True)
    joblib.dump(LinearRegression().fit(np.arange(10.0).reshape(5, 2), np.arange(5.0)), d / "model.joblib")
    (d / "README.md").write_text("# lin\n")
    return d


def file_metadata(name: str, size: int) -> str:
    return json.dumps({"name": name, "mode": 420, "uid": 0, "gid": 0, "size": size,
                       "mtime": "2026-08-05T02:27:50.987654321Z", "typeflag": 0}, separators=(",", ":"))


def modctl_written(registry, src: Path) -> str:
    """A ModelPack artifact of ``src`` as modctl writes it, with every config field and more."""
    layers = []
    for kind, name in (("weight", "model.joblib"), ("doc", "README.md")):
        data = (src / name).read_bytes()
        layers.append(oci.Blob.from_bytes(f"{oci.MODELPACK_LAYER_PREFIX}{kind}.v1.raw", data, {
            oci.ANNOTATION_FILEPATH: name, oci.ANNOTATION_FILE_METADATA: file_metadata(name, len(data)),
            "com.example.layer-note": f"note of {name}"}))
    doc = {"descriptor": DESCRIPTOR, "config": MODEL_CONFIG, "modelfs": {
        "type": "layers", "diffIds": [b.digest for b in layers]}, "futureTopLevel": 1}
    cfg = oci.Blob.from_bytes(oci.MODELPACK_CONFIG, json.dumps(doc).encode())
    return push_artifact(registry, cfg, layers, artifact_type=oci.MODELPACK_ARTIFACT,
                         annotations={"org.cncf.modctl.modelfile": MODELFILE})


def manifest_and_config(registry, ref: str, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    r = ref.split("/", 1)[1]
    repo, tag = (r.split("@")[0].rsplit(":", 1) + ["latest"])[:2]
    target = target_of(registry, repo)
    manifest = target.get_manifest(ref.split("@", 1)[1] if "@" in ref else tag)
    return manifest.json, json.loads(blob_bytes(target, manifest.config, tmp_path))


def by_path(manifest: dict[str, Any]) -> dict[str, tuple[str, dict[str, str]]]:
    return {ly["annotations"][oci.ANNOTATION_FILEPATH]: (ly["mediaType"], ly["annotations"])
            for ly in manifest["layers"]}


def test_inspect_shows_every_modelpack_field_and_the_time_to_the_nanosecond(registry, tmp_path):
    ref = modctl_written(registry, sklearn_model(tmp_path / "src"))
    info = artifacts.inspect(ref, options=registry.options)
    cfg = info["config"]
    assert cfg["created"] == NANO
    assert cfg["origin"]["modelpack"] == {"descriptor": DESCRIPTOR, "config": MODEL_CONFIG, "futureTopLevel": 1}
    assert info["annotations"]["org.cncf.modctl.modelfile"] == MODELFILE


def test_parse_republishes_keeping_every_field_annotation_and_time(registry, tmp_path):
    ref = modctl_written(registry, sklearn_model(tmp_path / "src"))
    before, before_cfg = manifest_and_config(registry, ref, tmp_path)
    out = steps.parse(ref=ref, dest_ref=ref.rsplit(":", 1)[0] + ":parsed", trust=True, plain_http=True)
    after, after_cfg = manifest_and_config(registry, out["ref"], tmp_path)
    assert after_cfg["descriptor"] == DESCRIPTOR  # as written: sklearn, nanoseconds, the authors list
    assert after_cfg["config"] == MODEL_CONFIG and after_cfg["futureTopLevel"] == 1
    assert after["annotations"]["org.cncf.modctl.modelfile"] == MODELFILE
    assert by_path(after) == by_path(before)  # kinds, file metadata (real times), unknown annotations
    parsed = artifacts.inspect(out["ref"], options=registry.options)["config"]
    assert parsed["signature"] and parsed["created"] == NANO
    assert parsed["provenance"]["parent"] == artifacts.resolve(ref, options=registry.options)
    assert before_cfg["descriptor"] == DESCRIPTOR


def test_a_second_republish_keeps_them_too_and_adds_only_what_changed(registry, tmp_path):
    ref = modctl_written(registry, sklearn_model(tmp_path / "src"))
    dest = ref.rsplit(":", 1)[0]
    first = steps.parse(ref=ref, dest_ref=dest + ":p1", trust=True, plain_http=True)
    export = tmp_path / "out"
    artifacts.fetch(first["ref"], export, options=registry.options)
    second = artifacts.publish(export, dest + ":p2", config={"description": "changed"}, options=registry.options)
    manifest, cfg = manifest_and_config(registry, second["ref"], tmp_path)
    assert cfg["descriptor"] == {**DESCRIPTOR, "description": "changed"}
    assert cfg["config"] == MODEL_CONFIG
    assert manifest["annotations"]["org.cncf.modctl.modelfile"] == MODELFILE


def test_retag_and_copy_keep_the_manifest_byte_for_byte(registry, tmp_path):
    ref = modctl_written(registry, sklearn_model(tmp_path / "src"))
    digest = artifacts.resolve(ref, options=registry.options).split("@")[1]
    same_repo = artifacts.retag(ref, "stable", options=registry.options)
    other = artifacts.retag(ref, registry.ref(unique_repo("fidelity"), "copy"), options=registry.options)
    assert same_repo["digest"] == other["digest"] == digest


def test_convert_keeps_the_source_fields_and_writes_the_new_format(registry, tmp_path):
    ref = modctl_written(registry, sklearn_model(tmp_path / "src"))
    out = steps.convert(ref=ref, to="onnx", dest_ref=registry.ref(unique_repo("fidelity"), "onnx"), trust=True,
                        plain_http=True)
    manifest, cfg = manifest_and_config(registry, out["ref"], tmp_path)
    assert cfg["descriptor"] == DESCRIPTOR
    assert cfg["config"] == {**MODEL_CONFIG, "format": "ONNX"}  # what changed is written over
    assert manifest["annotations"]["org.cncf.modctl.modelfile"] == MODELFILE
    parent = artifacts.inspect(out["ref"], options=registry.options)["config"]["provenance"]["parent"]
    assert parent == artifacts.resolve(ref, options=registry.options)


def test_ormb_fields_of_a_newer_ormb_and_nanoseconds_are_kept(registry, tmp_path):
    import gzip
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"onnx-bytes"
        info = tarfile.TarInfo("model/model.onnx")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    layer = oci.Blob.from_bytes(oci.ORMB_LAYER, gzip.compress(buf.getvalue(), mtime=0))
    doc = {"format": "ONNX", "created": NANO, "author": "ormb", "newOrmbField": {"x": 1}}
    ref = push_artifact(registry, oci.Blob.from_bytes(oci.ORMB_CONFIG, json.dumps(doc).encode()), [layer])
    export = tmp_path / "out"
    artifacts.fetch(ref, export, options=registry.options)
    out = artifacts.publish(export, ref.rsplit(":", 1)[0] + ":again", bundle_format="ormb", options=registry.options)
    _, cfg = manifest_and_config(registry, out["ref"], tmp_path)
    assert cfg["created"] == NANO and cfg["newOrmbField"] == {"x": 1}


def test_a_file_keeps_the_kind_its_writer_gave_it():
    origin = modelpack.Origin(layers={"notes.txt": {"mediaType": f"{oci.MODELPACK_LAYER_PREFIX}code.v1.raw"}},
                              kitfile={"manifestVersion": "1.0.0", "code": [{"path": "scripts"}]})
    assert modelpack.origin_kind(origin, "notes.txt") == "code"
    assert modelpack.origin_kind(origin, "scripts/run.txt") == "code"  # a Kitfile code: entry's file
    assert modelpack.origin_kind(origin, "other.txt") is None


# -- oras directories: under their title, wherever they stand -------------------------------------


def oras_directory(title: str, files: dict[str, bytes]) -> oci.Blob:
    from tests.test_readers import tar_bytes

    data = tar_bytes({f"{title}/{k}": v for k, v in files.items()}, dirs=(title,), compress="gzip")
    return oci.Blob.from_bytes(oci.ORAS_DIRECTORY, data, {oci.ANNOTATION_TITLE: title, oci.ORAS_UNPACK: "true"})


@pytest.mark.parametrize("title, beside", [("weights", False), ("weights", True), ("a/weights", False)])
def test_an_oras_directory_unpacks_under_its_title_alone_or_not(registry, tmp_path, title, beside):
    from tests.test_readers import files_of

    layers = [oras_directory(title, {"README.md": b"# w\n", "sub/x.bin": b"\x00\x01"})]
    if beside:
        layers.append(oci.Blob.from_bytes(oci.ORAS_FILE, b"onnx", {oci.ANNOTATION_TITLE: "model.onnx"}))
    ref = push_artifact(registry, oci.Blob.from_bytes(oci.EMPTY_CONFIG, b"{}"), layers)
    artifacts.fetch(ref, tmp_path / "out", options=registry.options)
    expected = {f"{title}/README.md": b"# w\n", f"{title}/sub/x.bin": b"\x00\x01"}
    assert files_of(tmp_path / "out" / "model") == expected | ({"model.onnx": b"onnx"} if beside else {})


def test_an_oras_directory_entry_outside_its_title_is_refused(registry, tmp_path):
    from modelhaul.errors import UnsafeArchive
    from tests.test_readers import tar_bytes

    data = tar_bytes({"weights/ok.bin": b"1", "elsewhere.bin": b"2"}, compress="gzip")
    layer = oci.Blob.from_bytes(oci.ORAS_DIRECTORY, data, {oci.ANNOTATION_TITLE: "weights", oci.ORAS_UNPACK: "true"})
    ref = push_artifact(registry, oci.Blob.from_bytes(oci.EMPTY_CONFIG, b"{}"), [layer])
    with pytest.raises(UnsafeArchive, match="'elsewhere.bin' is outside 'weights'"):
        artifacts.fetch(ref, tmp_path / "out", options=registry.options)
    assert not (tmp_path / "out").exists()
