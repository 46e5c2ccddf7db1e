"""``modelhaul-initializer URI DEST``: the serving pod's storage initializer, as a process.

Seldon Core (``graph.storageInitializerImage``) and KServe (the ``modelhaul``
ClusterStorageContainer) run the initializer image (``Dockerfile.initializer``) as an init container
with ``(uri, /mnt/models)``. This module is the process around the work
(:func:`modelhaul.serving.materialize.initialize`): arguments, environment flags, SIGTERM, the pod
log's progress lines, exit 0 or one line on stderr and exit 1. The URI scheme is
:mod:`modelhaul.serving.initializer`.
"""

from __future__ import annotations

import argparse
import os
import sys

from modelhaul import steps
from modelhaul.declarations import parse_bool
from modelhaul.errors import ConfigError, ModelhaulError, redact


def _env_flag(name: str) -> bool:
    """The environment variable as a bool (a value that is not one is refused in one line)."""
    return parse_bool(os.environ.get(name), name)


def _debug() -> bool:
    """MODELHAUL_DEBUG: tracebacks instead of the one line; never itself a reason to fail."""
    try:
        return _env_flag("MODELHAUL_DEBUG")
    except ConfigError:
        return False


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modelhaul-initializer",
        description="Pull a digest-pinned model and lay it out for a model server (storage initializer).",
    )
    p.add_argument("uri", help="modelhaul://HOST/REPO@sha256:... (or a bare reference, or oci:PATH@...)")
    p.add_argument("dest", help="directory the server reads (e.g. /mnt/models)")
    p.add_argument("--server", choices=steps.INITIALIZER_SERVERS,
                   help="layout to write (default: MODELHAUL_SERVER, else the URI's, else from the model)")
    p.add_argument("--name", help="model name in the layout (default: MODELHAUL_MODEL_NAME, the URI's, "
                                  "else the repository name)")
    p.add_argument("--allow-tag", action="store_true",
                   help="accept a reference that is not pinned by digest (not reproducible)")
    p.add_argument("--plain-http", action="store_true", help="registry without TLS (MODELHAUL_PLAIN_HTTP)")
    p.add_argument("--insecure", action="store_true", help="skip TLS verification (MODELHAUL_INSECURE)")
    p.add_argument("--verify-key", metavar="PUB",
                   help="refuse a model not signed by this public key (PEM path or text; MODELHAUL_VERIFY_KEY)")
    p.add_argument("--ca-file", help="CA bundle to verify the registry's certificate (MODELHAUL_CA_FILE)")
    p.add_argument("--trust", action="store_true",
                   help="allow loading pickled models when the layout must re-save one (MODELHAUL_TRUST)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Console script ``modelhaul-initializer URI DEST``: exit 0, or non-zero with one line on stderr."""
    steps.exit_cleanly_on_sigterm()  # a pod being deleted: clean up the partial pull, exit 143
    args = _parser().parse_args(argv)
    debug = _debug()
    held = steps.HeldLines(lambda line: print(f"modelhaul-initializer: {line}", file=sys.stderr, flush=True))
    log = steps.LogLines(held, every=10.0, what="pulled")
    try:
        with steps.watching(log):  # the pod's log: one line per layer, and where the download is every 10 s
            out = steps.initialize(
                args.uri, args.dest, server=args.server, name=args.name,
                allow_tag=args.allow_tag or _env_flag("MODELHAUL_ALLOW_TAG"),
                plain_http=args.plain_http, insecure=args.insecure, ca_file=args.ca_file,
                trust=args.trust or _env_flag("MODELHAUL_TRUST"),
                verify_key=args.verify_key,
            )
    except Exception as exc:  # an init container's log should say in one line why the pod cannot start
        if debug:
            raise
        msg = " ".join(str(exc).split()) or type(exc).__name__
        if not isinstance(exc, ModelhaulError):
            msg = f"{type(exc).__name__}: {msg}"
        print(f"modelhaul-initializer: error: {redact(msg)}", file=sys.stderr)
        return 1
    held.flush()
    print(f"modelhaul-initializer: wrote the {out['server']} layout of {out['ref']} "
          f"(model {out['name']}) to {out['dest']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
