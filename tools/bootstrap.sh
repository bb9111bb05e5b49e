#!/usr/bin/env bash
# Installs what Code2Act needs: a virtual environment with the Python packages of pyproject.toml
# (again only when pyproject.toml or this script changes) and the few system libraries it uses
# (Debian/Ubuntu), which need root:
#
#   bash tools/bootstrap.sh            system libraries installed when running as root; otherwise the
#                                      one apt command to run is printed and the launch goes on
#   CODE2ACT_INSTALL_SYSTEM=1 ...      also through sudo when not root; a refusal is printed, not fatal
#   bash tools/bootstrap.sh --system   the same, and exits 1 when they could not be installed
#                                      (`./code2act setup`)
#
# Python packages: core and dev first (all the app and its tests need), then each optional hardware
# extra on its own, so one without a wheel for this platform is a one-line note, never a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

install_system="${CODE2ACT_INSTALL_SYSTEM:-0}"
system_required=0
if [ "${1:-}" = "--system" ]; then
  install_system=1
  system_required=1
fi

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
system_failed=0
if [ ${#missing[@]} -gt 0 ]; then
  apt_command="sudo apt-get install -y --no-install-recommends ${missing[*]}"
  as_root=()
  can_install=1
  if [ "$(id -u)" -ne 0 ]; then
    if [ "$install_system" = 1 ] && command -v sudo >/dev/null 2>&1; then
      as_root=(sudo)
    else
      can_install=0
    fi
  fi
  if [ "$can_install" = 1 ]; then
    echo "code2act: installing system packages: ${missing[*]}" >&2
    # env passes DEBIAN_FRONTEND through sudo, which resets the environment.
    if ! { "${as_root[@]}" apt-get update -qq &&
           "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
             "${missing[@]}" >/dev/null; }; then
      echo "code2act: could not install the system packages; install them with: $apt_command" >&2
      system_failed=1
    fi
  else
    echo "code2act: missing system packages; install them with: $apt_command (or: ./code2act setup)" >&2
    system_failed=1
  fi
fi

python_env_up_to_date() {
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]
}

PYTHON="${PYTHON:-python3}"
stamp=".venv/.code2act-installed"
want="$(cat pyproject.toml tools/bootstrap.sh | sha256sum | cut -d' ' -f1)"
if ! python_env_up_to_date; then
  if [ ! -x .venv/bin/python ]; then
    echo "code2act: creating the virtual environment in .venv" >&2
    "$PYTHON" -m venv .venv
  fi
  echo "code2act: installing Python packages (first run takes a few minutes)" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # The app runs from its checkout: install what pyproject.toml lists, not the project itself.
  .venv/bin/python - <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
extras = project["optional-dependencies"]
open(".venv/requirements.txt", "w").write("\n".join(project["dependencies"] + extras["dev"]) + "\n")
open(".venv/requirements-hardware.txt", "w").write("\n".join(extras["hardware"]) + "\n")
PY
  .venv/bin/python -m pip install -q -r .venv/requirements.txt
  not_installed=()
  while IFS= read -r requirement; do
    [ -n "$requirement" ] || continue
    .venv/bin/python -m pip install -q "$requirement" >/dev/null 2>&1 || not_installed+=("$requirement")
  done < .venv/requirements-hardware.txt
  if [ ${#not_installed[@]} -gt 0 ]; then
    retry="$(printf " '%s'" "${not_installed[@]}")"
    echo "code2act: optional hardware packages could not be installed (${not_installed[*]}); the devices that" \
         "need them stay unavailable; retry with: .venv/bin/python -m pip install$retry" >&2
  fi
  echo "$want" > "$stamp"
fi

if [ "$system_required" = 1 ] && [ "$system_failed" = 1 ]; then
  exit 1
fi
