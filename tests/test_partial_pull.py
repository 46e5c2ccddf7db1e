"""Partial pulls: ``--include`` fetches only the chosen layers of a ModelPack artifact (issue 15).

A counting proxy in front of the real registry records every blob GET, so the tests see which
bytes left the registry, and the export directory shows which files were written.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelhaul import artifacts, steps
from modelhaul.cli import main
from modelhaul.errors import ConfigError
from tests.fixtures.registry import faulty_proxy, unique_repo


def ten_files(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "model" / "shards").mkdir(parents=True)
    for i in range(9):
        (src / "model" / "shards" / f"part{i}.bin").write_bytes(os.urandom(64 * 1024 + i))
    (src / "model" / "model.onnx").write_bytes(b"\x08\x07" * 5000)
    (src / "ormbfile.yaml").write_text("author: partial\nformat: ONNX\n")
    return src


def blob_gets(proxy) -> list[str]:
    return [s.path.rsplit("/", 1)[-1] for s in proxy.seen("GET", "/blobs/sha256:")]


def test_include_fetches_only_the_chosen_layer(registry, tmp_path, home):
    with faulty_proxy(registry) as proxy:
        ref = f"{proxy.host}/{unique_repo()}:v1"
        published = artifacts.publish(ten_files(tmp_path), ref, options=proxy.options)
        info = artifacts.inspect(published["ref"], options=proxy.options)
        by_path = {layer["path"]: layer["digest"] for layer in info["layers"]}
        assert len(by_path) == 10
        before = len(blob_gets(proxy))

        out = steps.fetch(ref=ref, dest=str(tmp_path / "out"), include=["*.onnx"], plain_http=True)

        fetched = blob_gets(proxy)[before:]
    # the config travels in the manifest's annotation: the chosen layer is the only blob that moves
    assert fetched == [by_path["model.onnx"]]
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == ["model/model.onnx", "ormbfile.yaml"]
    assert (tmp_path / "out/model/model.onnx").read_bytes() == (tmp_path / "src/model/model.onnx").read_bytes()
    assert out["digest"] == published["digest"]


def test_cli_pull_and_export_with_include(registry, tmp_path, home, capsys):
    src = ten_files(tmp_path)
    ref = f"{registry.host}/{unique_repo()}:v1"
    artifacts.publish(src, ref, options=registry.options)
    with faulty_proxy(registry) as proxy:
        pref = ref.replace(registry.host, proxy.host)
        assert main(["pull", pref, "--plain-http", "--include", "model/shards/part3.bin",
                     "--include", "shards/part7*"]) == 0
        assert len(blob_gets(proxy)) == 3  # config + two shards
        # export finds the config and the shard in the store (no tag was kept there): no blob moves
        assert main(["export", pref, str(tmp_path / "out"), "--plain-http", "--include", "*part3.bin"]) == 0
        assert len(blob_gets(proxy)) == 3
    assert [p.name for p in (tmp_path / "out/model").rglob("*") if p.is_file()] == ["part3.bin"]
    assert (tmp_path / "out/model/shards/part3.bin").read_bytes() == (src / "model/shards/part3.bin").read_bytes()


def test_include_that_matches_nothing_is_one_line_and_writes_nothing(registry, tmp_path, home):
    ref = f"{registry.host}/{unique_repo()}:v1"
    artifacts.publish(ten_files(tmp_path), ref, options=registry.options)
    with pytest.raises(ConfigError, match=r"--include \*\.pt matches none of its 10 files \(model/model\.onnx, "):
        artifacts.fetch(ref, tmp_path / "out", options=registry.options, include=["*.pt"])
    assert not (tmp_path / "out").exists()


def test_include_is_refused_for_an_ormb_artifact(registry, tmp_path, home):
    ref = f"{registry.host}/{unique_repo()}:v1"
    artifacts.publish(ten_files(tmp_path), ref, bundle_format="ormb", options=registry.options)
    with pytest.raises(ConfigError, match="needs a ModelPack artifact .* this one is ormb"):
        artifacts.fetch(ref, tmp_path / "out", options=registry.options, include=["*.onnx"])
    assert not (tmp_path / "out").exists()
