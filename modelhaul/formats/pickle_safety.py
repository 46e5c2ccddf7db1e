"""Which globals of a pickle make it dangerous to load, and the one rule deploy and promote share.

Unpickling imports every global the stream names and may call it, so a pickle naming ``os.system``
runs a shell command in whatever process loads it — the serving runtime included. Parsing records
the globals (:mod:`modelhaul.formats.pickle_scan`, nothing executed) and marks the model unsafe
when any falls outside the allow-list below: the classes and rebuild helpers that scikit-learn,
numpy, scipy, XGBoost, LightGBM and PyTorch models are made of, minus the file and process
functions those packages also export. The reference is picklescan/modelscan's rules, turned
around: they list what is known bad, this lists what is known good, so an unknown module (a user's
``__main__.MyModel`` included) is flagged too.
"""

from __future__ import annotations

from collections.abc import Iterable

from modelhaul.config import ModelConfig
from modelhaul.errors import ConfigError
from modelhaul.formats.base import UNSAFE_LABEL as LABEL

_EXACT = frozenset({
    "_codecs.encode", "copyreg._reconstructor", "copy_reg._reconstructor",
    "collections.OrderedDict", "collections.defaultdict", "collections.Counter", "collections.deque",
    "datetime.datetime", "datetime.date", "datetime.time", "datetime.timedelta", "datetime.timezone",
    "decimal.Decimal", "fractions.Fraction", "uuid.UUID",
    "joblib.numpy_pickle.NumpyArrayWrapper", "joblib.numpy_pickle.NDArrayWrapper",
    "xgboost.core.Booster", "lightgbm.basic.Booster",
})
_BUILTINS = frozenset({"set", "frozenset", "list", "dict", "tuple", "slice", "complex", "bytearray", "bytes",
                       "object", "int", "float", "str", "bool", "range"})
# whole packages whose names are model building blocks, minus the names in _DENIED
_PACKAGES = ("sklearn.", "numpy.", "scipy.sparse.", "xgboost.sklearn.", "lightgbm.sklearn.", "torch.", "__torch__.")
# functions of those packages that read or write files, run code or reach the network when called
_DENIED_MODULES = (
    "numpy.testing", "numpy.f2py", "numpy.distutils", "numpy.ctypeslib", "numpy.lib.npyio", "numpy.lib._npyio_impl",
    "numpy.lib.format", "sklearn.datasets", "sklearn.utils._testing", "sklearn.externals", "torch.hub",
    "torch.utils.cpp_extension", "torch.package", "torch.serialization", "torch._dynamo", "torch._inductor",
    "torch.distributed", "torch.multiprocessing", "torch.cuda", "torch.testing", "torch.library", "torch.ops",
    "torch._ops",
)
_DENIED_NAMES = frozenset({"load", "loads", "save", "savez", "savez_compressed", "savetxt", "loadtxt",
                           "genfromtxt", "fromfile", "fromregex", "memmap", "tofile", "dump", "dumps", "open",
                           "eval", "exec", "compile", "system", "popen", "getattr", "setattr", "__import__",
                           "import_module", "_load_from_bytes", "from_file"})


def allowed(name: str) -> bool:
    """Whether unpickling may import ``name`` (``module.qualname``) without running foreign code."""
    if name in _EXACT:
        return True
    module, _, attr = name.rpartition(".")
    if module in ("builtins", "__builtin__"):
        return attr in _BUILTINS
    if not name.startswith(_PACKAGES) or attr in _DENIED_NAMES or attr.startswith("__") and attr.endswith("__"):
        return False
    return not any(module == m or module.startswith(m + ".") for m in _DENIED_MODULES)


def unsafe_globals(names: Iterable[str]) -> list[str]:
    """The names outside the allow-list, sorted."""
    return sorted({n for n in names if not allowed(n)})


def unsafe_of(labels: dict[str, str] | None) -> list[str]:
    """The unsafe globals that parse recorded in a config's labels (empty: none, or never parsed)."""
    return [g for g in (labels or {}).get(LABEL, "").split(",") if g]


def refuse_unsafe(cfg: ModelConfig, ref: str, step: str, *, trust: bool) -> None:
    """One line naming the globals, unless the caller said it trusts the model."""
    found = unsafe_of(cfg.labels)
    if found and not trust:
        raise ConfigError(f"{ref}: refusing to {step} a model whose pickle imports {', '.join(found)} "
                          f"(loading it runs that code); pass --trust (trust=True) only for a model you trust")
