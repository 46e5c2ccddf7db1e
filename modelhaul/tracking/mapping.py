"""What MLflow recorded about a model, mapped onto a ModelConfig: flavors, signature, metrics, datasets, git."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from modelhaul.config import (
    DatasetInfo,
    GitHolder,
    GitRepo,
    MLflowProvenance,
    ModelConfig,
    NamedValue,
    Provenance,
    Signature,
    Tensor,
)
from modelhaul.errors import MLflowError, redact
from modelhaul.formats.mlflow import framework_and_format
from modelhaul.tracking.resolve import Resolved, _model_id_from_source
from modelhaul.useryaml import MAX_MLMODEL_BYTES, read_yaml_file

# MLflow column types and numpy tensor dtypes -> the dType names configs use
_DTYPES = {
    "boolean": "bool", "bool": "bool", "integer": "int32", "long": "int64", "float": "float32",
    "double": "double", "float64": "double", "float32": "float32", "float16": "float16",
    "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64", "uint8": "uint8",
    "uint16": "uint16", "uint32": "uint32", "uint64": "uint64", "string": "string", "str": "string",
    "object": "string", "binary": "binary", "bytes": "binary", "datetime": "datetime",
}


def build_config(res: Resolved, model_dir: Path, *, tracking_uri: str | None = None,
                 experiment: Any = None) -> ModelConfig:
    """Map what MLflow knows about the resolved model onto a ModelConfig."""
    mlmodel = read_mlmodel(model_dir)
    run, lm, mv = res.run, res.logged_model, res.version
    run_tags: dict[str, str] = dict(run.data.tags) if run else {}
    flavors: dict[str, Any] = mlmodel.get("flavors") or {}
    framework, fmt = framework_and_format(flavors, model_dir)

    labels = {k: v for k, v in run_tags.items() if not k.startswith("mlflow.")}
    for extra in ((lm.tags if lm else None) or {}), ((mv.tags if mv else None) or {}):
        labels.update({k: v for k, v in extra.items() if not k.startswith("mlflow.")})

    params = dict(run.data.params) if run else {}
    params.update((lm.params if lm else None) or {})

    created = None
    if lm and lm.creation_timestamp:
        created = _ts(lm.creation_timestamp)
    elif run and run.info.end_time:
        created = _ts(run.info.end_time)
    elif mv and mv.creation_timestamp:
        created = _ts(mv.creation_timestamp)

    git = None
    if run_tags.get("mlflow.source.git.commit") or run_tags.get("mlflow.source.git.repoURL"):
        repo = run_tags.get("mlflow.source.git.repoURL") or run_tags.get("mlflow.gitRepoURL")
        git = GitHolder(git=GitRepo(repository=redact(repo) if repo else None,
                                    revision=run_tags.get("mlflow.source.git.commit"),
                                    branch=run_tags.get("mlflow.source.git.branch")))

    model_id = lm.model_id if lm else _model_id_from_source(mv.source if mv else None)
    provenance = Provenance(
        sources=[redact(res.uri)],
        tool=_tool(),
        mlflow=MLflowProvenance(
            tracking_uri=redact(tracking_uri) if tracking_uri else _default_tracking_uri(),
            experiment_id=(experiment.experiment_id if experiment else None)
            or (run.info.experiment_id if run else None),
            experiment_name=experiment.name if experiment else None,
            run_id=run.info.run_id if run else (lm.source_run_id if lm else None),
            run_name=run.info.run_name if run else None,
            model_id=model_id,
            model_uri=f"models:/{model_id}" if model_id else res.download_uri,
            registered_model=mv.name if mv else None,
            version=str(mv.version) if mv else None,
            aliases=sorted(mv.aliases or []) if mv else [],
            mlflow_version=mlmodel.get("mlflow_version"),
            flavors=flavor_versions(flavors),
        ),
    )
    return ModelConfig(
        author=run_tags.get("mlflow.user") or (mv.user_id if mv else None) or None,
        created=created,
        description=run_tags.get("mlflow.note.content") or (mv.description if mv else None) or None,
        tags=["mlflow", *[f for f in flavors if f != "python_function"]],
        labels=labels,
        framework=framework,
        format=fmt,
        size=sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file()),
        metrics=_metrics(run, lm),
        hyper_parameters=[NamedValue(name=k, value=v) for k, v in sorted(params.items())],
        signature=parse_signature(mlmodel.get("signature")),
        training=git,
        provenance=provenance,
        datasets=_datasets(run, run_tags.get("mlflow.source.name")),
    )


def read_mlmodel(model_dir: Path) -> dict[str, Any]:
    """The MLmodel file as a dict (plain YAML: no MLflow schema classes, no numpy)."""
    data = read_yaml_file(Path(model_dir) / "MLmodel", "MLflow MLmodel file", limit=MAX_MLMODEL_BYTES,
                          error=MLflowError) or {}
    return data if isinstance(data, dict) else {}


def flavor_versions(flavors: dict[str, Any]) -> dict[str, str]:
    """``{flavor: library version}`` from each flavor's ``*_version`` key."""
    out = {}
    for name, conf in flavors.items():
        if not isinstance(conf, dict):
            continue
        for key in (f"{name}_version", "python_version", "sklearn_version", "xgb_version", "lgb_version",
                    "pytorch_version", "keras_version", "onnx_version", "transformers_version"):
            if conf.get(key):
                out[name] = str(conf[key])
                break
        else:
            v = next((str(val) for k, val in conf.items() if k.endswith("_version") and val), None)
            if v:
                out[name] = v
    return out


