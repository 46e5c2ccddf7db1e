"""The pipeline steps. Read this file to know the system.

Each step is one orchestrator-free function: keyword arguments that are plain JSON values, a small
JSON dict back that names the artifact it produced or acted on by a digest-pinned reference
(``ref``) and its ``digest``. Airflow operators (``modelhaul.operators``), KFP components
(``modelhaul.components``) and the ``modelhaul`` command are thin adapters over these functions.

Connection details come in as arguments or from the environment, never from hidden state:

* registry: ``plain_http``, ``insecure``, ``ca_file`` (else ``MODELHAUL_CA_FILE``), ``username``/
  ``password`` (else ``MODELHAUL_USERNAME``/``_PASSWORD``, the docker config, anonymous); ``oci:`` needs none.
* MLflow: ``tracking_uri`` (else ``MLFLOW_TRACKING_URI``).
* Kubernetes: ``kubeconfig`` / ``context`` (else in-cluster); with neither and no cluster, deploy
  renders manifests into ``render_dir``.

Model bytes never appear in a result: only references and small metadata do. Heavy libraries
(mlflow, onnx, torch, kubernetes, ...) are imported inside the functions: DAG parsing stays cheap.
"""

from __future__ import annotations

from typing import Any

from modelhaul.declarations import (
    DEPLOY,
    REGISTRY_ACCESS_NAMES,
    DeploymentSettings,
    KubeTarget,
    registry_options,
    unknown,
)
from modelhaul.interrupt import exit_cleanly_on_sigterm
from modelhaul.lookups import candidate_ref, deployment_status, reference_parts, try_resolve, which_cluster
from modelhaul.meter import HeldLines, LogLines, watching
from modelhaul.optional import needs_extras
from modelhaul.pipeline_run import require_tracking_uri, rollback_if_promoted, smoke_check
from modelhaul.reachability import check_cluster, check_mlflow, check_registry
from modelhaul.serving.initializer import SERVERS as INITIALIZER_SERVERS
from modelhaul.verbs import export, inspect, list_models, load_config, login, logout, pull, push, remove, save, tag

# What the door hands the adapters: the pipeline steps are defined below, the rest is imported from
# the module that holds it (each imports its heavy parts inside its functions: this import stays cheap)
__all__ = [
    # the pipeline steps, each with its declaration in declarations.STEPS
    "train", "package", "fetch", "parse", "convert", "deploy", "promote", "rollback", "sign", "verify",
    # the ormb-style verbs of the `modelhaul` command, on the local store and registries (modelhaul.verbs)
    "save", "push", "pull", "export", "inspect", "tag", "list_models", "remove", "login", "logout", "load_config",
    # what a pipeline run does around the steps (modelhaul.pipeline_run)
    "require_tracking_uri", "rollback_if_promoted", "smoke_check",
    # is a service reachable with these credentials: "Test" buttons, `modelhaul check` (modelhaul.reachability)
    "check_registry", "check_mlflow", "check_cluster",
    # looking things up: sensors, exit handlers, "which cluster?" (modelhaul.lookups)
    "candidate_ref", "reference_parts", "try_resolve", "which_cluster", "deployment_status",
    # how an adapter shows progress (modelhaul.meter) and stops cleanly on SIGTERM (modelhaul.interrupt)
    "watching", "LogLines", "HeldLines", "exit_cleanly_on_sigterm",
    # the serving pod's storage initializer (modelhaul.serving.materialize; the layouts it writes)
    "initialize", "INITIALIZER_SERVERS",
    "Result",
]

Result = dict[str, Any]


@needs_extras("train")
def train(
    *,
    entry_point: str,
    params: dict[str, Any] | None = None,
    tracking_uri: str | None = None,
    experiment: str = "modelhaul",
    run_name: str | None = None,
    registered_model: str | None = None,
    alias: str | None = None,
) -> Result:
    """Run training code inside an MLflow run with autologging.

    ``entry_point`` is ``"package.module:function"`` (called with ``**params``, it logs a model) or
    an MLflow Project directory (run with the local env manager). Returns
    ``{run_id, model_uri, model_id, experiment_id, metrics, registered_model, version}``.
    """
    from modelhaul.train import run_training

    return run_training(
        entry_point=entry_point,
        params=params or {},
        tracking_uri=tracking_uri,
        experiment=experiment,
        run_name=run_name,
        registered_model=registered_model,
        alias=alias,
    )


