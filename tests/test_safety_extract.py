"""Crafted artifacts cannot write outside the destination, whichever command reads them (issue 10).

Each hostile artifact is a real OCI layout (or pushed to the real registry) and each consumer is
the real process a user or a serving pod runs: ``modelhaul export``, ``pull`` + ``export``,
``parse``, ``convert`` and ``modelhaul-initializer``. Every case asserts a one-line error, a non-zero
exit, and that no file appeared anywhere but the store.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from modelhaul import artifacts, oci, transfer
from modelhaul.reference import parse
from modelhaul.store import LayoutTarget

RAW = "application/vnd.cncf.model.weight.v1.raw"
MODELPACK_TAR = "application/vnd.cncf.model.weight.v1.tar"
KITOPS_TAR = "application/vnd.kitops.modelkit.model.v1.tar"

Member = tuple[tarfile.TarInfo, bytes | None]


def _file(name: str, data: bytes) -> Member:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _device(name: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info, None


def _tar(members: list[Member], prefix: str = "") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            info = info.replace(name=prefix + info.name, deep=False)
            if info.islnk() and prefix and not info.linkname.startswith("/"):
                info = info.replace(linkname=prefix + info.linkname, deep=False)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


TOKEN = f"escaped-{uuid.uuid4().hex[:8]}"

# name -> members (paths relative to the model directory)
HOSTILE: dict[str, list[Member]] = {
    "link-chain": [_link("a", "."), _link("a/b", ".."), _link("a/b/c", ".."), _file(f"a/b/c/{TOKEN}", b"x")],
    "deep-chain": [_link("d", "."), *[_link("d/" + "/".join(["l"] * i), "..") for i in range(1, 12)],
                   _file("d/" + "/".join(["l"] * 11) + f"/{TOKEN}", b"x")],
    "absolute-link": [_link("etc", "/tmp"), _file(f"etc/{TOKEN}", b"x")],
    "hardlink-outside": [_link(TOKEN, "../../../etc/hostname", tarfile.LNKTYPE)],
    "absolute-hardlink": [_link(TOKEN, "/etc/hostname", tarfile.LNKTYPE)],
    "device": [_device("null")],
    "hardlink-to-nothing": [_link(TOKEN, "not-in-the-archive", tarfile.LNKTYPE)],
    "through-earlier-symlink": [_file("sub/keep", b"k"), _link("to-sub", "sub"), _file("to-sub/model.onnx", b"x")],
}


def _layout(root: Path, kind: str, tar_members: list[Member] | None = None,
            raw: list[tuple[str, bytes]] = ()) -> str:
    """An OCI layout holding one artifact of ``kind`` (ormb, modelpack, kitops) with the given layers."""
    layout = LayoutTarget(root)
    layers: list[oci.Blob] = []
    if kind == "ormb":
        cfg = oci.Blob.from_bytes(oci.ORMB_CONFIG, b'{"format":"ONNX"}')
        layers.append(oci.Blob.from_bytes(oci.ORMB_LAYER, gzip.compress(_tar(tar_members or [], "model/"))))
        extra: dict[str, str] = {}
    elif kind == "modelpack":
        cfg = oci.Blob.from_bytes(oci.MODELPACK_CONFIG, b"{}")
        if tar_members is not None:
            layers.append(oci.Blob.from_bytes(MODELPACK_TAR, _tar(tar_members)))
        extra = {"artifactType": oci.MODELPACK_ARTIFACT}
    else:
        kitfile = {"manifestVersion": "1.0", "package": {"name": "x"}, "model": {"path": "model.onnx"}}
        cfg = oci.Blob.from_bytes(oci.KITOPS_CONFIG, json.dumps(kitfile).encode())
        layers.append(oci.Blob.from_bytes(KITOPS_TAR, _tar(tar_members or [])))
        extra = {}
    for path, data in raw:
        layers.append(oci.Blob.from_bytes(RAW, data, {oci.ANNOTATION_FILEPATH: path}))
    for b in [cfg, *layers]:
        layout.put_blob(b)
    manifest = {"schemaVersion": 2, "mediaType": oci.MANIFEST_V1, **extra, "config": cfg.descriptor(),
                "layers": [b.descriptor() for b in layers]}
    layout.put_manifest(oci.canonical_json(manifest), oci.MANIFEST_V1, "v1")
    return f"oci:{root}:v1"


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    (tmp_path / "scratch").mkdir()
    return {**os.environ, "MODELHAUL_HOME": str(tmp_path / "home"), "MODELHAUL_TMPDIR": str(tmp_path / "scratch"),
            "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / "docker")}


def _run(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True, text=True,
                          timeout=300)


def _snapshot(root: Path) -> set[str]:
    """Every path under ``root`` except the store and caches modelhaul owns."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.relative_to(root).parts[0] != "home"}


