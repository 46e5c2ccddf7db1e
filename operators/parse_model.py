"""Airflow: read a model's signature and layers into its config, as a new manifest (``steps.parse``)."""

from __future__ import annotations

from modelhaul.declarations import PARSE
from modelhaul.operators.base import DerivedArtifactOperator, declared_operator
from modelhaul.operators.links import RegistryArtifactLink

# the step's declaration; registry access comes from the registry connection
_DeclaredParse = declared_operator("_DeclaredParse", DerivedArtifactOperator, PARSE, module=__name__)


class ParseModelOperator(_DeclaredParse):
    """Read the model's signature and layers into its config, as a new manifest (``steps.parse``).

    XCom: ``{ref, digest, parent, format, framework, signature}``.
    """

    step = "parse"
    operator_extra_links = (RegistryArtifactLink(),)
