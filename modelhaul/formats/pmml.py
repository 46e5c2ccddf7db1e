"""PMML documents (``.pmml``, or ``.xml`` whose root is ``<PMML>``).

Inputs are the model's active ``MiningField``s typed by the ``DataDictionary``; outputs are its
target fields and declared ``OutputField``s. Layers count the model elements (``TreeModel``,
``Segment``, ``Node`` ...). XML entities are refused, so a hostile document cannot expand.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from modelhaul.config import Tensor
from modelhaul.formats.base import NO, OWN_NAME, ParsedModel, Probe, fail, read_head, tensor

_MODEL_TAGS = {
    "TreeModel", "RegressionModel", "GeneralRegressionModel", "MiningModel", "NeuralNetwork",
    "SupportVectorMachineModel", "NaiveBayesModel", "ClusteringModel", "RuleSetModel", "ScoreCardModel",
    "NearestNeighborModel", "AssociationModel", "SequenceModel", "TextModel", "TimeSeriesModel",
    "BayesianNetworkModel", "GaussianProcessModel", "AnomalyDetectionModel",
}
_COUNTED = _MODEL_TAGS | {"Segment", "Node", "NeuralLayer", "Neuron", "RegressionTable", "SupportVector"}
_TYPES = {"double": "float64", "float": "float32", "integer": "int64", "string": "string", "boolean": "bool"}


def sniff(p: Probe) -> int:
    return OWN_NAME if p.suffix == ".pmml" or (p.suffix == ".xml" and looks_like(p.path)) else NO


def looks_like(path: Path) -> bool:
    head = read_head(path, 2048)
    return b"<PMML" in head


def parse(path: Path, *, trust: bool = False) -> ParsedModel:
    if b"<!ENTITY" in read_head(path, 1 << 16):
        raise fail(path, "PMML document declares XML entities, which are refused")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise fail(path, f"not well-formed XML ({exc}); the file is corrupt or truncated") from None
    if _local(root.tag) != "PMML":
        raise fail(path, f"root element is <{_local(root.tag)}>, not <PMML>")
    types: dict[str, str] = {}
    for el in root.iter():
        if _local(el.tag) == "DataField":
            types[el.get("name", "")] = _TYPES.get(el.get("dataType", ""), el.get("dataType", ""))
    model = next((el for el in root if _local(el.tag) in _MODEL_TAGS), None)
    if model is None:
        raise fail(path, "PMML document has no model element")
    inputs: list[Tensor] = []
    outputs: list[Tensor] = []
    schema = next((el for el in model if _local(el.tag) == "MiningSchema"), None)
    for field in (schema if schema is not None else []):
        name = field.get("name", "")
        usage = field.get("usageType", "active")
        if usage == "active":
            inputs.append(tensor(name, types.get(name), [-1]))
        elif usage in ("target", "predicted"):
            outputs.append(tensor(name, types.get(name), [-1]))
    out_el = next((el for el in model if _local(el.tag) == "Output"), None)
    for field in (out_el if out_el is not None else []):
        if _local(field.tag) == "OutputField":
            outputs.append(tensor(field.get("name"), _TYPES.get(field.get("dataType", "")), [-1]))
    layers = Counter(_local(el.tag) for el in root.iter() if _local(el.tag) in _COUNTED)
    header = next((el for el in root if _local(el.tag) == "Header"), None)
    app = next((el for el in header if _local(el.tag) == "Application"), None) if header is not None else None
    producer = f"{app.get('name', '')} {app.get('version', '')}".strip() if app is not None else None
    return ParsedModel(format="PMML", framework="PMML", path=path, inputs=inputs, outputs=outputs,
                       layers=dict(layers), framework_version=root.get("version"),
                       details={"model": _local(model.tag), "function": model.get("functionName"),
                                "producer": producer,
                                "classifier": model.get("functionName") == "classification"})


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