@needs_extras("package")
def package(
    *,
    source: str,
    ref: str,
    tracking_uri: str | None = None,
    bundle_format: str = "modelpack",
    config: dict[str, Any] | None = None,
    **registry: Any,
) -> Result:
    """Publish a model to ``ref``: from an MLflow URI (``runs:/``, ``models:/``) or a local directory.

    The MLflow run's metadata becomes the ModelConfig (``config`` overrides fields). Returns
    ``{ref, digest, size, format, framework, media_type, bundle_format}``.
    """
    from modelhaul.packaging import package_model

    return package_model(source, ref, tracking_uri=tracking_uri, bundle_format=bundle_format, config=config,
                         options=registry_options(registry, "package"))


@needs_extras("fetch")
def fetch(
    *,
    ref: str,
    dest: str,
    include: list[str] | None = None,
    **registry: Any,
) -> Result:
    """Write the model at ``ref`` out as ``dest/ormbfile.yaml`` + ``dest/model/...``, digests verified.

    ``include`` (globs over ``model/<path>``, e.g. ``["*.onnx"]``) fetches only the chosen files of a
    ModelPack artifact: the other layers never leave the registry. Returns ``{ref, digest, path,
    model_dir, format, framework}``.
    """
    from modelhaul import artifacts

    opts = registry_options(registry, "fetch")
    return artifacts.fetch(ref, dest, options=opts, include=include)


@needs_extras("parse")
def parse(
    *,
    ref: str,
    dest_ref: str | None = None,
    trust: bool = False,
    **registry: Any,
) -> Result:
    """Read the model's signature and layers from its files and push them into its config.

    The result is a new manifest (at ``dest_ref``, default: the same tag) whose provenance names
    the parent digest. Pickle/joblib files are only loaded when ``trust`` is true. Returns
    ``{ref, digest, parent, format, framework, signature}``.
    """
    from modelhaul.packaging import parse_model

    return parse_model(ref, dest_ref, trust=trust, options=registry_options(registry, "parse"))


@needs_extras("convert")
def convert(
    *,
    ref: str,
    to: str = "onnx",
    dest_ref: str,
    tolerance: float | None = None,
    opset: int | None = None,
    trust: bool = False,
    **registry: Any,
) -> Result:
    """Convert the model (to ``onnx`` or ``torchscript``), prove parity, push a derived artifact.

    Original and converted models run on the same inputs (the MLflow input example, else inputs
    synthesized from the signature); a difference beyond ``tolerance`` fails the step and pushes
    nothing. Returns ``{ref, digest, parent, format, parity: {max_abs_diff, label_agreement, ...}}``.
    """
    from modelhaul.packaging import convert_model

    return convert_model(ref, dest_ref, to=to, tolerance=tolerance, opset=opset, trust=trust,
                         options=registry_options(registry, "convert"))


@needs_extras("deploy")
def deploy(*, ref: str, trust: bool = False, **settings: Any) -> Result:
    """Serve the model on Seldon Core v1 (``target="seldon"``) or KServe (``"kserve"``).

    ``settings``: the fields of ``DeploymentSettings``, ``KubeTarget`` and ``REGISTRY_ACCESS`` (see
    declarations.py). With ``canary_percent`` the model runs beside ``stable_ref`` (or the model now
    serving) with that share of traffic. With
    ``render_dir`` — or no cluster configured — the manifests are written there (one file per
    resource) instead of applied. A model parse marked unsafe is refused unless ``trust``. Returns
    ``{ref, digest, target, name, namespace, canary_percent, manifests, applied, state, url}``.
    """
    from modelhaul.serving.deploy import deploy_model

    unknown(DEPLOY, {"ref": ref, "trust": trust, **settings}, "deploy")
    access = {k: v for k, v in settings.items() if k in REGISTRY_ACCESS_NAMES}
    options = registry_options(access, "deploy")
    return deploy_model(ref, DeploymentSettings.of(settings), KubeTarget.of(settings), options,
                        username=access.get("username"), password=access.get("password"),
                        check_pickles=not trust)


