"""The ``modelhaul`` command: ormb-style verbs for the local store and registries, and the steps.

Every command prints a short human line (or ``--json`` for machines) and exits non-zero with a
one-line reason on failure. Transfers show progress on a terminal. The options are in
:mod:`.parser` (the deploy options derived from the step's declaration), what each command does in
:mod:`.commands` (each one call into :mod:`modelhaul.steps`).

Exit codes: 0 done, 1 failed (one line on stderr), 2 usage error, 3 ``promote`` rejected the model
(its gate, ``--beats`` or ``--require-signature``; nothing moved), 130 interrupted, 141 reader of the
output went away, 143 SIGTERM.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from modelhaul import steps
from modelhaul.cli.parser import EXIT_REJECTED, _join_dash_values, build_parser
from modelhaul.cli.progress import showing
from modelhaul.errors import ModelhaulError, redact, said_in


def _untagged(ref: str) -> bool:
    """``host/repo`` or ``oci:PATH`` with neither tag nor digest; a reference that is not one is left to
    the command, which refuses it in one line (nothing is said about a tag it will not use)."""
    parts = steps.reference_parts(ref)
    return parts is not None and not parts["tag"] and not parts["digest"]


def _human(result: dict[str, Any]) -> str:
    if "models" in result:
        return "\n".join(f"{m['ref']}\t{m['digest']}" for m in result["models"]) or "(no models)"
    if "tags" in result:
        return "\n".join(result["tags"]) or "(no tags)"
    if "line" in result:
        return result["line"]
    if "applied" in result and "target" in result:
        return _human_deploy(result)
    if "login" in result:  # docker's words, so scripts and people read it the same way
        return "Login Succeeded"
    if "logout" in result:
        return f"Removing login credentials for {result['logout']}" if result.get("had_credentials") \
            else f"Not logged in to {result['logout']}"
    for key in ("ref", "removed"):
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


def _run(argv: list[str] | None) -> int:
    terminated = steps.exit_cleanly_on_sigterm()
    args = build_parser().parse_args(_join_dash_values(sys.argv[1:] if argv is None else list(argv)))
    if args.command in ("save", "push", "pull") and _untagged(args.ref):
        print("Using default tag: latest", file=sys.stderr)  # as docker says it
    try:
        with said_in("cli"), showing(args):
            result = args.fn(args)
    except terminated as exc:  # cleanups have run on the way up
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
    if isinstance(result, dict) and result.get("unsafe_globals"):  # parse and inspect: said on any output
        print(f"warning: {result.get('ref')}: a pickle of this model imports {', '.join(result['unsafe_globals'])} "
              "(loading it runs that code); deploy and promote refuse it without --trust", file=sys.stderr)
    if args.json or args.command == "inspect" and not sys.stdout.isatty():
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    else:
        print(_human(result) if args.command != "inspect" else json.dumps(result, indent=2, default=str))
    sys.stdout.flush()
    if args.command == "promote" and result.get("promoted") is False:
        print(f"rejected: {redact(str(result.get('reason') or 'the gate was not met'))}", file=sys.stderr)
        return EXIT_REJECTED
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
