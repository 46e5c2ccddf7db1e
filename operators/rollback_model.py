"""Airflow: put back the model that held a stage before the last promotion (``steps.rollback``)."""

from __future__ import annotations

from typing import Any

from modelhaul.declarations import ROLLBACK
from modelhaul.operators._compat import AirflowSkipException
from modelhaul.operators.base import MLflowRegistryStepOperator, declared_operator, maybe_json
from modelhaul.operators.kubernetes_hook import deployment_here
from modelhaul.operators.lineage import artifact_dataset
from modelhaul.operators.links import RegistryArtifactLink

_DeclaredRollback = declared_operator("_DeclaredRollback", MLflowRegistryStepOperator, ROLLBACK, module=__name__)


class RollbackModelOperator(_DeclaredRollback):
    """Restore the digest that was at ``stage`` before the last promotion (``steps.rollback``).

    With ``only_if_digest`` the rollback happens only when ``stage`` still points at that digest
    (the candidate of this run): a run whose candidate was never promoted must not undo an
    earlier, good promotion. XCom: ``{rolled_back, reason, stage, restored, replaced, ref, digest}``.
    """

    step = "rollback"
    operator_extra_links = (RegistryArtifactLink(),)

    def execute(self, context: Any) -> dict[str, Any]:
        result = self.run_step(deployment=deployment_here(maybe_json(self.deployment)))
        if result.get("skipped"):
            raise AirflowSkipException(result["reason"])
        self._set_lineage([], [artifact_dataset(result.get("ref"))])
        return result
