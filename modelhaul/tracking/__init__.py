"""MLflow in: a run, logged model or registered version -> the model's files + a ModelConfig.

MLflow 3 keeps a model as a LoggedModel (``m-<hex>``) linked from its run's outputs; a registered
version points at one and aliases point at versions. :func:`import_model` follows whichever of those
a URI names (:mod:`.resolve`), downloads the model directory (MLflow's own layout, ``MLmodel`` at
its root, so MLFLOW_SERVER can serve it and the input example is there for conversion) and maps
what MLflow recorded about it onto :class:`~modelhaul.config.ModelConfig` (:mod:`.mapping`).

Only ``mlflow-skinny`` is needed: the MLmodel file is read as YAML rather than through MLflow's
schema classes (those import numpy/pandas), and mlflow itself is imported inside functions so that
``import modelhaul.steps`` stays cheap. The package is not called ``mlflow``: one ``mlflow`` is enough.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from modelhaul.config import ModelConfig
from modelhaul.declarations import tracking_uri_of
from modelhaul.errors import MLflowError, redact
from modelhaul.paths import tmp_root
from modelhaul.tracking.client import _client, _error, _quick_failures
from modelhaul.tracking.mapping import build_config
from modelhaul.tracking.resolve import Resolved, _experiment, resolve


@contextlib.contextmanager
def import_model(uri: str, *, tracking_uri: str | None = None) -> Iterator[tuple[Path, ModelConfig]]:
    """Download the model that ``uri`` names and describe it; yields ``(model_dir, config)``.

    ``uri``: ``runs:/<run_id>/<path>``, ``models:/<model_id>``, ``models:/<name>/<version>`` or
    ``models:/<name>@<alias>``. The files live in a temporary directory removed on exit.
    Raises :class:`MLflowError` (one line, no MLflow internals) when anything is missing.
    """
    tracking_uri = tracking_uri_of(tracking_uri)
    tmp = Path(tempfile.mkdtemp(prefix="modelhaul-mlflow-", dir=tmp_root()))
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
