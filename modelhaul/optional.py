"""Optional dependencies: each use names the extra that installs what it needs.

A worker installed with too small an extra must fail with one line that says what to install, not
with an ``ImportError`` traceback from deep inside a format module.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from modelhaul.errors import ModelhaulError

F = TypeVar("F", bound=Callable[..., Any])


class MissingDependency(ModelhaulError, ImportError):
    """An optional library is not installed; the message names the extra that brings it."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise ``{what} needs {module}: pip install "modelhaul[{extra}]"``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or module
        raise MissingDependency(f'{what} needs {missing}: pip install "modelhaul[{extra}]"') from None


# top-level module -> the extra that installs it
EXTRA_OF = {
    "mlflow": "mlflow", "sqlalchemy": "mlflow", "alembic": "mlflow",
    "sklearn": "train", "skops": "train",
    "onnx": "convert", "onnxruntime": "convert", "skl2onnx": "convert", "onnxmltools": "convert",
    "onnxscript": "convert", "safetensors": "convert", "lightgbm": "convert", "xgboost": "convert",
    "h5py": "convert", "numpy": "convert",
    "torch": "torch",
    "kubernetes": "kube", "jsonschema": "kube",
    "kfp": "kfp",
    "model_signing": "sign", "OpenSSL": "sign",
}


def missing_extra(exc: ImportError, what: str) -> MissingDependency | None:
    """The one-line error for an optional module that failed to import during ``what``, or None."""
    top = (getattr(exc, "name", None) or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    if extra == "train" and what != "train":
        extra = "convert"  # reading scikit-learn models: [convert] brings scikit-learn and skops too
    return MissingDependency(f'{what} needs {top}: pip install "modelhaul[{extra}]"')


def needs_extras(what: str) -> Callable[[F], F]:
    """Decorate a step: a missing optional module becomes one line naming its extra."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except ModuleNotFoundError as exc:
                err = missing_extra(exc, what)
                if err is None:
                    raise
                raise err from None

        return call  # type: ignore[return-value]

    return wrap
