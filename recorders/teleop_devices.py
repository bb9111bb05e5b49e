"""Gamepad and SpaceMouse teleop (DESIGN.md section 4, "when present"): discovery, reading, mapping.

This module owns the two optional teleop devices (the keyboard lives in the GUI). Data flows:
list_devices() -> [TeleopDeviceInfo] (none of a kind: unavailable_reasons() says why) ->
open_device(info) -> TeleopDevice, whose daemon thread reads the device and maps it (GamepadMapping;
decode_spacemouse_report + spacemouse_motion) -> TeleopDevice.poll() -> the latest TeleopIntent.

Gamepads go through SDL's game-controller layer (pygame, optional, imported on first use): every
known pad gets the same Xbox-style layout on every OS; only SDL's joystick subsystems start, never
video or a window. SpaceMice are read from Linux hidraw nodes directly: no library, only read access
to /dev/hidraw* (a udev rule); pyspacemouse would need easyhid and the system libhidapi. Frames are
those of recorders/teleop.py (x away from the robot, y left, z up), the operator facing along x.
"""
from __future__ import annotations

import math
import os
import select
import struct
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from recorders.teleop import TeleopIntent

DEVICE_KINDS = ("gamepad", "spacemouse")
GAMEPAD_DEAD_ZONE = 0.15  # worn sticks rest up to ~0.1 off centre
GAMEPAD_READ_PERIOD_S = 0.01  # SDL has no blocking read; 100 Hz is well above any control rate
SPACEMOUSE_FULL_SCALE = 350.0  # raw counts at full deflection (3Dconnexion devices read about +-350)
SPACEMOUSE_DEAD_ZONE = 0.1
THREEDCONNEXION_VENDOR_IDS = (0x046D, 0x256F)  # Logitech-era 3Dconnexion, 3Dconnexion
HIDRAW_SYSFS = Path("/sys/class/hidraw")  # module constants so tests can point them at a fake tree
HIDRAW_DEV = Path("/dev")
_MULTI_AXIS_CONTROLLER = bytes((0x05, 0x01, 0x09, 0x08))  # HID: usage page Generic Desktop, usage 0x08
_PYGAME_INSTALL = "pip install 'pygame>=2.6' (the `hardware` extra)"
_SDL_LOCK = threading.Lock()  # SDL state is shared: list_devices and every pad's reader take turns


class TeleopDeviceError(RuntimeError):
    """A teleop device cannot be opened; the message says what to do."""


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


@dataclass(frozen=True)
class TeleopDeviceInfo:
    kind: str  # one of DEVICE_KINDS
    name: str  # what the operator sees, e.g. "Xbox Series X Controller"
    id: str  # how open_device finds it: SDL device index (gamepad) or hidraw path (SpaceMouse)

    def __post_init__(self):
        if self.kind not in DEVICE_KINDS:
            raise ValueError(f"kind must be one of {DEVICE_KINDS}, got {self.kind!r}")


def apply_dead_zone(value: float, dead_zone: float) -> float:
    """0 inside the dead zone, then linear from 0 to +-1, so motion starts slow; clipped to [-1, 1]."""
    magnitude = min(abs(value), 1.0)
    if magnitude <= dead_zone:
        return 0.0
    return math.copysign((magnitude - dead_zone) / (1.0 - dead_zone), value)


class RisingEdge:
    """True once per press: a held button must not toggle the gripper at every read."""

    def __init__(self):
        self._was_down = False

    def __call__(self, down: bool) -> bool:
        pressed = down and not self._was_down
        self._was_down = down
        return pressed


# --- gamepad: SDL's game-controller layout (Xbox names; triggers rest at 0, sticks read up/left < 0) ---
GAMEPAD_AXES = ("leftx", "lefty", "rightx", "righty", "triggerleft", "triggerright")  # the rest are buttons


@dataclass(frozen=True)
class GamepadBinding:
    control: str  # SDL's name: pygame.CONTROLLER_AXIS_<CONTROL> or pygame.CONTROLLER_BUTTON_<CONTROL>
    action: str  # "linear", "angular" or "gripper"
    axis: int  # 0..2 for linear/angular
    sign: float
    label: str
    help: str


