"""ormb in one pass: the tar+gzip layer goes to the registry while it is built (issue 15).

Through a counting proxy in front of the real registry: the layer travels in one chunked PATCH
(no Content-Length: it did not exist as a file) and is closed by an empty PUT with its digest;
the result has the same layer digest as ``save --format ormb`` and reads back with the ormb reader.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelhaul import artifacts
from tests.fixtures.registry import Fault, faulty_proxy, unique_repo

MiB = 1 << 20


@pytest.fixture
def model(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MODELHAUL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELHAUL_TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    src = tmp_path / "src"
    (src / "model" / "sub").mkdir(parents=True)
    (src / "model" / "weights.bin").write_bytes(os.urandom(3 * MiB + 17))
    (src / "model" / "sub" / "vocab.txt").write_text("a\nb\n")
    (src / "ormbfile.yaml").write_text("author: stream\nformat: SavedModel\n")
    return src


def layer_of(ref: str, options) -> dict:
    info = artifacts.inspect(ref, options=options)
    assert info["bundle_format"] == "ormb"
    (layer,) = info["layers"]
    return layer


def test_ormb_layer_streams_in_one_pass_and_matches_save(registry, model, tmp_path):
    with faulty_proxy(registry) as proxy:
        ref = f"{proxy.host}/{unique_repo()}:v1"
        out = artifacts.publish(model, ref, bundle_format="ormb", options=proxy.options)
        patches = proxy.seen("PATCH", "/blobs/uploads/")
        puts = proxy.seen("PUT", "/blobs/uploads/")
        layer = layer_of(out["ref"], proxy.options)
    assert len(patches) == 1 and patches[0].headers.get("Transfer-Encoding") == "chunked"
    assert patches[0].body_size == layer["size"]
    assert [p.body_size for p in puts if layer["digest"] in p.path] == [0]  # digest known at the end
    assert os.listdir(tmp_path / "tmp") == []

    saved = artifacts.publish(model, f"oci:{tmp_path / 'layout'}:v1", bundle_format="ormb")
    assert layer_of(saved["ref"], None)["digest"] == layer["digest"]

    back = artifacts.fetch(out["ref"].replace(proxy.host, registry.host), tmp_path / "out", options=registry.options)
    assert (Path(back["model_dir"]) / "weights.bin").read_bytes() == (model / "model/weights.bin").read_bytes()
    assert (Path(back["model_dir"]) / "sub/vocab.txt").read_text() == "a\nb\n"


def test_a_failed_stream_is_produced_again(registry, model, tmp_path):
    with faulty_proxy(registry, Fault("PATCH", "/blobs/uploads/", "503", count=1)) as proxy:
        ref = f"{proxy.host}/{unique_repo()}:v1"
        out = artifacts.publish(model, ref, bundle_format="ormb", options=proxy.options)
        assert [p.status for p in proxy.seen("PATCH")] == [503, 202]
    saved = artifacts.publish(model, f"oci:{tmp_path / 'layout'}:v1", bundle_format="ormb")
    streamed = layer_of(out["ref"].replace(proxy.host, registry.host), registry.options)
    assert streamed["digest"] == layer_of(saved["ref"], None)["digest"]


def test_a_registry_refusing_streamed_chunks_gets_the_file(registry, model, tmp_path):
    with faulty_proxy(registry, Fault("PATCH", "/blobs/uploads/", "416", count=100)) as proxy:
        ref = f"{proxy.host}/{unique_repo()}:v1"
        out = artifacts.publish(model, ref, bundle_format="ormb", options=proxy.options)
        assert [p.status for p in proxy.seen("PATCH")] == [416]
    back = artifacts.fetch(out["ref"].replace(proxy.host, registry.host), tmp_path / "out", options=registry.options)
    assert (Path(back["model_dir"]) / "weights.bin").read_bytes() == (model / "model/weights.bin").read_bytes()


# -- re-publishing: the remembered layer is trusted only where the registry holds it (issue 26) ----


def test_an_unchanged_ormb_republish_moves_no_bytes(registry, model, tmp_path):
    # was: every re-publish built and streamed the whole tar+gzip layer again
    with faulty_proxy(registry) as proxy:
        ref = f"{proxy.host}/{unique_repo()}:v1"
        first = artifacts.publish(model, ref, bundle_format="ormb", options=proxy.options)
        proxy.requests.clear()
        again = artifacts.publish(model, ref, bundle_format="ormb", options=proxy.options)
        sent = {(r.method, r.path.split("/")[-2]) for r in proxy.requests}
    assert again == first
    assert sent == {("HEAD", "manifests")}  # the tag already names it: nothing written


def test_a_registry_that_lacks_the_remembered_layer_gets_it_packed_again(registry, model, tmp_path):
    first = artifacts.publish(model, f"{registry.host}/{unique_repo()}:v1", bundle_format="ormb",
                              options=registry.options)
    with faulty_proxy(registry) as proxy:
        other = artifacts.publish(model, f"{proxy.host}/{unique_repo()}:v1", bundle_format="ormb",
                                  options=proxy.options)
        assert len(proxy.seen("PATCH", "/blobs/uploads/")) == 1  # the layer, streamed again
    assert other["digest"] == first["digest"]
    back = artifacts.fetch(other["ref"].replace(proxy.host, registry.host), tmp_path / "out", options=registry.options)
    assert (Path(back["model_dir"]) / "weights.bin").read_bytes() == (model / "model/weights.bin").read_bytes()


def test_another_gzip_level_or_an_edited_file_packs_ormb_again(registry, model, tmp_path, monkeypatch):
    ref = f"{registry.host}/{unique_repo()}:v1"
    first = artifacts.publish(model, ref, bundle_format="ormb", options=registry.options)
    monkeypatch.setenv("MODELHAUL_GZIP_LEVEL", "1")
    level1 = artifacts.publish(model, ref, bundle_format="ormb", options=registry.options)
    assert level1["digest"] != first["digest"]
    (model / "model" / "sub" / "vocab.txt").write_text("a\nc\n")
    edited = artifacts.publish(model, ref, bundle_format="ormb", options=registry.options)
    assert edited["digest"] != level1["digest"]
    monkeypatch.setenv("MODELHAUL_HOME", str(tmp_path / "fresh"))
    assert artifacts.publish(model, ref, bundle_format="ormb", options=registry.options) == edited
