"""The bodies of the KFP components: one function per step, each calling one ``modelhaul.steps`` function.

KFP copies each function's source text into the container, so every body is self-contained: it
imports inside itself, and its NamedTuple return type is spelled inline (KFP evaluates it in a
module that has ``from typing import *``). No ``from __future__ import annotations`` here: KFP
reads the annotations as real types. The bodies take empty strings and zeros for "not set",
because those survive every KFP backend and the local runner alike.

Lineage: every step after train takes the upstream model as ``source: Input[Model]`` and reads
the reference from its metadata (``ref``, ``digest``), so KFP's metadata store links train ->
package -> parse -> convert -> sign -> deploy -> promote. A string ``ref`` is taken only where a
pipeline starts from a reference (rollback). Model steps write ``model: Output[Model]`` (see
:func:`modelhaul.components.outputs.record`: metadata carries ``ref``, ``digest``, ``format`` and
``media_type``; the file is a small JSON pointer, never model bytes); training metrics and the
conversion's parity go out as ``Output[Metrics]``; deploy, promote and rollback results are not
models and go out as plain ``Artifact``\\ s.

The docstrings' ``Args:`` and ``Returns:`` sections become the per-input and per-output
descriptions of the compiled YAML (what the KFP UI shows).
"""


from kfp.dsl import Artifact, Input, Metrics, Model, Output

from modelhaul.components.inputs import document_choices


def train(
    model: Output[Model],
    metrics: Output[Metrics],
    entry_point: str,
    params: dict = {},  # noqa: B006 - KFP needs a literal default; the body never mutates it
    tracking_uri: str = "",
    experiment: str = "modelhaul",
    run_name: str = "",
    registered_model: str = "",
    alias: str = "",
):
    """Train under an MLflow run with autologging; the model stays in MLflow.

    Args:
        entry_point: Training code, ``package.module:function`` (called with ``params``; it logs a
            model) or an MLflow Project directory in the image.
        params: Keyword arguments for the training function, logged as the run's parameters.
        tracking_uri: The MLflow tracking server. Empty: ``MLFLOW_TRACKING_URI`` from the MLflow
            Secret; with neither the step fails (a pod-local store would vanish with the pod).
        experiment: MLflow experiment name.
        run_name: MLflow run name (empty: MLflow picks one).
        registered_model: Register the model under this name (empty: not registered).
        alias: Registered-model alias to set on the new version (empty: none).

    Returns:
        model: The logged MLflow model: metadata ``ref`` is its MLflow URI (``models:/...``),
            with ``run_id`` and ``metrics``.
        metrics: The run's final metrics (accuracy, ...), shown in the KFP UI.
    """
    given = dict(locals())  # the arguments KFP passed, before anything else is bound here
    from modelhaul import steps
    from modelhaul.components.inputs import arguments
    from modelhaul.components.outputs import log_metrics, record

    res = steps.train(**arguments("train", given, tracking_uri=steps.require_tracking_uri(tracking_uri)))
    record(model, {**res, "ref": res.get("model_uri"), "format": "mlflow"})
    log_metrics(metrics, res.get("metrics") or {})


def package(
    model: Output[Model],
    source: Input[Model],
    repository: str,
    tag: str,
    tracking_uri: str = "",
    bundle_format: str = "modelpack",
    plain_http: bool = False,
    insecure: bool = False,
):
    """Publish the trained MLflow model, with its run metadata, as ``repository:tag``.

    Args:
        source: The trained model (train's ``model``); its metadata ``ref`` is the MLflow model URI.
        repository: Registry repository, ``host/path`` (no tag).
        tag: Tag to publish under (the pipeline uses the run's job id).
        tracking_uri: The MLflow tracking server (empty: ``MLFLOW_TRACKING_URI`` from the MLflow Secret).
        bundle_format: Artifact layout, one of {bundle_formats}.
        plain_http: Talk HTTP, not HTTPS, to the registry.
        insecure: Accept the registry's TLS certificate without verifying it.

    Returns:
        model: The published artifact: metadata ``ref`` (digest-pinned), ``digest``, ``format``.
    """
    given = dict(locals())  # the arguments KFP passed, before anything else is bound here
    from modelhaul import steps
    from modelhaul.components.inputs import arguments
    from modelhaul.components.outputs import record, upstream_ref

    src = upstream_ref(source)
    uri = steps.require_tracking_uri(tracking_uri) if src.startswith(("runs:/", "models:/")) else tracking_uri
    res = steps.package(**arguments("package", given, source=src, ref=f"{repository}:{tag}", tracking_uri=uri))
    record(model, res, source)


document_choices(package)  # the bundle formats of its docstring, from the declarations