GAMEPAD_BINDINGS: tuple[GamepadBinding, ...] = (
    GamepadBinding("lefty", "linear", 0, -1, "left stick up / down", "forward / backward"),
    GamepadBinding("leftx", "linear", 1, -1, "left stick left / right", "left / right"),
    GamepadBinding("righty", "linear", 2, -1, "right stick up / down", "up / down"),
    GamepadBinding("rightx", "angular", 2, -1, "right stick left / right", "turn the gripper left / right (yaw)"),
    GamepadBinding("dpad_up", "angular", 1, +1, "d-pad up", "tilt forward (pitch)"),
    GamepadBinding("dpad_down", "angular", 1, -1, "d-pad down", "tilt backward"),
    GamepadBinding("triggerleft", "angular", 0, -1, "left trigger", "tilt left (roll)"),
    GamepadBinding("triggerright", "angular", 0, +1, "right trigger", "tilt right (roll)"),
    GamepadBinding("a", "gripper", 0, 0, "A (cross)", "open / close the gripper"),
)
GAMEPAD_HELP: tuple[tuple[str, str], ...] = tuple((b.label, b.help) for b in GAMEPAD_BINDINGS)


class GamepadMapping:
    """Control values (sticks and triggers in [-1, 1], buttons 0/1) -> TeleopIntent."""

    def __init__(self, dead_zone: float = GAMEPAD_DEAD_ZONE):
        self.dead_zone = dead_zone
        self._presses = {b.control: RisingEdge() for b in GAMEPAD_BINDINGS if b.action == "gripper"}

    def intent(self, controls: Mapping[str, float]) -> TeleopIntent:
        linear, angular, gripper = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], None
        for b in GAMEPAD_BINDINGS:
            value = float(controls.get(b.control, 0.0))
            if b.action == "gripper":
                gripper = "toggle" if self._presses[b.control](value > 0.5) else gripper
            else:
                target = linear if b.action == "linear" else angular
                target[b.axis] += b.sign * apply_dead_zone(value, self.dead_zone)
        return TeleopIntent(tuple(linear), tuple(angular), gripper)  # TeleopIntent clips sums to [-1, 1]


def read_gamepad_controls(pad, codes: Mapping[str, int]) -> dict[str, float]:
    """Each control in `codes` (name -> SDL code) read from an SDL controller: axes /32767, buttons 0/1."""
    return {name: pad.get_axis(code) / 32767.0 if name in GAMEPAD_AXES else float(pad.get_button(code))
            for name, code in codes.items()}


def gamepad_codes(pygame) -> dict[str, int]:
    """SDL's code for each bound control: pygame.CONTROLLER_AXIS_LEFTX for "leftx", and so on."""
    return {b.control: getattr(pygame, f"CONTROLLER_{'AXIS' if b.control in GAMEPAD_AXES else 'BUTTON'}_"
                                       f"{b.control.upper()}") for b in GAMEPAD_BINDINGS}


def _start_sdl():
    """pygame and its SDL game-controller module, started once (joystick subsystems only)."""
    os.environ["SDL_NO_SIGNAL_HANDLERS"] = "1"  # else SDL swallows SIGTERM and a recording can't be stopped
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # nothing here starts video; if anything did, no window
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame prints a banner on import otherwise
    import pygame  # the optional dependency; the `hardware` extra installs it
    try:
        from pygame._sdl2 import controller
    except ImportError as e:  # an old or forked pygame
        raise RuntimeError(f"this pygame has no SDL game-controller module ({_one_line(e)}); {_PYGAME_INSTALL}") from e
    with _SDL_LOCK:
        if not controller.get_init():
            controller.init()
    return pygame, controller


class SdlGamepad:
    """One pad, read through SDL's game-controller layer."""

    def __init__(self, index: int):
        pygame, self._sdl = _start_sdl()
        self._codes = gamepad_codes(pygame)
        with _SDL_LOCK:
            self._pad = self._sdl.Controller(index)
        self._mapping = GamepadMapping()

    def read(self) -> TeleopIntent | None:
        time.sleep(GAMEPAD_READ_PERIOD_S)
        with _SDL_LOCK:
            self._sdl.update()  # polls the devices without an SDL event loop (which would need video)
            if not self._pad.attached():
                raise OSError("gamepad disconnected")
            controls = read_gamepad_controls(self._pad, self._codes)
        return self._mapping.intent(controls)

    def close(self) -> None:
        with _SDL_LOCK:
            self._pad.quit()


def _find_gamepads() -> tuple[list[TeleopDeviceInfo], str]:
    try:
        _, sdl = _start_sdl()
    except ModuleNotFoundError as e:
        if e.name != "pygame":
            raise
        return [], f"pygame is not installed; gamepads need it: {_PYGAME_INSTALL}"
    with _SDL_LOCK:
        sdl.update()  # SDL notices pads plugged in since the last look
        count = sdl.get_count()
        pads = [TeleopDeviceInfo("gamepad", sdl.name_forindex(i) or f"gamepad {i}", str(i))
                for i in range(count) if sdl.is_controller(i)]
    if pads:
        return pads, ""
    if count:
        return [], f"{count} joystick(s) connected, but none with a gamepad layout SDL knows"
    return [], "no gamepad connected"


