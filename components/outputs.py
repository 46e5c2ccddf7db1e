"""How a step result becomes KFP outputs: metadata on an artifact, a small pointer file, logged metrics.

KFP's launcher owns an output artifact's ``uri``: it assigns one under the pipeline root and
uploads whatever the component wrote at ``.path`` there. So the modelhaul reference goes into the
metadata (``ref``, ``digest``, ``format``, ``media_type``, ...) and the artifact's file is a JSON
pointer to it: model bytes stay in the registry, as the design asks.

Runs inside the component's container (imported by the component bodies), so it needs no kfp.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modelhaul.declarations import jsonable  # KFP stores metadata and dict outputs as protobuf Structs

#: Keys every Model artifact's metadata carries (``None`` when a step has no such value).
METADATA_KEYS = ("ref", "digest", "format", "media_type")


def parameter(value: Any) -> Any:
    """``value`` as a KFP dict/list parameter: JSON types, with ``None`` entries left out.

    The local runner cannot pass ``null`` inside a dict or list parameter to the next task (the
    cluster backend can), and every step result reads a missing key as ``None`` anyway.
    """

    def prune(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: prune(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [prune(x) for x in v if x is not None]
        return v

    return prune(jsonable(value))


def record(artifact: Any, result: dict[str, Any], source: Any = None) -> dict[str, Any]:
    """Write ``result`` on ``artifact``: every key into ``.metadata``, the whole as JSON at ``.path``.

    With ``source`` (the input artifact the step read), the metadata also names its ``upstream_uri``,
    so a run's records show which artifact each step consumed, on any backend.
    """
    data = jsonable(result)
    meta = {key: data.get(key) for key in METADATA_KEYS}
    meta.update(data)
    if source is not None:
        meta["upstream_uri"] = source.uri
    artifact.metadata.update(meta)
    path = Path(artifact.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return meta


def upstream_ref(artifact: Any) -> str:
    """The reference an upstream step's artifact names (its metadata ``ref``); one line if it names none."""
    ref = (artifact.metadata or {}).get("ref") if artifact is not None else None
    if not ref:
        from modelhaul.errors import ConfigError

        raise ConfigError(f"input artifact {getattr(artifact, 'name', '') or '?'} carries no metadata 'ref': "
                          "connect the model output of a modelhaul step (or an importer with metadata {'ref': ...})")
    return str(ref)


def log_metrics(artifact: Any, values: dict[str, Any]) -> dict[str, float]:
    """Log each numeric entry of ``values`` on a ``Metrics`` artifact (what the KFP UI charts)."""
    logged = {k: float(v) for k, v in values.items()
              if isinstance(v, int | float) and not isinstance(v, bool) and v == v}  # NaN is not a metric
    for name, value in logged.items():
        artifact.log_metric(name, value)
    return logged
