"""The steps that write a model artifact: package one (from MLflow or a directory), and parse or
convert one into a child artifact whose provenance names its parent.

Reached through :mod:`modelhaul.steps` (``steps.package``, ``steps.parse``, ``steps.convert``), which
declares their arguments; heavy libraries are imported here, inside the functions.
"""

from __future__ import annotations

import re
from typing import Any

from modelhaul.registry_options import RegistryOptions


def package_model(source: str, ref: str, *, tracking_uri: str | None, bundle_format: str,
                  config: dict[str, Any] | None, options: RegistryOptions) -> dict[str, Any]:
    """Publish ``source`` (an MLflow URI, ``runs:/`` ``models:/``..., or a local directory) to ``ref``;
    an MLflow run's metadata becomes the ModelConfig, ``config`` overriding its fields."""
    from modelhaul import artifacts

    if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/", source) and not source.startswith("file:"):  # runs:/ models:/
        from modelhaul.tracking import import_model

        with import_model(source, tracking_uri=tracking_uri) as (model_dir, mlflow_config):
            cfg = mlflow_config.merged(config)
            return artifacts.publish(model_dir, ref, bundle_format=bundle_format, config=cfg, options=options)
    path = source[len("file://"):] if source.startswith("file://") else source
    return artifacts.publish(path, ref, bundle_format=bundle_format, config=config, options=options)


def parse_model(ref: str, dest_ref: str | None, *, trust: bool, options: RegistryOptions) -> dict[str, Any]:
    """Read the model's signature and layers from its files into a new manifest naming the parent
    (at ``dest_ref``, default: the same tag); pickles are loaded only when ``trust``."""
    from modelhaul import artifacts
    from modelhaul.formats import parse_directory

    with artifacts.checkout(ref, options=options) as (model_dir, cfg, parent):
        parsed = parse_directory(model_dir, trust=trust, hint=cfg.format)
        new_cfg = artifacts.with_parent(parsed.applied_to(cfg), parent)
        out = artifacts.publish(model_dir, dest_ref or artifacts.retarget(parent), config=new_cfg,
                                bundle_format=artifacts.bundle_format_of(parent, options), options=options)
    out["parent"] = parent
    out["unsafe_globals"] = parsed.details.get("unsafe_globals") or []
    out["signature"] = (new_cfg.signature.model_dump(mode="json", by_alias=True, exclude_none=True)
                        if new_cfg.signature else None)
    return out


def convert_model(ref: str, dest_ref: str, *, to: str, tolerance: float | None, opset: int | None, trust: bool,
                  options: RegistryOptions) -> dict[str, Any]:
    """Convert the model at ``ref`` with a parity check and publish it at ``dest_ref``, naming its parent.

    ONNX without ``opset``: the opset every target's default runtime loads.
    """
    from modelhaul import artifacts
    from modelhaul.formats.convert import convert_directory
    from modelhaul.paths import scratch_dir
    from modelhaul.serving.runtimes import opset_for

    opset = opset or (opset_for() if str(to).lower() == "onnx" else None)
    with artifacts.checkout(ref, options=options) as (model_dir, cfg, parent), scratch_dir() as out_dir:
        result = convert_directory(model_dir, out_dir, to=to, config=cfg, tolerance=tolerance,
                                   opset=opset, trust=trust)
        new_cfg = artifacts.with_parent(result.config, parent)
        out = artifacts.publish(out_dir, dest_ref, config=new_cfg, options=options)
    out["parent"] = parent
    out["parity"] = result.parity
    return out
