"""The built wheel, installed extra by extra into fresh virtualenvs, does what the README says each
extra is for; and each missing extra is one line that names it.

The wheel is built once per source tree (cached by a hash of the tracked files) and each venv is
created once per extra set and dependency list (cached by their hash) under
``~/.cache/modelhaul-tests/`` (``MODELHAUL_TEST_CACHE`` overrides), outside the repository; pip
reuses its own wheel cache. Only the wheel itself is reinstalled when the source changes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from modelhaul import artifacts

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("MODELHAUL_TEST_CACHE") or Path.home() / ".cache" / "modelhaul-tests")


def _tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split("\n")
    return sorted(f for f in out if f and (ROOT / f).is_file())


def _source_hash(files: list[str]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.encode() + b"\0" + (ROOT / f).read_bytes() + b"\0")
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def dists() -> dict[str, Path]:
    """``{"wheel": ..., "sdist": ...}`` built from a copy of the tracked files (cached by their hash)."""
    files = _tracked_files()
    out = CACHE / "dist" / _source_hash(files)
    if not (out / "done").exists():
        src = out / "src"
        shutil.rmtree(out, ignore_errors=True)
        for f in files:
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f)
        for hook in ("build_wheel", "build_sdist"):  # one process each: setuptools keeps state between them
            code = f"import sys, setuptools.build_meta as b; b.{hook}(sys.argv[1])"
            subprocess.run([sys.executable, "-c", code, str(out)], cwd=src, check=True, capture_output=True)
        shutil.rmtree(src)
        (out / "done").touch()
    return {"wheel": next(out.glob("modelhaul-*.whl")), "sdist": next(out.glob("modelhaul-*.tar.gz"))}


def _venv(extras: str, wheel: Path) -> Path:
    """A venv with ``modelhaul[extras]`` from ``wheel``; its dependencies are installed once per pyproject."""
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    key = hashlib.sha256(extras.encode() + pyproject).hexdigest()[:12]
    venv = CACHE / "venvs" / f"{extras or 'core'}-{key}"
    py = venv / "bin" / "python"
    spec = f"modelhaul[{extras}] @ {wheel.as_uri()}" if extras else f"modelhaul @ {wheel.as_uri()}"
    if not (venv / "deps-done").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        res = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", spec],
                             capture_output=True, text=True, timeout=1500)
        assert res.returncode == 0, res.stderr[-3000:]
        (venv / "deps-done").touch()
    if (venv / "wheel").exists() and (venv / "wheel").read_text() == str(wheel):
        return venv
    res = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                          "--force-reinstall", str(wheel)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    (venv / "wheel").write_text(str(wheel))
    return venv


def _run(venv: Path, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("MODELHAUL_", "MLFLOW_", "PYTHON", "VIRTUAL_ENV"))}
    e.update(HOME=str(cwd), MODELHAUL_HOME=str(cwd / "mh"), DOCKER_CONFIG=str(cwd / "docker"), **(env or {}))
    return subprocess.run([str(venv / "bin" / "modelhaul"), *args], cwd=cwd, env=e, capture_output=True, text=True,
                          timeout=600)


def _one_line_naming(res: subprocess.CompletedProcess, module: str, extra: str) -> None:
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert lines[0].endswith(f' needs {module}: pip install "modelhaul[{extra}]"'), res.stderr


def test_wheel_and_sdist_carry_the_license_and_no_unrunnable_tests(dists):
    with zipfile.ZipFile(dists["wheel"]) as whl:
        names = whl.namelist()
        meta = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in meta and "Author: modelhaul developers" in meta
    assert "Requires-Python: >=3.11" in meta and "Classifier: Framework :: Apache Airflow" in meta
    assert "modelhaul/components/deploy.yaml" in names and "modelhaul/serving/schemas/seldondeployment-v1.json" in names
    with tarfile.open(dists["sdist"]) as sd:
        members = [m.split("/", 1)[1] for m in sd.getnames() if "/" in m]
    assert "LICENSE" in members
    assert not [m for m in members if m.startswith("tests/")]  # the suite needs the repository's fixtures


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "iris"
    d.mkdir()
    (d / "model.onnx").write_bytes(os.urandom(4096))
    return d


def test_core_saves_pushes_and_pulls_and_names_the_extra_for_the_rest(dists, registry, model_dir, tmp_path):
    venv = _venv("", dists["wheel"])
    ref = f"{registry.host}/install/core:v1"
    assert _run(venv, "save", str(model_dir), ref, cwd=tmp_path).returncode == 0
    pushed = _run(venv, "push", ref, "--plain-http", cwd=tmp_path)
    assert pushed.returncode == 0, pushed.stderr
    assert _run(venv, "rm", ref, cwd=tmp_path).returncode == 0
    assert _run(venv, "pull", ref, "--plain-http", cwd=tmp_path).returncode == 0
    exported = _run(venv, "export", ref, str(tmp_path / "out"), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "out" / "model" / "model.onnx").read_bytes() == (model_dir / "model.onnx").read_bytes()

    _one_line_naming(_run(venv, "import-mlflow", "runs:/0123/model", "oci:layout:v1", "--tracking-uri",
                          f"sqlite:///{tmp_path / 'm.db'}", cwd=tmp_path), "mlflow", "mlflow")
    _one_line_naming(_run(venv, "train", "modelhaul.examples.iris:train", cwd=tmp_path), "mlflow", "mlflow")
    rendered = _run(venv, "deploy", ref, "--plain-http", "--render", "out-manifests", cwd=tmp_path)
    assert rendered.returncode == 0 and (tmp_path / "out-manifests" / "seldondeployment-core.yaml").is_file()
    _one_line_naming(_run(venv, "deploy", ref, "--plain-http", cwd=tmp_path,
                          env={"KUBECONFIG": str(tmp_path / "kubeconfig")}), "kubernetes", "kube")
    converted = _run(venv, "convert", ref, f"{registry.host}/install/core:onnx", "--plain-http", cwd=tmp_path)
    assert converted.returncode == 1 and 'pip install "modelhaul[convert]"' in converted.stderr, converted.stderr
    assert len(converted.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, str]:
    """The example model, trained here (full MLflow) into a SQLite store, and packaged to an OCI layout."""
    from modelhaul import steps

    d = tmp_path_factory.mktemp("trained")
    uri = f"sqlite:///{d / 'mlflow.db'}"
    run = steps.train(entry_point="modelhaul.examples.iris:train", tracking_uri=uri, experiment="install")
    pkg = steps.package(source=run["model_uri"], ref=f"oci:{d / 'layout'}:v1", tracking_uri=uri)
    return {"tracking_uri": uri, "model_uri": run["model_uri"], "ref": pkg["ref"], "dir": str(d)}


def test_mlflow_extra_imports_from_a_sqlite_store(dists, trained, tmp_path):
    venv = _venv("mlflow", dists["wheel"])
    res = _run(venv, "import-mlflow", trained["model_uri"], f"oci:{tmp_path / 'layout'}:v1", "--tracking-uri",
               trained["tracking_uri"], "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    cfg = artifacts.inspect(f"oci:{tmp_path / 'layout'}:v1")["config"]
    assert cfg["format"] and "accuracy" in str(cfg.get("metrics"))


def test_convert_extra_converts_the_example_model(dists, trained, tmp_path):
    venv = _venv("convert", dists["wheel"])
    res = _run(venv, "convert", trained["ref"], f"oci:{tmp_path / 'layout'}:onnx", "--trust", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert artifacts.inspect(f"oci:{tmp_path / 'layout'}:onnx")["config"]["format"] == "ONNX"


def test_worker_extra_runs_the_example_dag_end_to_end(dists, tmp_path):
    """What the README promises of ``[worker]``: every task of the example DAG succeeds from the wheel."""
    venv = _venv("worker", dists["wheel"])
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy2(ROOT / "dags" / "retrain_and_redeploy.py", dags)
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("MODELHAUL_", "MLFLOW_", "AIRFLOW", "PYTHON", "VIRTUAL_ENV"))}
    e.update(HOME=str(tmp_path), MODELHAUL_HOME=str(tmp_path / "mh"), MODELHAUL_DEMO_DIR=str(tmp_path / "demo"),
             AIRFLOW_HOME=str(tmp_path / "airflow"), AIRFLOW__CORE__DAGS_FOLDER=str(dags),
             AIRFLOW__CORE__LOAD_EXAMPLES="False",
             AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path / 'airflow.db'}")
    airflow = str(venv / "bin" / "airflow")
    migrated = subprocess.run([airflow, "db", "migrate"], cwd=tmp_path, env=e, capture_output=True, text=True,
                              timeout=600)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    res = subprocess.run([airflow, "dags", "test", "retrain_and_redeploy"], cwd=tmp_path, env=e,
                         capture_output=True, text=True, timeout=900)
    out = res.stdout + res.stderr
    assert "ModuleNotFoundError" not in out, out[-4000:]
    assert res.returncode == 0, out[-4000:]
    log = tmp_path / "dags-test.log"
    log.write_text(out)
    show = ROOT / "scripts" / "show_demo.py"
    spec = importlib.util.spec_from_file_location("show_demo", show)
    show_demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(show_demo)
    states = show_demo.task_states(log)
    tasks = ("train", "package", "parse", "convert", "sign", "deploy_canary", "promote", "summary")
    assert {t: states.get(t) for t in tasks} == dict.fromkeys(tasks, "success"), out[-4000:]
    model = tmp_path / "demo" / "registry"
    assert any(model.rglob("index.json")), "no model in the demo's OCI layout"
    assert any((tmp_path / "demo" / "manifests").rglob("*.yaml")), "no manifests rendered"
