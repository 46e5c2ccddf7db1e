"""MLflow in: a run, logged model or registered version -> the model's files + a ModelConfig.

MLflow 3 keeps a model as a LoggedModel (``m-<hex>``) linked from its run's outputs; a registered
version points at one and aliases point at versions. :func:`import_model` follows whichever of those
a URI names, downloads the model directory (MLflow's own layout, ``MLmodel`` at its root, so
MLFLOW_SERVER can serve it and the input example is there for conversion) and maps what MLflow
recorded about it onto :class:`~modelhaul.config.ModelConfig`.

Only ``mlflow-skinny`` is needed: the MLmodel file is read as YAML rather than through MLflow's
schema classes (those import numpy/pandas), and mlflow itself is imported inside functions so that
``import modelhaul.steps`` stays cheap.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
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
from modelhaul.useryaml import MAX_MLMODEL_BYTES, read_yaml_file

#: flavor -> (framework, format); pytorch and tensorflow/keras are refined from what was saved
FLAVOR_FORMATS: dict[str, tuple[str, str]] = {
    "sklearn": ("scikit-learn", "SKLearn"),
    "xgboost": ("XGBoost", "XGBoost"),
    "lightgbm": ("LightGBM", "LightGBM"),
    "pytorch": ("PyTorch", "TorchScript"),
    "tensorflow": ("TensorFlow", "SavedModel"),
    "keras": ("TensorFlow", "Keras"),
    "onnx": ("ONNX", "ONNX"),
    "transformers": ("Transformers", "Transformers"),
    "python_function": ("MLflow", "MLflow"),
}

# MLflow column types and numpy tensor dtypes -> the dType names configs use
_DTYPES = {
    "boolean": "bool", "bool": "bool", "integer": "int32", "long": "int64", "float": "float32",
    "double": "double", "float64": "double", "float32": "float32", "float16": "float16",
    "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64", "uint8": "uint8",
    "uint16": "uint16", "uint32": "uint32", "uint64": "uint64", "string": "string", "str": "string",
    "object": "string", "binary": "binary", "bytes": "binary", "datetime": "datetime",
}

_MODEL_ID = re.compile(r"^m-[0-9a-f]{32}$")
_HTTP_RETRIES = "2"  # MLflow's default (7 retries, backoff 2) turns a dead server into minutes
_HTTP_TIMEOUT = "30"


@dataclass
class Resolved:
    """What a URI names in MLflow: the run, the logged model, the registered version, if any."""

    uri: str
    run: Any = None
    logged_model: Any = None
    version: Any = None
    download_uri: str = ""


# -- public API ----------------------------------------------------------------------------------


@contextlib.contextmanager
def import_model(uri: str, *, tracking_uri: str | None = None) -> Iterator[tuple[Path, ModelConfig]]:
    """Download the model that ``uri`` names and describe it; yields ``(model_dir, config)``.

    ``uri``: ``runs:/<run_id>/<path>``, ``models:/<model_id>``, ``models:/<name>/<version>`` or
    ``models:/<name>@<alias>``. The files live in a temporary directory removed on exit.
    Raises :class:`MLflowError` (one line, no MLflow internals) when anything is missing.
    """
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    tmp = Path(tempfile.mkdtemp(prefix="modelhaul-mlflow-", dir=os.environ.get("MODELHAUL_TMPDIR")))
    try:
        with _quick_failures():
            client = _client(tracking_uri)
            res = resolve(client, uri)
            model_dir = _download(res, tmp / "model", tracking_uri)
            experiment = _experiment(client, res)
        cfg = build_config(res, model_dir, tracking_uri=tracking_uri, experiment=experiment)
        yield model_dir, cfg
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def set_alias(registered_model: str, alias: str, version: str | int, tracking_uri: str | None = None
              ) -> str | None:
    """Point ``registered_model@alias`` at ``version``; returns the version it pointed at before."""
    with _quick_failures():
        client = _client(tracking_uri)
        previous = get_alias_version(registered_model, alias, tracking_uri, client=client)
        try:
            client.set_registered_model_alias(registered_model, alias, str(version))
        except Exception as exc:
            raise _error(exc, f"cannot set alias {registered_model}@{alias} to version {version}",
                         "check that the registered model and version exist") from None
    return previous


def get_alias_version(registered_model: str, alias: str, tracking_uri: str | None = None, *,
                      client: Any = None) -> str | None:
    """The version ``registered_model@alias`` points at, or ``None`` when the alias is not set."""
    with _quick_failures():
        client = client or _client(tracking_uri)
        try:
            return str(client.get_model_version_by_alias(registered_model, alias).version)
        except Exception as exc:
            if _code(exc) == "RESOURCE_DOES_NOT_EXIST":
                if _registered_model_exists(client, registered_model):
                    return None
                raise MLflowError(f"registered model {registered_model!r} does not exist; "
                                  "register a version first") from None
            raise _error(exc, f"cannot read alias {registered_model}@{alias}") from None


# -- resolution ----------------------------------------------------------------------------------


def resolve(client: Any, uri: str) -> Resolved:
    """Find the run, logged model and registered version that ``uri`` names."""
    if uri.startswith("runs:/"):
        return _resolve_run_uri(client, uri)
    if uri.startswith("models:/"):
        rest = uri[len("models:/"):].strip("/")
        if _MODEL_ID.match(rest):
            lm = _logged_model(client, rest, uri)
            return Resolved(uri, run=_run(client, lm.source_run_id, uri, soft=True), logged_model=lm,
                            download_uri=lm.artifact_location)
        if "@" in rest:
            name, alias = rest.rsplit("@", 1)
            mv = _call(lambda: client.get_model_version_by_alias(name, alias), uri,
                       lambda: (f"alias {alias!r} is not set on registered model {name!r}; "
                                "set it or use models:/NAME/VERSION")
                       if _registered_model_exists(client, name) else _no_registered_model(name))
            return _from_version(client, mv, uri)
        if "/" in rest:
            name, version = rest.rsplit("/", 1)
            if version == "latest":
                version = _latest_version(client, name, uri)
            mv = _call(lambda: client.get_model_version(name, version), uri,
                       lambda: (f"registered model {name!r} has no version {version!r}"
                                if _registered_model_exists(client, name) else _no_registered_model(name)))
            return _from_version(client, mv, uri)
        raise MLflowError(f"{uri}: not a model URI; use models:/<model_id>, models:/NAME/VERSION "
                          "or models:/NAME@ALIAS")
    raise MLflowError(f"{redact(uri)}: not an MLflow URI; use runs:/RUN_ID/PATH or models:/...")


def _resolve_run_uri(client: Any, uri: str) -> Resolved:
    rest = uri[len("runs:/"):].strip("/")
    run_id, _, path = rest.partition("/")
    if not run_id:
        raise MLflowError(f"{uri}: no run id; use runs:/RUN_ID/PATH")
    run = _run(client, run_id, uri)
    models = logged_models_of(client, run)
    name = path.split("/", 1)[0] if path else None
    pick = [m for m in models if name is None or m.name == name]
    if len(pick) >= 1 and (name is not None or len(pick) == 1):
        lm = max(pick, key=lambda m: m.creation_timestamp or 0)
        sub = path.split("/", 1)[1] if path and "/" in path else ""
        return Resolved(uri, run=run, logged_model=lm,
                        download_uri=lm.artifact_location.rstrip("/") + (f"/{sub}" if sub else ""))
    if path and _has_mlmodel(client, run_id, path):  # a model saved as plain run artifacts (MLflow 2)
        return Resolved(uri, run=run, download_uri=f"{run.info.artifact_uri.rstrip('/')}/{path}")
    if not models:
        raise MLflowError(f"run {run_id} has no logged model; log one with mlflow.<flavor>.log_model(...)")
    names = ", ".join(sorted({m.name for m in models}))
    if name is None:
        raise MLflowError(f"run {run_id} has several logged models ({names}); name one: runs:/{run_id}/NAME")
    raise MLflowError(f"run {run_id} has no model named {name!r} (it has: {names})")


def logged_models_of(client: Any, run: Any) -> list[Any]:
    """The logged models of ``run``: its outputs, else those whose source run it is."""
    ids = [o.model_id for o in (run.outputs.model_outputs if run.outputs else [])]
    models = []
    for mid in dict.fromkeys(ids):
        with contextlib.suppress(Exception):
            models.append(client.get_logged_model(mid))
    if not models:
        with contextlib.suppress(Exception):
            models = list(client.search_logged_models(
                experiment_ids=[run.info.experiment_id],
                filter_string=f"source_run_id = '{run.info.run_id}'"))
    return [m for m in models if str(getattr(m.status, "name", m.status)) != "FAILED"]


def _from_version(client: Any, mv: Any, uri: str) -> Resolved:
    model_id = mv.model_id or _model_id_from_source(mv.source)
    lm = _logged_model(client, model_id, uri, soft=True) if model_id else None
    run_id = mv.run_id or (lm.source_run_id if lm else None)
    run = _run(client, run_id, uri, soft=True) if run_id else None
    download = lm.artifact_location if lm else mv.source
    if not lm and run and mv.source.startswith("runs:/"):
        download = run.info.artifact_uri.rstrip("/") + "/" + mv.source[len("runs:/"):].partition("/")[2]
    return Resolved(uri, run=run, logged_model=lm, version=mv, download_uri=download)


def _model_id_from_source(source: str | None) -> str | None:
    m = re.search(r"(?:models:/|/models/)(m-[0-9a-f]{32})", source or "")
    return m.group(1) if m else None


def _latest_version(client: Any, name: str, uri: str) -> str:
    versions = _call(lambda: client.search_model_versions(f"name = '{name}'"), uri,
                     lambda: _no_registered_model(name))
    if not versions:
        raise MLflowError(_no_registered_model(name) if not _registered_model_exists(client, name)
                          else f"registered model {name!r} has no versions")
    return str(max(int(v.version) for v in versions))


def _run(client: Any, run_id: str | None, uri: str, soft: bool = False) -> Any:
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except Exception as exc:
        if soft and _code(exc) == "RESOURCE_DOES_NOT_EXIST":
            return None  # a registered version or logged model may outlive its run
        raise _error(exc, f"run {run_id} not found in the tracking server ({redact(uri)})",
                     "check the run id and the tracking URI") from None


def _logged_model(client: Any, model_id: str, uri: str, soft: bool = False) -> Any:
    try:
        return client.get_logged_model(model_id)
    except Exception as exc:
        if soft and _code(exc) == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise _error(exc, f"logged model {model_id} not found ({redact(uri)})",
                     "check the model id and the tracking URI") from None


def _registered_model_exists(client: Any, name: str) -> bool:
    try:
        client.get_registered_model(name)
        return True
    except Exception:
        return False


def _no_registered_model(name: str) -> str:
    return f"registered model {name!r} does not exist; check the name and the tracking URI"


def _has_mlmodel(client: Any, run_id: str, path: str) -> bool:
    try:
        return any(Path(f.path).name == "MLmodel" for f in client.list_artifacts(run_id, path))
    except Exception:
        return False


def _experiment(client: Any, res: Resolved) -> Any:
    exp_id = (res.run.info.experiment_id if res.run else None) or (
        res.logged_model.experiment_id if res.logged_model else None)
    if not exp_id:
        return None
    try:
        return client.get_experiment(exp_id)
    except Exception:
        return None


# -- download ------------------------------------------------------------------------------------


def _download(res: Resolved, dest: Path, tracking_uri: str | None) -> Path:
    from mlflow.artifacts import download_artifacts

    dest.mkdir(parents=True)
    try:
        out = Path(download_artifacts(artifact_uri=res.download_uri, dst_path=str(dest),
                                      tracking_uri=tracking_uri, registry_uri=tracking_uri))
    except Exception as exc:
        raise _error(exc, f"cannot download the model files of {redact(res.uri)}",
                     "check the artifact store is reachable") from None
    if out.is_file():
        out = out.parent
    if not (out / "MLmodel").is_file():
        found = next(iter(sorted(out.rglob("MLmodel"))), None)
        if found is None:
            raise MLflowError(f"{redact(res.uri)}: no MLmodel file in the downloaded artifacts; "
                              "point at a model logged with mlflow.<flavor>.log_model")
        out = found.parent
    return out


# -- the config ----------------------------------------------------------------------------------


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


def framework_and_format(flavors: dict[str, Any], model_dir: Path) -> tuple[str, str]:
    """``(framework, format)`` from the MLmodel flavors and, where a flavor saves several ways, the files."""
    for name in ("sklearn", "xgboost", "lightgbm", "pytorch", "keras", "tensorflow", "onnx", "transformers"):
        if name not in flavors:
            continue
        conf = flavors[name] or {}
        framework, fmt = FLAVOR_FORMATS[name]
        if name == "pytorch":
            fmt = _torch_format(model_dir / str(conf.get("model_data", "data")))
        elif name == "tensorflow":
            if conf.get("model_type") == "keras" and conf.get("save_format") in ("keras", "h5"):
                fmt = "Keras"
        elif name == "keras" and conf.get("save_exported_model"):
            fmt = "SavedModel"
        return framework, fmt
    if flavors:
        other = next((f for f in flavors if f != "python_function"), None)
        if other is None:
            return FLAVOR_FORMATS["python_function"]
        return other, "MLflow"
    return "MLflow", "MLflow"


def _torch_format(data_dir: Path) -> str:
    if (data_dir / "model.pt2").exists() or any(data_dir.glob("*.pt2")):
        return "PT2"
    pth = data_dir / "model.pth"
    if pth.is_file() and zipfile.is_zipfile(pth):
        with zipfile.ZipFile(pth) as z:
            if any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist()):
                return "TorchScript"
    return "PyTorch"  # a pickled nn.Module: loadable only with the code that defined it


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


# -- talking to MLflow ---------------------------------------------------------------------------


_SQL_SCHEMES = {"sqlite", "postgresql", "mysql", "mssql"}


def _client(tracking_uri: str | None) -> Any:
    """An MlflowClient for ``tracking_uri``, after checking that an HTTP server answers at all."""
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        check_reachable(tracking_uri)
    from modelhaul.optional import require

    MlflowClient = require("mlflow", "mlflow", "MLflow tracking").MlflowClient  # noqa: N806 - a class
    if tracking_uri and tracking_uri.split(":", 1)[0].split("+", 1)[0] in _SQL_SCHEMES:
        require("sqlalchemy", "mlflow", f"the {tracking_uri.split(':', 1)[0]} tracking store")
        require("alembic", "mlflow", f"the {tracking_uri.split(':', 1)[0]} tracking store")
    try:
        return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    except Exception as exc:
        raise _error(exc, f"cannot open the MLflow tracking store {redact(str(tracking_uri))}") from None


def check_reachable(tracking_uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, when no MLflow server answers at ``tracking_uri``."""
    import requests

    url = tracking_uri.rstrip("/") + "/health"
    try:
        requests.get(url, timeout=timeout)
    except requests.RequestException as exc:
        raise MLflowError(f"MLflow tracking server {redact(tracking_uri)} is unreachable "
                          f"({type(exc).__name__}); check MLFLOW_TRACKING_URI / tracking_uri") from None


