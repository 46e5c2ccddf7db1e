"""How a KFP component's inputs become its step's arguments: the step's declaration decides which.

A component body snapshots its arguments (``given = dict(locals())``, its first statement) and
hands them here with what it worked out itself (the upstream artifact's ``ref``, a candidate
reference); :func:`modelhaul.declarations.step_arguments` keeps the declared ones, coerced, with
KFP's "not set" spellings (``""``, ``0``, ``{}``, ``[]``) read as the declared default. So a
parameter added to a declaration and to the component's (literal) signature reaches the step with
no edit of the body.

Runs inside the component's container (imported by the component bodies), so it needs no kfp.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelhaul.declarations import STEPS, DeploymentSettings, KubeTarget, Param, step_arguments

#: what a deployment is reached again by (promote, rollback): the deploy settings and the cluster
DEPLOYMENT_PARAMS: tuple[Param, ...] = (*DeploymentSettings.PARAMS, *KubeTarget.PARAMS)


def arguments(step: str | tuple[Param, ...], given: Mapping[str, Any], **resolved: Any) -> dict[str, Any]:
    """The declared arguments of ``step`` (a step name or a declaration) among ``given`` and ``resolved``."""
    params = STEPS[step] if isinstance(step, str) else step
    return step_arguments(params, {**given, **resolved}, kfp=True)
