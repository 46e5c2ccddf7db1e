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
