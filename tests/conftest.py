"""Shared test set-up: offscreen Qt and EGL MuJoCo, and small scenes/instances."""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def recorded(tmp_path_factory) -> list[Path]:
    """Two scripted `stack` demonstrations (with cameras), recorded once per test session."""
    from recorders.demo_recorder import record_demo
    from recorders.task_suite import make_instance

    folder = tmp_path_factory.mktemp("recorded")
    paths = []
    for seed in (0, 1):
        path = folder / f"stack_{seed:04d}.h5"
        record_demo(make_instance("stack", seed), path)
        paths.append(path)
    return paths


@pytest.fixture(autouse=True)
def normal_scheduling():
    """After each test, put the test thread back on the normal scheduler. libfranka raises the thread
    that drives the arm to SCHED_FIFO 99 (as root it may, even with RealtimeConfig.Ignore); threads
    started from it later inherit that, and torch's spinning workers at real-time priority starve each
    other on 2 cores: a later test module hung at 100% system time."""
    yield
    if hasattr(os, "sched_setscheduler") and os.sched_getscheduler(0) != os.SCHED_OTHER:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
