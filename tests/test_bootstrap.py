"""The launcher's installer (tools/bootstrap.sh, ./code2act setup): never blocked by a refused sudo or
a hardware extra without a wheel.

Each test runs the real script in a copy of the project's top level, with fake `id`, `sudo`,
`dpkg-query`, `apt-get` and `.venv/bin/python` first on PATH, so nothing is installed for real and
the checkout's own virtual environment is never touched.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if shutil.which("bash") is None or shutil.which("sha256sum") is None:
    pytest.skip("the launcher needs bash and coreutils", allow_module_level=True)


def fake_command(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/usr/bin/env bash\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the launcher, its installer and pyproject.toml, with fakes logging to `calls.log`."""
    root = tmp_path / "code2act"
    (root / "tools").mkdir(parents=True)
    (root / ".venv" / "bin").mkdir(parents=True)
    for name in ("code2act", "tools/bootstrap.sh", "pyproject.toml"):
        shutil.copy2(ROOT / name, root / name)
    fakes = tmp_path / "bin"
    fakes.mkdir()
    log = tmp_path / "calls.log"
    fake_command(fakes, "id", 'if [ "$1" = "-u" ]; then echo "${FAKE_UID:-1000}"; else exec /usr/bin/id "$@"; fi')
    fake_command(fakes, "sudo", f'echo "sudo $*" >> {log}; echo "sudo: a password is required" >&2; exit 1')
    fake_command(fakes, "dpkg-query", '[ -n "${FAKE_ALL_INSTALLED:-}" ] && printf "install ok installed"; exit 0')
    fake_command(fakes, "apt-get", f'echo "apt-get $*" >> {log}')
    # pip is faked (and fails for pyrealsense2, as where no wheel exists); anything else is real Python.
    fake_command(root / ".venv" / "bin", "python",
                 f'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then\n'
                 f'  echo "pip ${{*:3}}" >> {log}\n'
                 f'  case "$*" in *pyrealsense2*) exit 1;; esac\n'
                 f'  exit 0\n'
                 f'fi\n'
                 f'exec {sys.executable} "$@"')
    return root


def mark_python_env_up_to_date(root: Path) -> None:
    want = hashlib.sha256((root / "pyproject.toml").read_bytes() + (root / "tools/bootstrap.sh").read_bytes())
    (root / ".venv" / ".code2act-installed").write_text(want.hexdigest() + "\n")


def run(root: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    environ = {k: v for k, v in os.environ.items() if k != "CODE2ACT_INSTALL_SYSTEM"}
    environ.update(env, PATH=f"{root.parent / 'bin'}:{os.environ['PATH']}")
    done = subprocess.run(["bash", *args], cwd=root, env=environ, capture_output=True, text=True, timeout=120)
    log = root.parent / "calls.log"
    return done, log.read_text().splitlines() if log.exists() else []


def test_a_user_without_root_is_told_the_apt_command_and_the_launch_goes_on(project):
    mark_python_env_up_to_date(project)
    done, calls = run(project, "tools/bootstrap.sh")
    assert done.returncode == 0, done.stderr
    assert "install them with: sudo apt-get install -y --no-install-recommends libegl1 " in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert calls == []  # neither sudo nor apt-get unless asked


def test_a_refused_sudo_is_a_note_when_asked_on_launch_and_a_failure_for_setup(project):
    mark_python_env_up_to_date(project)
    done, calls = run(project, "tools/bootstrap.sh", CODE2ACT_INSTALL_SYSTEM="1")
    assert done.returncode == 0, done.stderr
    assert calls == ["sudo apt-get update -qq"]
    assert "could not install the system packages; install them with: sudo apt-get install" in done.stderr
    done, _ = run(project, "code2act", "setup")
    assert done.returncode == 1
    assert "could not install the system packages" in done.stderr


def test_root_updates_the_package_lists_once_then_installs(project):
    mark_python_env_up_to_date(project)
    done, calls = run(project, "tools/bootstrap.sh", FAKE_UID="0")
    assert done.returncode == 0, done.stderr
    assert calls[0] == "apt-get update -qq"
    assert calls[1].startswith("apt-get install -y -qq --no-install-recommends libegl1 ") and len(calls) == 2


def test_a_hardware_extra_without_a_wheel_does_not_block_the_rest(project):
    done, calls = run(project, "tools/bootstrap.sh", FAKE_ALL_INSTALLED="1")
    assert done.returncode == 0, done.stderr
    core = (project / ".venv" / "requirements.txt").read_text()
    assert "pytest>=8" in core and "pyrealsense2" not in core
    pip = [c for c in calls if c.startswith("pip install")]
    assert pip[1] == "pip install -q -r .venv/requirements.txt"  # after upgrading pip, before the extras
    assert pip[2:] == ["pip install -q pyrealsense2>=2.55", "pip install -q sounddevice>=0.4.6",
                       "pip install -q pygame>=2.6"]
    note = [line for line in done.stderr.splitlines() if "optional hardware" in line]
    assert len(note) == 1 and "(pyrealsense2>=2.55)" in note[0] and "pip install 'pyrealsense2>=2.55'" in note[0]
    assert (project / ".venv" / ".code2act-installed").exists()  # the next launch does not retry pip
    done, calls_again = run(project, "tools/bootstrap.sh", FAKE_ALL_INSTALLED="1")
    assert done.returncode == 0 and calls_again == calls and done.stderr == ""


def test_the_launcher_keeps_the_callers_folder_for_paths_and_runs_tests_from_the_checkout(project, tmp_path):
    mark_python_env_up_to_date(project)
    (project / "main.py").write_text("import os, sys\nprint('cwd', os.getcwd(), 'args', *sys.argv[1:])\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    environ = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "FAKE_ALL_INSTALLED": "1"}
    done = subprocess.run(["bash", str(project / "code2act"), "inspect", "data/ep.h5"], cwd=elsewhere, env=environ,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cwd", str(elsewhere), "args", "inspect", "data/ep.h5"]
    done = subprocess.run(["bash", str(project / "code2act"), "test", "--version"], cwd=elsewhere, env=environ,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "pytest" in done.stdout + done.stderr
