"""Templated booleans are parsed strictly: a rendered ``'False'`` never turns ``trust`` on."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from modelhaul import artifacts
from modelhaul.errors import ConfigError, FormatError
from modelhaul.flags import parse_bool


class _CreatesFile:
    """Unpickling this calls open(path, 'w'): the file appears if the pickle is ever loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _pickled_model(tmp_path: Path, marker: Path) -> str:
    d = tmp_path / "model"
    d.mkdir()
    (d / "model.pkl").write_bytes(pickle.dumps({"model": _CreatesFile(str(marker))}, protocol=4))
    ref = f"oci:{tmp_path / 'layout'}:v1"
    return artifacts.publish(d, ref, config={"format": "Pickle", "framework": "scikit-learn"})["ref"]


@pytest.mark.parametrize("rendered", ["False", "false", "NO", "0", ""])
def test_a_templated_false_trust_never_unpickles(rendered, tmp_path, airflow_home):
    from modelhaul.operators import ConvertModelOperator

    marker = tmp_path / "pwned"
    ref = _pickled_model(tmp_path, marker)
    op = ConvertModelOperator(task_id="convert", ref=ref, dest_ref=f"oci:{tmp_path / 'layout'}:onnx",
                              trust=rendered, registry_conn_id=None)
    with pytest.raises(FormatError, match="trust"):
        op.execute({})
    assert not marker.exists()


def test_a_templated_true_trust_does_load_it(tmp_path, airflow_home):
    """The control: the same pickle is loaded (and runs) when ``trust`` renders to ``'True'``."""
    from modelhaul.operators import ConvertModelOperator

    marker = tmp_path / "pwned"
    ref = _pickled_model(tmp_path, marker)
    op = ConvertModelOperator(task_id="convert", ref=ref, dest_ref=f"oci:{tmp_path / 'layout'}:onnx",
                              trust="True", registry_conn_id=None)
    with pytest.raises(Exception):  # noqa: B017 - an open file object is no model: conversion fails after loading
        op.execute({})
    assert marker.exists()


def test_an_unknown_spelling_names_the_argument(tmp_path, airflow_home):
    from modelhaul.operators import ParseModelOperator

    marker = tmp_path / "pwned"
    ref = _pickled_model(tmp_path, marker)
    op = ParseModelOperator(task_id="parse", ref=ref, trust="Flase", registry_conn_id=None)
    with pytest.raises(ConfigError, match=r"^trust='Flase': not a boolean"):
        op.execute({})
    assert not marker.exists()


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), (1, True), (0, False), ("TRUE", True), (" yes ", True), ("1", True),
    ("False", False), ("no", False), ("0", False), (None, False), ("", False),
])
def test_parse_bool_spellings(value, expected):
    assert parse_bool(value, "x") is expected


@pytest.mark.parametrize("value", ["on", "y", "t", "2", 2, "maybe", [], 0.5])
def test_parse_bool_refuses_anything_else(value):
    with pytest.raises(ConfigError, match=r"^flag="):
        parse_bool(value, "flag")


def test_an_environment_flag_is_strict_too(monkeypatch):
    from modelhaul.registry_options import RegistryOptions

    monkeypatch.setenv("MODELHAUL_INSECURE", "False")
    assert RegistryOptions.resolve().insecure is False
    monkeypatch.setenv("MODELHAUL_INSECURE", "sure")
    with pytest.raises(ConfigError, match="MODELHAUL_INSECURE"):
        RegistryOptions.resolve()
