"""The bodies of the KFP components: one function per step, each calling one ``modelhaul.steps`` function.

KFP copies each function's source text into the container, so every body is self-contained: it
imports inside itself, and its NamedTuple return type is spelled inline (KFP evaluates it in a
module that has ``from typing import *``). No ``from __future__ import annotations`` here: KFP
reads the annotations as real types. The bodies take empty strings and zeros for "not set",
because those survive every KFP backend and the local runner alike.

Each step component writes its step result on a ``Model`` artifact (see
:func:`modelhaul.components.outputs.record`): the metadata carries ``ref``, ``digest``,
``format`` and ``media_type``, and the file is a small JSON pointer, never model bytes.
"""

from typing import NamedTuple

from kfp.dsl import Model, Output, PipelineTaskFinalStatus


def train(
    model: Output[Model],
    entry_point: str,
    params: dict = {},  # noqa: B006 - KFP needs a literal default; the body never mutates it
    tracking_uri: str = "",
    experiment: str = "modelhaul",
    run_name: str = "",
    registered_model: str = "",
    alias: str = "",
) -> NamedTuple("TrainOutputs", [("model_uri", str), ("run_id", str), ("metrics", dict)]):  # noqa: UP014
    """Train under an MLflow run; the model stays in MLflow, its URI goes to the next step."""
    from modelhaul import steps
    from modelhaul.components.outputs import parameter, record

    res = steps.train(entry_point=entry_point, params=dict(params or {}), tracking_uri=tracking_uri or None,
                      experiment=experiment, run_name=run_name or None,
                      registered_model=registered_model or None, alias=alias or None)
    record(model, {**res, "ref": res.get("model_uri"), "format": "mlflow"})
    return (str(res["model_uri"]), str(res.get("run_id") or ""), parameter(res.get("metrics") or {}))


def package(
    model: Output[Model],
    source: str,
    repository: str,
    tag: str,
    tracking_uri: str = "",
    bundle_format: str = "modelpack",
    plain_http: bool = False,
    insecure: bool = False,
) -> NamedTuple("PackageOutputs", [("ref", str), ("digest", str)]):  # noqa: UP014
    """Publish the MLflow model (or a directory) with its run metadata as ``repository:tag``."""
    from modelhaul import steps
    from modelhaul.components.outputs import record

    res = steps.package(source=source, ref=f"{repository}:{tag}", tracking_uri=tracking_uri or None,
                        bundle_format=bundle_format, plain_http=plain_http, insecure=insecure)
    record(model, res)
    return (res["ref"], res["digest"])


def parse(
    model: Output[Model],
    ref: str,
    dest_ref: str = "",
    trust: bool = False,
    plain_http: bool = False,
    insecure: bool = False,
) -> NamedTuple("ParseOutputs", [("ref", str), ("digest", str), ("signature", dict)]):  # noqa: UP014
    """Read the signature and layers from the model files into its config (a new manifest)."""
    from modelhaul import steps
    from modelhaul.components.outputs import parameter, record

    res = steps.parse(ref=ref, dest_ref=dest_ref or None, trust=trust, plain_http=plain_http,
                      insecure=insecure)
    record(model, res)
    return (res["ref"], res["digest"], parameter(res.get("signature") or {}))


def convert(
    model: Output[Model],
    ref: str,
    repository: str,
    tag: str,
    to: str = "onnx",
    tolerance: float = 0.0,
    opset: int = 0,
    trust: bool = False,
    plain_http: bool = False,
    insecure: bool = False,
) -> NamedTuple("ConvertOutputs", [("ref", str), ("digest", str), ("parity", dict)]):  # noqa: UP014
    """Convert, prove parity on the same inputs, push ``repository:tag-<to>``; fails on a parity miss."""
    from modelhaul import steps
    from modelhaul.components.outputs import parameter, record

    res = steps.convert(ref=ref, to=to, dest_ref=f"{repository}:{tag}-{to}", tolerance=tolerance or None,
                        opset=opset or None, trust=trust, plain_http=plain_http, insecure=insecure)
    record(model, res)
    return (res["ref"], res["digest"], parameter(res.get("parity") or {}))


