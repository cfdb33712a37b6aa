"""The project's import structure, read from the source with ``ast`` (nothing is imported):
no import circle among its modules, no private name (``_x``) imported from another package,
and the command line (``*.cli`` modules) at the top: only other CLI modules import it.

Imports inside functions count too: a circle closed by a deferred import is still a circle.
"""
import ast
from pathlib import Path

import networkx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agents", "envs", "memory_cores", "training", "evaluation")


def import_graph(root: Path, packages=PACKAGES) -> tuple[networkx.DiGraph, list[str]]:
    """(module -> imported module graph, private names imported across packages as "a imports b._x")."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    graph, private = networkx.DiGraph(), []
    graph.add_nodes_from(modules)
    for name, (path, is_package) in modules.items():
        own_package = name if is_package else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [(alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = own_package.split(".")[: len(own_package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets = [(f"{base}.{alias.name}", None) if f"{base}.{alias.name}" in modules else (base, alias.name)
                           for alias in node.names]
            else:
                continue
            for target, imported_name in targets:
                if target not in modules:
                    continue  # outside the project
                if target != name:
                    graph.add_edge(name, target)
                target_package = target if modules[target][1] else target.rpartition(".")[0]
                if imported_name and imported_name.startswith("_") and target_package != own_package:
                    private.append(f"{name} imports {target}.{imported_name}")
    return graph, private


def test_no_import_circle_among_the_project_modules():
    graph, _ = import_graph(ROOT)
    assert graph.number_of_edges() > 50  # the walk found the project's imports
    circles = [sorted(c) for c in networkx.strongly_connected_components(graph) if len(c) > 1]
    assert not circles, f"import circles: {circles}"


def test_no_private_name_is_imported_from_another_package():
    _, private = import_graph(ROOT)
    assert not private, f"make these public or move them: {private}"


def test_only_the_command_line_imports_the_command_line():
    graph, _ = import_graph(ROOT)
    cli = [m for m in graph if m.endswith(".cli")]
    assert "training.cli" in cli
    below = [f"{m} imports {c}" for c in cli for m in graph.predecessors(c) if not m.endswith(".cli")]
    assert not below, f"the CLI is the top of the house; move what these need out of it: {below}"


@pytest.mark.parametrize("source, finds", [
    ({"a.py": "from training import b", "b.py": "def f():\n    from training.a import x"}, "circle"),
    ({"a.py": "from evaluation.c import _helper", "b.py": ""}, "private"),
    ({"a.py": "from . import b", "b.py": "from .a import _same_package_is_fine"}, "circle"),
])
def test_the_checks_find_what_they_look_for(tmp_path, source, finds):
    for package in ("training", "evaluation"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "evaluation" / "c.py").write_text("_helper = 1")
    for file, text in source.items():
        (tmp_path / "training" / file).write_text(text)
    graph, private = import_graph(tmp_path, ("training", "evaluation"))
    circles = [c for c in networkx.strongly_connected_components(graph) if len(c) > 1]
    assert (circles == [{"training.a", "training.b"}]) == (finds == "circle")
    assert (private == ["training.a imports evaluation.c._helper"]) == (finds == "private")
