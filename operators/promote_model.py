"""Airflow: move a stage tag (and alias, traffic) to the candidate when its gate passes (``steps.promote``)."""

from __future__ import annotations

from typing import Any

from modelhaul.declarations import PROMOTE
from modelhaul.operators._compat import AirflowException, AirflowSkipException
from modelhaul.operators.base import MLflowRegistryStepOperator, declared_operator, maybe_json
from modelhaul.operators.kubernetes_hook import deployment_here
from modelhaul.operators.lineage import artifact_dataset
from modelhaul.operators.links import RegistryArtifactLink

_DeclaredPromote = declared_operator("_DeclaredPromote", MLflowRegistryStepOperator, PROMOTE, module=__name__)


class PromoteModelOperator(_DeclaredPromote):
    """Move the ``stage`` tag to the candidate when its gate passes (``steps.promote``).

    ``on_reject``: ``skip`` (default: the task is skipped, so ``outlets`` emit no event and nothing
    downstream runs), ``fail``, or ``succeed`` (return the result with ``promoted: false``). A rejected
    gate never touches the stage tag. XCom: ``{promoted, reason, candidate, previous, stage, ref, digest}``.
    """

    step = "promote"
    operator_extra_links = (RegistryArtifactLink(),)

    def __init__(self, *, on_reject: str = "skip", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if on_reject not in ("skip", "fail", "succeed"):
            raise ValueError(f"on_reject={on_reject!r}: choose skip, fail or succeed")
        self.on_reject = on_reject

    def execute(self, context: Any) -> dict[str, Any]:
        result = self.run_step(deployment=deployment_here(maybe_json(self.deployment)))
        if not result.get("promoted"):
            reason = result.get("reason") or "gate not met"
            context["ti"].xcom_push(key="promotion", value=result)
            if self.on_reject == "fail":
                raise AirflowException(f"promotion to {self.stage} rejected: {reason}")
            if self.on_reject == "skip":
                raise AirflowSkipException(f"promotion to {self.stage} rejected: {reason}")
            return result
        self.emit_assets(context, result)
        self._set_lineage([artifact_dataset(result.get("candidate"))], [artifact_dataset(result.get("ref"))],
                          result)
        return result
