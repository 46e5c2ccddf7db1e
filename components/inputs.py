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

from collections.abc import Callable, Mapping
from typing import Any

from modelhaul.declarations import BUNDLE_FORMATS, STEPS, DeploymentSettings, KubeTarget, Param, step_arguments

#: what a deployment is reached again by (promote, rollback): the deploy settings and the cluster
DEPLOYMENT_PARAMS: tuple[Param, ...] = (*DeploymentSettings.PARAMS, *KubeTarget.PARAMS)


def arguments(step: str | tuple[Param, ...], given: Mapping[str, Any], **resolved: Any) -> dict[str, Any]:
    """The declared arguments of ``step`` (a step name or a declaration) among ``given`` and ``resolved``."""
    params = STEPS[step] if isinstance(step, str) else step
    return step_arguments(params, {**given, **resolved}, kfp=True)


def document_choices(fn: Callable) -> Callable:
    """Fill ``{bundle_formats}`` in ``fn``'s docstring (its KFP input descriptions) from the declarations.

    KFP reads the descriptions from ``__doc__`` when it builds the component, so the choices a user
    reads in the KFP UI are the ones the step accepts, listed once (``declarations.BUNDLE_FORMATS``).
    """
    fn.__doc__ = (fn.__doc__ or "").replace("{bundle_formats}", ", ".join(f"``{f}``" for f in BUNDLE_FORMATS))
    return fn
