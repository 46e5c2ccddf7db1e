"""What each command of ``modelhaul`` does: read its arguments, call one step, return the step's result.

A step command's arguments are its step's declaration (:mod:`modelhaul.declarations`): the parser
adds one per declared parameter and :func:`declared_kwargs` reads them back by name, so a parameter
added to a declaration reaches the command line without an edit here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from modelhaul import steps
from modelhaul.declarations import (
    CONVERT,
    DEPLOY,
    PACKAGE,
    PARSE,
    PROMOTE,
    REGISTRY_ACCESS,
    REGISTRY_ACCESS_NAMES,
    ROLLBACK,
    SIGN,
    TRAIN,
    VERIFY,
    KubeTarget,
    Param,
    step_arguments,
)
from modelhaul.errors import ConfigError, DeployError, ModelhaulError

_KUBE = tuple(p.name for p in KubeTarget.PARAMS)  # which cluster: found like kubectl finds it, or none


def options_of(params: tuple[Param, ...]) -> tuple[Param, ...]:
    """A step's own command-line arguments: the registry access ones are every command's (and secrets none)."""
    return tuple(p for p in params if p.cli and p.name not in REGISTRY_ACCESS_NAMES)


def _registry_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {p.name: getattr(args, p.name) for p in REGISTRY_ACCESS if p.cli}


def declared_kwargs(args: argparse.Namespace, params: tuple[Param, ...]) -> dict[str, Any]:
    """The step's arguments from the command line: each declared one by name, a file or KEY=VALUE list read,
    then coerced as every adapter's are (:func:`~modelhaul.declarations.step_arguments`)."""
    held = {p.name: _declared_value(args, p) for p in params if p.cli}
    for name, read in _READERS.items():
        if name in held:
            held[name] = read(held[name])
    return step_arguments(params, held)


def _config_arg(args) -> dict[str, Any] | None:
    return steps.load_config(path=args.config) if getattr(args, "config", None) else None


def cmd_save(args) -> dict[str, Any]:
    return steps.save(directory=args.dir, ref=args.ref, bundle_format=args.format, config=_config_arg(args))


def cmd_push(args) -> dict[str, Any]:
    return steps.push(ref=args.ref, directory=args.dir, bundle_format=args.format, config=_config_arg(args),
                      **_registry_kwargs(args))


def cmd_pull(args) -> dict[str, Any]:
    return steps.pull(ref=args.ref, include=args.include, **_registry_kwargs(args))


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
    return steps.package(**declared_kwargs(args, PACKAGE))


def _key_values(pairs: list[str] | None) -> dict[str, str]:
    """``--param KEY=VALUE`` (repeatable) as the training parameters."""
    params = {}
    for kv in pairs or []:
        key, sep, value = kv.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {kv!r}: expected KEY=VALUE (e.g. --param c=0.5)")
        params[key] = value
    return params


def cmd_train(args) -> dict[str, Any]:
    return steps.train(**declared_kwargs(args, TRAIN))


def cmd_parse(args) -> dict[str, Any]:
    return steps.parse(**declared_kwargs(args, PARSE))


def cmd_convert(args) -> dict[str, Any]:
    return steps.convert(**declared_kwargs(args, CONVERT))


def cmd_deploy(args) -> dict[str, Any]:
    settings = declared_kwargs(args, DEPLOY)
    cluster = None
    if settings["render_dir"]:
        settings = {k: v for k, v in settings.items() if k not in _KUBE}
    else:
        cluster = steps.which_cluster(**{k: settings[k] for k in _KUBE})
        if cluster is None:
            raise DeployError("no Kubernetes cluster configured: pass --render DIR to write the manifests, or "
                              "set KUBECONFIG / create ~/.kube/config (or pass --kubeconfig, --context, --in-cluster)")
        settings.update({k: cluster[k] for k in _KUBE})
    result = steps.deploy(**settings)
    if cluster is not None:
        result["cluster"] = cluster["server"]
    return result


def _declared_value(args: argparse.Namespace, p: Param) -> Any:
    if p.type is bool and p.default:
        return not getattr(args, "no_" + p.name)
    return getattr(args, p.name)


def cmd_promote(args) -> dict[str, Any]:
    return steps.promote(**declared_kwargs(args, PROMOTE))


def cmd_rollback(args) -> dict[str, Any]:
    return steps.rollback(**declared_kwargs(args, ROLLBACK))


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
    return steps.sign(**declared_kwargs(args, SIGN), key_password=key_password)


def cmd_verify(args) -> dict[str, Any]:
    return steps.verify(**declared_kwargs(args, VERIFY))


# declared values the command line gives in another form: a file, or KEY=VALUE pairs
_READERS = {"params": _key_values, "deployment": _deployment_arg}
