"""The packages' architecture, read from their imports: no circles, no upward imports.

``training``'s subpackages are layers; each imports only the layers below it
(``LAYERS``, lowest first), and ``analysis`` never imports ``training``.
Every import counts, function-local ones included, so a circle cannot hide
inside a function. ``python tests/test_layering.py`` prints the figures:
modules, import arrows, floors (the longest chain of imports), circles and
upward imports.
"""
import ast
import functools
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("analysis", "training")

#: training's layers, lowest first; the package's own modules (its face, __main__) sit on top.
LAYERS = ("training.core", "training.models", "training.datasets", "training.evaluate", "training.trainers",
          "training.experiments")


def module_files(root=ROOT, packages=PACKAGES):
    """{dotted module name: path} of every module of ``packages``."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _absolute(module, node, is_package):
    """The absolute module an ``ImportFrom`` node names (relative imports resolved)."""
    if node.level == 0:
        return node.module
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module, source, is_package, modules):
    """The project modules ``module`` imports (anywhere in its code), as a set of names of ``modules``."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node, is_package)
            # ``from package import submodule`` imports the submodule; a name imports its module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in modules and t != module)
    return out


def import_graph(root=ROOT, packages=PACKAGES):
    """{module: set of the project modules it imports}."""
    files = module_files(root, packages)
    return {m: imports_of(m, p.read_text(), p.name == "__init__.py", files) for m, p in files.items()}


def circles(graph):
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def rank(module):
    """A module's layer: analysis 0, then training's LAYERS in order; training's own modules on top."""
    if module.split(".")[0] == "analysis":
        return 0
    for i, layer in enumerate(LAYERS):
        if module == layer or module.startswith(layer + "."):
            return i + 1
    return len(LAYERS) + 1


def upward_imports(graph):
    """(importer, imported) pairs that import a higher layer, sorted."""
    return sorted((a, b) for a, targets in graph.items() for b in targets if rank(b) > rank(a))


def floors(graph):
    """The number of floors: the longest chain of imports, counted in modules (a graph without circles)."""
    memo = {}

    def height(v):
        if v not in memo:
            memo[v] = 1 + max((height(w) for w in graph[v]), default=0)
        return memo[v]
    return max(height(v) for v in graph)


@functools.lru_cache(maxsize=1)
def _project_graph():
    return import_graph()


def test_no_import_circles():
    assert circles(_project_graph()) == []


def test_no_upward_imports():
    assert upward_imports(_project_graph()) == []


def test_analysis_never_imports_training():
    graph = _project_graph()
    assert not [(a, b) for a, targets in graph.items() for b in targets
                if a.startswith("analysis") and b.startswith("training")]


def test_every_module_of_training_sits_in_a_layer():
    top = [m for m in _project_graph() if m.startswith("training") and rank(m) > len(LAYERS)]
    assert sorted(top) == ["training", "training.__main__"], top


def test_the_rules_catch_what_they_forbid(tmp_path):
    # a small project with one circle and one upward import: both are found
    files = {"training/__init__.py": "", "training/core/__init__.py": "",
             "training/core/a.py": "def f():\n    from ..models import b\n",
             "training/models/__init__.py": "", "training/models/b.py": "from ..core import a\n",
             "training/models/c.py": "from .b import x\n", "analysis/__init__.py": "import training.core.a\n"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)
    assert circles(graph) == [["training.core.a", "training.models.b"]]
    assert upward_imports(graph) == [("analysis", "training.core.a"), ("training.core.a", "training.models.b")]
    assert graph["training.models.c"] == {"training.models.b"}


@pytest.mark.parametrize("module, expected", [("analysis.gaussian", 0), ("training.core.trees", 1),
                                              ("training.experiments.cli", 6), ("training", 7)])
def test_rank(module, expected):
    assert rank(module) == expected


if __name__ == "__main__":
    graph = import_graph()
    found = circles(graph)
    print(f"modules {len(graph)}, import arrows {sum(map(len, graph.values()))}, "
          f"floors {floors(graph) if not found else 'undefined (circles)'}, circles {len(found)}, "
          f"upward imports {len(upward_imports(graph))}")
    for c in found:
        print("circle:", " <-> ".join(c))
    for a, b in upward_imports(graph):
        print(f"upward: {a} -> {b}")
