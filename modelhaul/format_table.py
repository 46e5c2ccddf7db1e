"""Every model format modelhaul knows, one row each: its names, who reads it, converts it and serves it.

A row is a value of ``ModelConfig.format`` (ormb's names, plus modelhaul's own). The row's
``parser`` names the module under ``modelhaul/formats/`` that recognises its files (``sniff``)
and reads them (``parse``); several rows may share a parser (``.keras`` and legacy ``.h5`` are
both read by ``keras``). Rows without a parser are formats modelhaul names and packs but cannot
read. The order of the rows is the order of preference when a directory holds several model files,
for parsing and for guessing a config's format alike.

Adding a format: write ``modelhaul/formats/<parser>.py`` (``sniff(probe)`` and ``parse(path)``,
see :mod:`modelhaul.formats.base`) and add its row here. Everything else asks this table:
detection and parse hints (``formats/__init__.py``), the format a bundle's file names suggest
(``bundle/source.py``), MLflow flavors (``formats/mlflow.py``, ``tracking/mapping.py``), the
converter (``formats/convert.py``) and the servers per target (``serving/layouts.py`` and the
manifest builders). Nothing here imports anything: it is data.
"""

from __future__ import annotations

from dataclasses import dataclass

TRITON = "triton"


@dataclass(frozen=True)
class ModelFormat:
    """One format: how configs name it, which module reads it, and what serves it on each target."""

    name: str  # ModelConfig.format, as ormb spells it: "ONNX", "SKLearn"
    framework: str | None  # ModelConfig.framework that goes with it
    parser: str | None = None  # module modelhaul.formats.<parser>: sniff() and parse()
    suffixes: tuple[str, ...] = ()  # file names ending so say the format without reading the file
    aliases: tuple[str, ...] = ()  # other spellings of the format in a config (lower case)
    frameworks: tuple[str, ...] = ()  # frameworks that mean this format when a config names none
    flavor: str | None = None  # the MLflow flavor that saves it (mlflow.<flavor>.FLAVOR_NAME)
    flavor_keys: tuple[str, ...] = ()  # keys of that flavor's MLmodel block naming the model file
    converter: str | None = None  # which converter of formats/convert.py takes it to ONNX
    # serving, per target (None: that target has no server for it here)
    kind: str | None = None  # ServedModel.kind: the key of the manifests below
    layout: str | None = None  # the initializer layout its default server reads (serving/layouts.py)
    seldon: str | None = None  # Seldon Core v1 prepackaged server (graph implementation)
    kserve: tuple[str, str | None] | None = None  # KServe (modelFormat name, runtime; None: KServe's default)
    mlserver: str | None = None  # MLServer runtime class (model-settings.json implementation)
    triton: tuple[str, str] | None = None  # Triton (platform, file name in the version directory)


_TRITON_SERVED = dict(layout=TRITON, seldon="TRITON_SERVER")

FORMATS: tuple[ModelFormat, ...] = (
    ModelFormat("ONNX", "ONNX", "onnx", suffixes=(".onnx",), flavor="onnx", flavor_keys=("data",),
                kind="onnx", kserve=("onnx", None), triton=("onnxruntime_onnx", "model.onnx"), **_TRITON_SERVED),
    ModelFormat("PT2", "PyTorch", "pt2", suffixes=(".pt2",), converter="torch"),
    ModelFormat("TorchScript", "PyTorch", "torchscript", suffixes=(".pt", ".pth"), flavor="pytorch",
                flavor_keys=("model_data",), converter="torch", kind="torchscript",
                kserve=("pytorch", "kserve-tritonserver"), triton=("pytorch_libtorch", "model.pt"), **_TRITON_SERVED),
    ModelFormat("PyTorch", "PyTorch", "torchscript", converter="torch"),  # a pickled nn.Module (torch.save)
    ModelFormat("SavedModel", "TensorFlow", "savedmodel", suffixes=("saved_model.pb",),
                aliases=("saved_model", "tensorflow"), flavor="tensorflow", flavor_keys=("saved_model_dir",),
                kind="savedmodel", kserve=("tensorflow", "kserve-tritonserver"),
                triton=("tensorflow_savedmodel", "model.savedmodel"), **_TRITON_SERVED),
    # MLflow's keras flavor is Keras 3 (the ``keras`` package, on any backend): framework Keras
    ModelFormat("Keras", "Keras", "keras", suffixes=(".keras",), flavor="keras", flavor_keys=("data",)),
    ModelFormat("H5", "Keras", "keras", suffixes=(".h5",)),
    ModelFormat("SKLearn", "scikit-learn", "sklearn", suffixes=(".joblib", ".skops", ".pkl"),
                aliases=("scikit-learn", "joblib", "pickle"), frameworks=("sklearn", "scikit-learn"),
                flavor="sklearn", flavor_keys=("pickled_model",), converter="sklearn", kind="sklearn",
                layout="sklearn", seldon="SKLEARN_SERVER", kserve=("sklearn", None),
                mlserver="mlserver_sklearn.SKLearnModel"),
    ModelFormat("XGBoost", "XGBoost", "xgboost", suffixes=(".ubj", ".bst", ".xgboost"), aliases=("bst",),
                frameworks=("xgboost",), flavor="xgboost", flavor_keys=("data",), converter="xgboost",
                kind="xgboost", layout="xgboost", seldon="XGBOOST_SERVER", kserve=("xgboost", None),
                mlserver="mlserver_xgboost.XGBoostModel"),
    # served by MLServer alone (the initializer's mlserver layout); no Seldon or KServe manifest here
    ModelFormat("LightGBM", "LightGBM", "lightgbm", suffixes=(".lgb",), frameworks=("lightgbm",),
                flavor="lightgbm", flavor_keys=("data",), converter="lightgbm", layout="mlserver",
                mlserver="mlserver_lightgbm.LightGBMModel"),
    ModelFormat("PMML", "PMML", "pmml", suffixes=(".pmml",)),
    ModelFormat("SafeTensors", "PyTorch", "safetensors", suffixes=(".safetensors",)),
    # an MLflow model directory served as it is, whatever its flavor
    ModelFormat("MLflow", "MLflow", "mlflow", aliases=("mlmodel",), flavor="python_function",
                flavor_keys=("model_path", "data"), kind="mlflow", layout="mlflow", seldon="MLFLOW_SERVER",
                kserve=("mlflow", None), mlserver="mlserver_mlflow.MLflowRuntime"),
    # named and packed, not read
    ModelFormat("Transformers", "Transformers", flavor="transformers"),
    ModelFormat("TensorRT", "TensorRT", suffixes=(".plan",)),
    ModelFormat("CaffeModel", "Caffe", suffixes=(".caffemodel",)),
    ModelFormat("GGUF", "llama.cpp", suffixes=(".gguf",)),
)