def _assert_refused(done: subprocess.CompletedProcess, tmp_path: Path, before: set[str]) -> None:
    assert done.returncode not in (0, 2), done.stderr  # refused on purpose, not crashed
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "refusing" in lines[0]
    assert _snapshot(tmp_path) == before, "something was written outside the store"
    assert not any((d / TOKEN).exists() or (d / TOKEN).is_symlink() for d in [tmp_path, *tmp_path.parents])
    assert list((tmp_path / "scratch").iterdir()) == []


@pytest.mark.parametrize("kind", ["ormb", "modelpack", "kitops"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_export_refuses_a_hostile_tar_layer(tmp_path, env, kind, case):
    ref = _layout(tmp_path / "evil", kind, HOSTILE[case])
    before = _snapshot(tmp_path)
    done = _run("modelhaul.cli", "export", ref, str(tmp_path / "out"), env=env)
    _assert_refused(done, tmp_path, before)


def test_the_refusal_names_the_entry(tmp_path, env):
    ref = _layout(tmp_path / "evil", "ormb", HOSTILE["link-chain"])
    done = _run("modelhaul.cli", "export", ref, str(tmp_path / "out"), env=env)
    assert "'a/b -> ..'" in done.stderr and "outside the destination" in done.stderr, done.stderr


@pytest.mark.parametrize("kind", ["modelpack", "kitops"])
@pytest.mark.parametrize(("links", "raw_path"), [
    ([_link("dir", ".")], f"dir/{TOKEN}"),              # a directory symlink an earlier layer made
    ([_link(TOKEN, "sub"), _file("sub/x", b"x")], TOKEN),  # the raw file's own name is a symlink
], ids=["through-directory-link", "own-name-is-a-link"])
def test_a_raw_layer_never_follows_a_symlink_an_earlier_layer_made(tmp_path, env, kind, links, raw_path):
    ref = _layout(tmp_path / "evil", kind, links, raw=[(raw_path, b"raw bytes")])
    before = _snapshot(tmp_path)
    done = _run("modelhaul.cli", "export", ref, str(tmp_path / "out"), env=env)
    _assert_refused(done, tmp_path, before)


@pytest.mark.parametrize(("links", "raw"), [
    ([_link("dir", ".")], [(f"dir/{TOKEN}", b"raw bytes")]),
    ([_link(TOKEN, "sub"), _file("sub/x", b"x")], [(TOKEN, b"raw bytes")]),
    ([], [("model.onnx", b"first"), ("model.onnx", b"second")]),  # one path, two layers
], ids=["through-directory-link", "own-name-is-a-link", "written-twice"])
def test_a_raw_layer_pulled_straight_from_a_registry_is_moved_into_place_as_safely(tmp_path, env, registry,
                                                                                  links, raw):
    """``export`` from a registry renames the downloaded blob into place instead of copying it."""
    local = _layout(tmp_path / "evil", "modelpack", links, raw=raw)
    ref = registry.ref(f"safety/raw-{uuid.uuid4().hex[:8]}", "v1")
    transfer.copy(LayoutTarget(Path(local[4:-3])), "v1", artifacts.open_target(parse(ref), registry.options), "v1")
    before = _snapshot(tmp_path)
    done = _run("modelhaul.cli", "export", ref, str(tmp_path / "out"), "--plain-http", env=env)
    _assert_refused(done, tmp_path, before)


def test_a_benign_archive_still_extracts_with_links_inside(tmp_path, env):
    members = [_file("model.onnx", b"onnx"), _file("sub/data.bin", b"d"), _link("alias.onnx", "model.onnx"),
               _link("hard.onnx", "model.onnx", tarfile.LNKTYPE)]
    ref = _layout(tmp_path / "ok", "ormb", members)
    done = _run("modelhaul.cli", "export", ref, str(tmp_path / "out"), env=env)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out/model"
    assert (out / "alias.onnx").read_bytes() == b"onnx" and (out / "hard.onnx").read_bytes() == b"onnx"
    assert (out / "sub/data.bin").read_bytes() == b"d"


@pytest.fixture
def hostile_in_registry(tmp_path, registry) -> tuple[str, str]:
    """The link-chain ormb artifact pushed to the real registry: ``(tag ref, digest-pinned ref)``."""
    local = _layout(tmp_path / "evil", "ormb", HOSTILE["link-chain"])
    ref = registry.ref("safety/chain", "v1")
    remote = artifacts.open_target(parse(ref), registry.options)
    digest = transfer.copy(LayoutTarget(Path(local[4:-3])), "v1", remote, "v1")
    return ref, f"{ref.rsplit(':', 1)[0]}@{digest}"


def test_pull_then_export_refuses(tmp_path, env, hostile_in_registry):
    ref, _ = hostile_in_registry
    assert _run("modelhaul.cli", "pull", ref, "--plain-http", env=env).returncode == 0
    before = _snapshot(tmp_path)
    _assert_refused(_run("modelhaul.cli", "export", ref, str(tmp_path / "out"), env=env), tmp_path, before)


@pytest.mark.parametrize("command", [["parse"], ["convert", "--to", "onnx"]])
def test_parse_and_convert_refuse(tmp_path, env, hostile_in_registry, command):
    ref, _ = hostile_in_registry
    before = _snapshot(tmp_path)
    args = [command[0], ref, *([ref.replace(":v1", ":converted")] if command[0] == "convert" else []),
            *command[1:], "--plain-http"]
    _assert_refused(_run("modelhaul.cli", *args, env=env), tmp_path, before)


def test_the_initializer_refuses(tmp_path, env, hostile_in_registry):
    _, pinned = hostile_in_registry
    (tmp_path / "mnt").mkdir()
    before = _snapshot(tmp_path)
    done = _run("modelhaul.cli.initializer", f"modelhaul://{pinned}?server=triton&name=m", str(tmp_path / "mnt"),
                "--plain-http", env=env)
    _assert_refused(done, tmp_path, before)
    assert list((tmp_path / "mnt").iterdir()) == []


@pytest.mark.parametrize(("how", "name"), [
    ("uri", "../../X"), ("uri", "/abs"), ("uri", "."), ("uri", ""), ("env", "../up"), ("env", ""),
    ("env", "a/b"), ("flag", ".."),
])
def test_the_initializer_refuses_a_model_name_that_is_not_one_path_component(tmp_path, env, how, name):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(b"onnx")
    pinned = artifacts.publish(tmp_path / "m", f"oci:{tmp_path}/ok:v1")["ref"]
    uri = f"modelhaul://{pinned}?server=triton" + (f"&name={name}" if how == "uri" else "")
    extra = ["--name", name] if how == "flag" else []
    if how == "env":
        env = {**env, "MODELHAUL_MODEL_NAME": name}
    dest = tmp_path / "mnt" / "models"
    dest.mkdir(parents=True)
    before = _snapshot(tmp_path)
    done = _run("modelhaul.cli.initializer", uri, str(dest), *extra, env=env)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "must be one path component" in done.stderr
    assert _snapshot(tmp_path) == before
    assert not (tmp_path / "X").exists() and not Path("/abs").exists()
