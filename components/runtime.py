"""What a component's container runs on: a pinned modelhaul installed at start, or an image that has it.

The checked-in components (:func:`published`) pip-install ``modelhaul[<extras>]==<this version>``
into ``python:3.11-slim`` when the pod starts: that needs the release on a package index the
cluster can reach. :func:`image` runs every component on an image built from the repository's
``Dockerfile`` instead, with no install at all (a cluster without egress runs it); compile with
``python -m modelhaul.components.compile --image IMG``. The local runner gets no packages at all
(:func:`local`): it runs in the current environment, and a pip install there would change that
environment.
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
    "smoke_check": ("kfp", "convert"),  # a check typically pulls and runs the model
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


def image(name: str) -> Runtime:
    """Every component on the image ``name`` (modelhaul and its extras baked in): nothing installed at start."""
    if not name or any(c.isspace() for c in name):
        from modelhaul.errors import ConfigError

        raise ConfigError(f"image {name!r}: expected an image reference such as registry.example/modelhaul:0.1.0")
    return Runtime(base_image=name, packages={})


def local() -> Runtime:
    """The runtime for ``kfp.local.SubprocessRunner(use_venv=False)``: the current environment as is."""
    return Runtime(packages={}, pod_credentials=False)
