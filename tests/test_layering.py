"""DESIGN.md section 1: dependencies point one way (widgets -> app -> models, recorders)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QT = {"PySide6", "pyqtgraph", "shiboken6", "PyQt5", "PyQt6"}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module)
    return roots


def offenders(package: str, banned) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in imported_roots(path):
            if banned(name):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    return bad


def test_models_and_recorders_import_no_qt():
    banned = lambda name: name.split(".")[0] in QT  # noqa: E731
    assert offenders("models", banned) == []
    assert offenders("recorders", banned) == []


def test_app_imports_no_widgets():
    banned = lambda n: n.split(".")[0] in {"pyqtgraph", "widgets"} or "QtWidgets" in n  # noqa: E731
    assert offenders("app", banned) == []


def test_lower_layers_import_no_upper_layers():
    for package in ("models", "recorders"):
        banned = lambda n: n.split(".")[0] in {"app", "widgets"}  # noqa: E731
        assert offenders(package, banned) == []
    assert offenders("recorders", lambda n: n.split(".")[0] == "models") == []


def test_importing_the_domain_loads_no_qt_at_run_time():
    modules = [p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
               for pkg in ("models", "recorders") for p in (ROOT / pkg).rglob("*.py")]
    modules = [m.removesuffix(".__init__") for m in modules]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}:\n    importlib.import_module(m)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(QT)!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
