"""No churn: a model that already serves keeps the exact pod template it was deployed with.

The predictor's annotations become its pods' annotations (and, on Seldon, part of the executor's
``ENGINE_PREDICTOR`` environment), so any change there makes the operator roll the Deployment. The
same digest is often named by another tag on the next deploy (``:v1@X`` at first, ``:production@X``
as a canary's stable model, ``:latest@X`` on rollback): the reference recorded for a digest that
already serves is reused, so adding or removing a canary leaves the stable pods alone.
"""

from __future__ import annotations

from typing import Any

from modelhaul.serving.model import ANNOTATION, ServedModel


def served_refs(manifest: dict[str, Any] | None) -> dict[str, str]:
    """``{digest: modelhaul.io/ref}`` of every predictor of a live or rendered serving manifest."""
    spec = (manifest or {}).get("spec") or {}
    preds = spec.get("predictors") or ([spec["predictor"]] if spec.get("predictor") else [])
    out = {}
    for p in preds:
        ann = p.get("annotations") or {}
        digest, ref = ann.get(f"{ANNOTATION}digest"), ann.get(f"{ANNOTATION}ref")
        if digest and ref and ref.endswith("@" + digest):
            out[digest] = ref
    return out


def as_served(model: ServedModel | None, refs: dict[str, str]) -> ServedModel | None:
    """``model`` under the reference it already serves by, if it serves."""
    if model is None or refs.get(model.digest, model.ref) == model.ref:
        return model
    return ServedModel(refs[model.digest], model.config)


def live_manifest(kind: str, name: str, namespace: str, *, kubeconfig: str | None, context: str | None,
                  in_cluster: bool) -> dict[str, Any] | None:
    """The serving resource as the cluster has it now (None when absent, or when this identity may not
    read it: the access check that follows says so in one line naming the verb)."""
    from modelhaul.errors import DeployError
    from modelhaul.serving import targets
    from modelhaul.serving.kube import ResourceId, connect, get_object

    row = targets.get(kind)
    with connect(kubeconfig, context, in_cluster) as api:
        try:
            return get_object(api, ResourceId(row.api_version, row.kind, name, namespace))
        except DeployError:
            return None
