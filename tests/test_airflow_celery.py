"""The example DAG scaled out: Airflow's api-server, scheduler and dag-processor on a Postgres metadata
DB, two Celery workers on a redis broker, the real registry and a real ``mlflow server`` reached by
Airflow connections alone.

Each worker is another machine as far as a task can tell: its own HOME, MODELHAUL_HOME, working
directory, TMPDIR, log folder, host name and queue; as root, also its own mount namespace, where
the other worker's files, the control plane's and the servers' are hidden under empty tmpfs, and
``MODELHAUL_DEMO_DIR`` (the same path on both) is a directory of its own. A cluster policy routes
the DAG's tasks so that consecutive steps run on different workers. Two runs (different logical
dates) go at once, both promoting to ``production``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from modelhaul import artifacts
from modelhaul.reference import parse
from tests.fixtures import scaleout
from tests.fixtures.mlflow import start_mlflow_server
from tests.fixtures.registry import unique_repo

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAG = "retrain_and_redeploy"
# consecutive steps alternate between the two machines
QUEUES = {"train": "worker_a", "package": "worker_b", "parse": "worker_a", "convert": "worker_b",
          "sign": "worker_a", "deploy_canary": "worker_b", "promote": "worker_a", "summary": "worker_b",
          "rollback": "worker_b"}
CHAIN = ["train", "package", "parse", "convert", "sign", "deploy_canary", "promote", "summary"]

POLICY = f'''\
"""Cluster policy of the scale-out test: route each task of {DAG} to a worker's queue; no schedule."""
QUEUES = {QUEUES!r}


def task_policy(task):
    if task.dag_id == {DAG!r}:
        task.queue = QUEUES.get(task.task_id, "worker_a")


def dag_policy(dag):
    if dag.dag_id == {DAG!r}:  # only the runs the test triggers
        from airflow.timetables.simple import NullTimetable

        dag.timetable = NullTimetable()
'''

HOSTNAME = '''\
import os
import socket


def name():
    return os.environ.get("MODELHAUL_TEST_HOSTNAME") or socket.getfqdn()
