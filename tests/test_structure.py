"""The project's structure, checked from its source (issue 20): no import cycle between modules,
the suite and the reports meet only through ``estibench.schema`` (and the CLI and the report
benchmark, which compose them), the environment is read in one module, and ``reports/`` stays in
proportion.

The import graph is built from the AST: every ``import`` statement, at module level or inside a
function, is an edge from the importing module to the module it names (``from .x import y``: to
``pkg.x``, or to ``pkg.x.y`` when that is a module). The parent package a submodule import loads
implicitly is not an edge (``import a.b`` runs ``a/__init__`` first whatever ``a`` imports).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("estimators", "suite", "reports", "estibench")
#: modules allowed to import both the suite and the reports
COMPOSERS = {"estibench.cli", "suite.benchmarks.bench_reports"}
#: what each side may import from the shared package
SHARED = {"estibench.schema", "estibench.settings", "estibench"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            out[_module_name(path)] = path
    return out


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def import_graph(modules: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """module -> the project modules it imports (see the module's notes)."""
    modules = _modules() if modules is None else modules
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # `import a.b.c` of a name in a.b
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (its modules in order, the first repeated), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_import_graph_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n")
    (pkg / "b.py").write_text("from pkg.a import f\n")
    modules = {"pkg": pkg / "__init__.py", "pkg.a": pkg / "a.py", "pkg.b": pkg / "b.py"}
    graph = import_graph(modules)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("side, other", [("suite", "reports"), ("reports", "suite"),
                                         ("reports", "estimators")])
def test_suite_and_reports_meet_only_through_the_schema(side, other):
    graph = import_graph()
    bad = sorted(f"{m} imports {t}" for m, targets in graph.items()
                 if (m == side or m.startswith(side + ".")) and m not in COMPOSERS
                 for t in targets if t == other or t.startswith(other + "."))
    assert not bad, "\n".join(bad)


def test_reports_import_only_the_schema_and_settings_from_estibench():
    graph = import_graph()
    bad = sorted(f"{m} imports {t}" for m, targets in graph.items()
                 if m.startswith("reports") for t in targets
                 if t.startswith("estibench") and t not in SHARED)
    assert not bad, "\n".join(bad)


def test_the_environment_is_read_in_one_module():
    readers = []
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        if any(s in text for s in ("os.environ", "os.getenv", "from os import environ")):
            readers.append(name)
    assert readers == ["estibench.settings"], readers


def test_schema_imports_no_heavy_library():
    import subprocess
    import sys

    code = ("import sys, estibench.schema; "
            "print(sorted(m for m in ('torch', 'numpy', 'pandas', 'pyarrow', 'suite', 'reports',"
            " 'estimators') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.strip()
    assert out == "[]"


def _function_lengths(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


#: issue 20: at most 3,000 lines for reports/ (5,248 before it; 3,340 at the start of its last session, which
#: folded single-use modules and helpers into their users, drew every figure through layout.draw, wrote Markdown
#: and HTML through one table of spellings and gave compare one interval -> verdict path)
REPORTS_LINE_CEILING = 3000


def test_reports_in_proportion():
    files = sorted((ROOT / "reports").rglob("*.py"))
    lengths = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in files}
    total = sum(lengths.values())
    assert total <= REPORTS_LINE_CEILING, f"reports/ has {total} lines"
    assert max(lengths.values()) <= 450, {k: v for k, v in lengths.items() if v > 450}
    long = [f"{p.name}:{line} {name} ({n} lines)" for p in files
            for name, line, n in _function_lengths(p) if n > 80]
    assert not long, long
