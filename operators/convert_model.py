"""Airflow: convert a model (ONNX, TorchScript) with a parity check, push the result (``steps.convert``)."""

from __future__ import annotations

from typing import Any

from modelhaul.declarations import CONVERT
from modelhaul.operators.base import RegistryStepOperator, declared_operator
from modelhaul.operators.lineage import artifact_dataset
from modelhaul.operators.links import RegistryArtifactLink

# the step's declaration; registry access comes from the registry connection
_DeclaredConvert = declared_operator("_DeclaredConvert", RegistryStepOperator, CONVERT, module=__name__)


class ConvertModelOperator(_DeclaredConvert):
    """Convert to ONNX (or TorchScript), prove parity, push a derived artifact (``steps.convert``).

    A parity failure fails the task and pushes nothing. XCom: ``{ref, digest, parent, format, parity}``.
    """

    step = "convert"
    operator_extra_links = (RegistryArtifactLink(),)

    def execute(self, context: Any) -> dict[str, Any]:
        result = self.run_step()
        self.emit_assets(context, result)
        self._set_lineage([artifact_dataset(result.get("parent"))], [artifact_dataset(result.get("ref"))], result)
        return result
