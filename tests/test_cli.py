"""The `modelhaul` command as a user runs it: ormb-style verbs, JSON output, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelhaul.cli", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ)
    e.update(MODELHAUL_HOME=str(tmp_path / "home"), DOCKER_CONFIG=str(tmp_path / "docker"),
             HOME=str(tmp_path))
    for k in ("MODELHAUL_USERNAME", "MODELHAUL_PASSWORD", "ORMB_USERNAME", "ORMB_PASSWORD"):
        e.pop(k, None)
    return e


@pytest.fixture
def model_dir(tmp_path) -> Path:
    d = tmp_path / "src"
    (d / "model").mkdir(parents=True)
    (d / "model" / "model.onnx").write_bytes(b"\x08\x07" * 64)
    (d / "ormbfile.yaml").write_text("author: cli-test\nformat: ONNX\n")
    return d


def test_save_push_rm_pull_export_inspect_like_ormb(tmp_path, env, model_dir, registry):
    ref = registry.ref("cli/model", "v1")
    saved = json.loads(run("save", str(model_dir), ref, "--json", env=env).stdout)
    assert saved["format"] == "ONNX"
    assert ref in run("list", env=env).stdout
    pushed = run("push", ref, "--plain-http", "--json", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["digest"] == saved["digest"]
    assert run("rm", ref, env=env).returncode == 0
    assert ref not in run("list", env=env).stdout
    assert run("pull", ref, "--plain-http", env=env).returncode == 0
    assert run("export", ref, str(tmp_path / "out"), env=env).returncode == 0
    assert (tmp_path / "out/model/model.onnx").read_bytes() == b"\x08\x07" * 64
    info = json.loads(run("inspect", ref, "--plain-http", "--json", env=env).stdout)
    assert info["digest"] == saved["digest"] and info["config"]["author"] == "cli-test"
    tagged = run("tag", ref, registry.ref("cli/model", "prod"), "--plain-http", "--json", env=env)
    assert json.loads(tagged.stdout)["digest"] == saved["digest"]
    tags = run("list", registry.ref("cli/model", "x"), "--plain-http", env=env).stdout.split()
    assert tags == ["prod", "v1"]


def test_oci_layout_refs_need_no_server(tmp_path, env, model_dir):
    ref = f"oci:{tmp_path}/layout:v1"
    assert run("save", str(model_dir), ref, env=env).returncode == 0
    assert run("export", ref, str(tmp_path / "out"), env=env).returncode == 0
    assert (tmp_path / "out/ormbfile.yaml").exists()
    skopeo = subprocess.run(["skopeo", "inspect", "--raw", ref], capture_output=True, text=True)
    assert skopeo.returncode == 0 and "vnd.cncf.model" in skopeo.stdout


def test_login_then_push_to_an_auth_registry_and_logout(tmp_path, env, model_dir, auth_registry):
    ref = auth_registry.ref("cli/secure", "v1")
    run("save", str(model_dir), ref, env=env)
    denied = run("push", ref, "--plain-http", env=env)
    assert denied.returncode != 0 and "login" in denied.stderr and len(denied.stderr.strip().splitlines()) == 1
    login = run("login", auth_registry.host, "-u", auth_registry.username, "--password-stdin", "--plain-http",
                env=env, stdin=auth_registry.password + "\n")
    assert login.returncode == 0, login.stderr
    assert auth_registry.password not in login.stdout + login.stderr
    assert run("push", ref, "--plain-http", env=env).returncode == 0
    assert run("logout", auth_registry.host, env=env).returncode == 0
    assert run("pull", ref, "--plain-http", env=env).returncode != 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["save", "/no/such/dir", "oci:x:v1"], "no such file or directory"),
        (["push", "localhost:5999/never/saved:v1"], "not in the local store"),
        (["inspect", "Bad Ref"], "invalid"),
        (["export", "oci:nowhere:v1", "out"], "no manifest"),
    ],
)
def test_failures_exit_non_zero_with_one_line(env, args, fragment, tmp_path):
    res = subprocess.run([sys.executable, "-m", "modelhaul.cli", *args], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], res.stderr


def test_a_rejected_promotion_exits_3_and_moves_nothing(tmp_path, env, model_dir):
    """Scripts tell "the gate said no" (3) from a failure (1); the stage tag moves only on a pass."""
    (model_dir / "ormbfile.yaml").write_text(
        "format: ONNX\nmetrics:\n  iris-test:\n    - name: accuracy\n      value: '0.93'\n")
    ref = f"oci:{tmp_path}/layout:v1"
    assert run("save", str(model_dir), ref, env=env).returncode == 0
    rejected = run("promote", ref, "--gate", "iris-test.accuracy >= 0.99", "--json", env=env)
    assert rejected.returncode == 3, rejected.stderr
    assert json.loads(rejected.stdout)["promoted"] is False
    assert rejected.stderr.startswith("rejected: ") and "iris-test.accuracy" in rejected.stderr
    assert "production" not in run("list", f"oci:{tmp_path}/layout", env=env).stdout.split()
    missing = run("promote", ref, "--gate", "test.f1 > 0.8", env=env)
    assert missing.returncode == 3 and "test.f1" in missing.stderr
    passed = run("promote", ref, "--gate", "iris-test.accuracy >= 0.9", env=env)
    assert passed.returncode == 0, passed.stderr
    assert "production" in run("list", f"oci:{tmp_path}/layout", env=env).stdout.split()
    broken = run("promote", ref, "--gate", "accuracy >=", env=env)
    assert broken.returncode == 1 and broken.stderr.startswith("error:")