def parse(
    model: Output[Model],
    source: Input[Model],
    dest_ref: str = "",
    trust: bool = False,
    plain_http: bool = False,
    insecure: bool = False,
):
    """Read the signature and layers from the model files into its config (a new manifest).

    Args:
        source: The published model (package's ``model``).
        dest_ref: Where to push the parsed model (empty: the source's tag).
        trust: Load pickle/joblib files to read them (only for models you trust).
        plain_http: Talk HTTP, not HTTPS, to the registry.
        insecure: Accept the registry's TLS certificate without verifying it.

    Returns:
        model: The parsed artifact: metadata ``ref``, ``digest``, ``parent`` and ``signature``.
    """
    given = dict(locals())  # the arguments KFP passed, before anything else is bound here
    from modelhaul import steps
    from modelhaul.components.inputs import arguments
    from modelhaul.components.outputs import record, upstream_ref

    res = steps.parse(**arguments("parse", given, ref=upstream_ref(source)))
    record(model, res, source)


def convert(
    model: Output[Model],
    parity: Output[Metrics],
    source: Input[Model],
    repository: str,
    tag: str,
    to: str = "onnx",
    tolerance: float = 0.0,
    opset: int = 0,
    trust: bool = False,
    plain_http: bool = False,
    insecure: bool = False,
):
    """Convert, prove parity on the same inputs, push the candidate ``repository:tag-<to>``.

    A parity miss fails the step and pushes nothing.

    Args:
        source: The model to convert (parse's ``model``).
        repository: Registry repository of the candidate, ``host/path``.
        tag: Run tag; the candidate goes to ``<tag>-<to>``.
        to: Target format, ``onnx`` or ``torchscript``.
        tolerance: Largest accepted output difference (0: the format's default).
        opset: ONNX opset (0: the converter's default).
        trust: Load pickle/joblib files to convert them (only for models you trust).
        plain_http: Talk HTTP, not HTTPS, to the registry.
        insecure: Accept the registry's TLS certificate without verifying it.

    Returns:
        model: The converted candidate: metadata ``ref``, ``digest``, ``parent``, ``parity``.
        parity: Original against converted outputs on the same inputs (``max_abs_diff``,
            ``label_agreement``, ...), shown in the KFP UI.
    """
    given = dict(locals())  # the arguments KFP passed, before anything else is bound here
    from modelhaul import steps
    from modelhaul.components.inputs import arguments
    from modelhaul.components.outputs import log_metrics, record, upstream_ref

    res = steps.convert(**arguments("convert", given, ref=upstream_ref(source),
                                    dest_ref=steps.candidate_ref(repository=repository, tag=tag, to=to)))
    record(model, res, source)
    log_metrics(parity, res.get("parity") or {})


def sign(
    model: Output[Model],
    source: Input[Model],
    key: str = "",
    plain_http: bool = False,
    insecure: bool = False,
):
    """Sign the model (OpenSSF model signing) and attach its SLSA provenance, as OCI referrers.

    The private key never travels as a parameter. With no key configured nothing is signed, so one
    pipeline runs signed or unsigned by configuration.

    Args:
        source: The model to sign (convert's ``model``).
        key: Path of the PEM private key in the pod (a mounted Secret). Empty: the
            ``MODELHAUL_SIGNING_KEY`` env var (from the signing Secret), with
            ``MODELHAUL_SIGNING_KEY_PASSWORD`` for an encrypted key.
        plain_http: Talk HTTP, not HTTPS, to the registry.
        insecure: Accept the registry's TLS certificate without verifying it.

    Returns:
        model: The same model, signed or not: metadata ``ref``, ``digest``, ``signed``, ``key_id``.
    """
    given = dict(locals())  # the arguments KFP passed, before anything else is bound here
    import os

    from modelhaul import steps
    from modelhaul.components.inputs import arguments
    from modelhaul.components.outputs import record, upstream_ref

    ref = upstream_ref(source)
    upstream = {k: v for k, v in source.metadata.items() if k != "upstream_uri"}  # sign keeps the model as is
    key = key or os.environ.get("MODELHAUL_SIGNING_KEY", "")
    if not key:
        print(f"no signing key configured; {ref} stays unsigned")
        record(model, {**upstream, "signed": False}, source)
        return
    res = steps.sign(**arguments("sign", given, ref=ref, key=key))
    record(model, {**upstream, **res, "signed": True}, source)
    print(f"signed {res['ref']} with key {res['key_id'][:16]} ({res['files']} files)")


