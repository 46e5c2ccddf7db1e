"""What an adapter looks up between steps (sensors, exit handlers, "which cluster?"): small JSON
answers, never a change.

Reached through :mod:`modelhaul.steps` (``steps.try_resolve(...)`` etc.), like every step.
"""

from __future__ import annotations

from typing import Any

from modelhaul.declarations import KubeTarget, registry_options, unknown
from modelhaul.optional import needs_extras


def candidate_ref(repository: str, tag: str, to: str) -> str:
    """Where a pipeline puts the converted candidate of ``repository:tag``: ``{repository}:{tag}-{to}``."""
    return f"{repository}:{tag}-{to}"


def reference_parts(ref: str) -> dict[str, str | None] | None:
    """``{registry, repository, tag, digest, layout}`` of a model reference, or None when ``ref`` is not one."""
    from modelhaul.reference import Reference

    try:
        r = Reference.parse(ref)
    except ValueError:
        return None
    return {"registry": r.registry, "repository": r.repository, "tag": r.tag, "digest": r.digest, "layout": r.layout}


def try_resolve(*, ref: str, **registry: Any) -> dict[str, Any] | None:
    """``{ref, digest}`` of what ``ref`` points at now (digest-pinned), or None when it does not exist."""
    from modelhaul import artifacts

    pinned = artifacts.try_resolve(ref, registry_options(registry, "try_resolve"))
    return {"ref": pinned, "digest": pinned.rsplit("@", 1)[1]} if pinned else None


@needs_extras("deploy")
def which_cluster(*, kubeconfig: str | None = None, context: str | None = None,
                  in_cluster: bool = False) -> dict[str, Any] | None:
    """The cluster ``deploy`` would reach, found like ``kubectl`` does (see
    :func:`modelhaul.serving.cluster.find_cluster`): ``{server, context, kubeconfig, in_cluster}`` or None.
    """
    from dataclasses import asdict

    from modelhaul.serving.cluster import find_cluster

    found = find_cluster(kubeconfig, context, in_cluster)
    return asdict(found) if found else None


@needs_extras("deploy")
def deployment_status(*, target: str, name: str, namespace: str = "default", **kube: Any) -> dict[str, Any]:
    """A SeldonDeployment's / InferenceService's ``{state, ready, failed, url, message, observed_generation,
    generation, outcome}``; ``outcome``: ``ready`` (serving its latest spec), ``failed`` or ``waiting``."""
    from modelhaul.declarations import kind_of
    from modelhaul.serving.kube import get_status
    from modelhaul.serving.status import outcome

    unknown(KubeTarget.PARAMS, kube, "deployment_status")
    status = get_status(kind_of(target), name, namespace, **KubeTarget.of(kube).kwargs())
    return {**status, "outcome": outcome(status)}
