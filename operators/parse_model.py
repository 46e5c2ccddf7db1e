"""Airflow: read a model's signature and layers into its config, as a new manifest (``steps.parse``)."""

from __future__ import annotations

from typing import Any

from modelhaul.declarations import PARSE
from modelhaul.operators.base import RegistryStepOperator, declared_operator
from modelhaul.operators.lineage import artifact_dataset
from modelhaul.operators.links import RegistryArtifactLink

# the step's declaration; registry access comes from the registry connection
_DeclaredParse = declared_operator("_DeclaredParse", RegistryStepOperator, PARSE, module=__name__)


class ParseModelOperator(_DeclaredParse):
    """Read the model's signature and layers into its config, as a new manifest (``steps.parse``).

    XCom: ``{ref, digest, parent, format, framework, signature}``.
    """

    step = "parse"
    operator_extra_links = (RegistryArtifactLink(),)

    def execute(self, context: Any) -> dict[str, Any]:
        result = self.run_step()
        self.emit_assets(context, result)
        self._set_lineage([artifact_dataset(result.get("parent"))], [artifact_dataset(result.get("ref"))], result)
        return result
