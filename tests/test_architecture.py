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
import re
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
PENDING: dict[str, set[str]] = {}
# ARCHITECTURE.md's floors, lowest first; a module belongs to the longest prefix that names it
FLOORS: tuple[tuple[str, ...], ...] = (
    ("modelhaul", "modelhaul.errors", "modelhaul.paths", "modelhaul.flags", "modelhaul.redact",
     "modelhaul.optional", "modelhaul.interrupt"),  # ground
    ("modelhaul.oci", "modelhaul.reference", "modelhaul.config", "modelhaul.origin", "modelhaul.registry_options",
     "modelhaul.declarations", "modelhaul.useryaml", "modelhaul.fscopy", "modelhaul.promotion_gate",
     "modelhaul.format_table", "modelhaul.model_files"),  # vocabulary
    ("modelhaul.registry", "modelhaul.store", "modelhaul.bundle", "modelhaul.auth", "modelhaul.digestcache",
     "modelhaul.packcache", "modelhaul.selection", "modelhaul.formats",
     "modelhaul.tagcheck"),  # bytes: registries, store, bundles, files
    ("modelhaul.artifacts", "modelhaul.transfer", "modelhaul.referrers", "modelhaul.provenance",
     "modelhaul.tracking", "modelhaul.serving", "modelhaul.reachability",
     "modelhaul.stagelock"),  # artifacts, MLflow, clusters
    ("modelhaul.promote", "modelhaul.train", "modelhaul.signing", "modelhaul.verbs",
     "modelhaul.pipeline_run", "modelhaul.packaging", "modelhaul.lookups", "modelhaul.serving.deploy",
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


def _bound_at_module_level(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def test_every_step_is_written_in_steps_py():
    """``steps.push`` is a name steps.py defines or imports, never one a module ``__getattr__`` makes up:
    a reader (and a tool) follows each step from the adapter to its code."""
    tree = ast.parse((ROOT / "modelhaul" / "steps.py").read_text())
    bound = _bound_at_module_level(tree)
    assert "__getattr__" not in bound, "steps.py: no lazy module __getattr__; import or define each step"
    exported = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets))
    assert sorted(set(exported) - bound) == [], "steps.__all__ names what steps.py does not define or import"
    used: dict[str, set[str]] = {}
    for name, path in [*MODULES.items(), *(("dags", p) for p in (ROOT / "dags").glob("*.py"))]:
        if _is_adapter(name) or name == "dags":
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.value.id == "steps"):
                    used.setdefault(node.attr, set()).add(path.name)
    missing = {step: sorted(files) for step, files in used.items() if step not in exported}
    assert missing == {}, f"adapters call steps.X that steps.py does not write out (and list in __all__): {missing}"


