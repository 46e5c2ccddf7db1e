"""The deploy step: build the serving manifests of an artifact, validate them, render or apply them.

With a cluster configured (``kubeconfig``/``context`` given, or ``in_cluster``) and no
``render_dir``, the manifests go to :func:`modelhaul.serving.kube.apply_and_wait`. Otherwise they
are written to ``render_dir`` (default ``$MODELHAUL_RENDER_DIR``, else ``./modelhaul-manifests``),
one file per resource named ``<kind>-<name>.yaml`` (kind in lower case) — a GitOps workflow.

Every target-specific step (which manifests, where the stable model of a rendered manifest is,
whether a canary needs one) is the target's row in :mod:`modelhaul.serving.targets`; an unknown
target is refused in one line naming the choices.

Finding the stable model of a canary when ``stable_ref`` is not given, first match wins:

1. the model on the ``main`` predictor (Seldon) — or, for KServe, the ``modelhaul.io/stable-ref``
   of a canary else the ``storageUri`` — of the manifest rendered before in ``render_dir``;
2. the ``production`` tag of the candidate's repository.

Seldon needs one (its canary is a second predictor); KServe does not (it keeps the last rolled-out
revision itself), so there the stable model is only recorded in an annotation.

The registry-credentials Secret is created in a cluster only from credentials given explicitly to
this function (``username``/``password``), never from the environment. A render directory is meant
to be committed, so render mode never writes a secret value: explicit credentials are refused there,
and the manifests reference a Secret the user creates (``registry_secret``, default
``modelhaul-registry`` when the registry is reached with credentials); the result names it and
carries the ``kubectl create secret`` line, with placeholders, as ``secret_hint``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from modelhaul.declarations import DeploymentSettings, KubeTarget
from modelhaul.errors import DeployError
from modelhaul.formats.pickle_safety import refuse_unsafe
from modelhaul.registry_options import RegistryOptions
from modelhaul.serving import initializer, targets
from modelhaul.serving.model import ServedModel
from modelhaul.serving.platform import DEFAULT_SECRET, ServingTarget

STAGE_TAG = "production"
DEFAULT_RENDER_DIR = "modelhaul-manifests"
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 45  # room for the suffixes Seldon and KServe add to the names of what they create


# -- names ---------------------------------------------------------------------------------------


def default_name(ref: str) -> str:
    """A DNS-1035 label from the repository's last path component (``team/Iris_v2`` -> ``iris-v2``)."""
    from modelhaul.reference import parse

    base = parse(ref).repository.rsplit("/", 1)[-1].lower()
    name = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", base)).strip("-")
    if name and not name[0].isalpha():
        name = "m-" + name
    return name[:MAX_NAME].rstrip("-") or "model"


def check_name(name: str) -> str:
    if not isinstance(name, str) or len(name) > MAX_NAME or not _NAME_RE.match(name):
        raise DeployError(
            f"name {name!r}: use lower-case letters, digits and '-', starting with a letter, at most "
            f"{MAX_NAME} characters"
        )
    return name


def check_canary(canary_percent: Any) -> int | None:
    if canary_percent is None:
        return None
    if isinstance(canary_percent, bool) or not isinstance(canary_percent, int) \
            or not 0 <= canary_percent <= 100:
        raise DeployError(f"canary_percent {canary_percent!r}: expected a whole number from 0 to 100")
    return canary_percent


# -- manifests -----------------------------------------------------------------------------------


