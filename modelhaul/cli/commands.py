"""What each command of ``modelhaul`` does: read its arguments, call one step, return the step's result."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from modelhaul import steps
from modelhaul.declarations import DEPLOY, REGISTRY_ACCESS_NAMES, Param
from modelhaul.errors import ConfigError, DeployError, ModelhaulError

_KUBE = ("kubeconfig", "context", "in_cluster")
DEPLOY_OPTIONS = tuple(p for p in DEPLOY if p.cli and p.name != "ref" and p.name not in REGISTRY_ACCESS_NAMES)


def _registry_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"plain_http": args.plain_http, "insecure": args.insecure, "ca_file": args.ca_file}


def _progress(args: argparse.Namespace):
    """How a transfer shows on a terminal: a rich progress bar (none for --json or a pipe)."""
    if args.json or not sys.stderr.isatty():
        return None

    def show(total: int, what: str):
        if total <= 0:
            return None, None
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        prog = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), transient=True, console=None)
        task = prog.add_task(what, total=total)
        return prog, (lambda _digest, size: prog.advance(task, size))

    return show


def _config_arg(args) -> dict[str, Any] | None:
    return steps.load_config(path=args.config) if getattr(args, "config", None) else None


def cmd_save(args) -> dict[str, Any]:
    return steps.save(directory=args.dir, ref=args.ref, bundle_format=args.format, config=_config_arg(args))


def cmd_push(args) -> dict[str, Any]:
    return steps.push(ref=args.ref, directory=args.dir, bundle_format=args.format, config=_config_arg(args),
                      progress=_progress(args), **_registry_kwargs(args))


def cmd_pull(args) -> dict[str, Any]:
    return steps.pull(ref=args.ref, include=args.include, progress=_progress(args), **_registry_kwargs(args))


def cmd_export(args) -> dict[str, Any]:
    return steps.export(ref=args.ref, directory=args.dir, include=args.include, **_registry_kwargs(args))


def cmd_inspect(args) -> dict[str, Any]:
    return steps.inspect(ref=args.ref, local=args.local, **_registry_kwargs(args))


def cmd_tag(args) -> dict[str, Any]:
    return steps.tag(src=args.src, dst=args.dst, local=args.local, **_registry_kwargs(args))


def cmd_list(args) -> dict[str, Any]:
    return steps.list_models(ref=args.ref, **_registry_kwargs(args))


def cmd_rm(args) -> dict[str, Any]:
    return steps.remove(ref=args.ref)


def cmd_login(args) -> dict[str, Any]:
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
    return steps.login(host=args.host, username=username, password=password, **_registry_kwargs(args))


def cmd_logout(args) -> dict[str, Any]:
    return steps.logout(host=args.host)


def cmd_import_mlflow(args) -> dict[str, Any]:
    return steps.package(source=args.uri, ref=args.ref, tracking_uri=args.tracking_uri,
                         bundle_format=args.format, **_registry_kwargs(args))


def cmd_train(args) -> dict[str, Any]:
    params = {}
    for kv in args.param or []:
        key, sep, value = kv.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {kv!r}: expected KEY=VALUE (e.g. --param c=0.5)")
        params[key] = value
    return steps.train(entry_point=args.entry_point, params=params, tracking_uri=args.tracking_uri,
                       experiment=args.experiment, registered_model=args.registered_model, alias=args.alias)


def cmd_parse(args) -> dict[str, Any]:
    return steps.parse(ref=args.ref, dest_ref=args.dest, trust=args.trust, **_registry_kwargs(args))


def cmd_convert(args) -> dict[str, Any]:
    return steps.convert(ref=args.ref, to=args.to, dest_ref=args.dst, tolerance=args.tolerance,
                         trust=args.trust, **_registry_kwargs(args))


def cmd_deploy(args) -> dict[str, Any]:
    settings = {p.name: _declared_value(args, p) for p in DEPLOY_OPTIONS}
    cluster = None
    if settings["render_dir"]:
        settings = {k: v for k, v in settings.items() if k not in _KUBE}
    else:
        cluster = steps.which_cluster(**{k: settings[k] for k in _KUBE})
        if cluster is None:
            raise DeployError("no Kubernetes cluster configured: pass --render DIR to write the manifests, or "
                              "set KUBECONFIG / create ~/.kube/config (or pass --kubeconfig, --context, --in-cluster)")
        settings.update({k: cluster[k] for k in _KUBE})
    result = steps.deploy(ref=args.ref, **settings, **_registry_kwargs(args))
    if cluster is not None:
        result["cluster"] = cluster["server"]
    return result


def _declared_value(args: argparse.Namespace, p: Param) -> Any:
    if p.type is bool and p.default:
        return not getattr(args, "no_" + p.name)
    return getattr(args, p.name)


def cmd_promote(args) -> dict[str, Any]:
    deployment = _deployment_arg(args.deployment)
    return steps.promote(ref=args.ref, stage=args.stage, gate=args.gate, beats=args.beats,
                         min_delta=args.min_delta, tracking_uri=args.tracking_uri, deployment=deployment,
                         require_signature=args.require_signature, **_registry_kwargs(args))


def cmd_rollback(args) -> dict[str, Any]:
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


def cmd_sign(args) -> dict[str, Any]:
    key_password = sys.stdin.readline().rstrip("\n") if args.key_password_stdin else None
    return steps.sign(ref=args.ref, key=args.key, key_password=key_password, **_registry_kwargs(args))


def cmd_verify(args) -> dict[str, Any]:
    return steps.verify(ref=args.ref, key=args.key, **_registry_kwargs(args))
