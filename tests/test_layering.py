"""DESIGN.md section 1: dependencies point one way (widgets -> app -> models, recorders), and models
import no device SDK.

Imports are read from the source (tests/import_graph.py): absolute and relative ones, at the top
of a module and inside functions.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from import_graph import ROOT, imported_modules

QT = {"PySide6", "pyqtgraph", "shiboken6", "PyQt5", "PyQt6"}
DEVICE_SDKS = {"franky", "franky_sim", "pyrealsense2", "sounddevice", "mujoco", "pygame"}


def offenders_in(path: Path, root: Path, banned) -> list[str]:
    return [f"{path.relative_to(root)} imports {name}" for name in sorted(imported_modules(path, root)) if banned(name)]


def offenders(package: str, banned) -> list[str]:
    return [line for path in sorted((ROOT / package).rglob("*.py")) for line in offenders_in(path, ROOT, banned)]


def root_in(roots: set[str]):
    return lambda name: name.split(".")[0] in roots


def test_relative_imports_and_imports_inside_functions_are_read(tmp_path):
    probe = tmp_path / "widgets" / "probe.py"
    probe.parent.mkdir()
    probe.write_text("from . import launcher\n\ndef later():\n    from ..recorders.teleop import SPEED_KEYS\n",
                     encoding="utf-8")
    assert {"widgets.launcher", "recorders.teleop"} <= imported_modules(probe, root=tmp_path)
    assert offenders_in(probe, tmp_path, root_in({"recorders"}))


def test_models_and_recorders_import_no_qt():
    assert offenders("models", root_in(QT)) == []
    assert offenders("recorders", root_in(QT)) == []


def test_app_imports_no_widgets():
    banned = lambda n: n.split(".")[0] in {"pyqtgraph", "widgets"} or "QtWidgets" in n  # noqa: E731
    assert offenders("app", banned) == []


def test_lower_layers_import_no_upper_layers():
    for package in ("models", "recorders"):
        assert offenders(package, root_in({"app", "widgets"})) == []
    assert offenders("recorders", root_in({"models"})) == []


def test_widgets_reach_recorders_only_through_app():
    assert offenders("widgets", root_in({"recorders"})) == []


def test_models_import_no_device_sdk():
    assert offenders("models", root_in(DEVICE_SDKS)) == []


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
