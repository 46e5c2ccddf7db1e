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

from modelhaul.errors import ModelhaulError, NotFound, redact
from modelhaul.reference import parse
from modelhaul.registry_options import RegistryOptions


def _options(args: argparse.Namespace) -> RegistryOptions:
    return RegistryOptions.resolve(plain_http=args.plain_http, insecure=args.insecure,
                                   ca_file=getattr(args, "ca_file", None))


def _registry_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"plain_http": args.plain_http, "insecure": args.insecure}


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

    r = parse(args.ref)
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
        dest = Path(args.dir)
        if dest.exists() and any(dest.iterdir()):
            raise ModelhaulError(f"{dest}: destination is not empty; choose a new directory")
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
    from modelhaul.auth import login

    password = args.password
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    if not args.username or not password:
        raise ModelhaulError("login needs -u/--username and a password (use --password-stdin)")
    login(args.host, args.username, password, _options(args))
    return {"login": args.host, "username": args.username}


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

    params = dict(kv.split("=", 1) for kv in args.param or [])
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

    return steps.deploy(ref=args.ref, target=args.target, name=args.name, namespace=args.namespace,
                        canary_percent=args.canary, stable_ref=args.stable_ref, render_dir=args.render,
                        kubeconfig=args.kubeconfig, context=args.context, wait=not args.no_wait,
                        timeout=args.timeout, **_registry_kwargs(args))


def cmd_promote(args) -> dict[str, Any]:
    from modelhaul import steps

    deployment = json.loads(Path(args.deployment).read_text()) if args.deployment else None
    return steps.promote(ref=args.ref, stage=args.stage, gate=args.gate, beats=args.beats,
                         min_delta=args.min_delta, tracking_uri=args.tracking_uri, deployment=deployment,
                         **_registry_kwargs(args))


def cmd_rollback(args) -> dict[str, Any]:
    from modelhaul import steps

    deployment = json.loads(Path(args.deployment).read_text()) if args.deployment else None
    return steps.rollback(ref=args.ref, stage=args.stage, tracking_uri=args.tracking_uri, deployment=deployment,
                          **_registry_kwargs(args))


