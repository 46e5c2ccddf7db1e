"""The ``modelhaul`` command: ormb-style verbs for the local store and registries, and the steps.

Every command prints a short human line (or ``--json`` for machines) and exits non-zero with a
one-line reason on failure. Transfers show progress on a terminal.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from modelhaul.errors import ConfigError, ModelhaulError, NotFound, redact
from modelhaul.reference import parse, parse_destination
from modelhaul.registry_options import RegistryOptions


def _options(args: argparse.Namespace) -> RegistryOptions:
    return RegistryOptions.resolve(plain_http=args.plain_http, insecure=args.insecure,
                                   ca_file=getattr(args, "ca_file", None))


def _registry_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"plain_http": args.plain_http, "insecure": args.insecure, "ca_file": args.ca_file}


def _store_for(ref: str):
    from modelhaul.store import user_store

    r = parse(ref)
    return user_store(r.name), r


def _progress(args: argparse.Namespace, total: int, what: str):
    """A callback that advances a rich progress bar on a terminal, or None."""
    if args.json or not sys.stderr.isatty() or total <= 0:
        return None, None
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    prog = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), transient=True, console=None)
    task = prog.add_task(what, total=total)
    return prog, (lambda _digest, size: prog.advance(task, size))


def _copy_with_progress(args, src, reference, dst, tag, what):
    from modelhaul.transfer import copy

    manifest = src.get_manifest(reference)
    total = sum(int(d.get("size", 0)) for d in manifest.blobs())
    prog, cb = _progress(args, total, what)
    if prog is None:
        return copy(src, reference, dst, tag), total
    with prog:
        return copy(src, reference, dst, tag, progress=cb), total


# -- ormb-style verbs -------------------------------------------------------------------------------


def cmd_save(args) -> dict[str, Any]:
    from modelhaul import artifacts

    r = parse_destination(args.ref, "save")
    if r.is_layout:
        return artifacts.publish(args.dir, args.ref, bundle_format=args.format, config=_config_arg(args))
    from modelhaul.bundle import pack
    from modelhaul.transfer import push_packed

    store, r = _store_for(args.ref)
    with pack(Path(args.dir), bundle_format=args.format, config=_config_arg(args),
              name=r.repository.rsplit("/", 1)[-1]) as p:
        digest = push_packed(p, store, r.tag or "latest")
        return {"ref": str(r.with_tag(r.tag or "latest").with_digest(digest)), "digest": digest,
                "size": p.size, "format": p.config.format, "bundle_format": args.format}


def _config_arg(args) -> dict[str, Any] | None:
    if not getattr(args, "config", None):
        return None
    from modelhaul import config as config_mod

    return config_mod.load(args.config).to_dict()


def cmd_push(args) -> dict[str, Any]:
    if args.dir:  # straight from a directory: each new file read once, uploaded while hashed, no store copy
        from modelhaul import artifacts

        return artifacts.publish(args.dir, args.ref, bundle_format=args.format, config=_config_arg(args),
                                 options=_options(args))
    from modelhaul.artifacts import open_target

    store, r = _store_for(args.ref)
    tag = r.tag or "latest"
    try:
        store.get_manifest(r.digest or tag)
    except NotFound:
        raise NotFound(f"{args.ref}: not in the local store; run `modelhaul save DIR {args.ref}` first") from None
    digest, size = _copy_with_progress(args, store, r.digest or tag, open_target(r, _options(args)), tag,
                                       f"push {r.name}")
    return {"ref": str(r.with_tag(tag).with_digest(digest)), "digest": digest, "size": size}


def cmd_pull(args) -> dict[str, Any]:
    from modelhaul.artifacts import open_target

    store, r = _store_for(args.ref)
    if args.include:  # chosen files only: their blobs come into the store, no tag is recorded
        from modelhaul.transfer import ingest_chosen

        src = open_target(r, _options(args))
        manifest = src.get_manifest(r.reference)
        layers = ingest_chosen(src, manifest, store, args.include)
        return {"ref": str(r.with_digest(manifest.digest)), "digest": manifest.digest,
                "size": sum(int(d.get("size", 0)) for d in layers), "files": len(layers)}
    digest, size = _copy_with_progress(args, open_target(r, _options(args)), r.reference, store, r.tag,
                                       f"pull {r.name}")
    return {"ref": str(r.with_digest(digest)), "digest": digest, "size": size}


def cmd_export(args) -> dict[str, Any]:
    from modelhaul import artifacts
    from modelhaul.bundle import unpack

    r = parse(args.ref)
    if not r.is_layout:
        store, r = _store_for(args.ref)
        try:
            manifest = store.get_manifest(r.reference)
        except NotFound:
            return artifacts.fetch(args.ref, args.dir, options=_options(args), include=args.include)
        dest = artifacts.check_export_destination(args.dir)
        cfg = unpack(manifest, store, dest, include=args.include)
        return {"ref": str(r.with_digest(manifest.digest)), "digest": manifest.digest, "path": str(dest),
                "format": cfg.format}
    return artifacts.fetch(args.ref, args.dir, options=_options(args), include=args.include)


def cmd_inspect(args) -> dict[str, Any]:
    from modelhaul import artifacts

    if args.local:
        from modelhaul.bundle import read_config

        store, r = _store_for(args.ref)
        m = store.get_manifest(r.reference)
        return {"ref": str(r.with_digest(m.digest)), "digest": m.digest, "config": read_config(m, store).to_dict(),
                "layers": m.layers}
    return artifacts.inspect(args.ref, _options(args))


def cmd_tag(args) -> dict[str, Any]:
    from modelhaul import artifacts

    if args.local:
        from modelhaul.transfer import copy

        src, s = _store_for(args.src)
        parse_destination(args.dst, "tag")
        dst, d = _store_for(args.dst)
        digest = copy(src, s.reference, dst, d.tag or "latest")
        return {"ref": str(d.with_digest(digest)), "digest": digest}
    return artifacts.retag(args.src, args.dst, _options(args))


def cmd_list(args) -> dict[str, Any]:
    from modelhaul.store import LayoutTarget, default_store_path

    if args.ref:
        from modelhaul import artifacts

        return {"ref": args.ref, "tags": artifacts.list_tags(args.ref, _options(args))}
    refs = LayoutTarget(default_store_path()).list_refs()
    return {"models": [{"ref": name, "digest": digest} for name, digest in refs]}


def cmd_rm(args) -> dict[str, Any]:
    store, r = _store_for(args.ref)
    store.delete(r.reference)
    return {"removed": args.ref}


def cmd_login(args) -> dict[str, Any]:
    from modelhaul.registry import login

    username, password = args.username, args.password
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif not password and sys.stdin.isatty():
        import getpass

        username = username or input("Username: ").strip()
        password = getpass.getpass("Password: ")
    if not username or not password:
        raise ModelhaulError("login needs -u/--username and a password: pipe it into --password-stdin, "
                             "or run on a terminal to be prompted")
    login(args.host, username, password, _options(args))
    return {"login": args.host, "username": username}


def cmd_logout(args) -> dict[str, Any]:
    from modelhaul.auth import logout

    logout(args.host)
    return {"logout": args.host}


# -- steps -----------------------------------------------------------------------------------------


def cmd_import_mlflow(args) -> dict[str, Any]:
    from modelhaul import steps

    return steps.package(source=args.uri, ref=args.ref, tracking_uri=args.tracking_uri,
                         bundle_format=args.format, **_registry_kwargs(args))


def cmd_train(args) -> dict[str, Any]:
    from modelhaul import steps

    params = {}
    for kv in args.param or []:
        key, sep, value = kv.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {kv!r}: expected KEY=VALUE (e.g. --param c=0.5)")
        params[key] = value
    return steps.train(entry_point=args.entry_point, params=params, tracking_uri=args.tracking_uri,
                       experiment=args.experiment, registered_model=args.registered_model, alias=args.alias)


def cmd_parse(args) -> dict[str, Any]:
    from modelhaul import steps

    return steps.parse(ref=args.ref, dest_ref=args.dest, trust=args.trust, **_registry_kwargs(args))


def cmd_convert(args) -> dict[str, Any]:
    from modelhaul import steps

    return steps.convert(ref=args.ref, to=args.to, dest_ref=args.dst, tolerance=args.tolerance,
                         trust=args.trust, **_registry_kwargs(args))


def cmd_deploy(args) -> dict[str, Any]:
    from modelhaul import steps
    from modelhaul.errors import DeployError

    kube: dict[str, Any] = {}
    cluster = None
    if not args.render:
        cluster = steps.which_cluster(kubeconfig=args.kubeconfig, context=args.context, in_cluster=args.in_cluster)
        if cluster is None:
            raise DeployError("no Kubernetes cluster configured: pass --render DIR to write the manifests, or "
                              "set KUBECONFIG / create ~/.kube/config (or pass --kubeconfig, --context, --in-cluster)")
        kube = {k: cluster[k] for k in ("kubeconfig", "context", "in_cluster")}
    result = steps.deploy(ref=args.ref, target=args.target, name=args.name, namespace=args.namespace,
                          canary_percent=args.canary, stable_ref=args.stable_ref, render_dir=args.render,
                          registry_secret=args.registry_secret, wait=not args.no_wait, timeout=args.timeout,
                          **kube, **_registry_kwargs(args))
    if cluster is not None:
        result["cluster"] = cluster["server"]
    return result


def cmd_promote(args) -> dict[str, Any]:
    from modelhaul import steps

    deployment = _deployment_arg(args.deployment)
    return steps.promote(ref=args.ref, stage=args.stage, gate=args.gate, beats=args.beats,
                         min_delta=args.min_delta, tracking_uri=args.tracking_uri, deployment=deployment,
                         require_signature=args.require_signature, **_registry_kwargs(args))


def cmd_rollback(args) -> dict[str, Any]:
    from modelhaul import steps

    deployment = _deployment_arg(args.deployment)
    return steps.rollback(ref=args.ref, stage=args.stage, tracking_uri=args.tracking_uri, deployment=deployment,
                          **_registry_kwargs(args))


def _deployment_arg(path: str | None) -> dict[str, Any] | None:
    """The ``--deployment`` file: the JSON object ``deploy --json`` printed."""
    if not path:
        return None
    p = Path(path)
    try:
        data = json.loads(p.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"--deployment {p}: no such file; save the output of `deploy --json` there") from None
    except IsADirectoryError:
        raise ConfigError(f"--deployment {p}: is a directory; pass the JSON file `deploy --json` wrote") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--deployment {p}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; "
                          "pass the output of `modelhaul deploy --json`") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"--deployment {p}: cannot read it ({type(exc).__name__}); pass a JSON file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--deployment {p}: expected a JSON object (the output of `deploy --json`)")
    return data


# options whose value may start with '-' ("--beats -loss"): argparse would take it for an option
_DASH_VALUE_OPTIONS = ("--beats",)


def _join_dash_values(argv: list[str]) -> list[str]:
    """``--beats -loss`` -> ``--beats=-loss``, so the README's form parses (``--beats --json`` is left alone)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg, value = argv[i], argv[i + 1] if i + 1 < len(argv) else ""
        if arg in _DASH_VALUE_OPTIONS and value.startswith("-") and not value.startswith("--"):
            out.append(f"{arg}={value}")
            i += 2
        else:
            out.append(arg)
            i += 1
    return out


