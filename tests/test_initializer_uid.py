"""The storage initializer as Seldon runs it: the chart's ``defaultUserID`` 8888 as ``runAsUser``, the
image's HOME not writable for that uid. Nothing may be written under HOME; scratch lives under the
destination (or TMPDIR) and the files are renamed into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelhaul import artifacts
from tests.fixtures.registry import unique_repo

UID = 8888  # the Seldon chart's defaultUserID


@contextlib.contextmanager
def sandbox() -> Iterator[Path]:
    """A directory the other uid can reach (pytest's own tmp dirs are 0700)."""
    d = Path(tempfile.mkdtemp(prefix="modelhaul-uid-"))
    try:
        os.chmod(d, 0o755)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_as_other_uid(args: list[str], home: Path, dest_parent: Path, extra_env: dict[str, str] | None = None
                     ) -> subprocess.CompletedProcess:
    """``modelhaul-initializer ARGS`` as uid 8888 (when root) or as this uid with HOME read-only.

    As root, ``setpriv`` switches to uid 8888 keeping only CAP_DAC_READ_SEARCH (so it can read this
    checkout and its interpreter wherever they are); every write is checked as for uid 8888.
    """
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **(extra_env or {})}
    prefix: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("setpriv (util-linux) is needed to run as another uid")
        os.chown(dest_parent, UID, UID)
        prefix = ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups",
                  "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]
    else:
        os.chmod(home, 0o555)
    exe = Path(sys.executable).with_name("modelhaul-initializer")
    return subprocess.run([*prefix, str(exe), *args], env=env, capture_output=True, text=True, timeout=120)


def publish(registry, tmp: Path) -> str:
    import joblib
    from sklearn.linear_model import LogisticRegression

    d = tmp / "src" / "model"
    d.mkdir(parents=True)
    joblib.dump(LogisticRegression().fit([[0.0, 1.0], [1.0, 0.0]], [0, 1]), d / "model.joblib")
    return artifacts.publish(d, f"{registry.host}/{unique_repo('uid')}:v1",
                             config={"format": "SKLearn", "framework": "scikit-learn"}, options=registry.options)["ref"]


def check_written(dest: Path, home: Path, tmp: Path) -> None:
    assert (dest / "model.joblib").read_bytes() == (tmp / "src" / "model" / "model.joblib").read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == ["model.joblib"]  # no scratch left behind
    assert list(home.iterdir()) == []  # nothing under HOME


def test_initializer_as_another_uid_with_an_unwritable_home(registry, tmp_path):
    ref = publish(registry, tmp_path)
    with sandbox() as box:
        home = box / "home"
        home.mkdir(mode=0o755)  # the image's /home/modelhaul: owned by someone else
        (box / "mnt").mkdir()
        dest = box / "mnt" / "models"
        r = run_as_other_uid([f"modelhaul://{ref}?server=sklearn&name=iris&plain_http=true", str(dest)],
                             home, box / "mnt")
        assert r.returncode == 0, r.stderr
        check_written(dest, home, tmp_path)


def test_initializer_runs_as_the_real_seldon_operator_starts_it(operators, operator_ns, registry, tmp_path):
    """Exactly the init container the real operator put in the Deployment: its args, its runAsUser."""
    from tests.fixtures.serving import deploy_model

    ref = publish(registry, tmp_path)
    deploy_model(ref=ref, target="seldon", name="iris", namespace=operator_ns, kubeconfig=operators.kubeconfig,
                 timeout=60.0, options=registry.options)
    pod = operators.get("deployment", operator_ns, "iris-main-0-iris")["spec"]["template"]["spec"]
    uid = (pod.get("securityContext") or {}).get("runAsUser")
    init = pod["initContainers"][0]
    assert uid == UID and init["image"] == "modelhaul/initializer:0.1.0"
    mount = next(m["mountPath"] for m in init["volumeMounts"] if m["mountPath"] == init["args"][1])
    env = {e["name"]: e["value"] for e in init.get("env") or [] if "value" in e}
    with sandbox() as box:
        home = box / "home"
        home.mkdir(mode=0o755)
        (box / "mnt").mkdir()
        dest = box / mount.lstrip("/")
        dest.mkdir(parents=True)  # the emptyDir volume: there, empty, writable by the pod
        if os.geteuid() == 0:
            os.chown(dest, UID, UID)
        r = run_as_other_uid([init["args"][0], str(dest)], home, box / "mnt", env)
        assert r.returncode == 0, r.stderr
        check_written(dest, home, tmp_path)
        assert stat.S_IMODE(dest.stat().st_mode) & 0o700 == 0o700


def test_initializer_renames_the_pulled_files_into_place(registry, tmp_path, monkeypatch):
    """Scratch sits in the destination volume, so each byte is written once: no file is copied."""
    from modelhaul import fscopy
    from modelhaul.serving.materialize import initialize

    ref = publish(registry, tmp_path)
    copied: list[str] = []
    real = fscopy.copy_file
    monkeypatch.setattr(fscopy, "copy_file", lambda s, d, **kw: (copied.append(str(d)), real(s, d, **kw))[1])
    monkeypatch.delenv("MODELHAUL_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    out = initialize(f"modelhaul://{ref}?server=sklearn&name=iris&plain_http=true", tmp_path / "models")

    assert copied == []
    assert out["dest"] == str(tmp_path / "models")
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["model.joblib"]
    assert not (tmp_path / "home").exists()
