"""What other tools wrote into an artifact, kept as they wrote it so that a re-publish never loses it.

modelhaul maps a foreign config (a ModelPack config, a Kitfile, an ormb config) onto its
ModelConfig, but those formats say more than the ModelConfig has fields for (ModelPack's
``architecture``, ``precision``, ``licenses``; a Kitfile's ``code:`` entries; a manifest annotation
such as ``org.cncf.modctl.modelfile``). :class:`Origin` keeps all of it, verbatim, and
:func:`overlay` writes it back: what modelhaul did not change is written as the other tool wrote
it (``sklearn`` stays ``sklearn``, nanoseconds stay), what modelhaul changed is written over it,
and nothing is removed.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

#: manifest annotations modelhaul writes itself (never carried over from the artifact read)
OWN_ANNOTATIONS = ("io.modelhaul.config", "io.modelhaul.bundle-format")


class KeptLayer(BaseModel):
    """One layer another tool wrote for a file: its media type, digest and annotations."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    media_type: str | None = None
    digest: str | None = None
    annotations: dict[str, str] = Field(default_factory=dict)


class Origin(BaseModel):
    """The foreign config and annotations of the artifact a model was read from."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    modelpack: dict[str, Any] | None = None  # the ModelPack config as written (modelfs left out)
    kitfile: dict[str, Any] | None = None  # the Kitfile as written (layer digests left out)
    ormb: dict[str, Any] | None = None  # ormb config fields the ModelConfig has no field for
    annotations: dict[str, str] = Field(default_factory=dict)  # manifest annotations of other tools
    layers: dict[str, KeptLayer] = Field(default_factory=dict)  # by file path

    def without_layers(self) -> Origin:
        """Itself without ``layers``: those travel in the manifest's own layer descriptors."""
        return self.model_copy(update={"layers": {}})


def authors_of(author: str, origin: Origin | None) -> list[str]:
    """The authors list another tool wrote (ModelPack ``descriptor.authors``, a Kitfile's
    ``package.authors``) when the ModelConfig's ``author`` is still its joined form, else ``[author]``."""
    if origin is not None:
        for doc, section in ((origin.modelpack, "descriptor"), (origin.kitfile, "package")):
            names = ((doc or {}).get(section) or {}).get("authors") if isinstance((doc or {}).get(section), dict) \
                else None
            if isinstance(names, list) and ", ".join(map(str, names)) == author:
                return [str(n) for n in names]
    return [author]


def kept_of_manifest(manifest: dict[str, Any]) -> tuple[dict[str, str], dict[str, KeptLayer]]:
    """A manifest's annotations other than modelhaul's, and each file's layer by its path."""
    from modelhaul import oci

    annotations = {k: v for k, v in (manifest.get("annotations") or {}).items() if k not in OWN_ANNOTATIONS}
    layers = {}
    for layer in manifest.get("layers") or []:
        ann = dict(layer.get("annotations") or {})
        path = ann.pop(oci.ANNOTATION_FILEPATH, None) or ann.pop(oci.CNAI_ANNOTATION_FILEPATH, None) or ann.get(
            oci.ANNOTATION_TITLE)
        if path:
            layers[path] = KeptLayer(media_type=layer.get("mediaType"), digest=layer.get("digest"), annotations=ann)
    return annotations, layers


RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


class Timestamp(dt.datetime):
    """An aware time that remembers the RFC 3339 text it was read from.

    Go tools (modctl, ormb, kit) write nanoseconds; a datetime holds microseconds. The text is what
    :func:`rfc3339` writes back, so a re-publish keeps the time exactly as the other tool wrote it.
    A changed time (``replace``, arithmetic) is a plain datetime again and loses the text.
    """

    written: str | None = None

    @classmethod
    def read(cls, text: str, value: dt.datetime) -> Timestamp:
        out = cls(value.year, value.month, value.day, value.hour, value.minute, value.second,
                  value.microsecond, value.tzinfo)
        out.written = text
        return out

    def __reduce_ex__(self, protocol: Any) -> Any:  # copies keep the text
        return (_timestamp, (self.written, dt.datetime(*self.timetuple()[:6], self.microsecond, self.tzinfo)))


def _timestamp(text: str | None, value: dt.datetime) -> dt.datetime:
    return Timestamp.read(text, value) if text else value


_MISSING = object()


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        if isinstance(doc, dict) and key in doc:
            doc = doc[key]
        else:
            return _MISSING
    return doc


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        nxt = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(nxt, dict):
            nxt = {}
            doc[key] = nxt
        doc = nxt
    doc[path[-1]] = value


def _leaves(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """(path, value) of every leaf; lists are leaves (a list written is written whole), an empty
    mapping has none (writing nothing there removes nothing)."""
    if isinstance(doc, dict):
        return [leaf for k, v in doc.items() for leaf in _leaves(v, (*path, k))]
    return [(path, doc)]


def overlay(theirs: dict[str, Any] | None, mine: dict[str, Any], as_read: dict[str, Any]) -> dict[str, Any]:
    """``theirs`` with modelhaul's changes written over it, nothing removed.

    ``mine`` is what modelhaul writes for its current config; ``as_read`` is what it would write
    for ``theirs`` unchanged. A value of ``mine`` equal to ``as_read`` is no change of modelhaul's:
    ``theirs`` stays as written there (present or absent). Any other value of ``mine`` is written.
    """
    if not theirs:
        return mine
    out = copy.deepcopy(theirs)
    for path, value in _leaves(mine):
        if path and _get(as_read, path) != value:
            _set(out, path, copy.deepcopy(value))
    return out
