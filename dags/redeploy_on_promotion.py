"""Serve whatever was just promoted: scheduled on the promoted-model asset of ``retrain_and_redeploy``.

The asset event's extra names the digest-pinned ref that was promoted, so this DAG deploys exactly
those bytes even if the stage tag has moved again since. Started by hand (no event), it deploys what
the stage tag points at now. Same configuration as ``retrain_and_redeploy``.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from modelhaul.operators import DeployModelOperator, model_asset, ref_from_events, require_shared_services

DEMO_DIR = Path(os.environ.get("MODELHAUL_DEMO_DIR")
                or Path(__file__).resolve().parent.parent / ".modelhaul-demo")
REPOSITORY = os.environ.get("MODELHAUL_REPOSITORY", "models/iris")
TARGET = os.environ.get("MODELHAUL_SERVING_TARGET", "seldon")
NAMESPACE = os.environ.get("MODELHAUL_NAMESPACE", "default")
STAGE = "production"

require_shared_services("redeploy_on_promotion", mlflow=False)  # a registry every worker reaches

PROMOTED = model_asset(REPOSITORY, STAGE)

with DAG(
    dag_id="redeploy_on_promotion",
    description="Deploy the model that was promoted to production",
    schedule=[PROMOTED],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["modelhaul", "example"],
    default_args={"layout_root": str(DEMO_DIR / "registry")},
) as dag:

    @task
    def promoted_ref(**context: Any) -> str:
        """The ref in the triggering asset event, else the stage tag as it is now."""
        return ref_from_events(context.get("triggering_asset_events")) or f"{REPOSITORY}:{STAGE}"

    DeployModelOperator(
        task_id="deploy",
        ref=promoted_ref(),
        target=TARGET,
        deployment_name="iris",
        namespace=NAMESPACE,
        render_dir=str(DEMO_DIR / "manifests"),
    )
