"""Interop with tools nobody here wrote: oras-py and skopeo read what RegistryTarget writes, and back."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from modelhaul import oci
from modelhaul.registry import RegistryTarget
from tests.fixtures.registry import ensure_tools, unique_repo
from tests.test_registry import make_blob, push

MiB = 1 << 20


@pytest.fixture(scope="module")
def skopeo() -> str:
    ensure_tools("skopeo")
    return "skopeo"


def oras_client(registry):
    from oras.provider import Registry

    return Registry(hostname=registry.host, insecure=True)


def layout_blob(layout: Path, digest: str) -> Path:
    algo, hexd = digest.split(":", 1)
    return layout / "blobs" / algo / hexd


def test_oras_py_pulls_what_modelhaul_pushed(registry, tmp_path):
    repo = unique_repo("interop")
    layers = [make_blob(tmp_path, 3 * MiB, "model.onnx"), make_blob(tmp_path, 100, "README.md")]
    target = RegistryTarget(registry.host, repo, registry.options)
    target.chunk_threshold, target.chunk_size = 2 * MiB, MiB  # the chunked path is read back too
    push(target, layers, "v1")

    out = tmp_path / "oras-out"
    files = oras_client(registry).pull(target=f"{registry.host}/{repo}:v1", outdir=str(out))
    assert sorted(Path(f).name for f in files) == ["README.md", "model.onnx"]
    for layer in layers:
        assert (out / layer.path.name).read_bytes() == layer.path.read_bytes()


def test_modelhaul_reads_what_oras_py_pushed(registry, tmp_path, monkeypatch):
    repo = unique_repo("interop")
    monkeypatch.chdir(tmp_path)  # oras-py only pushes files below the working directory
    layer = make_blob(tmp_path, 2 * MiB + 5, "weights.bin")
    oras_client(registry).push(target=f"{registry.host}/{repo}:v1", files=[layer.path.name])

    target = RegistryTarget(registry.host, repo, registry.options)
    manifest = target.get_manifest("v1")
    (desc,) = manifest.layers
    assert desc["digest"] == layer.digest and desc["annotations"][oci.ANNOTATION_TITLE] == "weights.bin"
    target.fetch_blob(desc["digest"], desc["size"], tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == layer.path.read_bytes()


def test_skopeo_copies_modelhaul_push_and_modelhaul_reads_skopeo_push(registry, tmp_path, skopeo):
    repo, back = unique_repo("interop"), unique_repo("interop")
    layers = [make_blob(tmp_path, 2 * MiB, "w.bin"), make_blob(tmp_path, 7, "tokenizer.json")]
    target = RegistryTarget(registry.host, repo, registry.options)
    digest = push(target, layers, "v1")

    layout = tmp_path / "layout"
    subprocess.run([skopeo, "copy", "--src-tls-verify=false", f"docker://{registry.host}/{repo}:v1",
                    f"oci:{layout}:v1"], check=True, capture_output=True, text=True)
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [digest]  # copied byte for byte
    for layer in layers:
        assert layout_blob(layout, layer.digest).read_bytes() == layer.path.read_bytes()

    subprocess.run([skopeo, "copy", "--dest-tls-verify=false", f"oci:{layout}:v1",
                    f"docker://{registry.host}/{back}:v2"], check=True, capture_output=True, text=True)
    other = RegistryTarget(registry.host, back, registry.options)
    manifest = other.get_manifest("v2")
    assert manifest.digest == digest
    for desc in manifest.layers:
        other.fetch_blob(desc["digest"], desc["size"], tmp_path / "back" / desc["digest"])
        assert (tmp_path / "back" / desc["digest"]).read_bytes() == layout_blob(layout, desc["digest"]
                                                                                 ).read_bytes()


def test_skopeo_inspects_with_modelhaul_login(auth_registry, tmp_path, skopeo, monkeypatch):
    """Credentials written by modelhaul's login are the docker config skopeo reads."""
    from modelhaul import registry
    from modelhaul.registry_options import RegistryOptions

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    repo = unique_repo("interop")
    push(RegistryTarget(auth_registry.host, repo, auth_registry.options), [make_blob(tmp_path, 10)], "v1")
    registry.login(auth_registry.host, auth_registry.username, auth_registry.password,
               RegistryOptions(plain_http=True))
    r = subprocess.run([skopeo, "inspect", "--raw", "--tls-verify=false",
                        "--authfile", str(tmp_path / "dc" / "config.json"),
                        f"docker://{auth_registry.host}/{repo}:v1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["artifactType"] == oci.MODELPACK_ARTIFACT