@contextlib.contextmanager
def _quick_failures() -> Iterator[None]:
    """Few HTTP retries and a bounded timeout for MLflow calls, unless the user chose otherwise."""
    saved = {}
    for var, val in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", _HTTP_RETRIES),
                     ("MLFLOW_HTTP_REQUEST_TIMEOUT", _HTTP_TIMEOUT)):
        if var not in os.environ:
            saved[var] = None
            os.environ[var] = val
    try:
        yield
    finally:
        for var in saved:
            os.environ.pop(var, None)


def _call(fn: Any, uri: str, not_found: Any) -> Any:
    try:
        return fn()
    except Exception as exc:
        if _code(exc) == "RESOURCE_DOES_NOT_EXIST":
            raise MLflowError(f"{redact(uri)}: {not_found()}") from None
        raise _error(exc, f"cannot resolve {redact(uri)}") from None


def _code(exc: BaseException) -> str | None:
    """MLflow's error code, with "not found" said in any way folded into RESOURCE_DOES_NOT_EXIST."""
    code = getattr(exc, "error_code", None)
    if code == "NOT_FOUND" or (code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc).lower()):
        return "RESOURCE_DOES_NOT_EXIST"
    return code


def _error(exc: BaseException, what: str, hint: str | None = None) -> MLflowError:
    """One line: what failed, MLflow's reason (first line, credentials stripped), what to do."""
    if isinstance(exc, MLflowError):
        return exc
    code = _code(exc)
    if code == "RESOURCE_DOES_NOT_EXIST" and hint:
        return MLflowError(f"{what}; {hint}")
    reason = redact(str(getattr(exc, "message", None) or exc)).strip().splitlines()
    reason_s = reason[0][:200] if reason else type(exc).__name__
    tail = f"; {hint}" if hint else ""
    return MLflowError(f"{what}: {reason_s}{tail}")
