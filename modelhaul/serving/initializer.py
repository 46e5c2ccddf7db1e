"""modelhaul:// URIs: how a serving manifest names the model its storage initializer pulls.

A serving manifest names a model by a URI with modelhaul's own prefix (KServe owns ``oci://`` for
its modelcars)::

    modelhaul://HOST/REPO@sha256:<hex>?server=triton&name=iris[&plain_http=true][&insecure=true]

The part after the prefix is a digest-pinned modelhaul reference (an ``oci:PATH@sha256:...``
layout reference works too); ``server`` is the layout the serving runtime expects (``triton``,
``mlserver``, ``tfserving``, ``sklearn``, ``xgboost``, ``mlflow``) and ``name`` the model's name in
it (a Triton repository needs one). Seldon Core and KServe start the initializer image with
``(uri, /mnt/models)``; its entrypoint is ``modelhaul-initializer`` (:mod:`modelhaul.cli.initializer`),
its work :func:`modelhaul.serving.materialize.initialize`. This module is what the manifest
builders need: the scheme, the layouts a URI may ask for, the default image.

Credentials never travel in the URI (see :mod:`modelhaul.serving.materialize`).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

from modelhaul.errors import DeployError, redact

PREFIX = "modelhaul://"
SERVERS = ("triton", "mlserver", "tfserving", "sklearn", "xgboost", "mlflow")
DEFAULT_IMAGE = "modelhaul/initializer:0.1.0"


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
