"""What a person sees while and after the command works: progress as bytes move (bars on a terminal,
a line per layer otherwise), error lines that say what to do where they are, Ctrl-C that stops at
once and leaves no upload session behind, and help without noise."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.registry import free_port, unique_repo

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelhaul.cli", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("MODELHAUL_", "ORMB_"))}
    e.update(MODELHAUL_HOME=str(tmp_path / "home"), DOCKER_CONFIG=str(tmp_path / "docker"), HOME=str(tmp_path))
    return e


def model(tmp_path: Path, mib: int) -> Path:
    d = tmp_path / "src"
    d.mkdir(exist_ok=True)
    with open(d / "big.bin", "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    (d / "model.onnx").write_bytes(os.urandom(2048))
    return d


def in_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the command with a pty as its terminal; returns its exit status and everything it drew."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: stdout and stderr are the terminal
        os.execvpe(sys.executable, [sys.executable, "-m", "modelhaul.cli", *args], env)
    out = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 60)
        if not ready:
            break
        try:
            piece = os.read(fd, 1 << 16)
        except OSError:  # the child closed the terminal
            break
        if not piece:
            break
        out += piece
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode(errors="replace")


@pytest.mark.slow
def test_a_terminal_shows_live_bars_per_layer_and_in_total(registry, env, tmp_path):
    src = model(tmp_path, 256)
    ref = registry.ref(unique_repo("bars"), "v1")
    code, drawn = in_a_terminal(["push", str(src), ref, "--plain-http"], env)
    assert code == 0, drawn
    frames = [ANSI.sub("", f) for f in re.split(r"[\r\n]+", drawn)]
    mine = [f for f in frames if f.lstrip().startswith("big.bin")]
    counts = {float(m.group(1)) for f in mine if (m := re.search(r"([\d.]+)/256\.0 MiB", f))}
    assert any(0 < c < 256 for c in counts), f"no bar between 0 and 256 MiB: {sorted(counts)}"  # it moved live
    assert any(re.search(r"total\s.*MiB.*/s", f) for f in frames), frames[-10:]
    assert any(re.search(r"/s\s+\d+:\d\d:\d\d", f) for f in mine), mine[-5:]  # speed and time left


def bar_counts(drawn: str, name: str, mib: int) -> set[float]:
    """The MiB the bars of ``name`` (a ``mib`` MiB file) showed as moved, over every frame drawn."""
    frames = [ANSI.sub("", f) for f in re.split(r"[\r\n]+", drawn)]
    return {float(m.group(1)) for f in frames if f.lstrip().startswith(name)
            if (m := re.search(rf"([\d.]+)/{mib}\.0 MiB", f))}


@pytest.mark.parametrize("into", ["store", "layout"])
def test_save_shows_the_bytes_it_copies_into_the_store_or_a_layout(into, env, tmp_path):
    src = model(tmp_path, 64)
    ref = "example.com/team/saved:v1" if into == "store" else f"oci:{tmp_path / 'layout'}:v1"
    code, drawn = in_a_terminal(["save", str(src), ref], env)
    assert code == 0, drawn
    counts = bar_counts(drawn, "big.bin", 64)
    assert counts and max(counts) == 64, f"the bar of big.bin never moved: {sorted(counts)}"


def test_export_from_the_store_shows_the_bytes_it_copies_out(env, tmp_path):
    src = model(tmp_path, 64)
    saved = run("save", str(src), "example.com/team/out:v1", env=env)
    assert saved.returncode == 0, saved.stderr
    code, drawn = in_a_terminal(["export", "example.com/team/out:v1", str(tmp_path / "out")], env)
    assert code == 0, drawn
    counts = bar_counts(drawn, "big.bin", 64)
    assert counts and max(counts) == 64, f"no bar of big.bin moved, only: {drawn[-400:]!r}"
    lines = run("export", "example.com/team/out:v1", str(tmp_path / "again"), env=env).stderr.splitlines()
    assert any(re.match(r"export big\.bin: 64\.0 MiB in [\d.]+s", x) for x in lines), lines


def test_not_a_terminal_gets_one_line_per_layer_and_quiet_gets_none(registry, env, tmp_path):
    src = model(tmp_path, 3)
    ref = registry.ref(unique_repo("lines"), "v1")
    pushed = run("push", str(src), ref, "--plain-http", env=env)
    assert pushed.returncode == 0, pushed.stderr
    lines = pushed.stderr.strip().splitlines()
    assert sorted(line.split(":")[0] for line in lines) == ["push big.bin", "push model.onnx"], lines
    assert re.search(r"^push big\.bin: 3\.0 MiB in [\d.]+s \([\d.]+ [KMG]iB/s\)$", "\n".join(lines), re.M), lines
    quiet = run("pull", ref, "--plain-http", "--quiet", env=env)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_a_task_log_gets_progress_at_an_interval_and_a_line_per_layer(registry, tmp_path, monkeypatch):
    from modelhaul import steps

    monkeypatch.setenv("MODELHAUL_HOME", str(tmp_path / "home"))
    src = model(tmp_path, 4)
    lines: list[str] = []
    with steps.watching(steps.LogLines(lines.append, every=0.0, what="package")):
        steps.push(ref=registry.ref(unique_repo("log"), "v1"), directory=str(src), plain_http=True)
    interval = r"package [\d.]+ [KM]iB at [\d.]+ [KMG]iB/s; in flight: big\.bin \d+%"
    assert any(re.match(interval, x) for x in lines), lines
    assert any(x.startswith("package big.bin: 4.0 MiB in ") for x in lines), lines


@pytest.mark.slow
def test_ctrl_c_stops_a_push_at_once_and_deletes_its_upload_session(registry, env, tmp_path):
    src = model(tmp_path, 768)
    repo = unique_repo("cancel")
    uploads = registry.storage / "docker/registry/v2/repositories" / repo / "_uploads"
    proc = subprocess.Popen([sys.executable, "-m", "modelhaul.cli", "push", str(src), registry.ref(repo, "v1"),
                             "--plain-http"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (uploads.is_dir() and any(p.stat().st_size > 0 for p in uploads.rglob("data"))):
            assert proc.poll() is None and time.monotonic() < deadline, "the upload never started"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "error: interrupted", err
    assert not out.strip()  # no reference printed: nothing was pushed
    stored = [p for p in (registry.storage / "docker/registry/v2/blobs").rglob("data") if p.stat().st_size > 700 << 20]
    assert stored == [], "the blob under way was finished before Ctrl-C was obeyed"
    # the session was deleted; distribution 2.8 answers a DELETE whose state predates a cut PATCH with an
    # error (and keeps the session until its upload purging), which its error log shows
    session = next(uploads.iterdir()).name if uploads.is_dir() and any(uploads.iterdir()) else None
    if session is not None:
        log = (registry.root / "registry.log").read_text(errors="replace")
        assert re.search(rf"method=DELETE .*uploads/{session}", log), f"no DELETE of the session {session}"


def test_push_without_a_tag_says_latest(registry, env, tmp_path):
    src = model(tmp_path, 0)
    pushed = run("push", str(src), f"oci:{tmp_path / 'layout'}", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stderr.splitlines()[0] == "Using default tag: latest"
    assert pushed.stdout.startswith(f"oci:{tmp_path / 'layout'}:latest@sha256:")


def test_login_and_logout_say_what_happened(auth_registry, env):
    login = run("login", auth_registry.host, "-u", auth_registry.username, "--password-stdin", "--plain-http",
                env=env, stdin=auth_registry.password + "\n")
    assert login.returncode == 0 and login.stdout.strip() == "Login Succeeded", login.stdout + login.stderr
    first, second = (run("logout", auth_registry.host, env=env) for _ in range(2))
    assert first.stdout.strip() == f"Removing login credentials for {auth_registry.host}"
    assert second.stdout.strip() == f"Not logged in to {auth_registry.host}"


def test_refused_credentials_say_which_and_what_to_do_naming_the_reference(auth_registry, env, tmp_path):
    src = model(tmp_path, 0)
    ref = auth_registry.ref(unique_repo("denied"), "v1")
    anonymous = run("push", str(src), ref, "--plain-http", env=env)
    assert anonymous.stderr.strip() == (f"error: {ref}: {auth_registry.host} requires authentication; log in with "
                                        f"`modelhaul login {auth_registry.host}` (or set MODELHAUL_USERNAME and "
                                        "MODELHAUL_PASSWORD)"), anonymous.stderr

    wrong = {**env, "MODELHAUL_USERNAME": auth_registry.username, "MODELHAUL_PASSWORD": "not-it"}
    refused = run("push", str(src), ref, "--plain-http", env=wrong).stderr
    assert f"error: {ref}: {auth_registry.host} refused the credentials in MODELHAUL_USERNAME/MODELHAUL_PASSWORD" \
        in refused and "not-it" not in refused, refused

    config = Path(env["DOCKER_CONFIG"]) / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{auth_registry.username}:stale".encode()).decode()
    config.write_text(json.dumps({"auths": {auth_registry.host: {"auth": auth}}}))
    stored = run("push", str(src), ref, "--plain-http", env=env).stderr.strip()
    assert stored == (f"error: {ref}: {auth_registry.host} refused the credentials stored for "
                      f"{auth_registry.username} in {config} (by modelhaul or docker login); log in again: "
                      f"modelhaul login {auth_registry.host}"), stored


def test_the_airflow_test_button_speaks_of_the_connection(auth_registry, monkeypatch):
    from modelhaul.operators.hooks import RegistryHook
    from tests.test_airflow_connections import registry_conn_uri

    monkeypatch.setenv("AIRFLOW_CONN_REG_BAD", registry_conn_uri(auth_registry, password="not-it"))
    ok, message = RegistryHook("reg_bad").test_connection()
    assert not ok and "modelhaul login" not in message, message
    assert message.endswith(f"refused the credentials of the registry connection (Login {auth_registry.username}); "
                            "correct Login and Password there"), message


def test_a_refused_connection_fails_at_once_naming_the_reference(env, tmp_path):
    ref = f"127.0.0.1:{free_port()}/nobody/home:v1"
    res = run("push", str(model(tmp_path, 0)), ref, "--plain-http", env=env)
    assert res.returncode == 1
    assert res.stderr.strip() == (f"error: {ref}: cannot connect to {ref.split('/')[0]}: connection refused; "
                                  "check that the registry runs at that address"), res.stderr


@pytest.mark.parametrize("command", ["push", "deploy", "promote", "login", "convert"])
def test_help_has_no_default_none_noise_and_no_markup(command, env):
    text = run(command, "--help", env=env).stdout
    assert "(default: None)" not in text and "(default: False)" not in text, text
    assert "`" not in text, text
    if command == "deploy":
        assert "(default: seldon)" in text  # a default that means something stays
