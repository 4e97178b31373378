"""The package map of docs/architecture.md holds: every import, at the top of a module or inside a
function, goes to the same layer or one below it in the data flow."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "slopeft"

#: Bottom to top. A module imports only modules of its own layer or of the layers below.
LAYERS = [
    ("slopeft", "slopeft.errors", "slopeft.paths", "slopeft.registry"),
    ("slopeft.config",),
    ("slopeft.data", "slopeft.metrics"),
    ("slopeft.tasks", "slopeft.records"),
    ("slopeft.methods",),
    ("slopeft.models",),
    ("slopeft.training",),
    ("slopeft.evaluation",),
    ("slopeft.experiments",),
    ("slopeft.reporting",),
    ("slopeft.quickstart", "slopeft.cli", "slopeft.__main__", "slopeft.serving"),
]


def _layer(module: str) -> int:
    best = None
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (level, len(prefix))
    assert best is not None, f"{module} is on no layer of the map"
    return best[0]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name == "slopeft" or name.startswith("slopeft.")}


def _known(name: str) -> bool:
    """Whether ``name`` is a module or package of slopeft (not a name imported from one)."""
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def test_no_import_runs_back_up_the_data_flow():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        for name in sorted(n for n in _imports(path) if _known(n)):
            if _layer(name) > _layer(module):
                upward.append(f"{module} imports {name}")
    assert not upward, "imports that run back up:\n" + "\n".join(upward)