# --- SpaceMouse ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpaceMouseReport:
    """What one HID input report says; None where it says nothing."""

    translation: tuple[int, int, int] | None = None  # device frame: x right, y toward the operator, z down
    rotation: tuple[int, int, int] | None = None  # right-handed about the same axes
    buttons: int | None = None  # bit i set: button i held (bit 0: the left button)


def decode_spacemouse_report(report: bytes) -> SpaceMouseReport:
    """One 3Dconnexion HID report (report id first) -> its axes or buttons; int16 little-endian axes."""
    if len(report) < 2:
        return SpaceMouseReport()
    report_id, payload = report[0], bytes(report[1:])
    if report_id == 1 and len(payload) >= 12:  # newer devices: translation and rotation in one report
        axes = struct.unpack_from("<6h", payload)
        return SpaceMouseReport(translation=axes[:3], rotation=axes[3:])
    if report_id in (1, 2) and len(payload) >= 6:  # older devices: 1 translation, 2 rotation
        axes = struct.unpack_from("<3h", payload)
        return SpaceMouseReport(translation=axes) if report_id == 1 else SpaceMouseReport(rotation=axes)
    if report_id == 3:
        return SpaceMouseReport(buttons=int.from_bytes(payload, "little"))
    return SpaceMouseReport()  # LED, battery and vendor reports carry no motion


