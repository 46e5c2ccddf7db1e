"""The storage initializer's work: pull a digest-pinned model, verify it, write a server's layout.

Seldon Core and KServe run it in an init container, before the model server starts, as
``modelhaul-initializer URI DEST`` (:mod:`modelhaul.cli.initializer`); the URI scheme is
:mod:`modelhaul.serving.initializer`. Credentials come from ``MODELHAUL_USERNAME``/
``MODELHAUL_PASSWORD``, ormb's ``ORMB_USERNAME``/``ORMB_PASSWORD`` or a mounted docker config
(``DOCKER_CONFIG``); never from the URI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from modelhaul.errors import DeployError
from modelhaul.flags import parse_bool
from modelhaul.paths import scratch_dir
from modelhaul.serving.initializer import SERVERS, check_model_name, parse_uri


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
