"""The package's shape, as ``docs/architecture.md`` states it.

Read from the source (nothing is imported): the import graph has no cycle,
no module imports another of ours inside a function, every import points
down the layers, no module outgrows 450 lines, and outside its algorithm
module, the registry and the stubs no code names a specific optimizer.
"""

from __future__ import annotations

import ast
import os
import re

import pytest

from jaxopt_keras import registry

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "jaxopt_keras")

# The layers, lowest first: a module may import its own layer or any below.
LAYERS = [
    ("core", ["core"]),
    ("schedules", ["schedules"]),
    ("algorithms", ["algorithms"]),
    ("transforms", ["transforms"]),
    ("registry", ["registry"]),
    ("keras", ["keras"]),
    ("optimizers", ["optimizers"]),
    ("io", ["io"]),
    # The public facades at the top: the package, its namespaces, the stub writer.
    ("public", ["__init__", "legacy", "keras3", "flat", "sparse", "mixed_precision", "_stubs"]),
]


def _modules() -> dict[str, str]:
    """Dotted module name -> path, for every module of the package."""
    out = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                out[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(dirpath, f)
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    parts = module.split(".")
    first = parts[1] if len(parts) > 1 else "__init__"
    for i, (_, tops) in enumerate(LAYERS):
        if first in tops:
            return i
    raise AssertionError(f"{module} is in no layer of test_layout.LAYERS (and of docs/architecture.md)")


def _imports(path: str) -> list[tuple[str, bool]]:
    """(imported jaxopt_keras module, inside a function?) for each import in ``path``."""
    tree = ast.parse(open(path).read())
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            names = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                names = [child.module] + [f"{child.module}.{a.name}" for a in child.names]
            for n in names:
                while n and n not in MODULES:
                    n = n.rpartition(".")[0]
                if n.startswith("jaxopt_keras"):
                    found.append((n, in_function))
            visit(child, nested)

    visit(tree, False)
    return found


GRAPH = {m: sorted({n for n, _ in _imports(p)} - {m}) for m, p in MODULES.items()}


def test_the_import_graph_has_no_cycle():
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(m):
        state[m] = 1
        stack.append(m)
        for n in GRAPH[m]:
            if n == "jaxopt_keras" or m.startswith(n + "."):
                continue  # a package's __init__ runs before its modules: not an edge of the graph
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n) :] + [n]))
            if n not in state:
                walk(n)
        stack.pop()
        state[m] = 2

    for m in GRAPH:
        if m not in state:
            walk(m)


def test_the_cycle_check_finds_a_cycle():
    global GRAPH
    saved = GRAPH
    GRAPH = dict(saved, **{"jaxopt_keras.core.state": ["jaxopt_keras.optimizers.optimizer"]})
    try:
        with pytest.raises(AssertionError, match="import cycle"):
            test_the_import_graph_has_no_cycle()
    finally:
        GRAPH = saved


def test_no_import_inside_a_function():
    inside = [(m, n) for m, p in MODULES.items() for n, f in _imports(p) if f]
    assert not inside, f"imports inside functions (dodging a cycle?): {inside}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module):
    up = [n for n in GRAPH[module] if n != "jaxopt_keras" and _layer(n) > _layer(module)]
    assert not up, f"{module} (layer {LAYERS[_layer(module)][0]}) imports from a higher layer: {up}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_longer_than_450_lines(module):
    n = sum(1 for _ in open(MODULES[module]))
    assert n <= 450, f"{module}: {n} lines"


def _code_names(path: str) -> set[str]:
    """Identifiers and string constants of a module, docstrings excluded."""
    tree = ast.parse(open(path).read())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                docstrings.add(id(body[0].value))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id.lower())
        elif isinstance(node, ast.Attribute):
            names.add(node.attr.lower())
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            names.update(w.lower() for w in re.findall(r"[A-Za-z_]+", node.value))
    return names


def test_only_the_registry_and_algorithm_modules_name_an_optimizer():
    """Adding an optimizer touches its algorithm module and the registry (plus tests and docs)."""
    names = {n.lower() for e in registry.entries() for n in (e.class_name, e.function, *e.aliases)}
    allowed = {"jaxopt_keras.registry"}
    offenders = {}
    for module, path in MODULES.items():
        if module in allowed or module.startswith("jaxopt_keras.algorithms."):
            continue
        found = _code_names(path) & names
        if found:
            offenders[module] = sorted(found)
    assert not offenders, offenders


def test_at_most_four_files_mention_adamax():
    files = []
    for dirpath, _, fs in os.walk(ROOT):
        for f in fs:
            if f.endswith((".py", ".pyi")) and "adamax" in open(os.path.join(dirpath, f)).read().lower():
                files.append(os.path.relpath(os.path.join(dirpath, f), ROOT))
    assert len(files) <= 4, files


def test_every_property_test_is_derandomised_by_the_shared_settings():
    """A hypothesis test that draws fresh examples at each run fails CI now and
    then, on an example nobody can replay: every ``@given`` in the suite takes
    ``tests/fuzz_settings.fuzz_settings``, derandomised unless asked otherwise."""
    tests = os.path.dirname(os.path.abspath(__file__))
    offenders = []
    for folder, _, files in os.walk(tests):
        for name in files:
            if not name.endswith(".py") or name == "fuzz_settings.py":
                continue
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                source = f.read()
            givens = len(re.findall(r"^\s*@given\(", source, re.M))
            shared = len(re.findall(r"^\s*@fuzz_settings\(", source, re.M))
            if givens != shared or re.search(r"^\s*@settings\(", source, re.M):
                offenders.append(f"{name}: {givens} @given, {shared} @fuzz_settings")
    assert not offenders, offenders