def parse_signature(sig: dict[str, Any] | None) -> Signature | None:
    """MLmodel's signature (column-spec or tensor-spec, JSON strings) as config Tensors."""
    if not sig:
        return None
    return Signature(inputs=_spec(sig.get("inputs")), outputs=_spec(sig.get("outputs")))


def _spec(raw: str | list | None) -> list[Tensor]:
    if raw is None:
        return []
    items = json.loads(raw) if isinstance(raw, str) else raw
    out = []
    for i, item in enumerate(items or []):
        if item.get("type") == "tensor":
            ts = item.get("tensor-spec") or {}
            out.append(Tensor(name=item.get("name") or (None if len(items) == 1 else f"input_{i}"),
                              size=[-1 if d is None or int(d) < 0 else int(d) for d in ts.get("shape", [])],
                              d_type=_dtype(ts.get("dtype"))))
        else:  # one column of a table: a vector as long as the batch
            t = item.get("type")
            shape = [-1]
            if t == "array" and isinstance(item.get("items"), dict):
                shape = [-1, -1]
            out.append(Tensor(name=item.get("name"), size=shape, d_type=_dtype(t)))
    return out


def _dtype(t: Any) -> str | None:
    if t is None:
        return None
    if isinstance(t, dict):
        t = t.get("type")
    s = str(t)
    return _DTYPES.get(s, s)


def _metrics(run: Any, lm: Any) -> dict[str, list[NamedValue]]:
    groups: dict[str, dict[str, Any]] = {}
    if run:
        groups["training"] = dict(run.data.metrics)
    latest: dict[tuple[str, str], Any] = {}
    for m in (lm.metrics if lm else None) or []:
        key = (m.dataset_name or "", m.key)
        if key not in latest or (m.step, m.timestamp) >= (latest[key].step, latest[key].timestamp):
            latest[key] = m
    for (ds, name), m in latest.items():
        group = groups.setdefault(ds or "training", {})
        if ds or name not in group:
            group[name] = m.value
    return {g: [NamedValue(name=k, value=_num(v)) for k, v in sorted(vals.items())]
            for g, vals in groups.items() if vals}


def _num(v: Any) -> str:
    f = float(v)
    return repr(int(f)) if f.is_integer() and abs(f) < 2**53 else repr(f)


def _datasets(run: Any, code: str | None = None) -> list[DatasetInfo]:
    """The run's dataset inputs; a dataset made in code (no file or URL) names the run's source code."""
    if not run or not run.inputs:
        return []
    out = []
    for di in run.inputs.dataset_inputs or []:
        d = di.dataset
        tags = {t.key: t.value for t in (di.tags or [])}
        profile = _json(d.profile)
        rows = None
        if isinstance(profile, dict):
            rows = profile.get("num_rows") or profile.get("rows")
        out.append(DatasetInfo(
            name=d.name, digest=d.digest, source_type=d.source_type,
            source=redact(code) if d.source_type == "code" and code else _source(d.source),
            context=tags.get("mlflow.data.context"), schema_=_json(d.schema),
            rows=int(rows) if rows is not None else None,
            profile=profile if isinstance(profile, dict) else None,
        ))
    return out


def _source(src: str | None) -> str | None:
    """A dataset source: its URL or path when it names one, else MLflow's JSON; credentials removed."""
    if not src:
        return None
    data = _json(src)
    if isinstance(data, dict):
        for key in ("url", "uri", "path", "source", "table_name"):
            if isinstance(data.get(key), str):
                return redact(data[key])
    return redact(src)


def _json(s: Any) -> Any:
    if not isinstance(s, str):
        return s
    try:
        return json.loads(s)
    except ValueError:
        return s


def _ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


def _tool() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"modelhaul {version('modelhaul')}"
    except PackageNotFoundError:
        return "modelhaul"


def _default_tracking_uri() -> str | None:
    try:
        import mlflow

        return redact(mlflow.get_tracking_uri())
    except Exception:
        return None
