"""Reads which project modules import which, from the source with `ast` (nothing is imported).

Shared by tests/test_layering.py (which layer may import which) and tests/test_import_cycles.py (no
cycles). Every import statement counts: absolute and relative, at the top of a module and inside
functions (a lazy import still runs, only later), and `if TYPE_CHECKING:` blocks alike.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "models", "recorders", "widgets")


def module_name(path: Path, root: Path = ROOT) -> str:
    """recorders/cell/registry.py -> "recorders.cell.registry"; a package's __init__.py -> the package."""
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def _package_of(path: Path, root: Path) -> str:
    name = module_name(path, root)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every module `path` (a file under `root`) imports, as absolute dotted names. `from X import Y`
    names X.Y as well, since Y may be a submodule; callers keep the names they know."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(path, root).split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names if alias.name != "*"}
    return names


def project_modules(packages=PACKAGES) -> dict[str, Path]:
    return {module_name(p): p for package in packages for p in sorted((ROOT / package).rglob("*.py"))}


def import_graph(packages=PACKAGES) -> dict[str, set[str]]:
    """module -> the project modules it imports (edges inside `packages` only)."""
    modules = project_modules(packages)
    return {name: {m for m in imported_modules(path) if m in modules and m != name}
            for name, path in modules.items()}
