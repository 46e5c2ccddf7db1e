"""What platform engineers expect of a command: --version, help on every argument, exit codes, a
password prompt on a terminal, quiet on a closed pipe, and ``deploy`` finding the cluster like kubectl."""

from __future__ import annotations

import argparse
import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelhaul import artifacts
from modelhaul.cli import build_parser
from tests.test_cli import run

CLI = [sys.executable, "-m", "modelhaul.cli"]


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """A user with a fresh home: no stored credentials, no kubeconfig, no cluster in the environment."""
    e = {k: v for k, v in os.environ.items()
         if k not in ("MODELHAUL_USERNAME", "MODELHAUL_PASSWORD", "ORMB_USERNAME", "ORMB_PASSWORD", "KUBECONFIG",
                      "KUBERNETES_SERVICE_HOST")}
    e.update(MODELHAUL_HOME=str(tmp_path / "home"), DOCKER_CONFIG=str(tmp_path / "docker"), HOME=str(tmp_path))
    return e


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_version(env):
    from importlib.metadata import version

    res = run("--version", env=env)
    assert res.returncode == 0 and res.stdout.strip() == f"modelhaul {version('modelhaul')}"


def test_every_argument_has_help_and_every_command_an_example():
    for name, sp in _subparsers(build_parser()).items():
        assert sp.epilog and sp.epilog.startswith("example:\n  ") and f"modelhaul {name} " in sp.epilog, name
        for action in sp._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"{name} {action.dest} has no help text"


def test_usage_errors_exit_2_and_unexpected_errors_exit_1(env, tmp_path):
    usage = run("deploy", env=env)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    # an error modelhaul did not foresee (here: a missing --deployment file) is one line, exit 1
    unexpected = run("rollback", "oci:nowhere:v1", "--deployment", str(tmp_path / "missing.json"), env=env)
    assert unexpected.returncode == 1, unexpected.stderr
    assert len(unexpected.stderr.strip().splitlines()) == 1 and unexpected.stderr.startswith("error: ")


