"""The Airflow provider as Airflow sees it: registration, DAG files that import, and a cheap import."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap

from tests.fixtures.airflow import AIRFLOW_ENV, DAGS, ROOT, airflow_cli

HEAVY = ("mlflow", "kubernetes", "kfp", "onnx", "onnxruntime", "torch", "sklearn")


def test_airflow_lists_the_provider_and_the_plugin(airflow_home):
    providers = json.loads(airflow_cli("providers", "list", "-o", "json").stdout)
    ours = [p for p in providers if p["package_name"] == "modelhaul"]
    assert ours and ours[0]["version"] == "0.1.0"

    hooks = airflow_cli("providers", "hooks", "-o", "json").stdout
    assert "modelhaul_registry" in hooks and "modelhaul_mlflow" in hooks

    plugins = json.loads(airflow_cli("plugins", "-o", "json").stdout)
    plugin = next(p for p in plugins if p["name"] == "modelhaul")
    links = str(plugin.get("operator_extra_links"))
    assert "RegistryArtifactLink" in links and "MLflowRunLink" in links and "DeploymentLink" in links


def test_every_class_named_in_provider_info_imports_and_matches_its_connection_type():
    from modelhaul.plugins.provider import get_provider_info

    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for path in info["extra-links"]:
        module, name = path.rsplit(".", 1)
        assert getattr(importlib.import_module(module), name)().name
    for ct in info["connection-types"]:
        module, name = ct["hook-class-name"].rsplit(".", 1)
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == ct["connection-type"]
        assert ct["conn-fields"], "the connection form declares its extra fields"


def test_example_dags_import_without_errors(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    retrain = bag.dags["retrain_and_redeploy"]
    assert retrain.catchup is False
    assert [t.task_id for t in retrain.topological_sort()][:7] == [
        "train", "package", "parse", "convert", "sign", "deploy_canary", "promote"]
    assert retrain.get_task("rollback").trigger_rule == "one_failed"
    assert set(retrain.get_task("rollback").upstream_task_ids) == {"deploy_canary", "promote"}

    # the redeploy DAG is scheduled on exactly the asset that promote emits
    promoted = {a.uri for a in retrain.get_task("promote").outlets}
    watched = {a.uri for a in bag.dags["redeploy_on_promotion"].timetable.asset_condition.objects}
    assert promoted == watched and len(watched) == 1


def test_importing_the_operators_pulls_in_no_heavy_library():
    """What a DAG parse pays: import the package, every public class and both example DAGs."""
    code = textwrap.dedent(f"""
        import json, sys
        import modelhaul.operators as ops
        from modelhaul.operators import *  # noqa
        for name in ops.__all__:
            getattr(ops, name)
        import modelhaul.plugins.plugin, modelhaul.plugins.provider
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(DAGS)!r})
        assert not bag.import_errors, bag.import_errors
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})))
    """)
    env = {**os.environ, **AIRFLOW_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
