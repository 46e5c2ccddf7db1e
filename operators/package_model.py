"""Airflow: publish a model from MLflow (or a directory) to a registry as an OCI artifact (``steps.package``)."""

from __future__ import annotations

from typing import Any

from modelhaul.declarations import PACKAGE
from modelhaul.operators.base import MLflowRegistryStepOperator, declared_operator
from modelhaul.operators.lineage import artifact_dataset, mlflow_dataset
from modelhaul.operators.links import RegistryArtifactLink

# the step's declaration; registry access and tracking URI come from the connections.
# bundle_format defaults to None here: "the registry connection's, else modelpack"
_DeclaredPackage = declared_operator("_DeclaredPackage", MLflowRegistryStepOperator, PACKAGE,
                                     defaults={"bundle_format": None}, module=__name__)


class PackageModelOperator(_DeclaredPackage):
    """Publish a model (MLflow ``runs:/``/``models:/`` URI or a directory) to ``ref`` (``steps.package``).

    XCom: ``{ref, digest, size, format, framework, media_type, bundle_format}``; ``outlets`` assets
    get the digest-pinned ref in their event extra.
    """

    step = "package"
    template_fields_renderers = {"config": "json"}
    operator_extra_links = (RegistryArtifactLink(),)

    def execute(self, context: Any) -> dict[str, Any]:
        _, reg = self.registry()
        env, given = self.connected(reg)
        # no bundle_format: the registry connection's, else the declared default
        result = self.call_step(env, **self.step_arguments(
            **given, bundle_format=self.bundle_format or reg.bundle_format))
        self.emit_assets(context, result)
        run_id = self.source[len("runs:/"):].split("/", 1)[0] if self.source.startswith("runs:/") else None
        self._set_lineage([mlflow_dataset(given["tracking_uri"], run_id)], [artifact_dataset(result.get("ref"))],
                          result)
        return result