@pytest.mark.parametrize("buffered", [True, False])
def test_a_closed_pipe_ends_quietly(env, model_ref, buffered):
    e = {k: v for k, v in env.items() if k != "PYTHONUNBUFFERED" or not buffered}
    proc = subprocess.Popen([*CLI, "inspect", model_ref, "--json"], env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader (`| head`) went away before the output came
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141 and err == b""
    head = subprocess.run(f"{sys.executable} -m modelhaul.cli inspect {model_ref} --json | head -1", shell=True,
                          env=e, capture_output=True, text=True, timeout=60)
    assert head.stdout == "{\n" and head.stderr == ""


def _on_a_terminal(args: list[str], environ: dict[str, str], answers: list[tuple[bytes, bytes]]) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as stdin/stdout/stderr; answer each prompt as it shows."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*CLI, *args], env=environ, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    seen, deadline = b"", time.monotonic() + 60
    try:
        for prompt, answer in answers:
            while prompt not in seen and time.monotonic() < deadline:
                seen += os.read(master, 1024)
            os.write(master, answer)
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                seen += os.read(master, 1024)
            except OSError:
                break
        return proc.wait(timeout=10), seen.decode(errors="replace")
    finally:
        os.close(master)


def test_login_prompts_for_the_password_on_a_terminal(env, auth_registry):
    code, out = _on_a_terminal(["login", auth_registry.host, "-u", auth_registry.username, "--plain-http"], env,
                               [(b"Password: ", auth_registry.password.encode() + b"\n")])
    assert code == 0, out
    assert auth_registry.password not in out  # getpass does not echo
    config = json.loads((Path(env["DOCKER_CONFIG"]) / "config.json").read_text())
    assert auth_registry.host in config["auths"]


def test_login_without_a_terminal_or_stdin_says_how(env, auth_registry):
    res = subprocess.run([*CLI, "login", auth_registry.host, "-u", "robot"], env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "--password-stdin" in res.stderr


# -- deploy finds the cluster like kubectl --------------------------------------------------------


@pytest.fixture
def model_ref(tmp_path) -> str:
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.onnx").write_bytes(b"onnx-bytes")
    return artifacts.publish(src, f"oci:{tmp_path / 'iris'}:v1")["ref"]


def _no_cluster_env(environ: dict[str, str]) -> dict[str, str]:
    assert "KUBECONFIG" not in environ and not (Path(environ["HOME"]) / ".kube" / "config").exists()
    return dict(environ)


def test_deploy_with_only_kubeconfig_set_applies_and_says_where(env, model_ref, kube_cluster, kube_ns, controller,
                                                                tmp_path):
    e = {**_no_cluster_env(env), "KUBECONFIG": kube_cluster.kubeconfig}
    res = run("deploy", model_ref, "--namespace", kube_ns, "--timeout", "60", env=e)
    assert res.returncode == 0, res.stderr
    assert f"to cluster {kube_cluster.server} (context local): Available" in res.stdout
    assert kube_cluster.get("SeldonDeployment", "iris", kube_ns) is not None
    assert not any(tmp_path.glob("**/modelhaul-manifests"))


def test_deploy_uses_the_current_context_of_the_default_kubeconfig(env, model_ref, kube_cluster, kube_ns, controller):
    import yaml

    e = _no_cluster_env(env)
    kube_dir = Path(e["HOME"]) / ".kube"
    kube_dir.mkdir()
    cfg = yaml.safe_load(Path(kube_cluster.kubeconfig).read_text())
    cfg["clusters"].append({"name": "nowhere", "cluster": {"server": "https://127.0.0.1:9"}})
    cfg["contexts"].append({"name": "nowhere", "context": {"cluster": "nowhere", "user": "admin"}})
    (kube_dir / "config").write_text(yaml.safe_dump(cfg))
    res = run("deploy", model_ref, "--target", "kserve", "--namespace", kube_ns, "--json", "--timeout", "60", env=e)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["cluster"] == kube_cluster.server and out["context"] == "local"
    # --context picks another one, as kubectl does (this one has nothing listening)
    other = run("deploy", model_ref, "--context", "nowhere", "--timeout", "5", env=e)
    assert other.returncode == 1 and len(other.stderr.strip().splitlines()) == 1


def test_deploy_acts_as_the_first_kubeconfig_of_the_list(env, model_ref, kube_cluster, kube_ns, tmp_path):
    """Issue 22: KUBECONFIG=nobody.yaml:admin.yaml deployed as admin (rc 0); kubectl is refused, so is deploy."""
    import yaml

    kube_cluster.kubectl("-n", kube_ns, "create", "serviceaccount", "nobody")
    token = kube_cluster.kubectl("-n", kube_ns, "create", "token", "nobody").stdout.strip()
    admin = yaml.safe_load(Path(kube_cluster.kubeconfig).read_text())
    (tmp_path / "nobody.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": admin["clusters"],
        "users": [{"name": "nobody", "user": {"token": token}}],
        "contexts": [{"name": "nobody", "context": {"cluster": "local", "user": "nobody"}}],
        "current-context": "nobody"}))
    e = {**_no_cluster_env(env), "KUBECONFIG": f"{tmp_path / 'nobody.yaml'}:{kube_cluster.kubeconfig}"}
    kubectl = subprocess.run(["kubectl", "-n", kube_ns, "auth", "can-i", "patch", "seldondeployments"], env=e,
                             capture_output=True, text=True, timeout=60)
    assert kubectl.stdout.strip() == "no"

    res = run("deploy", model_ref, "--namespace", kube_ns, "--timeout", "5", env=e)

    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"error: system:serviceaccount:{kube_ns}:nobody may not get seldondeployments.machinelearning.seldon.io "
        f"'iris' in namespace {kube_ns} on {kube_cluster.server}: nothing changed, deploy of "
        f"{model_ref.split(':v1')[0]}:v1@{artifacts.resolve(model_ref).split('@')[1]} as {kube_ns}/iris refused "
        "(grant it, or pass --kubeconfig/--context of an identity that may)"]
    assert kube_cluster.get("SeldonDeployment", "iris", kube_ns) is None