def spacemouse_motion(translation, rotation, full_scale: float = SPACEMOUSE_FULL_SCALE,
                      dead_zone: float = SPACEMOUSE_DEAD_ZONE) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Raw device axes -> (linear, angular) in the base frame, each in [-1, 1]."""
    tx, ty, tz = (apply_dead_zone(v / full_scale, dead_zone) for v in translation)
    rx, ry, rz = (apply_dead_zone(v / full_scale, dead_zone) for v in rotation)
    # (right, toward operator, down) -> (forward, left, up) is a proper rotation, so rotations map like
    # translations: push the cap away -> forward, tilt it forward -> pitch forward, twist left -> yaw left
    return (-ty, -tx, -tz), (-ry, -rx, -rz)


SPACEMOUSE_HELP: tuple[tuple[str, str], ...] = (
    ("push / pull the cap", "forward / backward"), ("slide the cap left / right", "left / right"),
    ("lift / press the cap", "up / down"), ("tilt the cap", "tilt the gripper the same way (roll, pitch)"),
    ("twist the cap", "turn the gripper (yaw)"), ("left button", "open / close the gripper"),
)


class SpaceMouseHidraw:
    """One SpaceMouse, read from its Linux hidraw node (one HID report per read)."""

    def __init__(self, path: str):
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._translation, self._rotation = (0, 0, 0), (0, 0, 0)
        self._left_press = RisingEdge()

    def read(self) -> TeleopIntent | None:
        if not select.select([self._fd], [], [], 0.1)[0]:  # the timeout lets close() stop the thread
            return None
        try:
            report = os.read(self._fd, 64)
        except BlockingIOError:
            return None
        if not report:
            raise OSError("the device was closed")
        decoded = decode_spacemouse_report(report)
        self._translation = decoded.translation or self._translation  # old devices: two reports per motion
        self._rotation = decoded.rotation or self._rotation
        pressed = decoded.buttons is not None and self._left_press(bool(decoded.buttons & 1))
        return TeleopIntent(*spacemouse_motion(self._translation, self._rotation), "toggle" if pressed else None)

    def close(self) -> None:
        os.close(self._fd)


def _hidraw_spacemouse(node: Path) -> tuple[TeleopDeviceInfo, int] | None:
    """The SpaceMouse behind one /sys/class/hidraw node, with its USB vendor id; None for other devices."""
    try:
        uevent = dict(line.split("=", 1) for line in (node / "device" / "uevent").read_text().splitlines()
                      if "=" in line)
        vendor = int(uevent.get("HID_ID", "0:0:0").split(":")[1], 16)  # HID_ID=bus:vendor:product, hex
        is_multi_axis = _MULTI_AXIS_CONTROLLER in (node / "device" / "report_descriptor").read_bytes()
    except (OSError, ValueError, IndexError):  # a node that vanished or that we cannot read: not ours
        return None
    if vendor not in THREEDCONNEXION_VENDOR_IDS or not is_multi_axis:  # 0x046d also makes plain mice
        return None
    return TeleopDeviceInfo("spacemouse", uevent.get("HID_NAME", "SpaceMouse"), str(HIDRAW_DEV / node.name)), vendor


def _find_spacemice() -> tuple[list[TeleopDeviceInfo], str]:
    if not sys.platform.startswith("linux"):
        return [], f"SpaceMouse support reads Linux hidraw devices; not available on {sys.platform}"
    present = [found for node in sorted(HIDRAW_SYSFS.glob("hidraw*")) if (found := _hidraw_spacemouse(node))]
    readable = [info for info, _ in present if os.access(info.id, os.R_OK)]
    if readable:
        return readable, ""
    if present:
        info, vendor = present[0]
        return [], (f"{info.name} at {info.id} is not readable by this user; add the udev rule "
                    f'KERNEL=="hidraw*", ATTRS{{idVendor}}=="{vendor:04x}", MODE="0666" '
                    "(e.g. in /etc/udev/rules.d/99-spacemouse.rules) and replug it")
    return [], "no SpaceMouse connected"


# --- devices ---------------------------------------------------------------------------------------
class TeleopDevice:
    """An open gamepad or SpaceMouse: a daemon thread reads it, poll() never blocks and never raises.

    `source` is SdlGamepad or SpaceMouseHidraw (or a test's fake): read() returns the next intent, or None
    when nothing is new, within ~0.1 s so close() can stop the thread; close() releases the device.
    """

    def __init__(self, name: str, source, start: bool = True):
        self.name = name
        self.error: str | None = None  # one line, set when reading failed (e.g. unplugged); poll() is idle then
        self._source = source
        self._lock = threading.Lock()
        self._motion = TeleopIntent()
        self._pending_gripper: str | None = None  # kept until polled, so no press is lost between polls
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"teleop {name}", daemon=True) if start else None
        if self._thread is not None:
            self._thread.start()

    def poll(self) -> TeleopIntent:
        """The latest motion and the gripper request made since the last poll; idle after an error."""
        with self._lock:
            if self.error is not None:
                return TeleopIntent()
            intent = TeleopIntent(self._motion.linear, self._motion.angular, self._pending_gripper)
            self._pending_gripper = None
        return intent

    def read_once(self) -> None:
        """One read from the device: the reader thread's loop body (tests call it without a thread)."""
        try:
            intent = self._source.read()
        except Exception as e:  # noqa: BLE001 - unplugged or failing devices are reported, never raised
            with self._lock:
                self.error = f"{self.name} stopped: {_one_line(e)}"
            return
        if intent is not None:
            with self._lock:
                self._motion = intent
                self._pending_gripper = intent.gripper or self._pending_gripper

    def _run(self) -> None:
        while not self._stop.is_set() and self.error is None:
            self.read_once()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        try:
            self._source.close()
        except Exception:  # noqa: BLE001 - closing a device that vanished
            pass

    def __enter__(self) -> "TeleopDevice":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_reasons: dict[str, str] = {}


def list_devices() -> list[TeleopDeviceInfo]:
    """Gamepads and SpaceMice plugged in now; never raises (see unavailable_reasons for empty kinds)."""
    found: list[TeleopDeviceInfo] = []
    reasons = {}
    for kind, find in (("gamepad", _find_gamepads), ("spacemouse", _find_spacemice)):
        try:
            devices, reason = find()
        except Exception as e:  # noqa: BLE001 - a failing driver or sysfs must not take the GUI down
            devices, reason = [], f"looking for a {kind} failed: {_one_line(e)}"
        found += devices
        if not devices:
            reasons[kind] = reason
    _reasons.clear()
    _reasons.update(reasons)
    return found


def unavailable_reasons() -> dict[str, str]:
    """Kind -> one line saying why the last list_devices() found no device of that kind."""
    return dict(_reasons)


def open_device(info: TeleopDeviceInfo) -> TeleopDevice:
    """Open a device from list_devices(); raises TeleopDeviceError with a one-line reason."""
    try:
        source = SdlGamepad(int(info.id)) if info.kind == "gamepad" else SpaceMouseHidraw(info.id)
    except Exception as e:  # noqa: BLE001 - pygame.error, OSError, ImportError: all mean "cannot open"
        raise TeleopDeviceError(f"cannot open {info.kind} {info.name!r}: {_one_line(e)}") from e
    return TeleopDevice(info.name, source)