'''


def needs() -> str | None:
    try:
        import celery  # noqa: F401
        import psycopg2  # noqa: F401
        from airflow.providers.celery.executors import celery_executor  # noqa: F401
    except ImportError as exc:
        return f"the celery extra is not installed ({exc}): pip install -e '.[celery]'"
    if not shutil.which("redis-server") or scaleout.postgres_bin() is None:
        return "redis-server and postgresql (Debian packages) are needed: scripts/bootstrap.sh installs them"
    return None


def clean_env() -> dict[str, str]:
    """This process's environment without the test session's own Airflow and MLflow settings."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "MLFLOW_", "MODELHAUL_")) and k not in ("PYTHONPATH",)}


class Deployment:
    """Everything the test starts; :meth:`stop` stops each service by its process group."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.services: list[scaleout.Service] = []
        self.pg_dir: Path | None = None
        self.dsn = self.api_url = ""
        self.env: dict[str, str] = {}
        self.isolated = False
        self.connections: list[dict] = []

    def stop(self) -> None:
        scaleout.stop_all(self.services)
        if self.pg_dir:
            shutil.rmtree(self.pg_dir, ignore_errors=True)

    def sql(self, query: str, *args: object) -> list[tuple]:
        import psycopg2

        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall()

    def airflow(self, *args: str, timeout: float = 180) -> str:
        proc = subprocess.run([AIRFLOW, *args], env=self.env, cwd=self.base / "control", capture_output=True,
                              text=True, timeout=timeout)
        assert proc.returncode == 0, f"airflow {' '.join(args)}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout

    def api(self, method: str, path: str, body: dict) -> dict:
        """The REST API (all-admins auth: no token needed)."""
        import requests

        resp = requests.request(method, self.api_url + path, json=body, timeout=60)
        assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text[:500]}"
        return resp.json()

    def logs(self) -> str:
        return "\n".join(f"--- {s.name}\n{s.tail(2500)}" for s in self.services)


def start_deployment(base: Path, registry, repo: str) -> Deployment:
    d = Deployment(base)
    control = base / "control"
    for sub in ("airflow/config", "mlflow", "redis", "logs"):
        (control / sub).mkdir(parents=True)
    (control / "airflow/config/airflow_local_settings.py").write_text(POLICY)
    pylib = base / "pylib"
    pylib.mkdir()
    (pylib / "modelhaul_test_host.py").write_text(HOSTNAME)
    try:
        pg, url, d.pg_dir = scaleout.start_postgres(control / "logs")
        d.services.append(pg)
        d.dsn = url.replace("postgresql+psycopg2://", "postgresql://")
        redis, broker = scaleout.start_redis(control / "redis")
        d.services.append(redis)
        mlflow_box: list = []  # the MLflow server starts while the metadata DB is migrated
        starter = threading.Thread(target=lambda: mlflow_box.append(start_mlflow_server(control / "mlflow")))
        starter.start()
        api_port = scaleout.free_port()
        d.api_url = f"http://127.0.0.1:{api_port}"
        d.env = {**clean_env(),
                 "AIRFLOW_HOME": str(control / "airflow"),
                 "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                 "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                 "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                 "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                 "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{d.api_url}/execution/",
                 "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                 "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
                 "AIRFLOW__CELERY__BROKER_URL": broker,
                 "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + url,
                 "AIRFLOW__API__SECRET_KEY": "modelhaul-scaleout",
                 "AIRFLOW__API__BASE_URL": d.api_url,
                 "AIRFLOW__API_AUTH__JWT_SECRET": "modelhaul-scaleout-jwt-secret-0123456789abcdef",
                 "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                 "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                 "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
                 "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(control / "logs/airflow"),
                 "MODELHAUL_REPOSITORY": repo,
                 "MODELHAUL_DEMO_DIR": str(base / "demo")}
        try:
            d.airflow("db", "migrate", timeout=300)
        finally:
            starter.join()
            if mlflow_box:
                d.services.append(scaleout.Service("mlflow", mlflow_box[0].proc, control / "mlflow/server.log"))
        assert mlflow_box, f"mlflow server did not start:\n{d.logs()}"
        api = scaleout.start("api-server", [AIRFLOW, "api-server", "-H", "127.0.0.1", "-p", str(api_port),
                                            "-w", "1"], log=control / "logs/api-server.log", env=d.env, cwd=control)
        d.services.append(api)
        d.services.append(scaleout.start("scheduler", [AIRFLOW, "scheduler"], log=control / "logs/scheduler.log",
                                         env=d.env, cwd=control))
        isolate = scaleout.can_isolate()
        (base / "demo").mkdir()
        hidden = [control, registry.root, d.pg_dir]
        for me, other in (("a", "b"), ("b", "a")):
            own = base / f"worker_{me}"
            for sub in ("home", "modelhaul", "work", "tmp", "logs", "demo"):
                (own / sub).mkdir(parents=True)
            env = {**d.env, "AIRFLOW_HOME": str(own / "airflow"), "HOME": str(own / "home"),
                   "MODELHAUL_HOME": str(own / "modelhaul"), "TMPDIR": str(own / "tmp"),
                   "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(own / "logs"),
                   "AIRFLOW__CORE__HOSTNAME_CALLABLE": "modelhaul_test_host.name",
                   "MODELHAUL_TEST_HOSTNAME": f"worker-{me}", "PYTHONPATH": str(pylib),
                   # one path on every machine; a directory of each machine's own where it can be
                   "MODELHAUL_DEMO_DIR": str(base / "demo" if isolate else own / "demo")}
            prefix = scaleout.isolation([base / f"worker_{other}", *hidden], own / "demo", base / "demo") \
                if isolate else []
            d.services.append(scaleout.start(
                f"worker_{me}", [*prefix, AIRFLOW, "celery", "worker", "-q", f"worker_{me}", "-c", "2",
                                 "--skip-serve-logs", "-H", f"worker_{me}@%h", "--without-gossip",
                                 "--without-mingle"],
                log=base / f"worker_{me}.log", env=env, cwd=own / "work"))
        d.isolated = isolate
        d.connections = [{"connection_id": "modelhaul_registry_default", "conn_type": "modelhaul_registry",
                          "host": registry.url},
                         {"connection_id": "modelhaul_mlflow_default", "conn_type": "modelhaul_mlflow",
                          "host": mlflow_box[0].uri}]
        scaleout.wait_port(api_port, api, timeout=180)
        d.services.append(scaleout.start("dag-processor", [AIRFLOW, "dag-processor"],
                                         log=control / "logs/dag-processor.log", env=d.env, cwd=control))
    except BaseException:
        d.stop()
        raise
    return d


def wait_for(check, what: str, d: Deployment, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        dead = [s.name for s in d.services if s.proc.poll() is not None]
        assert not dead, f"{dead} exited\n{d.logs()}"
        time.sleep(2)
    raise AssertionError(f"{what} within {timeout:.0f} s\n{d.logs()}")


@pytest.fixture
def deployment(tmp_path: Path, registry):
    reason = needs()
    if reason:
        pytest.skip(reason)
    d = start_deployment(tmp_path, registry, unique_repo("celery"))
    try:
        yield d
    finally:
        d.stop()


def test_two_runs_at_once_on_two_celery_workers_that_share_nothing(deployment, registry):
    d = deployment

    def import_errors() -> list[str]:
        return [trace for (trace,) in d.sql("SELECT stacktrace FROM import_error")]

    # parsed before the connections exist, the DAG refuses the worker-local defaults: one import error
    wait_for(lambda: any("names no registry host" in e for e in import_errors()),
             "the DAG did not refuse to parse without a registry connection", d, 120)
    assert "the executor CeleryExecutor runs tasks on other machines" in import_errors()[0]
    for conn in d.connections:  # as an operator defines them: in the metadata DB
        d.api("POST", "/api/v2/connections", conn)
    wait_for(lambda: not import_errors() and bool(d.sql("SELECT 1 FROM dag WHERE dag_id = %s", DAG)),
             "the dag-processor did not parse the DAG once the connections existed", d, 120)
    for day in ("2026-12-01", "2026-12-02"):
        d.api("POST", f"/api/v2/dags/{DAG}/dagRuns", {"dag_run_id": f"run_{day}",
                                                     "logical_date": f"{day}T00:00:00Z"})

    def finished() -> bool:
        states = [s for (s,) in d.sql("SELECT state FROM dag_run WHERE dag_id = %s", DAG)]
        return len(states) == 2 and all(s in ("success", "failed") for s in states)

    wait_for(finished, "the two runs did not finish", d, 300)
    tis = d.sql("SELECT run_id, task_id, state, hostname, queue FROM task_instance WHERE dag_id = %s", DAG)
    by_run: dict[str, dict[str, tuple]] = {}
    for run_id, task_id, state, host, queue in tis:
        by_run.setdefault(run_id, {})[task_id] = (state, host, queue)
    runs = sorted(by_run)
    assert [s for (s,) in d.sql("SELECT state FROM dag_run WHERE dag_id = %s", DAG)] == ["success"] * 2, \
        f"{by_run}\n{d.logs()}"
    # both workers ran tasks, and each step ran on the other machine than the step before it
    assert {host for *_, host, _ in tis if host} == {"worker-a", "worker-b"}, tis
    for run_id in runs:
        hosts = [by_run[run_id][t][1] for t in CHAIN]
        assert all(a != b for a, b in zip(hosts, hosts[1:], strict=False)), (run_id, hosts)
        assert by_run[run_id]["promote"][0] == "success" and by_run[run_id]["rollback"][0] == "skipped"
    # the runs overlapped: each run's first task started before the other run's last one ended
    spans = d.sql("SELECT run_id, min(start_date), max(end_date) FROM task_instance WHERE dag_id = %s "
                  "GROUP BY run_id", DAG)
    assert spans[0][1] < spans[1][2] and spans[1][1] < spans[0][2], spans

    # production is one of the two candidates, production-previous the other (promoted first)
    xcoms = {(run_id, task_id): value for run_id, task_id, value in d.sql(
        "SELECT run_id, task_id, value FROM xcom WHERE dag_id = %s AND key = 'return_value'", DAG)}

    def xcom(run_id: str, task_id: str) -> dict:
        value = xcoms[(run_id, task_id)]
        return json.loads(value) if isinstance(value, str) else value

    candidates = {xcom(r, "convert")["digest"] for r in runs}
    repo = parse(xcom(runs[0], "promote")["ref"]).unpinned()
    production = parse(artifacts.resolve(str(repo.with_tag("production")), registry.options)).digest
    previous = parse(artifacts.resolve(str(repo.with_tag("production-previous")), registry.options)).digest
    assert len(candidates) == 2 and production in candidates and candidates == {production, previous}
    promoted = sorted((xcom(r, "promote") for r in runs), key=lambda p: p["previous"] is not None)
    assert promoted[0]["previous"] is None and parse(promoted[1]["previous"]).digest == promoted[0]["digest"]
    assert promoted[1]["digest"] == production
    for tag in artifacts.list_tags(str(repo.with_tag("production")), registry.options):
        assert "claim" not in tag
        artifacts.inspect(str(repo.with_tag(tag)), registry.options)  # every tag names a manifest that exists
    # the deployment the last promotion rendered (on its own machine) serves production alone
    rendered = sorted((d.base / "worker_a" / "demo" if d.isolated else d.base).rglob("seldondeployment-*.yaml"),
                      key=lambda p: p.stat().st_mtime)
    assert rendered and production in rendered[-1].read_text() and previous not in rendered[-1].read_text()
