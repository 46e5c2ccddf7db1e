"""Print what a run of the example DAG left behind: task states, the model, its config, the manifests.

Usage: ``python scripts/show_demo.py DEMO_DIR [DAG_TEST_LOG]`` (called by ``run_example_dag.sh``).
Like every entry point, it reads the registry through :mod:`modelhaul.steps`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

REPOSITORY = os.environ.get("MODELHAUL_REPOSITORY", "models/iris")


def task_states(log: Path) -> dict[str, str]:
    """Final state per task, from the ``airflow dags test`` log."""
    states: dict[str, str] = {}
    current = None
    for line in log.read_text(errors="replace").splitlines():
        if m := re.search(r"\[DAG TEST\] (?:starting|running) task.*?task_id=(\w+)", line):
            current = m.group(1)
        if m := re.search(r"\[DAG TEST\] starting task_id=(\w+)", line):
            current = m.group(1)
        if current and (m := re.search(r"new_state=(\w+)", line)):
            states[current] = m.group(1)
    return states


def accuracies(metrics: dict[str, list[dict[str, str]]]) -> str:
    """Held-out accuracy per evaluation group, then the accuracy on the training data itself.

    MLflow's autolog puts the held-out ``accuracy`` into the ``training`` group too (the run's
    metrics); the accuracy on the training rows is ``training_accuracy_score``.
    """
    def value(group: str, name: str) -> float | None:
        return next((float(m["value"]) for m in metrics.get(group, []) if m.get("name") == name), None)

    shown = [f"{group} accuracy={v:.3f}" for group in metrics if group != "training"
             if (v := value(group, "accuracy")) is not None]
    if (v := value("training", "training_accuracy_score")) is not None:
        shown.append(f"training-data accuracy={v:.3f}")
    return ", ".join(shown)


def main() -> int:
    demo = Path(sys.argv[1]).resolve()
    log = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    from modelhaul import steps

    print()
    if log and log.exists():
        states = task_states(log)
        print("tasks:     " + ", ".join(f"{t}={s}" for t, s in states.items()))
    if os.environ.get("AIRFLOW_CONN_MODELHAUL_REGISTRY_DEFAULT"):
        print("registry:  the modelhaul_registry_default connection (see the task log for refs)")
        return 0
    layout = demo / "registry" / REPOSITORY
    ref = f"oci:{layout}:production"
    if steps.try_resolve(ref=ref) is None:
        print(f"model:     nothing at {ref} (the gate rejected the model, or a task failed; see the log)")
    else:
        info = steps.inspect(ref=ref)
        cfg = info["config"]
        config_file = demo / "production-config.json"
        config_file.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        print(f"model:     {info['ref']}")
        print(f"           {info['bundle_format']} artifact, {info['size']} bytes, "
              f"{len(info['layers'])} layer(s), format {cfg.get('format')}")
        print(f"           tags: {', '.join(steps.list_models(ref=f'oci:{layout}')['tags'])}")
        print(f"config:    {config_file}  ({accuracies(cfg.get('metrics') or {}) or 'no accuracy metric'})")
    manifests = sorted((demo / "manifests").rglob("*.yaml"))
    print("manifests: " + ("\n           ".join(str(p) for p in manifests) or "none rendered"))
    print(f"mlflow:    sqlite:///{demo / 'mlflow.db'}  (mlflow ui --backend-store-uri sqlite:///"
          f"{demo / 'mlflow.db'})")
    if log:
        print(f"log:       {log}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