def deploy(
    model: Output[Model],
    ref: str,
    target: str = "seldon",
    name: str = "",
    namespace: str = "default",
    canary_percent: int = 0,
    stable_ref: str = "",
    render_dir: str = "",
    in_cluster: bool = False,
    wait: bool = True,
    timeout: float = 600.0,
    initializer_image: str = "",
    registry_secret: str = "",
    plain_http: bool = False,
    insecure: bool = False,
) -> NamedTuple("DeployOutputs", [("deployment", dict), ("name", str), ("state", str),  # noqa: UP014
                                  ("stable_ref", str)]):
    """Serve ``ref`` on Seldon Core or KServe; with ``canary_percent`` > 0 beside the stable model.

    A Seldon canary needs a stable model. When there is none yet (a first run) nothing is deployed
    (``state`` ``Skipped``): promote deploys the model once it passes the gate, and a rejected
    first model never serves. ``deployment`` is the step result plus the settings it was called
    with, so that promote and rollback redeploy to the same place.
    """
    from modelhaul import steps
    from modelhaul.components.outputs import parameter, record
    from modelhaul.serving.deploy import default_name

    settings = {"target": target, "name": name or default_name(ref), "namespace": namespace,
                "render_dir": render_dir or None, "in_cluster": in_cluster, "wait": wait, "timeout": timeout,
                "initializer_image": initializer_image or None, "registry_secret": registry_secret or None}
    res = steps.deploy(ref=ref, canary_percent=canary_percent or None, stable_ref=stable_ref or None,
                       plain_http=plain_http, insecure=insecure, **settings)
    deployment = parameter(res)  # the step result names how to deploy there again
    record(model, deployment)
    return (deployment, str(deployment.get("name") or ""), str(deployment.get("state") or ""),
            str(deployment.get("stable_ref") or ""))


def sign(
    model: Output[Model],
    ref: str,
    key: str = "",
    plain_http: bool = False,
    insecure: bool = False,
) -> NamedTuple("SignOutputs", [("ref", str), ("digest", str), ("signed", bool)]):  # noqa: UP014
    """Sign ``ref`` (OpenSSF model signing) and attach its SLSA provenance, as OCI referrers.

    The private key never travels as a parameter: ``key`` is a *path* in the pod (a mounted
    Secret), else the ``MODELHAUL_SIGNING_KEY`` env var (PEM text, from the signing Secret), with
    ``MODELHAUL_SIGNING_KEY_PASSWORD`` for an encrypted key. With neither, nothing is signed
    (``signed`` false), so one pipeline runs signed or unsigned by configuration.
    """
    import os

    from modelhaul import steps
    from modelhaul.components.outputs import record

    key = key or os.environ.get("MODELHAUL_SIGNING_KEY", "")
    if not key:
        print(f"no signing key configured; {ref} stays unsigned")
        record(model, {"ref": ref, "signed": False})
        return (ref, ref.rpartition("@")[2], False)
    res = steps.sign(ref=ref, key=key, plain_http=plain_http, insecure=insecure)
    record(model, {**res, "signed": True})
    print(f"signed {res['ref']} with key {res['key_id'][:16]} ({res['files']} files)")
    return (res["ref"], res["digest"], True)


