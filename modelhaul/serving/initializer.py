"""modelhaul:// URIs and the storage initializer that turns one into the files a model server reads.

A serving manifest names a model by a URI with modelhaul's own prefix (KServe owns ``oci://`` for
its modelcars)::

    modelhaul://HOST/REPO@sha256:<hex>?server=triton&name=iris[&plain_http=true][&insecure=true]

The part after the prefix is a digest-pinned modelhaul reference (an ``oci:PATH@sha256:...``
layout reference works too); ``server`` is the layout the serving runtime expects (``triton``,
``mlserver``, ``tfserving``, ``sklearn``, ``xgboost``, ``mlflow``) and ``name`` the model's name in
it (a Triton repository needs one). Seldon Core and KServe start the initializer image with
``(uri, /mnt/models)``; its entrypoint is :func:`main` (``modelhaul-initializer``).

Credentials come from ``MODELHAUL_USERNAME``/``MODELHAUL_PASSWORD``, ormb's ``ORMB_USERNAME``/
``ORMB_PASSWORD`` or a mounted docker config (``DOCKER_CONFIG``); never from the URI.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from modelhaul.errors import DeployError, ModelhaulError, redact
from modelhaul.flags import TRUE_WORDS, env_flag, parse_bool
from modelhaul.paths import scratch_dir

PREFIX = "modelhaul://"
SERVERS = ("triton", "mlserver", "tfserving", "sklearn", "xgboost", "mlflow")
DEFAULT_IMAGE = "modelhaul/initializer:0.1.0"

# the serving kinds modelhaul knows, from a config's format (or, failing that, its framework)
def build_uri(pinned: str, *, server: str, name: str, plain_http: bool = False,
              insecure: bool = False) -> str:
    """The modelhaul:// URI of a digest-pinned reference (the tag, if any, is dropped)."""
    from modelhaul.reference import parse

    r = parse(pinned)
    if not r.digest:
        raise DeployError(f"{pinned}: a serving manifest needs a digest-pinned reference")
    check_model_name(name)  # refused when rendering, not in the serving pod
    params = {"server": server, "name": name}
    if plain_http:
        params["plain_http"] = "true"
    if insecure:
        params["insecure"] = "true"
    return PREFIX + str(r.with_tag(None)) + "?" + urlencode(params)


def parse_uri(uri: str) -> tuple[str, dict[str, str]]:
    """``(reference, params)`` of a modelhaul:// URI; a bare reference is accepted too."""
    text = uri.strip()
    if text.startswith(PREFIX):
        text = text[len(PREFIX):]
    elif "://" in text:
        raise DeployError(f"{redact(uri)}: not a modelhaul URI (expected {PREFIX}HOST/REPO@sha256:...)")
    ref, _, query = text.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(params) - {"server", "name", "plain_http", "insecure"})
    if unknown:
        raise DeployError(f"{redact(uri)}: unknown URI parameter(s) {', '.join(unknown)}")
    return ref, params


_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,252}")


def check_model_name(name: str) -> None:
    """A model name becomes a directory under the destination: one safe path component only.

    Letters, digits, ``_``, ``-`` and ``.`` (not first), at most 253 characters — what Triton and
    Kubernetes accept — so ``../x``, ``/abs``, ``.`` and an empty name are refused.
    """
    if not _MODEL_NAME.fullmatch(name or ""):
        raise DeployError(
            f"model name {name!r} (URI name=, --name or MODELHAUL_MODEL_NAME) must be one path component: "
            "letters, digits, '_', '-', '.' (not first), at most 253 characters"
        )


