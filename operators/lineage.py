"""OpenLineage for the step operators: the MLflow run or parent artifact in, the OCI artifact out.

The model's artifact datasets carry a ``schema`` facet (the signature's inputs and outputs) and a
``modelhaul`` facet (the digest-pinned reference and digest), built by :func:`model_facets` — a pure
mapping from the step result, so it is tested without OpenLineage installed.

The OpenLineage provider calls ``get_openlineage_facets_on_complete(task_instance)`` after a task
succeeds. OpenLineage is imported inside that method, so a deployment without it pays nothing and
the method quietly returns None.
"""

from __future__ import annotations

from typing import Any

from modelhaul.errors import redact


def artifact_dataset(ref: str | None) -> tuple[str, str] | None:
    """``(namespace, name)`` of an OCI artifact: ``oci://HOST`` and ``repo@digest`` (``tag`` if unpinned)."""
    if not ref:
        return None
    from modelhaul import steps

    r = steps.reference_parts(ref)
    if r is None:
        return None
    version = r["digest"] or r["tag"] or "latest"
    sep = "@" if r["digest"] else ":"
    if r["layout"] is not None:
        return "oci-layout://local", f"{r['layout']}{sep}{version}"
    return f"oci://{r['registry']}", f"{r['repository']}{sep}{version}"


def mlflow_dataset(tracking_uri: str | None, run_id: str | None) -> tuple[str, str] | None:
    """``(namespace, name)`` of an MLflow run: the (credential-free) tracking URI and ``runs/<id>``."""
    if not run_id:
        return None
    return redact(tracking_uri or "mlflow://default"), f"runs/{run_id}"


def _type_of(tensor: dict[str, Any]) -> str:
    d_type = tensor.get("dType") or tensor.get("d_type") or "unknown"
    size = tensor.get("size")
    return f"{d_type}{list(size)}" if size else str(d_type)


def model_facets(result: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Dataset facets for the artifact a step produced: ``schema`` from its signature, ``modelhaul``
    with its reference and digest. Plain dicts in OpenLineage's field names; empty when unknown."""
    if not result:
        return {}
    facets: dict[str, dict[str, Any]] = {}
    signature = result.get("signature") or {}
    fields = [{"name": t.get("name") or f"{role}_{i}", "type": _type_of(t), "description": role}
              for role in ("inputs", "outputs") for i, t in enumerate(signature.get(role) or [])]
    if fields:
        facets["schema"] = {"fields": fields}
    if result.get("digest") or result.get("ref"):
        facets["modelhaul"] = {k: result[k] for k in ("ref", "digest", "format", "framework") if result.get(k)}
    return facets


class LineageMixin:
    """Operators set ``_lineage_inputs`` / ``_lineage_outputs`` in ``execute``; this reports them."""

    _lineage_inputs: list[tuple[str, str]]
    _lineage_outputs: list[tuple[str, str]]
    _lineage_facets: dict[str, dict[str, Any]]

    def _set_lineage(self, inputs: list[tuple[str, str] | None], outputs: list[tuple[str, str] | None],
                     result: dict[str, Any] | None = None) -> None:
        """Record the datasets; ``result`` (the step's) gives the model's facets to its artifact."""
        self._lineage_inputs = [d for d in inputs if d]
        self._lineage_outputs = [d for d in outputs if d]
        self._lineage_facets = model_facets(result)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """``OperatorLineage`` with the recorded datasets, or None without OpenLineage installed."""
        try:
            from airflow.providers.openlineage.extractors import OperatorLineage
            from openlineage.client.event_v2 import Dataset
            from openlineage.client.facet_v2 import schema_dataset
        except ImportError:
            return None
        facets = getattr(self, "_lineage_facets", {})
        model: dict[str, Any] = {}
        if "schema" in facets:
            model["schema"] = schema_dataset.SchemaDatasetFacet(fields=[
                schema_dataset.SchemaDatasetFacetFields(**f) for f in facets["schema"]["fields"]])
        outputs = getattr(self, "_lineage_outputs", [])
        inputs = getattr(self, "_lineage_inputs", [])
        # the model's facets go to the artifact this task produced (or, for deploy, the one it served)
        carrier = outputs[-1] if outputs else (inputs[-1] if inputs else None)

        def dataset(ns: str, n: str) -> Any:
            return Dataset(namespace=ns, name=n, facets=model if (ns, n) == carrier else {})

        return OperatorLineage(inputs=[dataset(ns, n) for ns, n in inputs],
                               outputs=[dataset(ns, n) for ns, n in outputs],
                               run_facets={})
