"""The house rules, checked on the source with ``ast`` (nothing is imported or executed).

* Adapters (``operators/``, ``components/``, ``plugins/``, ``dags/``, the CLI) enter the core only
  through ``modelhaul.steps`` and the typed declarations (plus ``modelhaul.errors``, the one-line
  error classes every adapter catches).
* ``modelhaul`` has no import cycle, counting imports inside functions as well.
* Every module has a floor (ARCHITECTURE.md) and imports only from its own floor or below.
* No module outgrows one screenful by much (~400 lines).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# where each importable package lives in the source tree (pyproject's package-dir)
PACKAGE_DIRS = {
    "modelhaul": ROOT / "modelhaul",
    "modelhaul.operators": ROOT / "operators",
    "modelhaul.components": ROOT / "components",
    "modelhaul.plugins": ROOT / "plugins",
}
ADAPTERS = ("modelhaul.operators", "modelhaul.components", "modelhaul.plugins", "modelhaul.cli")
DOOR = {"modelhaul", "modelhaul.steps", "modelhaul.declarations", "modelhaul.errors"}
# imports an adapter still makes past the door, each with who removes it; the check fails on any other
PENDING: dict[str, set[str]] = {
    # targets (issue 25): the initializer's process moved to the adapters; door adds steps.initialize
    # (and the layouts it may write, SERVERS) once steps.py has room, and this entry goes
    "modelhaul.cli.initializer": {"modelhaul.serving.initializer", "modelhaul.serving.materialize"},
}
# ARCHITECTURE.md's floors, lowest first; a module belongs to the longest prefix that names it
FLOORS: tuple[tuple[str, ...], ...] = (
    ("modelhaul", "modelhaul.errors", "modelhaul.paths", "modelhaul.flags", "modelhaul.redact",
     "modelhaul.optional", "modelhaul.interrupt"),  # ground
    ("modelhaul.oci", "modelhaul.reference", "modelhaul.config", "modelhaul.origin", "modelhaul.registry_options",
     "modelhaul.declarations", "modelhaul.useryaml", "modelhaul.fscopy", "modelhaul.gate"),  # vocabulary
    ("modelhaul.registry", "modelhaul.store", "modelhaul.bundle", "modelhaul.auth", "modelhaul.digestcache",
     "modelhaul.packcache", "modelhaul.selection", "modelhaul.formats",
     "modelhaul.tagcheck"),  # bytes: registries, store, bundles, files
    ("modelhaul.artifacts", "modelhaul.transfer", "modelhaul.referrers", "modelhaul.provenance",
     "modelhaul.tracking", "modelhaul.serving", "modelhaul.checks",
     "modelhaul.stagelock"),  # artifacts, MLflow, clusters
    ("modelhaul.promote", "modelhaul.train", "modelhaul.signing", "modelhaul.verbs",
     "modelhaul.run_guards", "modelhaul.serving.deploy",
     "modelhaul.serving.redeploy", "modelhaul.serving.materialize",
     "modelhaul.serving.steady"),  # what the steps do
    ("modelhaul.steps",),  # the door
    ("modelhaul.cli", "modelhaul.operators", "modelhaul.components", "modelhaul.plugins",
     "modelhaul.examples"),  # adapters (and the example training code, which calls steps)
)
MAX_LINES = 400
# modules allowed past MAX_LINES, each with the reason
LONG_MODULES: dict[str, str] = {}


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if name.startswith("modelhaul.operators") and package == "modelhaul" or ".venv" in path.parts:
                continue
            found[name] = path
    found["dags"] = ROOT / "dags"  # handled separately
    return {k: v for k, v in found.items() if v.suffix == ".py"}


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path) -> set[str]:
    """Every ``modelhaul`` module ``path`` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node, path.name == "__init__.py")
            for alias in node.names:  # `from modelhaul import steps` imports the module modelhaul.steps
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in MODULES else target)
    return {name for name in out if name == "modelhaul" or name.startswith("modelhaul.")}


def _graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        deps = set()
        for dep in imports_of(name, path):
            while dep not in MODULES and "." in dep:  # `modelhaul.bundle.pack` names a function
                dep = dep.rsplit(".", 1)[0]
            if dep in MODULES and dep != name:
                deps.add(dep)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _is_adapter(name: str) -> bool:
    return any(name == a or name.startswith(a + ".") for a in ADAPTERS)


def test_adapters_enter_the_core_only_through_steps():
    reached = {}
    for name, path in MODULES.items():
        if not _is_adapter(name):
            continue
        core = {d for d in imports_of(name, path) if not _is_adapter(d) and d not in DOOR}
        core -= PENDING.get(name, set())
        if core:
            reached[name] = sorted(core)
    for dag in (ROOT / "dags").glob("*.py"):
        core = {d for d in imports_of("dags", dag) if not _is_adapter(d) and d not in DOOR}
        if core:
            reached[dag.name] = sorted(core)
    assert reached == {}, f"adapters importing the core past modelhaul.steps: {reached}"


def test_modelhaul_has_no_import_cycle():
    assert _cycles(_graph()) == []


def test_the_checker_sees_a_cycle_and_a_function_level_import(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from modelhaul import steps\n    from .errors import NotFound\n")
    assert imports_of("modelhaul.m", src) == {"modelhaul.steps", "modelhaul.errors"}


def floor_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for floor, names in enumerate(FLOORS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > best[1]):
                best = (floor, len(name))
    return best[0] if best else None


def test_every_module_has_a_floor_and_imports_only_downwards():
    graph = _graph()
    homeless = sorted(m for m in graph if floor_of(m) is None and m != "dags")
    assert homeless == [], f"give these a floor in FLOORS and ARCHITECTURE.md: {homeless}"
    upward = sorted(f"{m} -> {d}" for m, deps in graph.items() if m != "dags"
                    for d in deps if floor_of(d) > floor_of(m))
    assert upward == [], f"imports that climb a floor: {upward}"


def test_no_module_over_a_screenful():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES and name not in LONG_MODULES}
    assert long == {}, f"split these along their concerns: {long}"