def parsers() -> tuple[str, ...]:
    """The parser modules, in order of preference."""
    return tuple(dict.fromkeys(f.parser for f in FORMATS if f.parser))


def flavors() -> tuple[str, ...]:
    """What MLflow calls each flavor modelhaul reads, in order of preference."""
    return tuple(f.flavor for f in FORMATS if f.flavor)


def kinds() -> tuple[str, ...]:
    """The serving kinds (``ServedModel.kind``), each one row's."""
    return tuple(f.kind for f in FORMATS if f.kind)


def _spellings(f: ModelFormat) -> tuple[str, ...]:
    return (f.name.lower(), *f.aliases)


def named(name: str | None) -> ModelFormat | None:
    """The row of a format as a config spells it (any case, or an alias such as ``tensorflow``)."""
    key = (name or "").strip().lower()
    return next((f for f in FORMATS if key in _spellings(f)), None)


def by_name(name: str | None) -> ModelFormat | None:
    """The row whose exact name is ``name`` (a ParsedModel's format)."""
    return next((f for f in FORMATS if f.name == name), None)


def of_config(fmt: str | None, framework: str | None) -> ModelFormat | None:
    """The row a config's (format, framework) means: by format, else (no format) by framework."""
    found = named(fmt)
    if found is None and (fmt or "").strip().lower() in ("", "others"):
        key = (framework or "").strip().lower()
        found = next((f for f in FORMATS if key in f.frameworks), None)
    return found


def of_parser(parser: str) -> ModelFormat:
    """The first (main) row read by ``parser``: what a file that parser recognises is called."""
    return next(f for f in FORMATS if f.parser == parser)


def of_flavor(flavor: str) -> ModelFormat | None:
    return next((f for f in FORMATS if f.flavor == flavor), None)


def hint(text: str | None) -> str | None:
    """The parser a config's format names (``pytorch``, ``h5``, ``scikit-learn`` ...), for preferring it."""
    key = (text or "").lower().replace("-", "").replace(" ", "")
    found = next((f for f in FORMATS for s in _spellings(f) if s.replace("-", "") == key), None)
    return found.parser if found else None


def served(kind: str) -> ModelFormat:
    """The row of a serving kind (``ServedModel.kind``)."""
    return next(f for f in FORMATS if f.kind == kind)


def seldon_implementations() -> dict[str, str]:
    """Serving kind -> Seldon Core v1 implementation (what serving/seldon.py's ``IMPLEMENTATION`` holds)."""
    return {f.kind: f.seldon for f in FORMATS if f.kind and f.seldon}


def kserve_formats() -> dict[str, tuple[str, str | None, str]]:
    """Serving kind -> (KServe modelFormat, runtime, initializer layout), as serving/kserve.py's ``FORMATS``."""
    return {f.kind: (*f.kserve, f.layout) for f in FORMATS if f.kind and f.kserve and f.layout}


def triton_platforms() -> dict[str, tuple[str, str]]:
    """Format -> (Triton platform, model file name), as serving/triton.py's ``PLATFORMS``."""
    return {f.name: f.triton for f in FORMATS if f.triton}


def converters_label() -> str:
    """The frameworks modelhaul converts, for a message: ``PyTorch, scikit-learn, XGBoost and LightGBM``."""
    names = list(dict.fromkeys(f.framework for f in FORMATS if f.converter and f.framework))
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)