def promote(
    model: Output[Model],
    ref: str,
    stage: str = "production",
    gate: list = [],  # noqa: B006 - KFP needs a literal default; the body never mutates it
    beats: str = "",
    min_delta: float = 0.0,
    tracking_uri: str = "",
    deployment: dict = {},  # noqa: B006 - as above
    require_signature: str = "",
    plain_http: bool = False,
    insecure: bool = False,
) -> str:
    """Gate the candidate; on pass move the stage tag, alias and traffic. A rejection changes nothing.

    Returns the decision: ``promoted``; ``rejected-with-canary`` when the candidate runs as a
    canary beside a stable model (the pipeline then retires that canary); else ``rejected``. The
    full step result (reason, checks, previous, ...) is on the ``model`` artifact. One output, not a
    NamedTuple: ``kfp.local`` evaluates ``dsl.If`` conditions only on a task's single output.
    """
    from modelhaul import steps
    from modelhaul.components.outputs import record

    res = steps.promote(ref=ref, stage=stage, gate=list(gate or []) or None, beats=beats or None,
                        min_delta=min_delta, tracking_uri=tracking_uri or None,
                        deployment=dict(deployment) if deployment else None,
                        require_signature=require_signature or None, plain_http=plain_http, insecure=insecure)
    record(model, res)
    print(f"{'promoted' if res['promoted'] else 'rejected'}: {res.get('reason')}")
    if res["promoted"]:
        return "promoted"
    canary_live = bool(deployment and deployment.get("canary_percent") and deployment.get("stable_ref"))
    return "rejected-with-canary" if canary_live else "rejected"


def rollback(
    model: Output[Model],
    ref: str,
    stage: str = "production",
    tracking_uri: str = "",
    deployment: dict = {},  # noqa: B006 - KFP needs a literal default; the body never mutates it
    plain_http: bool = False,
    insecure: bool = False,
) -> NamedTuple("RollbackOutputs", [("rolled_back", bool), ("reason", str), ("ref", str)]):  # noqa: UP014
    """Put back the digest that held ``stage`` before the last promotion (tag, alias, traffic)."""
    from modelhaul import steps
    from modelhaul.components.outputs import record

    res = steps.rollback(ref=ref, stage=stage, tracking_uri=tracking_uri or None,
                         deployment=dict(deployment) if deployment else None, plain_http=plain_http,
                         insecure=insecure)
    record(model, res)
    return (bool(res.get("rolled_back")), str(res.get("reason") or ""), str(res.get("ref") or ""))


def rollback_on_failure(
    status: PipelineTaskFinalStatus,
    repository: str,
    tag: str,
    to: str = "onnx",
    stage: str = "production",
    tracking_uri: str = "",
    target: str = "seldon",
    name: str = "",
    namespace: str = "default",
    render_dir: str = "",
    in_cluster: bool = False,
    initializer_image: str = "",
    registry_secret: str = "",
    plain_http: bool = False,
    insecure: bool = False,
) -> str:
    """Exit handler: when the run failed after it moved ``stage`` to its candidate, roll back.

    A run that failed before promoting left ``stage`` alone, and rolling back then would undo an
    earlier, good promotion; so this acts only when ``stage`` points at this run's candidate
    (``repository:tag-to``, what :func:`convert` pushed). The rollback restores tag, alias and the
    deployment (the previous model alone, where the pipeline deploys).
    """
    from modelhaul import artifacts, steps
    from modelhaul.registry_options import RegistryOptions
    from modelhaul.serving.deploy import default_name

    if status.state == "SUCCEEDED":
        return "run succeeded: nothing to roll back"
    opts = RegistryOptions.resolve(plain_http=plain_http, insecure=insecure)
    at_stage = artifacts.try_resolve(f"{repository}:{stage}", opts)
    candidate = artifacts.try_resolve(f"{repository}:{tag}-{to}", opts)
    if not candidate or not at_stage or at_stage.rsplit("@", 1)[-1] != candidate.rsplit("@", 1)[-1]:
        return f"run {status.state.lower()} before promoting: {stage} untouched"
    deployment = {"target": target, "name": name or default_name(candidate), "namespace": namespace,
                  "render_dir": render_dir or None, "in_cluster": in_cluster,
                  "initializer_image": initializer_image or None, "registry_secret": registry_secret or None}
    res = steps.rollback(ref=f"{repository}:{stage}", stage=stage, tracking_uri=tracking_uri or None,
                         deployment=deployment, plain_http=plain_http, insecure=insecure)
    return f"run {status.state.lower()} after promoting: {res.get('reason') or res}"
