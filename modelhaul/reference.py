"""Model references: ``registry/repo:tag@sha256:...`` and ``oci:PATH[:TAG|@DIGEST]``.

Registry references follow the Docker/OCI grammar (the first path component is a registry when it
has a dot or a colon or is ``localhost``). ``oci:PATH:TAG`` is skopeo's syntax for an OCI image
layout directory; modelhaul treats such a directory as a registry that needs no server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from modelhaul.errors import InvalidReference

DIGEST_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}", re.ASCII)
# the OCI distribution grammar, ASCII only (``\w`` would let non-ASCII tags reach the registry)
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", re.ASCII)
REPO_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*", re.ASCII)
_LABEL = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)"
REGISTRY_RE = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:.]+\])(?::[0-9]{{1,5}})?", re.ASCII)
MAX_NAME = 255  # distribution's limit on registry/repository
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_UNPRINTABLE = re.compile(rf"{_CONTROL.pattern}|\s")
DEFAULT_REGISTRY = "docker.io"


@dataclass(frozen=True)
class Reference:
    """A parsed reference. Exactly one of ``registry`` or ``layout`` is set."""

    repository: str
    tag: str | None = None
    digest: str | None = None
    registry: str | None = None
    layout: str | None = None  # path of an OCI image layout directory (oci: refs)

    @classmethod
    def parse(cls, text: str) -> Reference:
        if not isinstance(text, str) or not text.strip():
            raise InvalidReference("empty model reference; expected registry/repo:tag or oci:PATH:TAG")
        # a layout path may hold inner spaces; nothing else may hold whitespace or control characters
        bad = _CONTROL.search(text) if text.startswith("oci:") and text == text.strip() else _UNPRINTABLE.search(text)
        if bad:
            raise InvalidReference(
                f"{text!r}: invalid character {bad.group()!r} at position {bad.start()}; references hold no "
                "whitespace or control characters (a trailing newline from a file or $(...)?)"
            )
        if text.startswith("oci:"):
            return cls._parse_layout(text)
        if "://" in text:
            scheme = text.split("://", 1)[0]
            raise InvalidReference(
                f"{text!r}: write references without a scheme ({scheme}://); e.g. host:5000/team/model:v1"
            )
        rest, digest = text, None
        if "@" in rest:
            rest, digest = rest.split("@", 1)
            _check_digest(digest, text)
        tag = None
        last = rest.rsplit("/", 1)[-1]
        if ":" in last:
            rest, tag = rest.rsplit(":", 1)
            _check_tag(tag, text)
        parts = rest.split("/", 1)
        if len(parts) == 2 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
            registry, repo = parts
        else:
            registry, repo = DEFAULT_REGISTRY, rest
            if "/" not in repo:
                repo = f"library/{repo}"
        if not REGISTRY_RE.fullmatch(registry):
            raise InvalidReference(f"{text!r}: invalid registry host {registry!r} (ASCII host name[:port])")
        if not REPO_RE.fullmatch(repo):
            raise InvalidReference(
                f"{text!r}: invalid repository {repo!r} (lowercase ASCII letters, digits, '.', '_', '-', '/')"
            )
        if len(f"{registry}/{repo}") > MAX_NAME:
            raise InvalidReference(f"{text!r}: registry/repository is longer than {MAX_NAME} characters")
        return cls(repository=repo, tag=tag, digest=digest, registry=registry)

    @classmethod
    def _parse_layout(cls, text: str) -> Reference:
        body = text[4:]
        digest = tag = None
        if "@" in body:
            body, digest = body.rsplit("@", 1)
            _check_digest(digest, text)
        # the tag is what follows the last ':' unless that ':' is part of a directory name (a '/' follows)
        if ":" in body:
            path, maybe_tag = body.rsplit(":", 1)
            if "/" not in maybe_tag:
                _check_tag(maybe_tag, text)
                if not path:
                    raise InvalidReference(f"{text!r}: oci: reference without a path; expected oci:PATH:TAG")
                body, tag = path, maybe_tag
        if not body:
            raise InvalidReference(f"{text!r}: oci: reference without a path; expected oci:PATH:TAG")
        return cls(repository=body.rstrip("/").rsplit("/", 1)[-1] or "model", tag=tag, digest=digest,
                   layout=body)

    # -- views ------------------------------------------------------------------------------

    @property
    def is_layout(self) -> bool:
        return self.layout is not None

    @property
    def reference(self) -> str:
        """What to ask a registry for: the digest when pinned, else the tag (default ``latest``)."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str | None) -> Reference:
        return replace(self, digest=digest)

    def with_tag(self, tag: str | None) -> Reference:
        return replace(self, tag=tag)

    def unpinned(self) -> Reference:
        return replace(self, digest=None)

    @property
    def name(self) -> str:
        """``registry/repo`` (or ``oci:PATH``), without tag and digest."""
        return f"oci:{self.layout}" if self.is_layout else f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def _check_tag(tag: str, text: str) -> None:
    if not TAG_RE.fullmatch(tag):
        raise InvalidReference(
            f"{text!r}: invalid tag {tag!r}; a tag is 1-128 ASCII letters, digits, '_', '.', '-' "
            "and does not start with '.' or '-'"
        )


def _check_digest(digest: str, text: str) -> None:
    if not DIGEST_RE.fullmatch(digest) or (digest.startswith("sha256:") and len(digest) != 71):
        raise InvalidReference(f"{text!r}: invalid digest {digest!r}; expected sha256:<64 hex digits>")


def parse(text: str | Reference) -> Reference:
    return text if isinstance(text, Reference) else Reference.parse(text)


def parse_destination(text: str | Reference, verb: str = "save") -> Reference:
    """A reference to write a new artifact to: a tag, never a digest (the digest is what writing makes)."""
    r = parse(text)
    if r.digest:
        raise InvalidReference(
            f"{text}: {verb} cannot honour a digest (it is computed from the bytes written); "
            f"name a tag instead, e.g. {r.unpinned().with_tag(r.tag or 'v1')}"
        )
    return r
