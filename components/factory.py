"""Turn the component bodies into KFP components for a given runtime (published or local).

The same function source yields the checked-in components (pinned image and packages) and the
ones the local runner executes (no pip install), so a local run tests exactly the code a cluster
runs.
"""

from __future__ import annotations

from collections.abc import Callable

from kfp import dsl
from kfp.dsl.base_component import BaseComponent

from modelhaul.components import recovery, step_bodies
from modelhaul.components.runtime import Runtime, published

#: The step components, in pipeline order, plus the exit-handler variant of rollback.
STEP_NAMES = ("train", "package", "parse", "convert", "sign", "deploy", "promote", "smoke_check", "rollback")
NAMES = (*STEP_NAMES, "rollback_on_failure")
#: the components that run after promote (their bodies are in ``recovery``)
RECOVERY = ("smoke_check", "rollback", "rollback_on_failure")


def body(name: str) -> Callable:
    """The plain Python function behind component ``name``."""
    if name not in NAMES:
        raise KeyError(f"no component named {name!r}; known: {', '.join(NAMES)}")
    return getattr(recovery if name in RECOVERY else step_bodies, name)


def build(name: str, runtime: Runtime | None = None) -> BaseComponent:
    """Component ``name`` on ``runtime`` (default: the published, pinned runtime)."""
    rt = runtime or published()
    return dsl.component(
        body(name),
        base_image=rt.base_image,
        packages_to_install=rt.packages_for(name),
        install_kfp_package=rt.install_kfp_package,
    )


def build_all(runtime: Runtime | None = None) -> dict[str, BaseComponent]:
    """Every component on ``runtime``, by name."""
    rt = runtime or published()
    return {name: build(name, rt) for name in NAMES}
