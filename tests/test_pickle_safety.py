"""A pickle that would run foreign code when loaded is flagged by parse, shown by inspect, and refused
by deploy and promote unless trusted; the pickles real models are made of pass."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

from modelhaul.formats.pickle_safety import unsafe_globals
from modelhaul.formats.pickle_scan import scan_bytes, scan_file
from tests.test_formats import make_sklearn, save_joblib


class _Shell:
    """Unpickling this calls ``os.system``: what a malicious model file does."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_real_models_pass_and_os_system_does_not(tmp_path):
    import torch

    for kind in ("logreg", "forest"):
        est = make_sklearn(kind)
        assert unsafe_globals(scan_bytes(pickle.dumps(est, protocol=4)).globals) == [], kind
        assert unsafe_globals(scan_file(save_joblib(est, tmp_path / f"{kind}.joblib")).globals) == [], kind
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    torch.save(net, tmp_path / "net.pt")
    import zipfile

    with zipfile.ZipFile(tmp_path / "net.pt") as zf:
        data = zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    assert unsafe_globals(scan_bytes(data).globals) == []
    evil = {"model": make_sklearn("logreg"), "hook": _Shell()}
    assert unsafe_globals(scan_bytes(pickle.dumps(evil, protocol=4)).globals) == [f"{os.system.__module__}.system"]
    assert unsafe_globals(["builtins.eval", "numpy.save", "sklearn.datasets.fetch_openml", "__main__.Model",
                           "builtins.list", "numpy.ndarray"]) == [
        "__main__.Model", "builtins.eval", "numpy.save", "sklearn.datasets.fetch_openml"]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelhaul.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_parse_marks_it_inspect_shows_it_deploy_and_promote_refuse_it(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.pkl").write_bytes(pickle.dumps({"model": make_sklearn("logreg"), "hook": _Shell()}, protocol=4))
    env = {**os.environ, "MODELHAUL_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    ref = f"oci:{tmp_path / 'layout'}:v1"
    bad = f"{os.system.__module__}.system"
    assert run("push", str(src), ref, env=env).returncode == 0

    parsed = run("parse", ref, "--json", env=env)
    assert parsed.returncode == 0, parsed.stderr
    assert json.loads(parsed.stdout)["unsafe_globals"] == [bad]
    # one warning line names the globals (a slow parse may also log its checkout's progress line)
    assert any(line.startswith("warning: ") and f"imports {bad}" in line for line in parsed.stderr.splitlines()), \
        parsed.stderr

    shown = run("inspect", ref, "--json", env=env)
    assert json.loads(shown.stdout)["unsafe_globals"] == [bad] and f"imports {bad}" in shown.stderr

    for args in (("deploy", ref, "--render", str(tmp_path / "manifests")), ("promote", ref)):
        refused = run(*args, env=env)
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 1 and len(lines) == 1, refused.stderr
        assert f"refusing to {args[0]}" in lines[0] and bad in lines[0] and "--trust" in lines[0]
    assert not (tmp_path / "manifests").exists()  # nothing half-written
    assert run("inspect", f"oci:{tmp_path / 'layout'}:production", "--json", env=env).returncode != 0

    deployed = run("deploy", ref, "--render", str(tmp_path / "manifests"), "--trust", env=env)
    assert deployed.returncode == 0, deployed.stderr
    promoted = run("promote", ref, "--trust", "--json", env=env)
    assert promoted.returncode == 0 and json.loads(promoted.stdout)["promoted"], promoted.stderr
    assert not (Path.cwd() / "pwned").exists() and not (tmp_path / "pwned").exists()


def test_a_clean_pickle_is_not_marked_and_deploys(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.pkl").write_bytes(pickle.dumps(make_sklearn("logreg"), protocol=4))
    env = {**os.environ, "MODELHAUL_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    ref = f"oci:{tmp_path / 'layout'}:v1"
    assert run("push", str(src), ref, env=env).returncode == 0
    parsed = run("parse", ref, "--json", env=env)
    assert json.loads(parsed.stdout)["unsafe_globals"] == [] and "warning" not in parsed.stderr
    deployed = run("deploy", ref, "--render", str(tmp_path / "manifests"), env=env)
    assert deployed.returncode == 0, deployed.stderr
