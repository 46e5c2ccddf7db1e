"""The ``modelhaul`` command's options, examples and help; a step command's options come from its declaration."""

from __future__ import annotations

import argparse
import re
import sys

from modelhaul.cli.commands import (
    cmd_convert,
    cmd_deploy,
    cmd_export,
    cmd_import_mlflow,
    cmd_inspect,
    cmd_list,
    cmd_login,
    cmd_logout,
    cmd_parse,
    cmd_promote,
    cmd_pull,
    cmd_push,
    cmd_rm,
    cmd_rollback,
    cmd_save,
    cmd_sign,
    cmd_tag,
    cmd_train,
    cmd_verify,
    options_of,
)
from modelhaul.declarations import (
    BUNDLE_FORMATS,
    CONVERT,
    DEPLOY,
    PACKAGE,
    PARSE,
    PROMOTE,
    REF,
    REGISTRY_ACCESS,
    ROLLBACK,
    SIGN,
    TRAIN,
    VERIFY,
    Param,
)

DESCRIPTION = "The ``modelhaul`` command: ormb-style verbs for the local store and registries, and the steps."
# options whose value may start with '-' ("--beats -loss"): argparse would take it for an option
_DASH_VALUE_OPTIONS = ("--beats",)

EXIT_REJECTED = 3
"""``promote`` ran and said no: a script tells that apart from a failure (1) and a usage error (2)."""


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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelhaul")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown"


