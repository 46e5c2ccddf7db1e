"""Convert a model to ONNX (or TorchScript) and prove the result computes the same thing.

Sources and tools:

* scikit-learn (skops, pickle/joblib) -> ONNX with skl2onnx, without ZipMap (``label`` +
  ``probabilities`` tensors). float32 input first, which is what serving clients send; when parity
  fails in float32 (a tree threshold that rounds the other way, a large linear model), it is redone
  with float64 input (DoubleTensorType) and the float64 tolerance;
* XGBoost and LightGBM (model files, or their scikit-learn wrappers) -> ONNX with onnxmltools;
* PyTorch (``torch.save`` modules, TorchScript, torch.export ``.pt2``) -> ONNX with torch.onnx
  (the dynamo exporter, then the legacy TorchScript-based one as fallback) and -> TorchScript with
  ``torch.jit.trace``.

Loading the source runs it, so it needs trust: ``trust=True`` for pickles and PyTorch archives; skops
archives load when every type they name is on the safe list of :mod:`modelhaul.formats.sklearn`.
Model files of XGBoost (JSON/UBJ) and LightGBM (text) are data and load without trust.

The converted model is written to a hidden staging directory inside ``out_dir`` and moved into
place only after parity passes (see :mod:`modelhaul.formats.parity` for the inputs, the measure and
the default tolerances: 1e-3 for float32 paths, 1e-4 for float64 paths). On failure ``out_dir`` is
left without a model file.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelhaul.config import Conversion, ModelConfig, Tensor
from modelhaul.errors import ConversionError, FormatError, ModelhaulError
from modelhaul.formats import find_model, parse_path, table
from modelhaul.formats import parity as par
from modelhaul.formats.base import ParsedModel, tensor

TARGETS = {"onnx": "ONNX", "torchscript": "TorchScript"}
ONNXMLTOOLS_MAX_OPSET = 15  # the newest opset onnxmltools 1.16 converts XGBoost/LightGBM to
_STAGING = ".modelhaul-partial"


@dataclass
class ConversionResult:
    config: ModelConfig  # the converted artifact's config (format, signature, provenance.conversion)
    parity: dict[str, Any]
    path: Path  # the converted model file in out_dir


@dataclass
class _Produced:
    path: Path
    tool: str
    opset: int | None
    parity: dict[str, Any]
    outputs: list[Any] | None = None  # reference outputs, to type a TorchScript model's outputs


def convert_directory(model_dir: str | Path, out_dir: str | Path, *, to: str = "onnx",
                      config: ModelConfig | None = None, tolerance: float | None = None,
                      opset: int | None = None, trust: bool = False) -> ConversionResult:
    """Convert the model in ``model_dir`` into ``out_dir`` (``model.onnx`` or ``model.pt``)."""
    target = to.lower().replace("-", "").replace("_", "")
    if target not in TARGETS:
        raise ConversionError(f"cannot convert to {to!r}: choose one of {', '.join(TARGETS)}")
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    key, path = find_model(model_dir, config.format if config else None)
    src = parse_path(path, key=key)
    if src.format == TARGETS[target]:
        raise ConversionError(f"{src.path}: the model is already {src.format}; nothing to convert")
    example = par.example_rows(model_dir if model_dir.is_dir() else None)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / _STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        produced = _produce(src, target, staging, example=example, tolerance=tolerance, opset=opset, trust=trust)
        final = out_dir / produced.path.name
        for f in staging.iterdir():
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    converted = parse_path(final)
    if produced.outputs is not None and all(t.size is None for t in converted.outputs):
        # TorchScript does not record output shapes: take them from the run that proved parity
        converted.outputs = [tensor(t.name, str(o.dtype), [-1, *o.shape[1:]])
                             for t, o in zip(converted.outputs, produced.outputs, strict=False)]
    conv = Conversion(
        source_format=src.format, target_format=converted.format, tool=produced.tool,
        opset=converted.opset or produced.opset, tolerance=produced.parity.get("tolerance"),
        max_abs_diff=produced.parity.get("max_abs_diff"), label_agreement=produced.parity.get("label_agreement"),
        samples=produced.parity.get("samples"),
    )
    return ConversionResult(config=_result_config(config, src, converted, conv), parity=produced.parity,
                            path=final)


def _produce(src: ParsedModel, target: str, staging: Path, **kw: Any) -> _Produced:
    suffix = src.path.suffix.lower()
    row = table.by_name(src.format)
    converter = row.converter if row else None  # the format table's: torch, sklearn, xgboost, lightgbm
    try:
        if converter == "torch":
            return _from_torch(src, target, staging, **kw)
        if target != "onnx":
            raise ConversionError(f"{src.path}: {src.format} models convert to ONNX only, not {TARGETS[target]}")
        if converter and suffix in (".skops", ".pkl", ".pickle", ".joblib", ".sav"):  # an estimator: load it
            from modelhaul.formats import sklearn as skfmt

            est = skfmt.load(src.path, trust=kw["trust"])
            module = type(est).__module__.split(".", 1)[0]
            if module == "xgboost":
                return _from_xgboost(est, src, staging, **kw)
            if module == "lightgbm":
                return _from_lightgbm(est, src, staging, **kw)
            return _from_sklearn(est, src, staging, **kw)
        if converter == "xgboost":
            return _from_xgboost(_load_xgboost(src), src, staging, **kw)
        if converter == "lightgbm":
            import lightgbm

            return _from_lightgbm(lightgbm.Booster(model_file=str(src.path)), src, staging, **kw)
    except (ModelhaulError, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - converters raise anything; the user needs one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ConversionError(f"{src.path}: conversion of {src.format} to {TARGETS[target]} failed: "
                              f"{type(exc).__name__}: {first}") from exc
    raise ConversionError(f"{src.path}: cannot convert {src.format} to {TARGETS[target]}: modelhaul converts "
                          f"{table.converters_label()} models")


def _check(src: ParsedModel, produced: _Produced) -> _Produced:
    if not produced.parity.get("passed"):
        p = produced.parity
        raise ConversionError(
            f"{src.path}: converted model differs from the original beyond tolerance "
            f"(max diff {p.get('max_abs_diff', float('nan')):.3g}, tolerance {p.get('tolerance')}, label "
            f"agreement {p.get('label_agreement', 'n/a')}{'; ' + p['reason'] if p.get('reason') else ''}); "
            "nothing was written — raise --tolerance only if that difference is acceptable")
    return produced


# -- scikit-learn ------------------------------------------------------------------------------

def _no_zipmap(est: Any) -> dict[int, dict[str, Any]]:
    """zipmap=False for the model and every classifier inside it (Pipelines, ensembles)."""
    opts: dict[int, dict[str, Any]] = {}
    seen: set[int] = set()
    stack = [est]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or not hasattr(obj, "get_params"):
            continue
        seen.add(id(obj))
        if obj is est or hasattr(obj, "classes_"):
            opts[id(obj)] = {"zipmap": False}
        for v in obj.get_params(deep=False).values():
            stack.extend(x[1] if isinstance(x, tuple) else x for x in (v if isinstance(v, list) else [v]))
        stack.extend(getattr(obj, "estimators_", []) if isinstance(getattr(obj, "estimators_", None), list) else [])
    return opts


def _n_features(est: Any, src: ParsedModel) -> int:
    n = getattr(est, "n_features_in_", None)
    if n is None and src.inputs and src.inputs[0].size and len(src.inputs[0].size) == 2:
        n = src.inputs[0].size[1]
    if not n or n < 0:
        raise ConversionError(f"{src.path}: the model does not say how many features it takes; refit it with "
                              "scikit-learn >= 1.0 or log it with a signature")
    return int(n)


def _tabular_inputs(n: int, example: Any, dtype: str) -> Any:
    x = par.synthesize([Tensor(name="input", size=[-1, n], d_type=dtype)], dtype=dtype,
                       example=example if example is not None and example.shape[-1] == n else None)
    return x[0]


def _from_sklearn(est: Any, src: ParsedModel, staging: Path, *, example: Any, tolerance: float | None,
                  opset: int | None, trust: bool) -> _Produced:
    import skl2onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    n = _n_features(est, src)
    x = _tabular_inputs(n, example, "float64")
    classifier = hasattr(est, "classes_") and hasattr(est, "predict_proba")
    ref = [est.predict(x), est.predict_proba(x)] if classifier else [est.predict(x)]
    target_opset = opset or skl2onnx.get_latest_tested_opset_version()
    attempts = []
    for dtype, kind in (("float32", FloatTensorType), ("float64", DoubleTensorType)):
        try:
            onx = skl2onnx.convert_sklearn(est, initial_types=[("input", kind([None, n]))],
                                           options=_no_zipmap(est) if classifier else None,
                                           target_opset=target_opset)
        except Exception as exc:  # noqa: BLE001 - float64 is a fallback: report the float32 figures
            if not attempts:
                raise
            attempts[-1]["reason"] = f"float64 conversion failed too: {type(exc).__name__}"
            break
        path = staging / "model.onnx"
        path.write_bytes(onx.SerializeToString())
        got = par.run_onnx(path, [x.astype(dtype)])
        p = par.compare(ref, got, tolerance=tolerance or par.default_tolerance(dtype), classifier=classifier)
        p.update(input_dtype=dtype, inputs=_inputs_label(example))
        if p["passed"]:
            if attempts:
                p["float32_attempt"] = attempts[0]
            return _Produced(path, f"skl2onnx {skl2onnx.__version__}", target_opset, p)
        attempts.append(p)
        path.unlink()
    return _check(src, _Produced(staging / "model.onnx", "skl2onnx", target_opset, attempts[-1]))


def _inputs_label(example: Any) -> str:
    return "input_example+synthesized" if example is not None else "synthesized"


# -- XGBoost / LightGBM ------------------------------------------------------------------------

def _load_xgboost(src: ParsedModel) -> Any:
    import xgboost

    cls = xgboost.XGBClassifier if src.classifier else xgboost.XGBRegressor
    est = cls()
    est.load_model(str(src.path))
    return est


def _from_xgboost(est: Any, src: ParsedModel, staging: Path, *, example: Any, tolerance: float | None,
                  opset: int | None, trust: bool) -> _Produced:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    n = _n_features(est, src)
    x = _tabular_inputs(n, example, "float32")
    classifier = hasattr(est, "predict_proba") and hasattr(est, "classes_")
    ref = [est.predict(x), est.predict_proba(x)] if classifier else [est.predict(x)]
    target_opset = min(opset or ONNXMLTOOLS_MAX_OPSET, ONNXMLTOOLS_MAX_OPSET)
    onx = onnxmltools.convert_xgboost(est, initial_types=[("input", FloatTensorType([None, n]))],
                                      target_opset=target_opset)
    return _finish_tabular(onx, src, staging, x, ref, classifier, tolerance, example,
                           f"onnxmltools {onnxmltools.__version__}", target_opset)


def _from_lightgbm(model: Any, src: ParsedModel, staging: Path, *, example: Any, tolerance: float | None,
                   opset: int | None, trust: bool) -> _Produced:
    import numpy as np
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = getattr(model, "booster_", model)
    n = booster.num_feature()
    x = _tabular_inputs(n, example, "float32")
    classifier = src.classifier or hasattr(model, "classes_")
    if hasattr(model, "predict_proba"):
        ref = [model.predict(x), model.predict_proba(x)] if classifier else [model.predict(x)]
    else:
        raw = booster.predict(x)
        if classifier:
            proba = np.column_stack([1 - raw, raw]) if raw.ndim == 1 else raw
            ref = [proba.argmax(axis=1), proba]
        else:
            ref = [raw]
    target_opset = min(opset or ONNXMLTOOLS_MAX_OPSET, ONNXMLTOOLS_MAX_OPSET)
    onx = onnxmltools.convert_lightgbm(model, initial_types=[("input", FloatTensorType([None, n]))],
                                       zipmap=False, target_opset=target_opset)
    return _finish_tabular(onx, src, staging, x, ref, classifier, tolerance, example,
                           f"onnxmltools {onnxmltools.__version__}", target_opset)


def _finish_tabular(onx: Any, src: ParsedModel, staging: Path, x: Any, ref: list[Any], classifier: bool,
                    tolerance: float | None, example: Any, tool: str, opset: int) -> _Produced:
    path = staging / "model.onnx"
    path.write_bytes(onx.SerializeToString())
    got = par.run_onnx(path, [x])
    p = par.compare(ref, got, tolerance=tolerance or par.FLOAT32_TOLERANCE, classifier=classifier)
    p.update(input_dtype="float32", inputs=_inputs_label(example))
    return _check(src, _Produced(path, tool, opset, p))


# -- PyTorch -----------------------------------------------------------------------------------

def _from_torch(src: ParsedModel, target: str, staging: Path, *, example: Any, tolerance: float | None,
                opset: int | None, trust: bool) -> _Produced:
    import numpy as np
    import torch

    from modelhaul.formats import pt2, torchscript

    program = None
    if src.format == "PT2":
        program = pt2.load(src.path, trust=trust)
        module = program.module()
    else:
        module = torchscript.load(src.path, trust=trust)
    if not src.inputs or any(t.size is None for t in src.inputs):
        raise ConversionError(f"{src.path}: input shapes are unknown; log the model with an MLflow signature "
                              "or input example (or trace it with example inputs) so parity can be checked")
    arrays = par.synthesize(src.inputs, dtype="float32",
                            example=example if len(src.inputs) == 1 else None)
    tensors = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)
    with torch.no_grad():
        ref = _as_list(module(*tensors))
    in_names = [t.name or f"input_{i}" for i, t in enumerate(src.inputs)] if len(src.inputs) > 1 else \
        [src.inputs[0].name or "input"]
    out_names = ["output"] if len(ref) == 1 else [f"output_{i}" for i in range(len(ref))]
    tol = tolerance or par.FLOAT32_TOLERANCE
    if target == "torchscript":
        path = staging / "model.pt"
        with torch.no_grad():
            traced = torch.jit.trace(module, tuple(t[:2] for t in tensors))
        traced.save(str(path))
        reloaded = torch.jit.load(str(path))
        with torch.no_grad():
            got = _as_list(reloaded(*tensors))
        p = par.compare(ref, got, tolerance=tol)
        p.update(input_dtype="float32", inputs=_inputs_label(example), exporter="torch.jit.trace")
        return _check(src, _Produced(path, f"torch.jit.trace {torch.__version__}", None, p, outputs=ref))
    path = staging / "model.onnx"
    exporter = _export_onnx(program, module, tensors, path, in_names, out_names, src, opset,
                            script=src.format == "TorchScript")
    got = par.run_onnx(path, [t.numpy() for t in tensors])
    p = par.compare(ref, got, tolerance=tol)
    p.update(input_dtype="float32", inputs=_inputs_label(example), exporter=exporter)
    return _check(src, _Produced(path, f"torch.onnx ({exporter}) {torch.__version__}", opset, p))


def _as_list(out: Any) -> list[Any]:
    if isinstance(out, tuple | list):
        return [o.detach().numpy() for o in out]
    return [out.detach().numpy()]


def _export_onnx(program: Any, module: Any, tensors: tuple[Any, ...], path: Path, in_names: list[str],
                 out_names: list[str], src: ParsedModel, opset: int | None, *, script: bool) -> str:
    """Export with the dynamo exporter, falling back to the legacy one; returns which one worked."""
    import contextlib
    import io
    import warnings

    import torch

    batch = [t.size is not None and len(t.size) > 0 and t.size[0] == -1 for t in src.inputs]
    errors = []
    if not script:
        try:
            dims = tuple({0: torch.export.Dim("batch", min=1)} if b else None for b in batch)
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.onnx.export(program if program is not None else module, None if program else tensors,
                                  str(path), dynamo=True, input_names=in_names, output_names=out_names,
                                  dynamic_shapes=None if program is not None else dims, opset_version=opset,
                                  external_data=False, verbose=False)
            return "dynamo"
        except Exception as exc:  # noqa: BLE001 - fall back to the legacy exporter on any failure
            errors.append(f"dynamo: {type(exc).__name__}")
            for f in path.parent.iterdir():
                f.unlink()
    axes = {n: {0: "batch"} for n, b in zip(in_names, batch, strict=False) if b}
    if any(batch):
        axes.update({n: {0: "batch"} for n in out_names})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, tensors, str(path), dynamo=False, input_names=in_names,
                              output_names=out_names, dynamic_axes=axes or None,
                              opset_version=opset or 17)
    except Exception as exc:  # noqa: BLE001
        errors.append(f"legacy: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
        raise ConversionError(f"{src.path}: torch.onnx could not export the model ({'; '.join(errors)})") \
            from None
    return "legacy"


# -- the converted artifact's config -----------------------------------------------------------

def _result_config(config: ModelConfig | None, src: ParsedModel, converted: ParsedModel,
                   conv: Conversion) -> ModelConfig:
    base = config.to_dict() if config else {}
    for k in ("signature", "format", "framework", "size", "directoryStructure"):
        base.pop(k, None)
    patch = converted.config_patch()
    labels = {k: v for k, v in (base.get("labels") or {}).items() if not k.startswith("modelhaul.")}
    labels.update(patch.get("labels", {}))
    base.update(format=converted.format, framework=src.framework or converted.framework,
                signature=patch["signature"])
    if labels:
        base["labels"] = labels
    prov = dict(base.get("provenance") or {})
    prov["conversion"] = conv.model_dump(mode="json", by_alias=True, exclude_none=True)
    base["provenance"] = prov
    try:
        return ModelConfig.from_dict(base)
    except ModelhaulError as exc:
        raise FormatError(str(exc)) from None
