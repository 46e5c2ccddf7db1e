"""Airflow: sign a model and attach its provenance as OCI referrers (``steps.sign``)."""

from __future__ import annotations

from typing import Any

from modelhaul.declarations import SIGN
from modelhaul.operators._compat import AirflowException
from modelhaul.operators.base import RegistryStepOperator, declared_operator
from modelhaul.operators.links import RegistryArtifactLink

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
        env, given = self.connected(reg)
        key = (self.key or "").strip() or os.environ.get("MODELHAUL_SIGNING_KEY", "")
        if not key:
            if not self.optional:
                raise AirflowException("no signing key: pass key= or set MODELHAUL_SIGNING_KEY")
            self.log.info("modelhaul sign: no signing key configured; %s stays unsigned", given["ref"])
            return {"ref": given["ref"], "signed": False, "reason": "no signing key configured"}
        result = self.call_step(env, **self.step_arguments(**given, key=key))
        result["signed"] = True
        self.emit_assets(context, result)
        return result