def test_deploy_without_a_cluster_or_render_dir_says_what_to_do(env, model_ref, tmp_path):
    res = subprocess.run([*CLI, "deploy", model_ref], env=_no_cluster_env(env), cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "error: no Kubernetes cluster configured: pass --render DIR to write the manifests, or set KUBECONFIG / "
        "create ~/.kube/config (or pass --kubeconfig, --context, --in-cluster)"]
    assert not (tmp_path / "modelhaul-manifests").exists()


def test_deploy_renders_only_into_the_render_dir_even_with_a_cluster(env, model_ref, kube_cluster, kube_ns, tmp_path):
    e = {**_no_cluster_env(env), "KUBECONFIG": kube_cluster.kubeconfig}
    res = run("deploy", model_ref, "--render", str(tmp_path / "gitops"), "--registry-secret", "pull-creds",
              "--namespace", kube_ns, env=e)
    assert res.returncode == 0, res.stderr
    assert kube_cluster.get("SeldonDeployment", "iris", kube_ns) is None
    assert (tmp_path / "gitops" / "seldondeployment-iris.yaml").is_file()
    assert f"kubectl create secret generic pull-creds --namespace {kube_ns}" in res.stdout


def test_in_cluster_is_used_inside_a_pod_only(env, model_ref):
    e = {**_no_cluster_env(env), "KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    res = run("deploy", model_ref, env=e)  # no service account token here: the error names in-cluster
    assert res.returncode == 1 and "in-cluster service account" in res.stderr


def test_ca_file_reaches_the_step_commands(env, tls_registry, tmp_path):
    from tests.fixtures.registry import unique_repo

    src = tmp_path / "src"
    src.mkdir()
    (src / "model.onnx").write_bytes(b"onnx-bytes")
    target = f"{tls_registry.host}/{unique_repo('ca-file')}:v1"
    ref = artifacts.publish(src, target, options=tls_registry.options)["ref"]
    refused = run("deploy", ref, "--render", str(tmp_path / "a"), env=env)
    assert refused.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    ok = run("deploy", ref, "--render", str(tmp_path / "b"), "--ca-file", tls_registry.ca_file, env=env)
    assert ok.returncode == 0, ok.stderr


def test_deploy_names_the_initializer_image_given(env, model_ref, tmp_path):
    """The image built from Dockerfile.initializer reaches both serving kinds' manifests."""
    image = "registry.example.com/ml/modelhaul-initializer:0.1.0"
    for target in ("seldon", "kserve"):
        res = run("deploy", model_ref, "--target", target, "--render", str(tmp_path / "gitops"),
                  "--initializer-image", image, env=_no_cluster_env(env))
        assert res.returncode == 0, res.stderr
    rendered = {p.name: p.read_text() for p in (tmp_path / "gitops").glob("*.yaml")}
    assert image in rendered["seldondeployment-iris.yaml"]
    assert image in rendered["clusterstoragecontainer-modelhaul.yaml"]


def test_help_says_each_default_once_and_never_none(env):
    """Issue 22: `deploy --help` printed '(default: from the repository name) (default: None)'."""
    for command in ("deploy", "promote", "rollback"):
        res = run(command, "--help", env=env)
        text = " ".join(res.stdout.split())
        assert res.returncode == 0 and "(default: None)" not in text, command
    deploy = " ".join(run("deploy", "--help", env=env).stdout.split())
    assert "resource name (default: from the repository name) --namespace" in deploy
    assert "serving platform (default: seldon)" in deploy
