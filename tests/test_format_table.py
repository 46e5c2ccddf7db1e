"""The one table of model formats: what MLflow calls its flavors, one answer per flavor everywhere, the
serving manifests agreeing with it, and a new format being one module plus one row.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

from modelhaul import format_table as table
from modelhaul.bundle.source import infer_format, list_files, open_source
from modelhaul.formats import detect, find_model, parse_directory
from modelhaul.formats.base import CONTENT, NO, ParsedModel, Probe
from modelhaul.formats.mlflow import framework_and_format


def _mlflow_constant(module: str, name: str = "FLAVOR_NAME") -> str:
    """A string constant of an installed mlflow module, read from its source (its framework need not be
    installed: ``mlflow.keras`` imports keras)."""
    spec = importlib.util.find_spec(f"mlflow.{module}")
    assert spec is not None and spec.origin, f"mlflow has no module mlflow.{module}"
    files = [Path(spec.origin), *Path(spec.origin).parent.glob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets) \
                    and isinstance(node.value, ast.Constant):
                return str(node.value.value)
    raise AssertionError(f"mlflow.{module} defines no {name}")


@pytest.mark.parametrize("flavor", table.flavors())
def test_each_flavor_is_named_as_mlflow_names_it(flavor: str) -> None:
    module = {"python_function": "pyfunc"}.get(flavor, flavor)
    assert _mlflow_constant(module) == flavor


def test_keras_is_decided_once_as_mlflow_sees_it(tmp_path: Path) -> None:
    """MLflow's keras flavor is the Keras 3 package (any backend), not TensorFlow: framework Keras for the
    flavor, for a ``.keras`` file parsed and for a bundle's guess alike."""
    from mlflow.ml_package_versions import FLAVOR_TO_MODULE_NAME

    assert FLAVOR_TO_MODULE_NAME["keras"] == "keras" and FLAVOR_TO_MODULE_NAME["tensorflow"] == "tensorflow"
    assert table.of_flavor("keras").framework == "Keras"
    assert table.of_flavor("tensorflow").framework == "TensorFlow"
    assert table.of_parser("keras").framework == "Keras"


@pytest.mark.parametrize("flavor", [f for f in table.flavors() if f != "python_function"] + ["statsmodels"])
def test_tracking_and_bundle_read_a_flavor_alike(tmp_path: Path, flavor: str) -> None:
    """Importing from MLflow (tracking) and packing an MLflow directory (bundle) name the same format and
    framework for every flavor; they were two tables that disagreed on keras."""
    (tmp_path / "MLmodel").write_text(yaml.safe_dump({"flavors": {flavor: {"data": "data"}, "python_function": {}}}))
    framework, fmt = framework_and_format({flavor: {"data": "data"}, "python_function": {}}, tmp_path)
    assert infer_format(list_files(tmp_path), tmp_path) == (fmt, framework)
    assert open_source(tmp_path).config.format == fmt


def test_serving_manifests_agree_with_the_table() -> None:
    from modelhaul.serving import kserve, layouts, seldon, triton

    assert table.seldon_implementations() == seldon.IMPLEMENTATION
    assert table.kserve_formats() == kserve.FORMATS
    assert table.triton_platforms() == triton.PLATFORMS
    assert set(layouts.KINDS) == set(seldon.IMPLEMENTATION) == set(kserve.FORMATS)
    assert all(table.served(k).layout in layouts.SERVERS for k in layouts.KINDS)


def test_every_parser_row_has_its_module() -> None:
    for key in table.parsers():
        mod = importlib.import_module(f"modelhaul.formats.{key}")
        assert callable(mod.parse), key
        assert key == "mlflow" or callable(mod.sniff), key  # an MLflow directory is found by its MLmodel


def test_pack_and_parse_prefer_the_same_model(tmp_path: Path) -> None:
    """A directory holding two models (scikit-learn beside its PMML export): the format a bundle guesses
    from the file names is the one parsing picks, so deploy and convert read the model the config names."""
    import joblib
    from sklearn.linear_model import LinearRegression

    joblib.dump(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), tmp_path / "model.pkl")
    (tmp_path / "model.pmml").write_text('<?xml version="1.0"?><PMML xmlns="http://www.dmg.org/PMML-4_4"/>')
    guessed, _ = infer_format(list_files(tmp_path), by_content=False)
    key, _ = find_model(tmp_path)
    assert table.of_parser(key).name == guessed == "SKLearn"


@pytest.fixture
def made_up_format(monkeypatch: pytest.MonkeyPatch) -> str:
    """A format that exists only here: one module (``sniff`` and ``parse``) and one row."""
    mod = types.ModuleType("modelhaul.formats.madeup")

    def sniff(p: Probe) -> int:
        return CONTENT if p.head.startswith(b"MADEUP") else NO

    def parse(path: Path, *, trust: bool = False) -> ParsedModel:
        return ParsedModel(format="MadeUp", framework="MadeUpLib", path=path, layers={"rows": 1})

    mod.sniff, mod.parse = sniff, parse
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    row = table.ModelFormat("MadeUp", "MadeUpLib", "madeup", (".mu",), aliases=("made-up",))
    monkeypatch.setattr(table, "FORMATS", (*table.FORMATS, row))
    return "MadeUp"


def test_a_new_format_is_one_module_and_one_row(tmp_path: Path, made_up_format: str) -> None:
    (tmp_path / "model.mu").write_bytes(b"MADEUP v1\n")
    (tmp_path / "other.onnx").write_bytes(b"")  # preferred by the table's order ...
    assert detect(tmp_path / "model.mu") == made_up_format
    assert parse_directory(tmp_path, hint="made-up").format == made_up_format  # ... unless the config names it
    assert infer_format(list_files(tmp_path / "model.mu")) == ("MadeUp", "MadeUpLib")
    (tmp_path / "other.onnx").unlink()
    (tmp_path / "model.mu").rename(tmp_path / "model.bin")  # found by content, whatever its name
    assert detect(tmp_path) == made_up_format


@pytest.mark.parametrize("block", ["not a mapping", {"model_data": "/etc"}, {"model_data": ".."}])
def test_a_hostile_pytorch_flavor_block_reads_nothing_outside(tmp_path: Path, block: object) -> None:
    """An MLmodel from a pulled artifact decides nothing from files outside its directory, and a flavor block
    that is not a mapping is one answer, not a crash (tracking raised AttributeError on a string)."""
    model = tmp_path / "model"
    model.mkdir()
    (tmp_path / "model.pt2").write_bytes(b"")  # what `model_data: ..` would find
    flavors = {"pytorch": block, "python_function": {}}
    (model / "MLmodel").write_text(yaml.safe_dump({"flavors": flavors}))
    assert framework_and_format(flavors, model) == ("PyTorch", "PyTorch")
    assert infer_format(list_files(model), model) == ("PyTorch", "PyTorch")
