"""Lay a model's files out the way a serving runtime expects them (what the storage initializer writes).

============  ==========================================================================
server        layout written under ``dest``
============  ==========================================================================
triton        ``<name>/config.pbtxt`` + ``<name>/1/model.onnx|model.pt|model.savedmodel/``
mlserver      ``model-settings.json`` + the model file (sklearn, xgboost, lightgbm, MLflow)
tfserving     ``1/saved_model.pb`` + ``1/variables/`` (numbered version directory)
sklearn       ``model.joblib`` (Seldon SKLEARN_SERVER)
xgboost       ``model.bst`` (Seldon XGBOOST_SERVER; XGBoost reads JSON/UBJ content under that name)
mlflow        the MLflow model directory as it is (``MLmodel`` at ``dest``)
============  ==========================================================================

Files are copied from the checked-out model with :func:`modelhaul.fscopy.copy_file` (a reflink
where the filesystem has one, else a kernel copy), so the layout owns its bytes.
Only the ``sklearn`` and ``xgboost`` layouts may need to *re-save* a model (a skops archive has to
become a joblib pickle); that loads the model, which needs trust
(see :func:`modelhaul.formats.sklearn.load`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from modelhaul import format_table as table
from modelhaul.config import ModelConfig, Tensor
from modelhaul.errors import DeployError, FormatError
from modelhaul.serving import triton

SERVERS = ("triton", "mlserver", "tfserving", "sklearn", "xgboost", "mlflow")
_PICKLES = (".pkl", ".pickle", ".joblib", ".sav")
KINDS = table.kinds()  # the serving kinds, each a row of the format table


def _no_server(config: ModelConfig) -> DeployError:
    return DeployError(
        f"format {config.format!r} (framework {config.framework!r}) has no server in Seldon Core or "
        "KServe that modelhaul can set up; convert it first (modelhaul convert REF --to onnx)"
    )


def model_kind(config: ModelConfig) -> str:
    """Which of :data:`KINDS` a model is, for choosing its server; DeployError when none fits.

    An MLflow model directory (``MLmodel`` at its root) is ``mlflow`` whatever its flavor: the
    MLflow server reads it as it is.
    """
    if "MLmodel" in config.directory_structure:  # an MLflow model directory, whatever its flavor
        return "mlflow"
    row = table.of_config(config.format, config.framework)
    if row is None or row.kind is None:
        raise _no_server(config)
    return row.kind


def server_for(config: ModelConfig, model_dir: Path | None = None) -> str:
    """The default server for a model: the one its Seldon/KServe deployment uses (the format table's
    ``layout``: MLflow directories -> ``mlflow``; ONNX, TorchScript, SavedModel -> ``triton``;
    scikit-learn -> ``sklearn``; XGBoost -> ``xgboost``; LightGBM -> ``mlserver``).
    """
    if model_dir is not None and (Path(model_dir) / "MLmodel").is_file():
        return "mlflow"
    row = table.of_config(config.format, config.framework)
    if row is not None and row.kind is None and row.layout:  # served by a layout alone (LightGBM: MLServer)
        return row.layout
    return str(table.served(model_kind(config)).layout)


def write_layout(model_dir: str | Path, config: ModelConfig, dest: str | Path, server: str,
                 name: str = "model", *, trust: bool = False) -> Path:
    """Write ``model_dir``'s model under ``dest`` for ``server``; returns the directory the server reads."""
    if server not in SERVERS:
        raise DeployError(f"server {server!r}: expected one of {', '.join(SERVERS)}")
    model_dir, dest = Path(model_dir), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    writer = {"triton": _triton, "mlserver": _mlserver, "tfserving": _tfserving, "sklearn": _sklearn,
              "xgboost": _xgboost, "mlflow": _mlflow}[server]
    return writer(model_dir, config, dest, name, trust)


# -- copying -----------------------------------------------------------------------------------

_MOVE: ContextVar[bool] = ContextVar("modelhaul_layout_move", default=False)


@contextlib.contextmanager
def moving() -> Iterator[None]:
    """Within the block the source files are scratch: renamed into the layout where the filesystem
    allows it (each byte written once), copied where it does not."""
    token = _MOVE.set(True)
    try:
        yield
    finally:
        _MOVE.reset(token)


