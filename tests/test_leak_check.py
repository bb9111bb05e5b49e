"""tests/conftest.py's `nothing_left_running`: a test that leaves a thread or a child process running fails,
naming it; one that stops what it started passes."""
from __future__ import annotations

from pathlib import Path

pytest_plugins = ["pytester"]

INNER_TESTS = '''
import subprocess, sys, threading

import pytest

import conftest

conftest.LEAK_GRACE_S = 0.5
started = []


@pytest.fixture(scope="module", autouse=True)
def end_what_the_leaky_tests_left():
    yield
    for process in started:
        process.kill()
        process.wait()


def test_leaves_a_thread():
    release = threading.Event()
    threading.Thread(target=release.wait, args=(60,), name="forgotten-worker", daemon=True).start()


def test_leaves_a_process():
    started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))


def test_stops_what_it_started():
    release = threading.Event()
    worker = threading.Thread(target=release.wait, args=(60,), name="stopped-worker")
    worker.start()
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    release.set()
    process.kill()
    process.wait()
'''


def test_a_test_leaving_a_thread_or_process_running_fails_with_its_name(pytester):
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaves_a_thread*",
                                 "the test left running after 0.5 s: threads: forgotten-worker (daemon)",
                                 "*ERROR at teardown of test_leaves_a_process*",
                                 "the test left running after 0.5 s: processes: * -c import time; time.sleep(60)"])
