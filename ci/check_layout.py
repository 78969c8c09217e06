"""Check the shape of the code: ``python ci/check_layout.py``.

* The core crate's modules import each other without circles: neither its
  stage folders (``store``, ``metadata``, ``decode``, ``scan``, ``sql``, …)
  nor the files inside one folder may depend on each other in a loop, and
  the stages keep their order (a stage uses only the stages before it).
* No source file has more than ``MAX_FILE_LINES`` lines, and no function more
  than ``MAX_FUNCTION_LINES`` (tests, benchmarks' tables and generated stubs
  aside).

Prints every violation and exits non-zero if there is one.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "rust" / "sedonadb-zarr-meta-core" / "src"
#: The stages of the core crate, in order: each may use only those before it.
STAGES = ["error", "limits", "runtime", "options", "geometry", "store", "metadata", "decode", "scan", "sql"]
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80
RUST_DIRS = [
    CORE,
    ROOT / "rust" / "sedonadb-zarr-meta-cluster" / "src",
    ROOT / "python" / "sedonadb-zarr-meta-py" / "src",
]
PYTHON_DIRS = [ROOT / "python" / "sedonadb_zarr_meta", ROOT / "bench", ROOT / "ci", ROOT / "examples"]


def _module_of(path: Path) -> str:
    """``scan/reader.rs`` -> ``scan::reader``; ``scan/mod.rs`` -> ``scan``."""
    parts = list(path.relative_to(CORE).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return "::".join(parts)


def _strip_tests(text: str) -> str:
    """The text before a file's ``#[cfg(test)]`` module."""
    at = text.find("#[cfg(test)]")
    return text if at < 0 else text[:at]


def _code(text: str) -> str:
    """Rust text without its tests and comments."""
    return "\n".join(re.sub(r"//.*$", "", line) for line in _strip_tests(text).splitlines())


def core_graph() -> dict[str, set[str]]:
    """Module -> the modules of this crate it refers to (``crate::a::b`` resolved to a file)."""
    files = {_module_of(p): p for p in CORE.rglob("*.rs")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        text = _code(path.read_text())
        refs = set(re.findall(r"crate::((?:[a-z_0-9]+::)*[a-z_0-9]+)", text))
        for group in re.findall(r"use crate::(?:([a-z_0-9:]+)::)?\{([^}]*)\}", text):
            prefix, names = group
            refs.update(f"{prefix}::{n.strip()}" if prefix else n.strip() for n in names.split(","))
        for ref in refs:
            parts = ref.split("::")
            while parts and "::".join(parts) not in files:
                parts.pop()
            target = "::".join(parts)
            if target and target != module and not module.startswith(target + "::"):
                graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check_imports() -> list[str]:
    graph = core_graph()
    problems = []
    stage_of = {m: m.split("::")[0] for m in graph}
    stages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        for t in targets:
            if stage_of[t] != stage_of[module]:
                stages.setdefault(stage_of[module], set()).add(stage_of[t])
    for cycle in _cycles(stages):
        problems.append(f"core crate: the stages {' <-> '.join(cycle)} import each other")
    for stage, used in sorted(stages.items()):
        for u in sorted(used):
            if stage in STAGES and u in STAGES and STAGES.index(u) > STAGES.index(stage):
                problems.append(f"core crate: stage '{stage}' uses the later stage '{u}'")
    within = {
        m: {t for t in ts if stage_of[t] == stage_of[m] and t != stage_of[m]} for m, ts in graph.items()
    }
    for cycle in _cycles(within):
        problems.append(f"core crate: the modules {' <-> '.join(cycle)} import each other")
    return problems


FN = re.compile(r"\s*(?:pub(?:\([a-z]+\))? )?(?:async )?(?:unsafe )?(?:extern \"C\" )?fn ([a-z_0-9]+)")


def _rust_functions(text: str) -> list[tuple[str, int, int]]:
    """(name, first line, lines) of every function with a body, tests excluded."""
    lines = _strip_tests(text).splitlines()
    out = []
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth, started = 0, False
        for j in range(i, len(lines)):
            code = re.sub(r'"(?:\\.|[^"\\])*"|//.*$|\'.\'', "", lines[j])
            if not started and ";" in code and "{" not in code:
                break  # a declaration without a body
            depth += code.count("{") - code.count("}")
            started = started or "{" in code
            if started and depth <= 0:
                out.append((m.group(1), i + 1, j - i + 1))
                break
    return out


def check_sizes() -> list[str]:
    problems = []
    for directory in RUST_DIRS:
        for path in sorted(directory.rglob("*.rs")):
            text = path.read_text()
            rel = path.relative_to(ROOT)
            code_lines = len(_strip_tests(text).splitlines())
            if code_lines > MAX_FILE_LINES:
                problems.append(f"{rel}: {code_lines} lines before its tests (at most {MAX_FILE_LINES})")
            for name, line, n in _rust_functions(text):
                if n > MAX_FUNCTION_LINES:
                    problems.append(f"{rel}:{line}: fn {name} has {n} lines (at most {MAX_FUNCTION_LINES})")
    for directory in PYTHON_DIRS:
        for path in sorted(directory.rglob("*.py")):
            if "data" not in path.relative_to(ROOT).parts:
                problems.extend(_python_problems(path))
    return problems


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function after its docstring (a docstring documents; the code follows it)."""
    body = node.body
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and len(body) > 1:
        body = body[1:]
    return (node.end_lineno or node.lineno) - body[0].lineno + 1


def _python_problems(path: Path) -> list[str]:
    text = path.read_text()
    rel = path.relative_to(ROOT)
    problems = []
    if len(text.splitlines()) > MAX_FILE_LINES:
        problems.append(f"{rel}: {len(text.splitlines())} lines (at most {MAX_FILE_LINES})")
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in [n for n in ast.walk(ast.parse(text)) if isinstance(n, kinds)]:
        n, limit = _code_lines(node), MAX_FUNCTION_LINES
        if n > limit:
            problems.append(f"{rel}:{node.lineno}: def {node.name} has {n} lines (at most {limit})")
    return problems


def main() -> int:
    problems = check_imports() + check_sizes()
    for p in problems:
        print(p)
    graph = core_graph()
    print(f"layout: {len(graph)} core modules checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
