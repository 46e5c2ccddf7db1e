"""Importing ``modelhaul.steps`` stays cheap: every adapter (a DAG parse, ``modelhaul --help``, a KFP
component's module) pays for it. steps.py imports by name every module whose functions it hands
the adapters; those modules import their heavy parts inside their functions. Speed itself is
measured, never asserted: ``python -X importtime -c 'import modelhaul.steps'``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from tests.test_architecture import ROOT, floor_of


def test_importing_the_steps_loads_only_the_standard_library_and_the_lowest_floors():
    code = "import json, sys, modelhaul.steps; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    third_party = sorted(m for m in loaded if m.split(".")[0] not in sys.stdlib_module_names
                         and m.split(".")[0] != "modelhaul" and not m.startswith(("_", "__editable__")))
    assert third_party == [], f"importing modelhaul.steps imports {third_party}: import them inside the functions"
    tree = ast.parse((ROOT / "modelhaul" / "steps.py").read_text())
    named = {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}  # what steps.py hands on
    deep = sorted(m for m in loaded if m.startswith("modelhaul.") and m != "modelhaul.steps"
                  and m not in named and not any(n.startswith(f"{m}.") for n in named)  # a named module's package
                  and (floor_of(m) or 0) >= 2)
    assert deep == [], f"importing modelhaul.steps loads more than it names and the two lowest floors: {deep}"
    assert "modelhaul.artifacts" not in loaded and "modelhaul.registry" not in loaded
