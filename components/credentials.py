"""Registry and MLflow credentials for component pods: from Kubernetes Secrets, never parameters.

Pipeline parameters are stored in the run record and shown in the UI, so secrets go through
``kfp.kubernetes`` instead. Every Secret is optional: a pod whose Secret does not exist runs
anonymously (or with whatever its service account's image pull config allows). The local runner
ignores these settings; locally the environment (``MODELHAUL_USERNAME``...) or the docker config
supply credentials.

* ``registry_secret`` — keys ``MODELHAUL_USERNAME`` and ``MODELHAUL_PASSWORD``, exposed as env
  vars of the same names. The same Secret can serve as Seldon's ``envSecretRefName`` for the
  model initializer, which reads the same names.
* ``docker_config_secret`` — a generic Secret with the key ``config.json`` (a docker config),
  mounted as a directory that ``DOCKER_CONFIG`` points at; credential helpers do not work in a pod.
* ``signing_secret`` — ``MODELHAUL_SIGNING_KEY`` (the PEM private key) and optionally
  ``MODELHAUL_SIGNING_KEY_PASSWORD``, for the sign component only.
* ``mlflow_secret`` — ``MLFLOW_TRACKING_URI`` (used when the pipeline's ``tracking_uri`` is empty), and any
  of ``MLFLOW_TRACKING_USERNAME``, ``MLFLOW_TRACKING_PASSWORD``,
  ``MLFLOW_TRACKING_TOKEN``.
"""

from __future__ import annotations

from typing import Any

from kfp import kubernetes
from kfp.dsl import PipelineTask

REGISTRY_ENV = ("MODELHAUL_USERNAME", "MODELHAUL_PASSWORD")
SIGNING_ENV = ("MODELHAUL_SIGNING_KEY", "MODELHAUL_SIGNING_KEY_PASSWORD")
MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
DOCKER_CONFIG_DIR = "/var/run/modelhaul/docker"


def use_registry_credentials(task: PipelineTask, *, registry_secret: Any, docker_config_secret: Any
                             ) -> PipelineTask:
    """Give ``task`` the registry credentials from the named (optional) Secrets."""
    kubernetes.use_secret_as_env(task, secret_name=registry_secret,
                                 secret_key_to_env={k: k for k in REGISTRY_ENV}, optional=True)
    kubernetes.use_secret_as_volume(task, secret_name=docker_config_secret, mount_path=DOCKER_CONFIG_DIR,
                                    optional=True)
    task.set_env_variable("DOCKER_CONFIG", DOCKER_CONFIG_DIR)
    return task


def use_mlflow_credentials(task: PipelineTask, *, mlflow_secret: Any) -> PipelineTask:
    """Give ``task`` the MLflow tracking credentials from the named (optional) Secret."""
    kubernetes.use_secret_as_env(task, secret_name=mlflow_secret,
                                 secret_key_to_env={k: k for k in MLFLOW_ENV}, optional=True)
    return task


def use_signing_key(task: PipelineTask, *, signing_secret: Any) -> PipelineTask:
    """Give the sign ``task`` the private key from the named (optional) Secret."""
    kubernetes.use_secret_as_env(task, secret_name=signing_secret,
                                 secret_key_to_env={k: k for k in SIGNING_ENV}, optional=True)
    return task
