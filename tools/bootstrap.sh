#!/usr/bin/env bash
# Installs what Code2Act needs, once: the few system libraries (Debian/Ubuntu) and a virtual
# environment with the Python packages of pyproject.toml. Re-runs only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."

# System libraries: Qt's xcb/offscreen plugins, EGL for MuJoCo's offscreen renderer,
# libusb for RealSense and PortAudio for sounddevice (both optional at run time).
SYSTEM_PACKAGES=(libegl1 libopengl0 libgl1 libegl-mesa0 libgl1-mesa-dri libglib2.0-0 libxkbcommon0
  libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0
  libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libusb-1.0-0 libportaudio2)

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    echo "code2act: installing system packages: ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "code2act: missing system packages (install them as root): ${missing[*]}" >&2
  fi
fi

PYTHON="${PYTHON:-python3}"
stamp=".venv/.code2act-installed"
want="$(cat pyproject.toml tools/bootstrap.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  echo "code2act: creating the virtual environment in .venv" >&2
  "$PYTHON" -m venv .venv
fi
echo "code2act: installing Python packages (first run takes a few minutes)" >&2
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# The app runs from its checkout: install what pyproject.toml lists, not the project itself.
.venv/bin/python - > .venv/requirements.txt <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
print("\n".join(project["dependencies"] + extras["dev"] + extras["hardware"]))
PY
.venv/bin/python -m pip install -q -r .venv/requirements.txt
echo "$want" > "$stamp"