def deploy(
    deployment: Output[Artifact],
    source: Input[Model],
    target: str = "seldon",
    name: str = "",
    namespace: str = "default",
    canary_percent: int = 0,
    stable_ref: str = "",
    render_dir: str = "",
    in_cluster: bool = True,
    wait: bool = True,
    timeout: float = 600.0,
    initializer_image: str = "",
    registry_secret: str = "",
    trust: bool = False,
    plain_http: bool = False,
    insecure: bool = False,
):
    """Serve the model on Seldon Core or KServe; with ``canary_percent`` > 0 beside the stable model.

    A Seldon canary needs a stable model. When there is none yet (a first run) nothing is deployed
    (``state`` ``Skipped``): promote deploys the model once it passes the gate, and a rejected
    first model never serves.

    Args:
        source: The model to serve (sign's ``model``).
        target: ``seldon`` (Seldon Core v1 SeldonDeployment) or ``kserve`` (InferenceService).
        name: Name of the deployment (empty: derived from the repository).
        namespace: Kubernetes namespace to deploy into.
        canary_percent: Share of traffic for the model beside the stable one (0: replace it).
        stable_ref: The stable model for the canary (empty: the one serving now).
        render_dir: Write the manifests into this directory instead of applying them (empty:
            apply to the cluster).
        in_cluster: Apply with the pod's service account to the cluster the pipeline runs on.
        wait: Wait until the deployment is available.
        timeout: Seconds to wait for it.
        initializer_image: The modelhaul storage initializer image (empty: the default).
        registry_secret: Name of the Secret with the registry credentials the serving pods use.
        trust: Serve a model that parse marked unsafe (a pickle of it imports code outside the
            allow-list); only for models you trust.
        plain_http: Talk HTTP, not HTTPS, to the registry.
        insecure: Accept the registry's TLS certificate without verifying it.

    Returns:
        deployment: Where and what now serves: metadata ``ref``, ``digest``, ``target``, ``name``,
            ``namespace``, ``state``, ``stable_ref`` and the settings, so that promote and rollback
            deploy to the same place again.
    """
    given = dict(locals())  # the arguments KFP passed, before anything else is bound here
    from modelhaul import steps
    from modelhaul.components.inputs import DEPLOYMENT_PARAMS, arguments
    from modelhaul.components.outputs import record, upstream_ref

    args = arguments("deploy", given, ref=upstream_ref(source), in_cluster=in_cluster and not render_dir)
    res = steps.deploy(**args)
    settings = {p.name: args[p.name] for p in DEPLOYMENT_PARAMS if p.name in args}
    record(deployment, {**settings, **res}, source)  # the result names how to deploy there again


def promote(
    promotion: Output[Artifact],
    candidate: Input[Model],
    deployment: Input[Artifact] = None,
    stage: str = "production",
    gate: list = [],  # noqa: B006 - KFP needs a literal default; the body never mutates it
    beats: str = "",
    min_delta: float = 0.0,
    tracking_uri: str = "",
    require_signature: str = "",
    trust: bool = False,
    plain_http: bool = False,
    insecure: bool = False,
) -> str:
    """Gate the candidate; on pass move the stage tag, MLflow alias and traffic in one step.

    A rejection moves nothing and retires the candidate's canary (the stable model serves alone).
    One output, not a NamedTuple: ``kfp.local`` evaluates ``dsl.If`` conditions only on a task's
    single output.

    Args:
        candidate: The model to promote (sign's ``model``).
        deployment: Where the candidate runs (deploy's ``deployment``); on pass it serves alone
            there. Without it no traffic moves.
        stage: The stage tag to move (``<stage>-previous`` keeps the model it replaces).
        gate: Conditions over the candidate's metrics, such as ``accuracy >= 0.9``.
        beats: A metric that must beat the model at the stage (``-loss`` for lower-is-better).
        min_delta: The least margin for ``beats``.
        tracking_uri: The MLflow tracking server whose alias follows the stage (empty:
            ``MLFLOW_TRACKING_URI`` from the MLflow Secret).
        require_signature: A public key (PEM text or a path in the pod): an unsigned candidate,
            or one signed by another key, is rejected.
        trust: Promote a model that parse marked unsafe (a pickle of it imports code outside the
            allow-list); only for models you trust.
        plain_http: Talk HTTP, not HTTPS, to the registry.
        insecure: Accept the registry's TLS certificate without verifying it.

    Returns:
        promotion: The decision and what moved: metadata ``promoted``, ``reason``, ``checks``,
            ``previous``, ``ref`` and ``digest`` (at the stage when promoted).
        Output: ``promoted`` or ``rejected``.
    """
    given = dict(locals())  # the arguments KFP passed, before anything else is bound here
    from modelhaul import steps
    from modelhaul.components.inputs import arguments
    from modelhaul.components.outputs import record, upstream_ref

    res = steps.promote(**arguments("promote", given, ref=upstream_ref(candidate),
                                    deployment=dict(deployment.metadata) if deployment is not None else None))
    record(promotion, res, candidate)
    print(f"{'promoted' if res['promoted'] else 'rejected'}: {res.get('reason')}")
    return "promoted" if res["promoted"] else "rejected"
