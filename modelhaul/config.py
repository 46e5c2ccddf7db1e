"""ModelConfig: what a model artifact says about itself.

The fields are ormb's v1alpha1 ``Metadata`` (so ormb and its Seldon storage initializer read our
configs) plus a ``provenance`` block and ``datasets`` list that carry the MLflow run and any parent
artifact, so an artifact in the registry says what it is and where it came from.

On the wire every key is camelCase, like ormb's and Kubernetes' own. In Python the attributes are
snake_case. ``ormbfile.yaml`` is read and written with :func:`load` / :func:`dump`.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator
from pydantic.alias_generators import to_camel

from modelhaul import format_table
from modelhaul.errors import ConfigError
from modelhaul.model_files import ORMBFILE
from modelhaul.origin import RFC3339, Origin, Timestamp

#: ormb's ``format`` vocabulary, spelled exactly as its Go constants: anything else makes ``ormb save`` fail
ORMB_FORMATS = ("SavedModel", "ONNX", "H5", "PMML", "CaffeModel", "NetDef", "MXNetParams", "TorchScript",
                "GraphDef", "TensorRT", "SKLearn", "XGBoost", "MLflow", "Pickle", "Others")
_ORMB_BY_LOWER = {f.lower(): f for f in ORMB_FORMATS}
# the file ormb's validators require for a label (``ormb save`` fails without one)
_ORMB_FILE_SUFFIX = {"SKLearn": ".joblib", "XGBoost": ".xgboost", "TorchScript": ".pt", "GraphDef": ".graphdef"}
ORMB_MODEL_DIR = "model/"


def ormb_format(fmt: str | None, directory_structure: list[str] | tuple[str, ...] = ()) -> str:
    """ormb's label for a model: ``MLflow`` for an MLflow model directory (whatever its flavor, so
    ormb's initializer lays it out for MLFLOW_SERVER), ormb's spelling of a format it knows when the
    file its validator expects is there, else ``Others``."""
    if "MLmodel" in directory_structure:
        return "MLflow"
    label = _ORMB_BY_LOWER.get((fmt or "").lower(), "Others")
    wanted = _ORMB_FILE_SUFFIX.get(label)
    if wanted and not any(p.endswith(wanted) for p in directory_structure):
        return "Others"  # ormb's validator for this label would refuse the directory
    return label


# ormb's names and those modelhaul knows beyond them (modelhaul.format_table)
_KNOWN_FORMATS = {n.lower(): n for n in (*ORMB_FORMATS, *(f.name for f in format_table.FORMATS))}


def format_name(value: Any) -> str | None:
    """A foreign tool's format (Kitfile ``onnx``, ModelPack ``safetensors``) in modelhaul's spelling;
    unknown values are kept as written."""
    if not value:
        return None
    text = str(value)
    return _KNOWN_FORMATS.get(text.lower().replace("-", "").replace(" ", ""), text)


def rfc3339(value: dt.datetime) -> str:
    """RFC 3339 with a zone, ``Z`` for UTC: what Go's ``time.Time`` (ormb, model-spec, modctl) reads.

    A :class:`Timestamp` read from such text is written back as it was read (nanoseconds kept)."""
    return getattr(value, "written", None) or value.isoformat().replace("+00:00", "Z")


def _created(v: Any) -> Any:
    """A date, a naive or aware datetime, or their strings -> an aware datetime (naive = UTC).

    Year 1 is Go's zero time, what ormb writes when ``created`` is unset: it reads as unset.
    """
    if isinstance(v, str):
        text = v.strip()
        if not text:
            return None
        try:
            v = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return text  # left to pydantic, which names the field in its error
        if v.tzinfo is not None and v.year > 1 and RFC3339.fullmatch(text):
            return Timestamp.read(text, v)
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        v = dt.datetime(v.year, v.month, v.day)
    if isinstance(v, dt.datetime):
        if v.year <= 1:
            return None
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.timezone.utc)
    return v


class _Wire(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, unknown keys rejected (typos are errors)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class NamedValue(_Wire):
    """ormb's Metric and HyperParameter: a name and a *string* value."""

    name: str
    value: str

    @field_validator("value", mode="before")
    @classmethod
    def _stringify(cls, v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else str(v)


class Tensor(_Wire):
    """One input or output. ``size`` uses -1 for a dynamic dimension (never null)."""

    name: str | None = None
    size: list[int] | None = None
    d_type: str | None = Field(default=None, alias="dType")
    op_type: str | None = None
    values: list[str] | None = None


class Signature(_Wire):
    inputs: list[Tensor] = Field(default_factory=list)
    outputs: list[Tensor] = Field(default_factory=list)
    layers: dict[str, int] = Field(default_factory=dict)


class GitRepo(_Wire):
    repository: str | None = None
    revision: str | None = None
    branch: str | None = None


class GitHolder(_Wire):
    git: GitRepo = Field(default_factory=GitRepo)


class DatasetInfo(_Wire):
    """A dataset the model was trained or evaluated on (from MLflow dataset inputs)."""

    name: str | None = None
    digest: str | None = None
    source: str | None = None
    source_type: str | None = None
    context: str | None = None
    schema_: dict[str, Any] | list[Any] | str | None = Field(default=None, alias="schema")
    rows: int | None = None
    profile: dict[str, Any] | None = None


class MLflowProvenance(_Wire):
    tracking_uri: str | None = None
    experiment_id: str | None = None
    experiment_name: str | None = None
    run_id: str | None = None
    run_name: str | None = None
    model_id: str | None = None
    model_uri: str | None = None
    registered_model: str | None = None
    version: str | None = None
    aliases: list[str] = Field(default_factory=list)
    mlflow_version: str | None = None
    flavors: dict[str, str] = Field(default_factory=dict)


class Conversion(_Wire):
    """How a derived artifact was made from its parent, and the parity it was checked to."""

    source_format: str
    target_format: str
    tool: str | None = None
    opset: int | None = None
    tolerance: float | None = None
    max_abs_diff: float | None = None
    label_agreement: float | None = None
    samples: int | None = None


class Provenance(_Wire):
    sources: list[str] = Field(default_factory=list)
    mlflow: MLflowProvenance | None = None
    parent: str | None = None  # digest-pinned reference of the artifact this one derives from
    conversion: Conversion | None = None
    tool: str | None = None


class ModelConfig(_Wire):
    """The full config of a model artifact: ormb v1alpha1 fields + provenance + datasets."""

    author: str | None = None
    created: dt.datetime | None = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    framework: str | None = None
    format: str | None = None
    size: int | None = None
    metrics: dict[str, list[NamedValue]] = Field(default_factory=dict)
    hyper_parameters: list[NamedValue] = Field(default_factory=list)
    signature: Signature | None = None
    training: GitHolder | None = None
    dataset: GitHolder | None = None
    gpu_type: str | None = Field(default=None, alias="gpuType")
    directory_structure: list[str] = Field(default_factory=list)
    provenance: Provenance | None = None
    datasets: list[DatasetInfo] = Field(default_factory=list)
    origin: Origin | None = None  # what other tools wrote, kept as written (see modelhaul.origin)

    @field_validator("created", mode="before")
    @classmethod
    def _created_with_zone(cls, v: Any) -> Any:
        return _created(v)

    @field_validator("created", mode="after")
    @classmethod
    def _created_aware(cls, v: dt.datetime | None) -> dt.datetime | None:
        return _created(v)

    @field_serializer("created", when_used="json-unless-none")
    def _created_rfc3339(self, v: dt.datetime) -> str:
        return rfc3339(v)

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics_as_groups(cls, v: Any) -> Any:
        """Accept a flat ``{name: value}`` or a list of ``{name, value}`` as the ``training`` group."""
        if isinstance(v, list):
            return {"training": v}
        if isinstance(v, dict) and v and all(not isinstance(x, list) for x in v.values()):
            return {"training": [{"name": k, "value": x} for k, x in v.items()]}
        return v

    @field_validator("hyper_parameters", mode="before")
    @classmethod
    def _params_as_list(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return [{"name": k, "value": x} for k, x in v.items()]
        return v

    # -- conversions -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """camelCase JSON-able dict with empty fields left out (as ormb's omitempty does)."""
        return _prune(self.model_dump(mode="json", by_alias=True, exclude_none=True))

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def to_ormb_dict(self) -> dict[str, Any]:
        """What ormb's Go ``Metadata`` type reads: ``format`` always present, only its own fields."""
        d = self.to_dict()
        keep = {
            "author", "created", "description", "tags", "labels", "framework", "format", "gpuType",
            "metrics", "hyperParameters", "signature", "training", "dataset", "directoryStructure",
        }
        d = {**((self.origin.ormb or {}) if self.origin else {}), **{k: v for k, v in d.items() if k in keep}}
        d["format"] = ormb_format(self.format, self.directory_structure)
        if self.directory_structure:  # as `ormb save` lists them: paths inside the tar, under model/
            d["directoryStructure"] = [ORMB_MODEL_DIR + p for p in self.directory_structure]
        return d

    @classmethod
    def from_ormb_dict(cls, data: dict[str, Any], *, source: str = "ormb config") -> ModelConfig:
        """A config written by ormb: ``directoryStructure`` entries lose their ``model/`` prefix."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of config fields, got {type(data).__name__}")
        entries = data.get("directoryStructure") or []
        if isinstance(entries, list):
            rel = [str(e)[len(ORMB_MODEL_DIR):] if str(e).startswith(ORMB_MODEL_DIR) else str(e) for e in entries]
            data = {**data, "directoryStructure": [e for e in rel if e.strip("/") and e != "model"]}
        known = {f.alias or n for n, f in cls.model_fields.items()} - {"origin"}
        unknown = {k: v for k, v in data.items() if k not in known}
        if unknown:  # a field of a newer ormb: kept as written, written back on re-publish
            data = {**{k: v for k, v in data.items() if k in known}, "origin": {"ormb": unknown}}
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> ModelConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of config fields, got {type(data).__name__}")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_explain(exc, source)) from None

    def metric(self, name: str) -> float | None:
        """The value of a metric by name, searching ``training`` first, then every other group.

        ``group.name`` (e.g. ``test.accuracy``) picks a group explicitly.
        """
        groups = dict(self.metrics)
        order = ["training", *[g for g in groups if g != "training"]]
        if "." in name and name.split(".", 1)[0] in groups:
            g, n = name.split(".", 1)
            order, name = [g], n
        for g in order:
            for m in groups.get(g, []):
                if m.name == name:
                    try:
                        return float(m.value)
                    except ValueError:
                        return None
        return None

    def merged(self, other: dict[str, Any] | ModelConfig | None) -> ModelConfig:
        """This config with the set fields of ``other`` laid over it (dicts merge, scalars replace)."""
        if other is None:
            return self
        over = other.to_dict() if isinstance(other, ModelConfig) else ModelConfig.from_dict(other).to_dict()
        return ModelConfig.from_dict(_deep_merge(self.to_dict(), over))


def _prune(v: Any) -> Any:
    if isinstance(v, dict):
        out = {k: _prune(x) for k, x in v.items()}
        return {k: x for k, x in out.items() if x not in ({}, [], None, "")}
    if isinstance(v, list):
        return [_prune(x) for x in v]
    return v


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _explain(exc: ValidationError, source: str) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; ormb fields are camelCase, e.g. hyperParameters)"
        parts.append(f"{loc}: {msg}")
    more = f" (and {len(exc.errors()) - 5} more)" if len(exc.errors()) > 5 else ""
    return f"{source}: invalid model config: " + "; ".join(parts) + more


def load(path: str | Path) -> ModelConfig:
    """Read an ``ormbfile.yaml`` (or a directory holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / ORMBFILE
    if not p.exists() and not p.is_symlink():
        raise ConfigError(f"{p}: no such file; write an {ORMBFILE} or pass the model directory")
    from modelhaul.useryaml import read_yaml_file

    data = read_yaml_file(p, ORMBFILE) or {}
    return ModelConfig.from_dict(data, source=str(p))


def dump(config: ModelConfig, path: str | Path) -> Path:
    """Write ``config`` as YAML; ``path`` may be a directory (then ``ormbfile.yaml`` inside it)."""
    p = Path(path)
    if p.is_dir():
        p = p / ORMBFILE
    p.write_text(config.to_yaml(), encoding="utf-8")
    return p
