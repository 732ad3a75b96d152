"""The structure stays as designed: layer contract, no import cycles, modules of one concept, lint clean.

The layer contract itself lives in pyproject.toml (``[tool.importlinter]``); these tests run the same
checkers CI would, so the README's one test command keeps them true.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "m2ae"
MAX_MODULE_LINES = 400
ONE_CONCEPT_MARK = "one concept"  # a longer module says which concept it holds, in its docstring


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    if not exe.exists():
        pytest.skip(f"{name} is not installed beside {sys.executable} (pip install -e '.[test]')")
    return str(exe)


def _run(args: list[str], timeout_s: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)


def test_layer_contract_holds():
    res = _run([_tool("lint-imports")])
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "BROKEN" not in res.stdout


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the groups of modules that import each other in a loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def test_strongly_connected_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _strongly_connected(graph) == [["a", "b", "c"]]


def test_no_import_cycle_inside_the_package():
    grimp = pytest.importorskip("grimp")
    imports = grimp.build_graph("m2ae")
    # a package's __init__ re-exporting its submodules is not a dependency of those submodules on it
    graph = {m: {d for d in imports.find_modules_directly_imported_by(m) if not m.startswith(d + ".")}
             for m in imports.modules}
    cycles = _strongly_connected(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def _module_docstring(path: Path) -> str:
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""


def test_every_module_has_a_docstring_and_long_ones_name_their_concept():
    missing, too_long = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT)
        text = path.read_text(encoding="utf-8")
        doc = _module_docstring(path)
        if not doc and text.strip():
            missing.append(str(rel))
        n_lines = text.count("\n")
        if n_lines > MAX_MODULE_LINES and ONE_CONCEPT_MARK not in doc.lower():
            too_long.append(f"{rel} ({n_lines} lines)")
    assert not missing, f"modules without a docstring: {missing}"
    assert not too_long, (f"modules above {MAX_MODULE_LINES} lines whose docstring does not say "
                          f"'{ONE_CONCEPT_MARK} (…)': {too_long}")


def test_no_argparse_outside_the_cli():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "cli" in path.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "argparse" or n.startswith("argparse.") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
            if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                    and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"):
                offenders.append(f"{path.relative_to(ROOT)} (__main__ block)")
    assert not offenders, f"argparse / __main__ outside m2ae/cli: {sorted(set(offenders))}"


def test_ruff_is_clean():
    res = _run([_tool("ruff"), "check", "m2ae", "app", "tests", "bench", "sample_data"])
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]


@pytest.mark.slow
def test_mypy_is_clean_on_the_package():
    res = _run([sys.executable, "-m", "mypy", "m2ae"], timeout_s=900)
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