def test_scripts_and_benchmarks_stand_apart_from_the_tests():
    """Nothing outside ``tests/`` imports the test package (the registry the benchmarks start lives in
    ``devtools/``), and the scripts enter the core through the door like any adapter; the benchmarks
    time the core's own functions, so they may import them."""
    wrong = {}
    for folder in ("scripts", "benchmarks", "devtools"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            named = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    named.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    named.update(f"{node.module}.{a.name}" for a in node.names)
            bad = {n for n in named if n == "tests" or n.startswith("tests.")}
            if folder == "scripts":
                bad |= {d for d in imports_of(f"scripts.{path.stem}", path) if d not in DOOR}
            if bad:
                wrong[str(path.relative_to(ROOT))] = sorted(bad)
    assert wrong == {}, f"entry points past the door, or into the test package: {wrong}"


# -- ARCHITECTURE.md and README's layout picture, held to the tree ---------------------------------

ARCHITECTURE = ROOT / "ARCHITECTURE.md"
_FLOOR_LINE = re.compile(r"^\s*(\d)\s+[a-z]+\s")
_PICTURE_NAME = re.compile(r"(?<![\w./-])((?:[\w-]+/)*[\w-]+(?:\.py\b|/:))")


def _without_notes(line: str) -> str:
    """``line`` without its parenthesised notes (one level of nesting is enough)."""
    return re.sub(r"\([^()]*(?:\([^()]*\)[^()]*)*\)", " ", line)


def _module_of(path: str) -> str:
    """``serving/deploy.py`` -> ``modelhaul.serving.deploy``, ``operators/:`` -> ``modelhaul.operators``."""
    path = path.removeprefix("modelhaul/").removesuffix(":").removesuffix("/").removesuffix(".py")
    return ".".join(["modelhaul", *path.split("/")])


def floors_picture(text: str) -> dict[str, set[int]]:
    """The modules ARCHITECTURE.md's Floors picture names, each with the floor(s) it is drawn on.

    Named means: ``name.py`` on a floor's lines is the module ``name`` of the current folder; a
    ``folder/:`` names that package and is the folder of the names after it, until the next
    ``folder/:`` or floor; folders are the Python package's (``cli/`` is ``modelhaul/cli/``,
    ``operators/`` is ``modelhaul.operators``); words in parentheses are notes.
    """
    section = text.split("\n## Floors", 1)[1]
    block = section.split("```", 2)[1]
    named: dict[str, set[int]] = {}
    floor, folder = None, ""
    for line in block.splitlines():
        if m := _FLOOR_LINE.match(line):
            floor, folder = int(m[1]), ""
        if floor is None:
            continue
        for word in _PICTURE_NAME.findall(_without_notes(line)):
            if word.endswith("/:"):
                folder = word.removeprefix("modelhaul/")[:-2]
                named.setdefault(_module_of(folder), set()).add(floor)
            else:
                named.setdefault(_module_of(f"{folder}/{word}" if folder else word), set()).add(floor)
    return named


def test_architecture_md_names_every_module_on_its_floor():
    named = floors_picture(ARCHITECTURE.read_text())
    modules = {m for m in MODULES if m not in ("modelhaul", "dags")}

    def where(module: str) -> str:
        return f"{MODULES[module].relative_to(ROOT)} (floor {floor_of(module)})"

    missing = sorted(where(m) for m in modules - set(named))
    assert missing == [], f"ARCHITECTURE.md's Floors picture does not name: {', '.join(missing)}"
    gone = sorted(set(named) - modules)
    assert gone == [], f"ARCHITECTURE.md's Floors picture names modules that do not exist: {', '.join(gone)}"
    misplaced = sorted(f"{m} drawn on floor {'/'.join(map(str, sorted(fs)))}, FLOORS says {floor_of(m)}"
                       for m, fs in named.items() if floor_of(m) not in fs
                       or (MODULES[m].name != "__init__.py" and len(fs) > 1))
    assert misplaced == [], f"ARCHITECTURE.md's Floors picture and FLOORS disagree: {misplaced}"


def _files_named(text: str) -> list[str]:
    """The files and folders a Markdown text names between backticks (``x.py``, ``a/b/``, ``a/b.py``)."""
    return re.findall(r"`((?:[\w.-]+/)*[\w-]+(?:\.py|/))`", text)


def test_architecture_md_names_only_what_exists():
    """A path is looked for from the repository and from ``modelhaul/``; a bare file name anywhere in it."""
    every = {p.name for p in ROOT.rglob("*.py") if ".venv" not in p.parts}
    absent = sorted({f for f in _files_named(ARCHITECTURE.read_text())
                     if not ((ROOT / f).exists() or (ROOT / "modelhaul" / f).exists()
                             or ("/" not in f and f in every))})
    assert absent == [], f"ARCHITECTURE.md names what is not in the tree: {absent}"


def test_the_architecture_checks_see_a_wrong_picture():
    text = ("\n## Floors\n```\n 3 artifacts    artifacts.py  cli.py (a note: ghost.py)\n"
            "                serving/: kube.py\n 2 bytes        store.py  bundle/: layers.py\n```\n")
    assert floors_picture(text) == {"modelhaul.artifacts": {3}, "modelhaul.cli": {3}, "modelhaul.serving": {3},
                                    "modelhaul.serving.kube": {3}, "modelhaul.store": {2},
                                    "modelhaul.bundle": {2}, "modelhaul.bundle.layers": {2}}
    assert _files_named("the command (`modelhaul/cli.py`), `serving/`, `x` `a.sh`") == ["modelhaul/cli.py", "serving/"]


def test_readme_layout_picture_is_the_tree():
    """README's Layout picture: one row per floor of the core, 4 down to 0, each starting with its
    number; every top-level module of ``modelhaul/`` on its floor's row, every package of it named."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("\n## Layout", 1)[1].split("```", 2)[1]
    rows = {int(m[1]): m[2] for m in re.finditer(r"^\s*(\d) (.+)$", block, flags=re.M)}
    assert sorted(rows) == [0, 1, 2, 3, 4], "README's Layout picture: one row per floor, 4 down to 0, numbered"
    shown: dict[str, int] = {}
    for floor, row in rows.items():
        for word in _without_notes(row).split("·"):
            if word.strip():
                shown[_module_of(word.strip())] = floor
    folders = {_module_of(w) for w in re.findall(r"(?<![\w/])(?:modelhaul/)?[\w-]+/(?!\w)", block)
               if w != "dags/"}  # the example DAGs: a folder of files, not a package
    top = {m for m in MODULES if m.count(".") == 1 and MODULES[m].name != "__init__.py"}
    packages = {m for m in MODULES if m.count(".") == 1 and MODULES[m].name == "__init__.py"}
    wrong = sorted(f"{m}: row {shown[m]}, floor {floor_of(m)}" for m in shown
                   if m in top and floor_of(m) != shown[m])
    unknown = sorted(m for m in set(shown) | folders if m not in MODULES)
    missing = sorted((top - set(shown) - {"modelhaul.steps"}) | (packages - folders - set(shown)))
    assert (wrong, unknown, missing) == ([], [], []), (
        f"README's Layout picture: on the wrong row {wrong}; not in the tree {unknown}; not shown {missing}")
    assert "modelhaul/steps.py" in block
