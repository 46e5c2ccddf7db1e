"""``modelhaul push DIR REF``: publish straight from a directory (issue 15).

Through a counting proxy in front of the real registry: a new large file goes up once, hashed
while it is sent (no hash pass first, no store copy); re-publishing the unchanged directory costs
HEADs and one manifest PUT, nothing else.
"""

from __future__ import annotations

import json
import os

import pytest

from modelhaul import artifacts, transfer
from modelhaul.cli import main
from tests.fixtures.registry import faulty_proxy, unique_repo

MiB = 1 << 20


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELHAUL_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(transfer, "STREAM_HASH_MIN", MiB)  # "large" here: above 1 MiB
    src = tmp_path / "src"
    (src / "model").mkdir(parents=True)
    (src / "model" / "weights.bin").write_bytes(os.urandom(3 * MiB))
    (src / "model" / "config.json").write_text('{"layers": 2}')
    (src / "ormbfile.yaml").write_text("author: direct\nformat: PyTorch\n")
    return src


def test_push_dir_uploads_new_bytes_once_and_republishes_with_heads(registry, model, tmp_path, capsys):
    with faulty_proxy(registry) as proxy:
        ref = f"{proxy.host}/{unique_repo()}:v1"
        assert main(["push", str(model), ref, "--plain-http", "--json"]) == 0
        first = json.loads(capsys.readouterr().out)
        sent = sum(r.body_size for r in proxy.requests if r.method in ("PATCH", "PUT") and "/blobs/" in r.path)
        assert 3 * MiB <= sent < 3 * MiB + 64 * 1024  # the weights once, plus config.json and the config blob
        assert not (tmp_path / "home" / "store").exists()  # no staging copy in the store
        before = len(proxy.requests)

        assert main(["push", str(model), ref, "--plain-http", "--json"]) == 0
        again = json.loads(capsys.readouterr().out)
        methods = sorted({(r.method, "/manifests/" in r.path) for r in proxy.requests[before:]})
    assert again["digest"] == first["digest"]
    assert methods == [("HEAD", False), ("PUT", True)]
    assert len([r for r in proxy.requests[before:] if r.method == "PUT"]) == 1
    back = artifacts.fetch(first["ref"].replace(proxy.host, registry.host), tmp_path / "out",
                           options=registry.options)
    assert (tmp_path / "out/model/weights.bin").read_bytes() == (model / "model/weights.bin").read_bytes()
    assert back["digest"] == first["digest"]
