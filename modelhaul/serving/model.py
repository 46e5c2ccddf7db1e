"""A model artifact as the serving manifests see it: pinned reference, config, labels, annotations.

The manifest builders (:mod:`modelhaul.serving.seldon`, :mod:`modelhaul.serving.kserve`) and the
deploy step share it; it knows nothing of either platform.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from modelhaul.config import ModelConfig
from modelhaul.serving.layouts import model_kind

ANNOTATION = "modelhaul.io/"
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class ServedModel:
    """A model artifact as a serving manifest sees it: its pinned reference and its config."""

    ref: str
    config: ModelConfig

    @property
    def digest(self) -> str:
        from modelhaul.reference import parse

        return parse(self.ref).digest or ""

    @property
    def kind(self) -> str:
        return model_kind(self.config)

    def uri(self, *, server: str, name: str, plain_http: bool = False, insecure: bool = False) -> str:
        from modelhaul.serving.initializer import build_uri

        return build_uri(self.ref, server=server, name=name, plain_http=plain_http,
                         insecure=insecure)

    def labels(self) -> dict[str, str]:
        """Selectable links back to the artifact: a short digest (labels hold 63 chars), the run."""
        out = {f"{ANNOTATION}digest": self.digest.split(":", 1)[-1][:12], f"{ANNOTATION}format": self.kind}
        run_id = _mlflow(self.config).get("run-id")
        if run_id and _LABEL_VALUE_RE.match(run_id):
            out[f"{ANNOTATION}mlflow-run"] = run_id
        return out

    def annotations(self, *, stable: ServedModel | None = None, canary_percent: int | None = None
                    ) -> dict[str, str]:
        """The full links: reference, digest, MLflow run and model, parent; the canary's stable model."""
        out = {f"{ANNOTATION}ref": self.ref, f"{ANNOTATION}digest": self.digest}
        if self.config.framework:
            out[f"{ANNOTATION}framework"] = self.config.framework
        out.update({f"{ANNOTATION}mlflow-{k}": v for k, v in _mlflow(self.config).items()})
        if self.config.provenance and self.config.provenance.parent:
            out[f"{ANNOTATION}parent"] = self.config.provenance.parent
        if canary_percent is not None:
            out[f"{ANNOTATION}canary-percent"] = str(canary_percent)
            if stable is not None:
                out[f"{ANNOTATION}stable-ref"] = stable.ref
        return out


    def object_metadata(self, name: str, namespace: str, *, stable: ServedModel | None = None,
                        canary_percent: int | None = None) -> dict[str, Any]:
        """``metadata`` of the serving resource (SeldonDeployment or InferenceService) for this model."""
        return {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "modelhaul",
                       **self.labels()},
            "annotations": self.annotations(stable=stable, canary_percent=canary_percent),
        }


def _mlflow(config: ModelConfig) -> dict[str, str]:
    m = config.provenance.mlflow if config.provenance else None
    if m is None:
        return {}
    fields = {
        "run-id": m.run_id,
        "experiment-id": m.experiment_id,
        "model-id": m.model_id,
        "model-uri": m.model_uri,
        "registered-model": m.registered_model,
        "registered-version": m.version,
    }
    return {k: str(v) for k, v in fields.items() if v}