class _Version(argparse.Action):
    """``--version``, looked up only when asked: reading the installed metadata costs every command time."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0,
                         help="show program's version number and exit", **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        sys.stdout.write(f"{parser.prog} {_version()}\n")
        parser.exit()


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Examples keep their line breaks; a default is shown when there is one worth saying (not None,
    False or an empty list, and not when the help already says it); docstring markup is dropped."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = _plain(action.help or "")
        quiet = action.default in (None, False, [], argparse.SUPPRESS) or not action.option_strings
        if quiet or "default" in text or "%(default)" in text:
            return text
        return text + " (default: %(default)s)"

    def _format_text(self, text: str) -> str:
        return super()._format_text(_plain(text))


def _plain(text: str) -> str:
    """Help as a terminal shows it: ``literal`` (RST) and `literal` (Markdown) become literal."""
    return re.sub(r"``?([^`]+)``?", r"\1", text)


def _add_declared(parser: argparse.ArgumentParser, params: tuple[Param, ...]) -> None:
    """Arguments from a step's declaration: a required one without a flag is positional, the others are
    ``--flag`` options (a true-by-default switch as ``--no-...``, a repeatable one appends)."""
    for p in params:
        if p.required and p.flag is None:
            parser.add_argument(p.name, metavar=p.metavar, help=p.help)
        elif p.type is bool:
            parser.add_argument(p.cli_flag, dest=("no_" if p.default else "") + p.name, action="store_true",
                                help=("do not " if p.default else "") + p.help)
        elif p.repeat:
            parser.add_argument(p.cli_flag, dest=p.name, action="append", metavar=p.metavar, required=p.required,
                                help=p.help)
        else:
            parser.add_argument(p.cli_flag, dest=p.name, default=p.default, choices=p.choices, metavar=p.metavar,
                                type=p.type if p.type in (int, float) else None, required=p.required, help=p.help)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print the result as JSON (for scripts)")
    common.add_argument("-q", "--quiet", action="store_true",
                        help="show no progress (on a terminal: no bars; otherwise: no line per layer)")
    _add_declared(common, tuple(p for p in REGISTRY_ACCESS if p.cli))

    p = argparse.ArgumentParser(prog="modelhaul", description=DESCRIPTION, formatter_class=_Formatter,
                                epilog="Run `modelhaul COMMAND --help` for a command's options and an example.")
    p.add_argument("--version", action=_Version)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn, help_: str, example: str, step: tuple[Param, ...] = ()) -> argparse.ArgumentParser:
        """A subcommand; with ``step`` (a declaration) its options are the step's declared parameters."""
        sp = sub.add_parser(name, parents=[common], help=help_, description=help_, formatter_class=_Formatter,
                            epilog="example:\n  " + example)
        sp.set_defaults(fn=fn)
        if step:
            _add_declared(sp, options_of(step))
        return sp

    ref_help = REF.help
    sp = add("save", cmd_save, "pack a model directory into the local store (or an oci: layout)",
             "modelhaul save ./iris registry.example.com/models/iris:v1")
    sp.add_argument("dir", help="model directory (ormbfile.yaml + model/, a bare, MLflow or Kitfile directory)")
    sp.add_argument("ref", help=ref_help)
    sp.add_argument("--format", choices=BUNDLE_FORMATS, default="modelpack", help="artifact format to write")
    sp.add_argument("--config", help="an ormbfile.yaml whose fields override the directory's")
    sp = add("push", cmd_push, "upload a model from the local store (or straight from DIR) to its registry",
             "modelhaul push registry.example.com/models/iris:v1\n"
             "  modelhaul push ./iris registry.example.com/models/iris:v1   # publish a directory directly")
    sp.add_argument("dir", nargs="?", help="a model directory to publish directly, without `save` first")
    sp.add_argument("ref", help=ref_help)
    sp.add_argument("--format", choices=BUNDLE_FORMATS, default="modelpack",
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

    add("train", cmd_train, "run a training entry point under an MLflow run",
             "modelhaul train modelhaul.examples.iris:train --param n_estimators=50 --tracking-uri sqlite:///mlflow.db",
             step=TRAIN)
    add("import-mlflow", cmd_import_mlflow, "publish an MLflow model (runs:/ or models:/) with its run metadata",
             "modelhaul import-mlflow models:/iris@champion registry.example.com/models/iris:v1 "
             "--tracking-uri sqlite:///mlflow.db", step=PACKAGE)
    add("parse", cmd_parse, "read the model's signature into its config and push the result",
             "modelhaul parse registry.example.com/models/iris:v1", step=PARSE)
    add("convert", cmd_convert, "convert a model (ONNX, TorchScript) with a parity check",
             "modelhaul convert registry.example.com/models/iris:v1 registry.example.com/models/iris:v1-onnx",
             step=CONVERT)
    add("deploy", cmd_deploy, "serve a model on Seldon Core or KServe (or render the manifests with --render)",
             "modelhaul deploy registry.example.com/models/iris@sha256:... --target kserve --namespace models\n"
             "  modelhaul deploy registry.example.com/models/iris:v1 --render ./gitops/iris   # no cluster\n\n"
             "The cluster is found like kubectl finds it: --kubeconfig, else $KUBECONFIG, else ~/.kube/config\n"
             "(its current context unless --context), else the pod's service account (--in-cluster, or\n"
             "automatically inside a pod). Manifests are written only with --render DIR.", step=DEPLOY)
    add("promote", cmd_promote, "move a stage tag to the model when its gate passes",
             "modelhaul promote registry.example.com/models/iris@sha256:... --gate \"accuracy >= 0.9\" "
             "--beats accuracy\n\n"
             f"Exit code {EXIT_REJECTED} when the model is rejected (gate, --beats, --require-signature): nothing "
             "moved;\n1 when promote itself failed.", step=PROMOTE)
    add("rollback", cmd_rollback, "restore the model that was at the stage before the last promotion",
             "modelhaul rollback registry.example.com/models/iris:v1 --stage production", step=ROLLBACK)
    sp = add("sign", cmd_sign, "sign a model (OpenSSF model signing) and attach its SLSA provenance",
             "modelhaul sign registry.example.com/models/iris:v1 --key signing-key.pem", step=SIGN)
    # the key's password is a secret: from standard input, never an argument (else MODELHAUL_SIGNING_KEY_PASSWORD)
    sp.add_argument("--key-password-stdin", action="store_true", help="read the key's password from standard input")
    add("verify", cmd_verify, "check a model's signature, files and provenance against a public key",
             "modelhaul verify registry.example.com/models/iris:v1 --key signing-key.pub", step=VERIFY)
    return p
