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
