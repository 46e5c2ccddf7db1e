"""What a component's container runs on: a pinned base image and a pinned modelhaul with its extras.

The compiled components pip-install ``modelhaul[<extras>]==<this version>`` into
``python:3.11-slim`` when the pod starts, so a cluster runs them with no image to build. Teams
that bake an image with modelhaul in it pass it as ``base_image`` with ``packages={}``. The local
runner gets no packages at all (:func:`local`): it runs in the current environment, and a pip
install there would change that environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import version

#: The image the published components run on (pinned, so a recompile gives the same YAML).
BASE_IMAGE = "python:3.11-slim"

#: modelhaul extras each component needs in its container; ``kfp`` brings the KFP executor.
EXTRAS: dict[str, tuple[str, ...]] = {
    "train": ("kfp", "mlflow", "convert"),
    "package": ("kfp", "mlflow"),
    "parse": ("kfp", "convert"),
    "convert": ("kfp", "convert"),
    "sign": ("kfp", "sign"),
    "deploy": ("kfp", "kube"),
    "promote": ("kfp", "mlflow", "kube", "sign"),
    "rollback": ("kfp", "mlflow", "kube"),
    "rollback_on_failure": ("kfp", "mlflow", "kube"),
}

#: Requirements beyond modelhaul's extras. Training code (the shipped example too) needs the full
#: MLflow (pandas, SQL tracking stores), which the ``mlflow`` extra's mlflow-skinny leaves out.
EXTRA_PACKAGES: dict[str, tuple[str, ...]] = {"train": ("mlflow==3.17.2",)}


def modelhaul_version() -> str:
    """The installed modelhaul version: the components pin exactly this release."""
    return version("modelhaul")


@dataclass(frozen=True)
class Runtime:
    """Image and packages for a set of components."""

    base_image: str = BASE_IMAGE
    #: component name -> pip requirements; a name missing here installs nothing.
    packages: dict[str, list[str]] = field(default_factory=dict)
    #: let KFP add its own ``pip install kfp``; off because the ``kfp`` extra already pins it.
    install_kfp_package: bool = False
    #: wire registry/MLflow Secrets into the pods (see ``credentials``); off locally, where the
    #: runner would apply the ``DOCKER_CONFIG`` env var to this machine's processes.
    pod_credentials: bool = True

    def packages_for(self, name: str) -> list[str]:
        return list(self.packages.get(name, []))


def published(base_image: str = BASE_IMAGE) -> Runtime:
    """The runtime of the checked-in YAML: pinned modelhaul with per-component extras."""
    v = modelhaul_version()
    return Runtime(base_image=base_image,
                   packages={name: [f"modelhaul[{','.join(extras)}]=={v}", *EXTRA_PACKAGES.get(name, ())]
                             for name, extras in EXTRAS.items()})


def local() -> Runtime:
    """The runtime for ``kfp.local.SubprocessRunner(use_venv=False)``: the current environment as is."""
    return Runtime(packages={}, pod_credentials=False)