@needs_extras("promote")
def promote(
    *,
    ref: str,
    stage: str = "production",
    gate: list[str] | str | None = None,
    beats: str | None = None,
    min_delta: float = 0.0,
    tracking_uri: str | None = None,
    deployment: dict[str, Any] | None = None,
    kubeconfig: str | None = None, context: str | None = None,  # instead of the deploy result's cluster
    require_signature: str | None = None,
    trust: bool = False,
    **registry: Any,
) -> Result:
    """Move the ``stage`` tag to the candidate ``ref`` when its gate passes.

    ``gate``: expressions like ``"accuracy >= 0.9"`` over the candidate's metrics. ``beats``: a
    metric that must beat the model now at the stage by at least ``min_delta`` (``"-loss"`` for
    lower-is-better). On pass: the stage tag moves (no bytes move), the previous digest is kept for
    rollback, the MLflow alias named by the provenance follows, and a ``deployment`` (the result
    of :func:`deploy`) shifts to 100% on the candidate. A rejected gate moves no tag or alias and
    retires the candidate's canary. ``require_signature`` (a public key, path or PEM text): a
    candidate that is not signed by it, or whose files differ from the signature, is rejected the
    same way, and one parse marked unsafe (a pickle importing code) unless ``trust``. A cluster that
    would refuse the deployment's patch fails it before any tag moves.
    """
    from modelhaul.promote import promote_model

    opts = registry_options(registry, "promote")
    return promote_model(ref=ref, stage=stage, gate=gate, beats=beats, min_delta=min_delta,
                         tracking_uri=tracking_uri, deployment=deployment, options=opts,
                         require_signature=require_signature or None, kubeconfig=kubeconfig, context=context,
                         trust=trust)


@needs_extras("rollback")
def rollback(
    *,
    ref: str,
    stage: str = "production",
    tracking_uri: str | None = None,
    deployment: dict[str, Any] | None = None,
    kubeconfig: str | None = None, context: str | None = None,  # instead of the deploy result's cluster
    only_if_digest: str | None = None,
    **registry: Any,
) -> Result:
    """Restore the digest that was at ``stage`` before the last promotion (tag, alias, traffic).

    ``ref`` names the repository (any tag). Safe to re-run. With ``only_if_digest`` (this run's
    candidate) it acts only when ``stage`` points at that digest, else returns ``skipped: true``:
    an exit handler of a run whose candidate was never promoted leaves an earlier promotion alone.
    Returns ``{rolled_back, reason, stage, restored, replaced, ref, digest}``.
    """
    from modelhaul.promote import rollback_model

    opts = registry_options(registry, "rollback")
    return rollback_model(ref=ref, stage=stage, tracking_uri=tracking_uri, deployment=deployment,
                          options=opts, only_if_digest=only_if_digest, kubeconfig=kubeconfig, context=context)


@needs_extras("sign")
def sign(
    *,
    ref: str,
    key: str,
    key_password: str | None = None,
    **registry: Any,
) -> Result:
    """Sign the model (OpenSSF model signing) and attach its SLSA provenance, both as OCI referrers.

    ``key``: an elliptic-curve private key, PEM (a path or the PEM text; else ``MODELHAUL_SIGNING_KEY``),
    ``key_password`` for an encrypted one (else ``MODELHAUL_SIGNING_KEY_PASSWORD``). Returns
    ``{ref, digest, key_id, files, signature, attestation}``.
    """
    import os

    from modelhaul.signing import sign_model

    opts = registry_options(registry, "sign")
    return sign_model(ref, key or os.environ.get("MODELHAUL_SIGNING_KEY", ""),
                      password=key_password or os.environ.get("MODELHAUL_SIGNING_KEY_PASSWORD"), options=opts)


@needs_extras("verify")
def verify(
    *,
    ref: str,
    key: str,
    **registry: Any,
) -> Result:
    """Check the model's signature against the public ``key`` (a path or PEM text) and its files.

    Raises SignatureError when it is unsigned, signed by another key, or its files differ. Returns
    ``{ref, digest, verified, key_id, files, provenance, line}`` (provenance: a one-phrase summary;
    line: the one line the CLI prints).
    """
    from modelhaul.signing import verify_model

    opts = registry_options(registry, "verify")
    return verify_model(ref, key, options=opts).to_dict()


def initialize(uri: str, dest: str, **options: Any) -> Result:
    """The serving pod's storage initializer: fetch the model ``uri`` names, verify it, lay it out in ``dest``.

    ``options`` are :func:`modelhaul.serving.materialize.initialize`'s (server, name, trust, verify_key ...).
    """
    from modelhaul.serving.materialize import initialize as materialize

    return materialize(uri, dest, **options)
