"""The package's shape: one home per contract, read from the package's own import statements.

`capillary.contract` is what every part reads, so it imports nothing else of the package; the
parts (worker, intake, release, controller, local) never form a circle. Checked on the source
text (every `import`, including TYPE_CHECKING and function-level ones), so a lazy import cannot
hide an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "capillary"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The module a dotted import name lands in (`capillary.contract.samples.SampleKey` -> its module)."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for target in targets:
                if not target.startswith("capillary"):
                    continue
                resolved = _resolve(target, modules)
                # `from capillary import __version__` names the package itself, not a module in it.
                if resolved and resolved != name and resolved != "capillary":
                    graph[name].add(resolved)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_circle() -> None:
    # GIVEN every import statement of the package WHEN the graph is searched THEN no module
    # reaches itself again
    assert _cycles(import_graph()) == []


def test_the_contract_package_imports_nothing_else_of_capillary() -> None:
    graph = import_graph()
    outward = {
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name.startswith("capillary.contract")
        for target in targets
        if not target.startswith("capillary.contract")
    }
    assert outward == set()


def test_the_graph_reader_sees_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    # The checks above are only as good as the reader: a module whose sole import of another is
    # inside a function still draws the arrow.
    graph = import_graph()
    assert "capillary.worker.daemon" in graph["capillary.commands.consume"]
    assert "capillary.contract.message" in graph["capillary.worker.daemon"]
