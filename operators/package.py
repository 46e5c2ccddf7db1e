"""Airflow: the steps that write an artifact — package, parse, convert, sign."""

from __future__ import annotations

from typing import Any

from modelhaul.declarations import CONVERT, PACKAGE, PARSE, SIGN
from modelhaul.operators._compat import AirflowException
from modelhaul.operators.base import MLflowRegistryStepOperator, RegistryStepOperator, declared_operator
from modelhaul.operators.lineage import artifact_dataset, mlflow_dataset
from modelhaul.operators.links import RegistryArtifactLink

# the step declarations; registry access and tracking URI come from the connections.
# bundle_format defaults to None here: "the registry connection's, else modelpack"
_DeclaredPackage = declared_operator("_DeclaredPackage", MLflowRegistryStepOperator, PACKAGE,
                                     defaults={"bundle_format": None}, module=__name__)
_DeclaredParse = declared_operator("_DeclaredParse", RegistryStepOperator, PARSE, module=__name__)
_DeclaredConvert = declared_operator("_DeclaredConvert", RegistryStepOperator, CONVERT, module=__name__)


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
        uri, env = self.mlflow()
        result = self.call_step({**env, **self.registry_env(reg)}, **self.step_arguments(
            ref=self.qualify(self.ref, reg), tracking_uri=uri,
            bundle_format=self.bundle_format or reg.bundle_format or "modelpack", **reg.step_kwargs()))
        self.emit_assets(context, result)
        run_id = self.source[len("runs:/"):].split("/", 1)[0] if self.source.startswith("runs:/") else None
        self._set_lineage([mlflow_dataset(uri, run_id)], [artifact_dataset(result.get("ref"))], result)
        return result


class ParseModelOperator(_DeclaredParse):
    """Read the model's signature and layers into its config, as a new manifest (``steps.parse``).

    XCom: ``{ref, digest, parent, format, framework, signature}``.
    """

    step = "parse"
    operator_extra_links = (RegistryArtifactLink(),)

    def execute(self, context: Any) -> dict[str, Any]:
        _, reg = self.registry()
        result = self.call_step(self.registry_env(reg), **self.step_arguments(
            ref=self.qualify(self.ref, reg), dest_ref=self.qualify(self.dest_ref, reg), **reg.step_kwargs()))
        self.emit_assets(context, result)
        self._set_lineage([artifact_dataset(result.get("parent"))], [artifact_dataset(result.get("ref"))], result)
        return result


class ConvertModelOperator(_DeclaredConvert):
    """Convert to ONNX (or TorchScript), prove parity, push a derived artifact (``steps.convert``).

    A parity failure fails the task and pushes nothing. XCom: ``{ref, digest, parent, format, parity}``.
    """

    step = "convert"
    operator_extra_links = (RegistryArtifactLink(),)

    def execute(self, context: Any) -> dict[str, Any]:
        _, reg = self.registry()
        result = self.call_step(self.registry_env(reg), **self.step_arguments(
            ref=self.qualify(self.ref, reg), dest_ref=self.qualify(self.dest_ref, reg), **reg.step_kwargs()))
        self.emit_assets(context, result)
        self._set_lineage([artifact_dataset(result.get("parent"))], [artifact_dataset(result.get("ref"))], result)
        return result


# the key and its password are secrets: arguments of the class itself, never template fields
_DeclaredSign = declared_operator("_DeclaredSign", RegistryStepOperator, SIGN, module=__name__)


class SignModelOperator(_DeclaredSign):
    """Sign the model and attach its SLSA provenance as OCI referrers (``steps.sign``).

    ``key``: an elliptic-curve private key, PEM (a path, or the text); default
    ``MODELHAUL_SIGNING_KEY``. ``key`` and ``key_password`` are not template fields on purpose:
    rendered fields are stored in the metadata database, a private key must not be. With no key at
    all the task succeeds with ``{signed: false}`` when ``optional`` (so one DAG runs signed or
    unsigned by configuration), else fails. XCom: ``{ref, digest, signed, key_id, files, signature, attestation}``.
    """

    step = "sign"
    operator_extra_links = (RegistryArtifactLink(),)

    def __init__(self, *, key: str | None = None, key_password: str | None = None, optional: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key = key
        self.key_password = key_password
        self.optional = optional

    def execute(self, context: Any) -> dict[str, Any]:
        import os

        _, reg = self.registry()
        ref = self.qualify(self.ref, reg)
        key = (self.key or "").strip() or os.environ.get("MODELHAUL_SIGNING_KEY", "")
        if not key:
            if not self.optional:
                raise AirflowException("no signing key: pass key= or set MODELHAUL_SIGNING_KEY")
            self.log.info("modelhaul sign: no signing key configured; %s stays unsigned", ref)
            return {"ref": ref, "signed": False, "reason": "no signing key configured"}
        result = self.call_step(self.registry_env(reg), **self.step_arguments(ref=ref, key=key, **reg.step_kwargs()))
        result["signed"] = True
        self.emit_assets(context, result)
        return result