def registry_secret_manifest(name: str, namespace: str, username: str, password: str) -> dict[str, Any]:
    """The Secret the initializer reads its registry credentials from (as environment variables)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app.kubernetes.io/managed-by": "modelhaul"}},
        "type": "Opaque",
        "stringData": {"MODELHAUL_USERNAME": username, "MODELHAUL_PASSWORD": password},
    }


def create_secret_hint(name: str, namespace: str) -> str:
    """The command that creates the registry Secret a rendered manifest refers to (placeholders only)."""
    return (f"kubectl create secret generic {name} --namespace {namespace} "
            "--from-literal=MODELHAUL_USERNAME=<username> --from-literal=MODELHAUL_PASSWORD=<password>")


def build_manifests(
    model: ServedModel,
    *,
    target: str,
    name: str,
    namespace: str = "default",
    stable: ServedModel | None = None,
    canary_percent: int | None = None,
    initializer_image: str | None = None,
    registry_secret: str | None = None,
    username: str | None = None,
    password: str | None = None,
    plain_http: bool = False,
    insecure: bool = False,
) -> list[dict[str, Any]]:
    """Every manifest for serving ``model``, in apply order, validated strictly. No I/O.

    Order: the registry Secret (when credentials are given), then the target's (for KServe the
    ClusterStorageContainer, then the InferenceService).
    """
    from modelhaul.serving import validate

    row = _target(target)
    image = initializer_image or initializer.DEFAULT_IMAGE
    if bool(username) != bool(password):
        raise DeployError("registry credentials: give both username and password, or neither")
    out: list[dict[str, Any]] = []
    secret_name = registry_secret
    if username and password:
        secret_name = registry_secret or DEFAULT_SECRET
        out.append(registry_secret_manifest(secret_name, namespace, username, password))
    out += row.build(model, name=name, namespace=namespace, image=image, secret_name=secret_name, stable=stable,
                     canary_percent=canary_percent, plain_http=plain_http, insecure=insecure)
    return validate.validate_all(out)


def _target(target: object) -> ServingTarget:
    """The row of a target given by its name (exactly: ``seldon``, ``kserve``), else one clear error."""
    if target not in targets.TABLE:
        raise targets.unknown(target)
    return targets.get(target)


# -- render --------------------------------------------------------------------------------------


def file_name(manifest: dict[str, Any]) -> str:
    return f"{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml"


def render(manifests: list[dict[str, Any]], render_dir: str | Path) -> list[str]:
    """Write one YAML file per manifest into ``render_dir``; return their paths in apply order.

    The text depends only on the manifests (fixed key order, no timestamps), so a re-render of the
    same model is byte-identical. A Secret with values is refused: the directory gets committed.
    """
    import yaml

    for m in manifests:
        if m.get("kind") == "Secret" and (m.get("data") or m.get("stringData")):
            meta = m["metadata"]
            hint = create_secret_hint(meta["name"], meta.get("namespace") or "default")
            raise DeployError(f"Secret {meta['name']}: secret values are never written to a render directory; "
                              f"create it with `{hint}`")
    d = Path(render_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for m in manifests:
        path = d / file_name(m)
        text = yaml.safe_dump(m, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000)
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    return paths


def read_rendered(render_dir: str | Path, kind: str, name: str) -> dict[str, Any] | None:
    """The manifest rendered before for ``kind``/``name`` in ``render_dir``, if any."""
    from modelhaul.useryaml import read_yaml_file

    path = Path(render_dir) / f"{kind.lower()}-{name}.yaml"
    if not path.is_file():
        return None
    data = read_yaml_file(path, "rendered manifest", error=DeployError)
    return data if isinstance(data, dict) else None


def _stable_from_render(render_dir: str | Path, target: str, name: str) -> str | None:
    """The stable model named by a manifest rendered before (its ``modelhaul.io/ref``, else its URI)."""
    row = _target(target)
    m = read_rendered(render_dir, row.kind, name)
    if not m:
        return None
    ref, uri = row.stable_in(m)
    return ref or (initializer.parse_uri(uri)[0] if uri else None)


def find_stable(pinned: str, *, target: str, name: str, render_dir: str | Path | None,
                options: RegistryOptions | None) -> str | None:
    """The stable model for a canary (see the module docstring for the rule), or None."""
    from modelhaul import artifacts
    from modelhaul.reference import parse

    if render_dir is not None:
        found = _stable_from_render(render_dir, target, name)
        if found:
            return found
    stage = parse(pinned).unpinned().with_tag(STAGE_TAG)
    return artifacts.try_resolve(str(stage), options)


# -- the step ------------------------------------------------------------------------------------


def deploy_model(ref: str, settings: DeploymentSettings, kube: KubeTarget | None = None,
                 options: RegistryOptions | None = None, *, username: str | None = None,
                 password: str | None = None, check_pickles: bool = False) -> dict[str, Any]:
    """Serve ``ref`` on Seldon Core v1 or KServe: render the manifests, or apply them and wait.

    ``options`` reaches the registry (to read the configs); ``username``/``password`` are the
    credentials to put into the rendered Secret. Returns ``{ref, digest, target, name, namespace,
    canary_percent, manifests, applied, state, url}`` (``manifests``: the written files in render
    mode) plus ``stable_ref`` (the canary's stable model), ``initializer_image`` and
    ``registry_secret`` (the Secret's name, or None) and the render/cluster settings, so that
    promote can deploy there again. A Seldon canary with no stable model to run beside (the first
    rollout) deploys nothing: ``state`` is ``Skipped`` and promote serves the model if it passes.
    """
    from modelhaul import artifacts

    target, name, namespace = settings.target, settings.name, settings.namespace
    canary_percent, stable_ref, render_dir = settings.canary_percent, settings.stable_ref, settings.render_dir
    wait, timeout = settings.wait, settings.timeout
    initializer_image, registry_secret = settings.initializer_image, settings.registry_secret
    kube = kube or KubeTarget()
    kubeconfig, context, in_cluster = kube.kubeconfig, kube.context, kube.in_cluster
    row = _target(target)
    canary_percent = check_canary(canary_percent)
    options = options or RegistryOptions.resolve()
    cfg, pinned = artifacts.load_config(ref, options)
    if check_pickles:  # the deploy step's own model; a redeploy of a model already serving is not asked again
        refuse_unsafe(cfg, pinned, "deploy", trust=False)
    model = ServedModel(pinned, cfg)
    name = check_name(name) if name else default_name(pinned)
    cluster = bool(kubeconfig or context or in_cluster) and render_dir is None
    if not cluster:
        render_dir = render_dir or os.environ.get("MODELHAUL_RENDER_DIR") or DEFAULT_RENDER_DIR
        if username or password:
            raise DeployError(
                f"registry credentials are not written into the render directory {render_dir} (it is meant to "
                f"be committed): create the Secret yourself with `{create_secret_hint(DEFAULT_SECRET, namespace)}`"
                f", pass registry_secret={DEFAULT_SECRET} (--registry-secret), and give the credentials to "
                "read the registry through MODELHAUL_USERNAME/MODELHAUL_PASSWORD or `modelhaul login`")
        if options.has_credentials and not registry_secret:
            registry_secret = DEFAULT_SECRET  # the initializer in the cluster will need them too

    stable, skipped = None, None
    if canary_percent is not None:
        found = stable_ref or find_stable(pinned, target=target, name=name, render_dir=render_dir,
                                          options=options)
        if found:
            stable_cfg, stable_pinned = artifacts.load_config(found, options)
            stable = ServedModel(stable_pinned, stable_cfg)
            if stable.digest == model.digest:
                raise DeployError(f"{pinned}: the candidate is already the stable model of {name}; "
                                  "deploy it without canary_percent")
        elif row.canary_needs_stable:
            skipped = f"{name}: no stable model serves yet, so there is nothing to run a canary beside"

    result: dict[str, Any] = {
        "ref": pinned,
        "digest": model.digest,
        "target": target,
        "name": name,
        "namespace": namespace,
        "canary_percent": canary_percent,
        "stable_ref": stable.ref if stable else None,
        # how to deploy here again (promote, rollback): names only, never a credential
        "initializer_image": initializer_image or initializer.DEFAULT_IMAGE,
        "registry_secret": (registry_secret or DEFAULT_SECRET) if (username and password) else registry_secret,
        "render_dir": None if cluster else str(render_dir),
        "kubeconfig": kubeconfig if cluster else None,
        "context": context if cluster else None,
        "in_cluster": bool(in_cluster) if cluster else False,
        "wait": wait,
        "timeout": timeout,
    }
    if skipped:
        # A first rollout: serving an ungated model at 100% would bypass the gate, so nothing is
        # deployed; promote serves the model once it passes (and a rejected one never serves).
        return {**result, "manifests": [], "applied": [], "state": "Skipped", "url": None, "reason": skipped}
    from modelhaul.serving import runtimes, steady

    if model.kind == "onnx":  # refused here rather than by the runtime in a crash-looping pod
        runtimes.check_loadable(pinned, model.config.labels, runtimes.onnx_image_of(
            target, kubeconfig=kubeconfig, context=context, in_cluster=in_cluster) if cluster
            else runtimes.onnx_image(target))

    # a digest that already serves keeps the reference it serves by: no pod of it rolls
    kind = row.kind
    now = (steady.live_manifest(kind, name, namespace, kubeconfig=kubeconfig, context=context, in_cluster=in_cluster)
           if cluster else read_rendered(render_dir, kind, name))
    refs = steady.served_refs(now)
    manifests = build_manifests(
        steady.as_served(model, refs), target=target, name=name, namespace=namespace,
        stable=steady.as_served(stable, refs), canary_percent=canary_percent,
        initializer_image=initializer_image, registry_secret=registry_secret, username=username,
        password=password, plain_http=options.plain_http, insecure=options.insecure,
    )
    if not cluster:
        paths = render(manifests, render_dir)
        hint = {"secret_hint": create_secret_hint(registry_secret, namespace)} if registry_secret else {}
        return {**result, "manifests": paths, "applied": [], "state": "Rendered", "url": None, **hint}

    from modelhaul.serving.access import check_apply
    from modelhaul.serving.kube import apply_and_wait

    check_apply(manifests, doing=f"deploy of {pinned} as {namespace}/{name}", kubeconfig=kubeconfig,
                context=context, in_cluster=in_cluster)
    warnings: list[str] = []
    if canary_percent is not None:
        from modelhaul.serving.routing import check_canary as check_split

        warnings = check_split(manifests[-1], kubeconfig=kubeconfig, context=context, in_cluster=in_cluster)
        for w in warnings:
            logging.getLogger("modelhaul").warning("%s", w)
    applied = apply_and_wait(manifests, kubeconfig=kubeconfig, context=context, in_cluster=in_cluster,
                             wait=wait, timeout=timeout)
    return {**result, "manifests": [], "applied": list(applied.get("applied", [])),
            "state": applied.get("state"), "url": applied.get("url"), **({"warnings": warnings} if warnings else {})}
