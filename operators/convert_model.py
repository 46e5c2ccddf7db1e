"""Airflow: convert a model (ONNX, TorchScript) with a parity check, push the result (``steps.convert``)."""

from __future__ import annotations

from modelhaul.declarations import CONVERT
from modelhaul.operators.base import DerivedArtifactOperator, declared_operator
from modelhaul.operators.links import RegistryArtifactLink

# the step's declaration; registry access comes from the registry connection
_DeclaredConvert = declared_operator("_DeclaredConvert", DerivedArtifactOperator, CONVERT, module=__name__)


class ConvertModelOperator(_DeclaredConvert):
    """Convert to ONNX (or TorchScript), prove parity, push a derived artifact (``steps.convert``).

    A parity failure fails the task and pushes nothing. XCom: ``{ref, digest, parent, format, parity}``.
    """

    step = "convert"
    operator_extra_links = (RegistryArtifactLink(),)
