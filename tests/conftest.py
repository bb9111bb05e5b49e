"""Shared test set-up: offscreen Qt and EGL MuJoCo, small scenes/instances, and the rule that a test
leaves no thread or child process of its own running (STYLE.md rule 15)."""
from __future__ import annotations

import os
import sys
import threading
import time
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


@pytest.fixture(autouse=True)
def qt_garbage_on_the_gui_thread(request):
    """Tests with Qt widgets collect cyclic garbage on the test (GUI) thread only, as the app does
    (widgets/gui_thread_gc.py): a widget collected on a session's worker thread deadlocks Qt."""
    if not {"qtbot", "qapp"} & set(request.fixturenames):
        yield
        return
    import gc

    from PySide6.QtWidgets import QApplication

    from widgets.gui_thread_gc import collect_on_gui_thread

    collector = collect_on_gui_thread(QApplication.instance() or request.getfixturevalue("qapp"))
    yield
    gc.collect()  # this test's widgets, here, before any worker of a later test can collect them
    collector.stop()


# How long a thread or process a test has told to stop may take to end: generous, as on a loaded machine
# the wait only ends early when everything has ended.
LEAK_GRACE_S = 10.0


def _python_threads() -> set[threading.Thread]:
    """Running threads this process started through `threading`. Threads started by native code (Qt's,
    libfranka's) only show up as `_DummyThread` once they call into Python, and no test can join them."""
    return {t for t in threading.enumerate() if t.is_alive() and not isinstance(t, threading._DummyThread)}


def _child_processes() -> dict[int, str]:
    """pid -> name of this process's running (not zombie) descendants: psutil where installed, else /proc."""
    try:
        import psutil
    except ImportError:
        return _children_from_proc()
    found = {}
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                found[child.pid] = " ".join(child.cmdline()[:4]) or child.name()
        except psutil.NoSuchProcess:
            pass
    return found


def _children_from_proc() -> dict[int, str]:
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, fields = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z":  # fields: state, ppid, ...
            found[int(stat.parent.name)] = name
    return found


@pytest.fixture(autouse=True)
def nothing_left_running():
    """Fail a test that leaves a thread or child process of its own running after its fixtures are torn
    down. Those of higher-scoped fixtures (a module's franky-sim server) were started before it and
    are not counted. It waits up to LEAK_GRACE_S for ones that are ending, on the threads themselves.
    The spare video encoder process a take leaves for the next one is kept on purpose; it is let go
    first (recorders/video_encoder_process.py)."""
    threads_before, children_before = _python_threads(), set(_child_processes())
    yield
    if "recorders.video_encoder_process" in sys.modules:
        sys.modules["recorders.video_encoder_process"].release_spare()
    deadline = time.monotonic() + LEAK_GRACE_S
    for thread in _python_threads() - threads_before:
        thread.join(max(0.0, deadline - time.monotonic()))
    children = {pid: name for pid, name in _child_processes().items() if pid not in children_before}
    while children and time.monotonic() < deadline:
        time.sleep(0.05)  # a process has no event to wait on from here; poll its state
        children = {pid: name for pid, name in _child_processes().items() if pid not in children_before}
    threads = sorted(f"{t.name} (daemon)" if t.daemon else t.name for t in _python_threads() - threads_before)
    if threads or children:
        processes = [f"{pid} {name}" for pid, name in sorted(children.items())]
        left = [f"threads: {', '.join(threads)}"] if threads else []
        left += [f"processes: {', '.join(processes)}"] if processes else []
        pytest.fail(f"the test left running after {LEAK_GRACE_S:g} s: {'; '.join(left)}", pytrace=False)


@pytest.fixture
def sessions(tmp_path):
    """Makes run sessions (state-only, no pacing unless asked) and closes every one after the test."""
    from app.run_session import RunSession

    made: list = []

    def make(**options):
        session = RunSession(tmp_path / "episodes", **{"obs": "state", "realtime": False, **options})
        made.append(session)
        return session
    yield make
    for session in made:
        session.close()