def cmd_sign(args) -> dict[str, Any]:
    from modelhaul import steps

    key_password = sys.stdin.readline().rstrip("\n") if args.key_password_stdin else None
    return steps.sign(ref=args.ref, key=args.key, key_password=key_password, **_registry_kwargs(args))


def cmd_verify(args) -> dict[str, Any]:
    from modelhaul import steps

    return steps.verify(ref=args.ref, key=args.key, **_registry_kwargs(args))


# -- wiring ----------------------------------------------------------------------------------------


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelhaul")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown"


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Examples keep their line breaks; defaults are shown next to each option."""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the result as JSON (for scripts)")
    common.add_argument("--plain-http", action="store_true", help="talk to the registry over plain HTTP")
    common.add_argument("--insecure", action="store_true", help="skip TLS certificate verification (testing only)")
    common.add_argument("--ca-file", metavar="PEM", help="CA bundle to verify the registry's certificate")

    p = argparse.ArgumentParser(prog="modelhaul", description=__doc__.splitlines()[0], formatter_class=_Formatter,
                                epilog="Run `modelhaul COMMAND --help` for a command's options and an example.")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn, help_: str, example: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, parents=[common], help=help_, description=help_, formatter_class=_Formatter,
                            epilog="example:\n  " + example)
        sp.set_defaults(fn=fn)
        return sp

    ref_help = "model reference: REGISTRY/REPO:TAG[@sha256:...] or oci:PATH:TAG"
    sp = add("save", cmd_save, "pack a model directory into the local store (or an oci: layout)",
             "modelhaul save ./iris registry.example.com/models/iris:v1")
    sp.add_argument("dir", help="model directory (ormbfile.yaml + model/, a bare, MLflow or Kitfile directory)")
    sp.add_argument("ref", help=ref_help)
    sp.add_argument("--format", choices=["modelpack", "ormb"], default="modelpack", help="artifact format to write")
    sp.add_argument("--config", help="an ormbfile.yaml whose fields override the directory's")
    sp = add("push", cmd_push, "upload a model from the local store (or straight from DIR) to its registry",
             "modelhaul push registry.example.com/models/iris:v1\n"
             "  modelhaul push ./iris registry.example.com/models/iris:v1   # publish a directory directly")
    sp.add_argument("dir", nargs="?", help="a model directory to publish directly, without `save` first")
    sp.add_argument("ref", help=ref_help)
    sp.add_argument("--format", choices=["modelpack", "ormb"], default="modelpack",
                    help="artifact format to write (with DIR)")
    sp.add_argument("--config", help="with DIR: an ormbfile.yaml whose fields override the directory's")
    include_help = ("fetch only the files whose path matches this glob (repeatable; over model/<path> "
                    "or <path>, '*' crosses '/': '*.onnx', 'model/tokenizer/*'); ModelPack artifacts only")
    sp = add("pull", cmd_pull, "download a model into the local store",
             "modelhaul pull registry.example.com/models/iris:v1")
    sp.add_argument("ref", help=ref_help)
    sp.add_argument("--include", action="append", metavar="GLOB", help=include_help)
    sp = add("export", cmd_export, "write a model out as DIR/ormbfile.yaml + DIR/model/",
             "modelhaul export registry.example.com/models/iris:v1 ./iris-v1\n"
             "  modelhaul export registry.example.com/models/iris:v1-onnx ./onnx-only --include '*.onnx'")
    sp.add_argument("ref", help=ref_help)
    sp.add_argument("dir", help="new or empty directory to write the model into")
    sp.add_argument("--include", action="append", metavar="GLOB", help=include_help)
    sp = add("inspect", cmd_inspect, "show a model's manifest digest, config and layers",
             "modelhaul inspect registry.example.com/models/iris:v1 --json")
    sp.add_argument("ref", help=ref_help)
    sp.add_argument("--local", action="store_true", help="look in the local store, not the registry")
    sp = add("tag", cmd_tag, "point a tag at a model (no bytes move within one registry)",
             "modelhaul tag registry.example.com/models/iris:v1 registry.example.com/models/iris:staging")
    sp.add_argument("src", help="the model to tag (" + ref_help + ")")
    sp.add_argument("dst", help="the new reference")
    sp.add_argument("--local", action="store_true", help="tag within the local store")
    sp = add("list", cmd_list, "list models in the local store, or the tags of REF's repository",
             "modelhaul list registry.example.com/models/iris")
    sp.add_argument("ref", nargs="?", help="a repository to list the tags of (default: the local store)")
    sp = add("rm", cmd_rm, "remove a model from the local store", "modelhaul rm registry.example.com/models/iris:v1")
    sp.add_argument("ref", help=ref_help)
    sp = add("login", cmd_login, "store registry credentials in the docker config",
             "echo \"$TOKEN\" | modelhaul login registry.example.com -u robot --password-stdin")
    sp.add_argument("host", help="registry host[:port]")
    sp.add_argument("-u", "--username", help="user name (prompted for on a terminal when omitted)")
    sp.add_argument("-p", "--password", help=argparse.SUPPRESS)
    sp.add_argument("--password-stdin", action="store_true",
                    help="read the password from standard input (else it is prompted for on a terminal)")
    sp = add("logout", cmd_logout, "remove stored registry credentials", "modelhaul logout registry.example.com")
    sp.add_argument("host", help="registry host[:port]")

    sp = add("train", cmd_train, "run a training entry point under an MLflow run",
             "modelhaul train modelhaul.examples.iris:train --param n_estimators=50 --tracking-uri sqlite:///mlflow.db")
    sp.add_argument("entry_point", help="package.module:function, or an MLflow Project directory")
    sp.add_argument("--param", action="append", metavar="KEY=VALUE", help="training parameter (repeatable)")
    sp.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    sp.add_argument("--experiment", default="modelhaul", help="MLflow experiment name")
    sp.add_argument("--registered-model", help="also register the model under this name")
    sp.add_argument("--alias", help="alias to set on the registered version")
    sp = add("import-mlflow", cmd_import_mlflow, "publish an MLflow model (runs:/ or models:/) with its run metadata",
             "modelhaul import-mlflow models:/iris@champion registry.example.com/models/iris:v1 "
             "--tracking-uri sqlite:///mlflow.db")
    sp.add_argument("uri", help="runs:/RUN_ID/NAME, models:/NAME/VERSION, models:/NAME@ALIAS or models:/m-ID")
    sp.add_argument("ref", help=ref_help)
    sp.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    sp.add_argument("--format", choices=["modelpack", "ormb"], default="modelpack", help="artifact format to write")
    sp = add("parse", cmd_parse, "read the model's signature into its config and push the result",
             "modelhaul parse registry.example.com/models/iris:v1")
    sp.add_argument("ref", help=ref_help)
    sp.add_argument("--dest", help="where to push the parsed artifact (default: the same tag)")
    sp.add_argument("--trust", action="store_true", help="allow loading pickle/joblib files (runs their code)")
    sp = add("convert", cmd_convert, "convert a model (ONNX, TorchScript) with a parity check",
             "modelhaul convert registry.example.com/models/iris:v1 registry.example.com/models/iris:v1-onnx")
    sp.add_argument("ref", help="the model to convert (" + ref_help + ")")
    sp.add_argument("dst", help="where to push the converted model")
    sp.add_argument("--to", default="onnx", choices=["onnx", "torchscript"], help="target format")
    sp.add_argument("--tolerance", type=float, help="largest output difference the parity check accepts")
    sp.add_argument("--trust", action="store_true", help="allow loading pickle/joblib files (runs their code)")
    sp = add("deploy", cmd_deploy, "serve a model on Seldon Core or KServe (or render the manifests with --render)",
             "modelhaul deploy registry.example.com/models/iris@sha256:... --target kserve --namespace models\n"
             "  modelhaul deploy registry.example.com/models/iris:v1 --render ./gitops/iris   # no cluster\n\n"
             "The cluster is found like kubectl finds it: --kubeconfig, else $KUBECONFIG, else ~/.kube/config\n"
             "(its current context unless --context), else the pod's service account (--in-cluster, or\n"
             "automatically inside a pod). Manifests are written only with --render DIR.")
    sp.add_argument("ref", help=ref_help)
    sp.add_argument("--target", choices=["seldon", "kserve"], default="seldon", help="serving platform")
    sp.add_argument("--name", help="resource name (default: from the repository name)")
    sp.add_argument("--namespace", default="default", help="namespace to deploy into")
    sp.add_argument("--canary", type=int, metavar="PERCENT", help="serve as a canary with this share of traffic")
    sp.add_argument("--stable-ref", help="the model the canary runs beside (default: the one serving now)")
    sp.add_argument("--render", metavar="DIR", help="write manifests to DIR instead of applying them")
    sp.add_argument("--registry-secret", metavar="NAME",
                    help="Secret with MODELHAUL_USERNAME/MODELHAUL_PASSWORD the model initializer reads")
    sp.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    sp.add_argument("--context", help="kubeconfig context (default: its current context)")
    sp.add_argument("--in-cluster", action="store_true", help="use the pod's service account")
    sp.add_argument("--no-wait", action="store_true", help="return once applied, without waiting for readiness")
    sp.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for readiness")
    sp = add("promote", cmd_promote, "move a stage tag to the model when its gate passes",
             "modelhaul promote registry.example.com/models/iris@sha256:... --gate \"accuracy >= 0.9\" "
             "--beats accuracy")
    sp.add_argument("ref", help=ref_help)
    sp.add_argument("--stage", default="production", help="the stage tag to move")
    sp.add_argument("--gate", action="append", help='e.g. "accuracy >= 0.9" (repeatable)')
    sp.add_argument("--beats", help="metric that must beat the model at the stage (-metric: lower is better)")
    sp.add_argument("--min-delta", type=float, default=0.0, help="by how much --beats must be beaten")
    sp.add_argument("--tracking-uri", help="MLflow tracking URI (to move the registered model's alias too)")
    sp.add_argument("--deployment", help="JSON file with the result of `deploy --json`")
    sp.add_argument("--require-signature", metavar="PUB",
                    help="reject the candidate unless it is signed by this public key (PEM) and untampered")
    sp = add("rollback", cmd_rollback, "restore the model that was at the stage before the last promotion",
             "modelhaul rollback registry.example.com/models/iris:v1 --stage production")
    sp.add_argument("ref", help=ref_help)
    sp.add_argument("--stage", default="production", help="the stage tag to restore")
    sp.add_argument("--tracking-uri", help="MLflow tracking URI (to move the registered model's alias too)")
    sp.add_argument("--deployment", help="JSON file with the result of `deploy --json`")
    sp = add("sign", cmd_sign, "sign a model (OpenSSF model signing) and attach its SLSA provenance",
             "modelhaul sign registry.example.com/models/iris:v1 --key signing-key.pem")
    sp.add_argument("ref", help=ref_help)
    sp.add_argument("--key", required=True, help="elliptic-curve private key, PEM")
    sp.add_argument("--key-password-stdin", action="store_true", help="read the key's password from standard input")
    sp = add("verify", cmd_verify, "check a model's signature, files and provenance against a public key",
             "modelhaul verify registry.example.com/models/iris:v1 --key signing-key.pub")
    sp.add_argument("ref", help=ref_help)
    sp.add_argument("--key", required=True, help="the signer's public key, PEM")
    return p


def _human(result: dict[str, Any]) -> str:
    if "models" in result:
        return "\n".join(f"{m['ref']}\t{m['digest']}" for m in result["models"]) or "(no models)"
    if "tags" in result:
        return "\n".join(result["tags"]) or "(no tags)"
    if "line" in result:
        return result["line"]
    if "applied" in result and "target" in result:
        return _human_deploy(result)
    for key in ("ref", "login", "logout", "removed"):
        if key in result:
            extra = ""
            if "promoted" in result:
                extra = f"  promoted={result['promoted']} ({result.get('reason')})"
            return f"{result[key]}{extra}"
    return json.dumps(result, indent=2, default=str)


def _human_deploy(result: dict[str, Any]) -> str:
    what = f"{result['ref']} as {result.get('namespace')}/{result.get('name')} ({result.get('target')})"
    if result.get("state") == "Rendered":
        lines = [f"rendered {what} into {result.get('render_dir')}:", *(f"  {m}" for m in result["manifests"])]
        if result.get("secret_hint"):
            lines.append(f"the manifests read registry credentials from the Secret {result['registry_secret']}; "
                         f"create it in the cluster with:\n  {result['secret_hint']}")
        return "\n".join(lines)
    where = "in-cluster service account" if result.get("in_cluster") else f"context {result.get('context')}"
    lines = [f"deployed {what} to cluster {result.get('cluster')} ({where}): {result.get('state')}"]
    if result.get("url"):
        lines.append(f"url: {result['url']}")
    if result.get("reason"):
        lines.append(str(result["reason"]))
    return "\n".join(lines)


_BUSY = {"save": "packing", "export": "exporting", "import-mlflow": "importing from MLflow", "convert": "converting"}


def _busy(args: argparse.Namespace):
    """A spinner on a terminal for the long commands whose core reports no byte counts, else nothing."""
    import contextlib

    if args.command not in _BUSY or args.json or not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(f"{_BUSY[args.command]} {getattr(args, 'ref', '') or ''}")


def _run(argv: list[str] | None) -> int:
    from modelhaul.interrupt import Terminated, exit_cleanly_on_sigterm

    exit_cleanly_on_sigterm()
    args = build_parser().parse_args(_join_dash_values(sys.argv[1:] if argv is None else list(argv)))
    try:
        with _busy(args):
            result = args.fn(args)
    except Terminated as exc:  # cleanups have run on the way up
        print("error: terminated by SIGTERM", file=sys.stderr)
        return int(exc.code or 143)
    except ModelhaulError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # a one-line reason, never a traceback; 2 stays argparse's usage error
        text = redact(str(exc)).splitlines()[0] if str(exc).strip() else ""
        print(f"error: {type(exc).__name__}: {text}", file=sys.stderr)
        return 1
    if args.json or args.command == "inspect" and not sys.stdout.isatty():
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    else:
        print(_human(result) if args.command != "inspect" else json.dumps(result, indent=2, default=str))
    sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """The console script; output piped into ``head`` ends quietly, as other Unix tools do."""
    try:
        return _run(argv)
    except BrokenPipeError:
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)  # Python flushes stdout at exit: let that go nowhere
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader went away


if __name__ == "__main__":
    sys.exit(main())