# -- wiring ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    common.add_argument("--plain-http", action="store_true", help="talk to the registry over plain HTTP")
    common.add_argument("--insecure", action="store_true", help="skip TLS certificate verification")
    common.add_argument("--ca-file", help="CA bundle to verify the registry's certificate")

    p = argparse.ArgumentParser(prog="modelhaul", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, parents=[common], help=help_, description=help_)
        sp.set_defaults(fn=fn)
        return sp

    sp = add("save", cmd_save, "pack a model directory into the local store (or an oci: layout)")
    sp.add_argument("dir")
    sp.add_argument("ref")
    sp.add_argument("--format", choices=["modelpack", "ormb"], default="modelpack")
    sp.add_argument("--config", help="an ormbfile.yaml whose fields override the directory's")
    sp = add("push", cmd_push, "upload a model from the local store (or straight from DIR) to its registry")
    sp.add_argument("dir", nargs="?", help="a model directory to publish directly, without `save` first")
    sp.add_argument("ref")
    sp.add_argument("--format", choices=["modelpack", "ormb"], default="modelpack", help="with DIR")
    sp.add_argument("--config", help="with DIR: an ormbfile.yaml whose fields override the directory's")
    include_help = ("fetch only the files whose path matches this glob (repeatable; over model/<path> "
                    "or <path>, '*' crosses '/': '*.onnx', 'model/tokenizer/*'); ModelPack artifacts only")
    sp = add("pull", cmd_pull, "download a model into the local store")
    sp.add_argument("ref")
    sp.add_argument("--include", action="append", metavar="GLOB", help=include_help)
    sp = add("export", cmd_export, "write a model out as DIR/ormbfile.yaml + DIR/model/")
    sp.add_argument("ref")
    sp.add_argument("dir")
    sp.add_argument("--include", action="append", metavar="GLOB", help=include_help)
    sp = add("inspect", cmd_inspect, "show a model's manifest digest, config and layers")
    sp.add_argument("ref")
    sp.add_argument("--local", action="store_true", help="look in the local store, not the registry")
    sp = add("tag", cmd_tag, "point a tag at a model (no bytes move within one registry)")
    sp.add_argument("src")
    sp.add_argument("dst")
    sp.add_argument("--local", action="store_true", help="tag within the local store")
    sp = add("list", cmd_list, "list models in the local store, or the tags of REF's repository")
    sp.add_argument("ref", nargs="?")
    sp = add("rm", cmd_rm, "remove a model from the local store")
    sp.add_argument("ref")
    sp = add("login", cmd_login, "store registry credentials in the docker config")
    sp.add_argument("host")
    sp.add_argument("-u", "--username")
    sp.add_argument("-p", "--password", help=argparse.SUPPRESS)
    sp.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    sp = add("logout", cmd_logout, "remove stored registry credentials")
    sp.add_argument("host")

    sp = add("train", cmd_train, "run a training entry point under an MLflow run")
    sp.add_argument("entry_point", help="package.module:function, or an MLflow Project directory")
    sp.add_argument("--param", action="append", help="KEY=VALUE (repeatable)")
    sp.add_argument("--tracking-uri")
    sp.add_argument("--experiment", default="modelhaul")
    sp.add_argument("--registered-model")
    sp.add_argument("--alias")
    sp = add("import-mlflow", cmd_import_mlflow, "publish an MLflow model (runs:/ or models:/) with its run metadata")
    sp.add_argument("uri")
    sp.add_argument("ref")
    sp.add_argument("--tracking-uri")
    sp.add_argument("--format", choices=["modelpack", "ormb"], default="modelpack")
    sp = add("parse", cmd_parse, "read the model's signature into its config and push the result")
    sp.add_argument("ref")
    sp.add_argument("--dest", help="where to push the parsed artifact (default: the same tag)")
    sp.add_argument("--trust", action="store_true", help="allow loading pickle/joblib files")
    sp = add("convert", cmd_convert, "convert a model (ONNX, TorchScript) with a parity check")
    sp.add_argument("ref")
    sp.add_argument("dst")
    sp.add_argument("--to", default="onnx", choices=["onnx", "torchscript"])
    sp.add_argument("--tolerance", type=float)
    sp.add_argument("--trust", action="store_true", help="allow loading pickle/joblib files")
    sp = add("deploy", cmd_deploy, "serve a model on Seldon Core or KServe (or render the manifests)")
    sp.add_argument("ref")
    sp.add_argument("--target", choices=["seldon", "kserve"], default="seldon")
    sp.add_argument("--name")
    sp.add_argument("--namespace", default="default")
    sp.add_argument("--canary", type=int, metavar="PERCENT")
    sp.add_argument("--stable-ref")
    sp.add_argument("--render", metavar="DIR", help="write manifests to DIR instead of applying them")
    sp.add_argument("--kubeconfig")
    sp.add_argument("--context")
    sp.add_argument("--no-wait", action="store_true")
    sp.add_argument("--timeout", type=float, default=600.0)
    sp = add("promote", cmd_promote, "move a stage tag to the model when its gate passes")
    sp.add_argument("ref")
    sp.add_argument("--stage", default="production")
    sp.add_argument("--gate", action="append", help='e.g. "accuracy >= 0.9" (repeatable)')
    sp.add_argument("--beats", help="metric that must beat the model at the stage (-metric: lower is better)")
    sp.add_argument("--min-delta", type=float, default=0.0)
    sp.add_argument("--tracking-uri")
    sp.add_argument("--deployment", help="JSON file with the result of `deploy --json`")
    sp = add("rollback", cmd_rollback, "restore the model that was at the stage before the last promotion")
    sp.add_argument("ref")
    sp.add_argument("--stage", default="production")
    sp.add_argument("--tracking-uri")
    sp.add_argument("--deployment", help="JSON file with the result of `deploy --json`")
    return p


def _human(result: dict[str, Any]) -> str:
    if "models" in result:
        return "\n".join(f"{m['ref']}\t{m['digest']}" for m in result["models"]) or "(no models)"
    if "tags" in result:
        return "\n".join(result["tags"]) or "(no tags)"
    for key in ("ref", "login", "logout", "removed"):
        if key in result:
            extra = ""
            if "promoted" in result:
                extra = f"  promoted={result['promoted']} ({result.get('reason')})"
            return f"{result[key]}{extra}"
    return json.dumps(result, indent=2, default=str)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.fn(args)
    except ModelhaulError as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a one-line reason, never a traceback, for anything unexpected
        print(f"error: {type(exc).__name__}: {redact(str(exc)).splitlines()[0] if str(exc) else ''}",
              file=sys.stderr)
        return 2
    if args.json or args.command == "inspect" and not sys.stdout.isatty():
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    else:
        print(_human(result) if args.command != "inspect" else json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