def link_file(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` so the layout owns its bytes (reflink or kernel copy, never a hardlink);
    inside :func:`moving`, rename it there when both are on one filesystem."""
    from modelhaul import fscopy

    if dst.is_symlink():
        dst.unlink()
    if _MOVE.get() and not src.is_symlink():
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(src, dst)
            return
        except OSError:  # another filesystem (EXDEV): copy
            pass
    fscopy.copy_file(src, dst)


def link_tree(src: Path, dst: Path, *, skip: set[str] | None = None) -> None:
    for root, dirs, files in os.walk(src):
        dirs.sort()
        rel = Path(root).relative_to(src)
        for f in sorted(files):
            if skip and (rel / f).as_posix() in skip:
                continue
            link_file(Path(root) / f, dst / rel / f)


# -- per server --------------------------------------------------------------------------------

def _parsed(model_dir: Path, config: ModelConfig) -> Any:
    from modelhaul.formats import parse_directory

    return parse_directory(model_dir, hint=config.format)


def _merge(parsed: list[Tensor], declared: list[Tensor] | None) -> list[Tensor]:
    """The file's own tensors, completed from the config's signature where the file says less."""
    declared = declared or []
    out = []
    for i, t in enumerate(parsed):
        d = declared[i] if i < len(declared) else None
        if d is not None and (t.size is None or t.d_type is None):
            t = t.model_copy(update={"size": t.size if t.size is not None else d.size,
                                     "d_type": t.d_type or d.d_type})
        out.append(t)
    return out or list(declared)


def _triton(model_dir: Path, config: ModelConfig, dest: Path, name: str, trust: bool) -> Path:
    p = _parsed(model_dir, config)
    if p.format not in triton.PLATFORMS:
        raise DeployError(f"{p.path}: Triton serves ONNX, TorchScript and SavedModel models, not {p.format}; "
                          "convert it first (modelhaul convert REF --to onnx)")
    if p.container == "MLflow":  # the flavor file's own signature, not the pyfunc one
        inputs = [Tensor.model_validate(t) for t in p.details.get("model_inputs", [])]
        outputs = [Tensor.model_validate(t) for t in p.details.get("model_outputs", [])]
    else:
        inputs, outputs = p.inputs, p.outputs
    sig = config.signature
    inputs = _merge(inputs, sig.inputs if sig else None)
    outputs = _merge(outputs, sig.outputs if sig else None)

    def place(target: Path) -> None:
        if p.format == "SavedModel":
            link_tree(p.path, target)
        elif p.format == "ONNX":  # external data files sit beside the graph, by relative path
            link_tree(p.path.parent, target.parent, skip=_side_files(p.path.parent, p.path))
            if p.path.name != target.name:
                os.replace(target.parent / p.path.name, target)
        else:
            link_file(p.path, target)

    return triton.write_repository(dest, name, p.format, inputs, outputs, place)


def _side_files(folder: Path, model_file: Path) -> set[str]:
    """What not to copy beside an ONNX graph: other models, metadata, MLflow's files."""
    from modelhaul.formats.mlflow import SIDE_FILES

    skip = set(SIDE_FILES) | {"ormbfile.yaml", "config.pbtxt", "model-settings.json"}
    for f in folder.rglob("*"):
        if f.is_file() and f != model_file and f.suffix == ".onnx":
            skip.add(f.relative_to(folder).as_posix())
    return skip


def _tfserving(model_dir: Path, config: ModelConfig, dest: Path, name: str, trust: bool) -> Path:
    p = _parsed(model_dir, config)
    if p.format != "SavedModel":
        raise DeployError(f"{p.path}: TensorFlow Serving serves SavedModel directories, not {p.format}")
    link_tree(p.path, dest / "1")
    return dest


def _mlflow(model_dir: Path, config: ModelConfig, dest: Path, name: str, trust: bool) -> Path:
    if not (model_dir / "MLmodel").is_file():
        raise DeployError(f"{model_dir}: the MLflow server needs an MLflow model directory (MLmodel at its root)")
    link_tree(model_dir, dest)
    return dest


def _joblib_from(p: Any, target: Path, trust: bool) -> None:
    """``target`` as a joblib pickle: linked when the model is one already, re-saved from skops otherwise."""
    if p.path.suffix in _PICKLES:
        link_file(p.path, target)
        return
    if p.path.suffix != ".skops":
        raise DeployError(f"{p.path}: a {p.format} model file cannot be served as model.joblib")
    import joblib

    from modelhaul.formats import sklearn as skfmt

    try:
        est = skfmt.load(p.path, trust=trust)
    except FormatError as exc:
        raise DeployError(f"{exc} (re-saving it as model.joblib for the sklearn server loads it)") from None
    joblib.dump(est, target)


def _sklearn(model_dir: Path, config: ModelConfig, dest: Path, name: str, trust: bool) -> Path:
    p = _parsed(model_dir, config)
    if p.format not in ("SKLearn", "LightGBM", "XGBoost") or p.path.suffix not in (*_PICKLES, ".skops"):
        raise DeployError(f"{p.path}: the sklearn server loads a joblib pickle of an estimator, not a {p.format} "
                          "model file")
    _joblib_from(p, dest / "model.joblib", trust)
    return dest


def _xgboost_file(p: Any, target: Path, trust: bool) -> None:
    if p.format == "XGBoost" and p.path.suffix not in (*_PICKLES, ".skops"):
        link_file(p.path, target)
        return
    from modelhaul.formats import sklearn as skfmt

    try:
        est = skfmt.load(p.path, trust=trust)
    except FormatError as exc:
        raise DeployError(f"{exc} (writing model.bst for the XGBoost server loads it)") from None
    booster = est.get_booster() if hasattr(est, "get_booster") else est
    if type(booster).__module__.split(".", 1)[0] != "xgboost":
        raise DeployError(f"{p.path}: not an XGBoost model ({type(est).__name__})")
    if hasattr(est, "get_booster"):
        # through the sklearn wrapper: its file carries the scikit-learn metadata, without which
        # MLServer loads a classifier as XGBRegressor and serves probabilities instead of labels
        tmp = target.with_name(f".{target.name}.ubj")  # the suffix picks UBJSON whatever target's name
        est.save_model(str(tmp))
        os.replace(tmp, target)
        return
    target.write_bytes(bytes(booster.save_raw("ubj")))


def _lightgbm_file(p: Any, target: Path, trust: bool) -> None:
    from modelhaul.formats import sklearn as skfmt

    try:
        est = skfmt.load(p.path, trust=trust)
    except FormatError as exc:
        raise DeployError(f"{exc} (writing model.txt for MLServer's LightGBM runtime loads it)") from None
    booster = getattr(est, "booster_", est)
    if not hasattr(booster, "save_model") or type(booster).__module__.split(".", 1)[0] != "lightgbm":
        raise DeployError(f"{p.path}: not a LightGBM model ({type(est).__name__})")
    booster.save_model(str(target))


def _xgboost(model_dir: Path, config: ModelConfig, dest: Path, name: str, trust: bool) -> Path:
    p = _parsed(model_dir, config)
    if p.format != "XGBoost" and p.framework != "XGBoost":
        raise DeployError(f"{p.path}: the XGBoost server loads an XGBoost model, not a {p.format} model")
    _xgboost_file(p, dest / "model.bst", trust)
    return dest


def _mlserver(model_dir: Path, config: ModelConfig, dest: Path, name: str, trust: bool) -> Path:
    if (model_dir / "MLmodel").is_file():
        link_tree(model_dir, dest)
        impl, uri = table.served("mlflow").mlserver, "./"
    else:
        p = _parsed(model_dir, config)
        kind = "XGBoost" if p.framework == "XGBoost" else "LightGBM" if p.framework == "LightGBM" else p.format
        row = table.by_name(kind)
        if row is None or row.mlserver is None:
            raise DeployError(f"{p.path}: MLServer layouts cover scikit-learn, XGBoost, LightGBM and MLflow "
                              f"models, not {p.format}")
        if kind == "SKLearn" or p.path.suffix in (*_PICKLES, ".skops"):
            if kind == "XGBoost":
                fname = "model.ubj"
                _xgboost_file(p, dest / fname, trust)
            elif kind == "LightGBM":
                fname = "model.txt"
                _lightgbm_file(p, dest / fname, trust)
            else:
                fname = "model.joblib"
                _joblib_from(p, dest / fname, trust)
        else:
            fname = "model" + (p.path.suffix or ".txt")
            link_file(p.path, dest / fname)
        impl, uri = row.mlserver, f"./{fname}"
    settings = {"name": name, "implementation": impl, "parameters": {"uri": uri}}
    (dest / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return dest