# -- the entrypoint ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modelhaul-initializer",
        description="Pull a digest-pinned model and lay it out for a model server (storage initializer).",
    )
    p.add_argument("uri", help="modelhaul://HOST/REPO@sha256:... (or a bare reference, or oci:PATH@...)")
    p.add_argument("dest", help="directory the server reads (e.g. /mnt/models)")
    p.add_argument("--server", choices=SERVERS,
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


def initialize(uri: str, dest: str | Path, *, server: str | None = None, name: str | None = None,
               allow_tag: bool = False, plain_http: bool = False, insecure: bool = False,
               trust: bool = False, verify_key: str | None = None, ca_file: str | None = None) -> dict[str, str]:
    """Fetch the model named by ``uri`` and write the ``server`` layout into ``dest``.

    ``verify_key`` (a public key, path or PEM text; default ``MODELHAUL_VERIFY_KEY``): the model
    must carry a signature by that key matching its files, checked before anything is written.

    ``trust`` allows loading a pickle-based model when the layout must re-save it (a skops archive
    becoming ``model.joblib``).

    Returns ``{ref, digest, server, name, dest}``.
    """
    from modelhaul import artifacts
    from modelhaul import config as config_mod
    from modelhaul.reference import parse
    from modelhaul.registry_options import RegistryOptions

    ref, params = parse_uri(uri)
    r = parse(ref)
    if not r.digest and not allow_tag:
        raise DeployError(f"{ref}: not pinned by digest; pin it (@sha256:...) or pass --allow-tag")
    server = server or os.environ.get("MODELHAUL_SERVER") or params.get("server")
    if server and server not in SERVERS:
        raise DeployError(f"server {server!r}: expected one of {', '.join(SERVERS)}")
    # the first one given wins; one given but empty is refused (a templating mistake), not skipped
    given = [n for n in (name, os.environ.get("MODELHAUL_MODEL_NAME"), params.get("name")) if n is not None]
    name = given[0] if given else r.repository.rsplit("/")[-1]
    check_model_name(name)
    opts = RegistryOptions.resolve(plain_http=plain_http or parse_bool(params.get("plain_http"), "plain_http"),
                                   insecure=insecure or parse_bool(params.get("insecure"), "insecure"),
                                   ca_file=ca_file)
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise DeployError(f"{dest}: destination is not empty")
    verify_key = verify_key or os.environ.get("MODELHAUL_VERIFY_KEY") or None
    from modelhaul.serving import layouts

    with _scratch(dest) as tmp, _home_in(tmp):
        got = artifacts.fetch(ref, tmp / "artifact", options=opts)
        if verify_key:  # before a single file reaches dest: an unsigned or tampered model never serves
            from modelhaul.signing import verify_model

            verify_model(got["ref"], verify_key, options=opts, model_dir=Path(got["model_dir"]))
        cfg = config_mod.load(tmp / "artifact")
        server = server or layouts.server_for(cfg, Path(got["model_dir"]))
        with layouts.moving():  # the checkout is scratch: its files are renamed into dest
            layouts.write_layout(Path(got["model_dir"]), cfg, dest, server, name, trust=trust)
    return {"ref": got["ref"], "digest": got["digest"], "server": server, "name": name, "dest": str(dest)}


@contextlib.contextmanager
def _scratch(dest: Path) -> Iterator[Path]:
    """Scratch space for the pull: a hidden directory in ``dest`` (the volume the pod gives us, and the
    one filesystem files can be renamed into place on), else under TMPDIR; never under HOME, which
    the uid the pod runs as (Seldon's ``runAsUser`` 8888) may not be able to write."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".modelhaul-init-", dir=dest))
    except OSError:
        with scratch_dir(prefix="modelhaul-init-") as t:
            yield t
        return
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _home_in(tmp: Path) -> Iterator[None]:
    """modelhaul's own state (local store, digest cache) in scratch unless MODELHAUL_HOME names a place:
    a serving pod has nothing to reuse there and perhaps no writable HOME."""
    if os.environ.get("MODELHAUL_HOME"):
        yield
        return
    os.environ["MODELHAUL_HOME"] = str(tmp / "home")
    try:
        yield
    finally:
        os.environ.pop("MODELHAUL_HOME", None)


def main(argv: list[str] | None = None) -> int:
    """Console script ``modelhaul-initializer URI DEST``: exit 0, or non-zero with one line on stderr."""
    from modelhaul.interrupt import exit_cleanly_on_sigterm
    from modelhaul.meter import HeldLines, LogLines, watching

    exit_cleanly_on_sigterm()  # a pod being deleted: clean up the partial pull, exit 143
    args = _parser().parse_args(argv)
    debug = (os.environ.get("MODELHAUL_DEBUG") or "").strip().lower() in TRUE_WORDS
    held = HeldLines(lambda line: print(f"modelhaul-initializer: {line}", file=sys.stderr, flush=True))
    log = LogLines(held, every=10.0, what="pulled")
    try:
        with watching(log):  # the pod's log: one line per layer, and where the download is every 10 s
            out = initialize(
                args.uri, args.dest, server=args.server, name=args.name,
                allow_tag=args.allow_tag or env_flag("MODELHAUL_ALLOW_TAG"),
                plain_http=args.plain_http, insecure=args.insecure, ca_file=args.ca_file,
                trust=args.trust or env_flag("MODELHAUL_TRUST"),
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
