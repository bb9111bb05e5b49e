"""Gamepad and SpaceMouse teleop without the hardware: discovery's reasons, mappings, HID decoding, reader."""
from __future__ import annotations

import builtins
import os
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from recorders import teleop_devices as td
from recorders.teleop import TeleopIntent

ROOT = Path(__file__).resolve().parents[1]
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SpaceMice are read via Linux hidraw")


def report(report_id: int, *axes: int) -> bytes:
    return bytes([report_id]) + struct.pack(f"<{len(axes)}h", *axes)


# --- discovery ---------------------------------------------------------------------------------------
def test_list_devices_on_this_machine_gives_a_reason_for_every_missing_kind():
    devices = td.list_devices()
    reasons = td.unavailable_reasons()
    assert all(isinstance(d, td.TeleopDeviceInfo) for d in devices)
    assert set(reasons) == set(td.DEVICE_KINDS) - {d.kind for d in devices}
    for reason in reasons.values():
        assert reason and "\n" not in reason


class FakeSdl:
    """Stands in for pygame._sdl2.controller: a machine with the given joysticks."""

    def __init__(self, names=(), gamepads=()):
        self.names, self.gamepads = list(names), set(gamepads)

    def update(self):
        pass

    def get_count(self):
        return len(self.names)

    def is_controller(self, index):
        return index in self.gamepads

    def name_forindex(self, index):
        return self.names[index]


def test_no_devices_at_all_gives_both_reasons(monkeypatch, tmp_path):
    monkeypatch.setattr(td, "_start_sdl", lambda: (None, FakeSdl()))
    monkeypatch.setattr(td, "HIDRAW_SYSFS", tmp_path)
    assert td.list_devices() == []
    reasons = td.unavailable_reasons()
    assert reasons["gamepad"] == "no gamepad connected"
    if sys.platform.startswith("linux"):
        assert reasons["spacemouse"] == "no SpaceMouse connected"


def test_gamepads_are_listed_and_plain_joysticks_are_not(monkeypatch):
    sdl = FakeSdl(["Flight stick", "Xbox Controller"], gamepads={1})
    monkeypatch.setattr(td, "_start_sdl", lambda: (None, sdl))
    pads = [d for d in td.list_devices() if d.kind == "gamepad"]
    assert pads == [td.TeleopDeviceInfo("gamepad", "Xbox Controller", "1")]
    assert "gamepad" not in td.unavailable_reasons()

    monkeypatch.setattr(td, "_start_sdl", lambda: (None, FakeSdl(["Flight stick"])))
    assert [d for d in td.list_devices() if d.kind == "gamepad"] == []
    assert "none with a gamepad layout" in td.unavailable_reasons()["gamepad"]


def test_missing_pygame_gives_a_reason_and_open_raises_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # `import pygame` now raises ModuleNotFoundError
    assert [d for d in td.list_devices() if d.kind == "gamepad"] == []
    assert td.unavailable_reasons()["gamepad"].startswith("pygame is not installed")
    with pytest.raises(td.TeleopDeviceError, match="cannot open gamepad"):
        td.open_device(td.TeleopDeviceInfo("gamepad", "pad", "0"))


def test_a_broken_pygame_import_does_not_escape_list_devices(monkeypatch):
    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name.startswith("pygame"):
            raise OSError("libSDL2-2.0.so.0: cannot open shared object file")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "pygame", raising=False)
    monkeypatch.setattr(builtins, "__import__", failing_import)
    td.list_devices()
    assert td.unavailable_reasons()["gamepad"] == (
        "looking for a gamepad failed: libSDL2-2.0.so.0: cannot open shared object file")


def fake_hidraw(sysfs, name: str, hid_id: str, hid_name: str, descriptor: bytes) -> None:
    device = sysfs / name / "device"
    device.mkdir(parents=True)
    (device / "uevent").write_text(f"DRIVER=hid-generic\nHID_ID={hid_id}\nHID_NAME={hid_name}\n")
    (device / "report_descriptor").write_bytes(descriptor)


@linux_only
def test_spacemice_are_found_in_sysfs_and_other_hid_devices_are_not(monkeypatch, tmp_path):
    sysfs, dev = tmp_path / "sys", tmp_path / "dev"
    dev.mkdir()
    fake_hidraw(sysfs, "hidraw0", "0003:0000046D:0000C077", "Logitech USB Optical Mouse", bytes.fromhex("05010902a101"))
    fake_hidraw(sysfs, "hidraw1", "0003:0000256F:0000C635", "3Dconnexion SpaceMouse Compact",
                bytes.fromhex("05010908a101a100850116"))
    fake_hidraw(sysfs, "hidraw2", "0003:00001234:00000001", "Other 6-dof", bytes.fromhex("05010908a101"))
    for name in ("hidraw0", "hidraw1", "hidraw2"):
        (dev / name).write_bytes(b"")
    monkeypatch.setattr(td, "HIDRAW_SYSFS", sysfs)
    monkeypatch.setattr(td, "HIDRAW_DEV", dev)
    mice = [d for d in td.list_devices() if d.kind == "spacemouse"]
    assert mice == [td.TeleopDeviceInfo("spacemouse", "3Dconnexion SpaceMouse Compact", str(dev / "hidraw1"))]
    assert "spacemouse" not in td.unavailable_reasons()


@linux_only
def test_a_spacemouse_without_read_access_names_the_udev_fix(monkeypatch, tmp_path):
    sysfs = tmp_path / "sys"
    fake_hidraw(sysfs, "hidraw4", "0003:0000046D:0000C626", "3Dconnexion SpaceNavigator", bytes.fromhex("05010908"))
    monkeypatch.setattr(td, "HIDRAW_SYSFS", sysfs)
    monkeypatch.setattr(td, "HIDRAW_DEV", tmp_path / "dev")  # no device node: not readable
    assert [d for d in td.list_devices() if d.kind == "spacemouse"] == []
    reason = td.unavailable_reasons()["spacemouse"]
    assert "SpaceNavigator" in reason and 'ATTRS{idVendor}=="046d"' in reason and "udev" in reason


def test_open_device_reports_a_missing_node_as_a_teleop_device_error():
    with pytest.raises(td.TeleopDeviceError, match="cannot open spacemouse 'ghost'"):
        td.open_device(td.TeleopDeviceInfo("spacemouse", "ghost", "/nonexistent/hidraw9"))


def test_device_info_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="keyboard"):
        td.TeleopDeviceInfo("keyboard", "k", "0")


# --- gamepad mapping -----------------------------------------------------------------------------
def test_dead_zone_outputs_zero_inside_and_rescales_from_zero_outside():
    assert td.apply_dead_zone(0.1, 0.15) == 0.0
    assert td.apply_dead_zone(-0.15, 0.15) == 0.0
    assert td.apply_dead_zone(0.16, 0.15) == pytest.approx(0.01 / 0.85)
    assert td.apply_dead_zone(0.575, 0.15) == pytest.approx(0.5)
    assert td.apply_dead_zone(-0.575, 0.15) == pytest.approx(-0.5)
    assert td.apply_dead_zone(1.0, 0.15) == 1.0
    assert td.apply_dead_zone(-1.7, 0.15) == -1.0  # clipped


def test_gamepad_sticks_move_the_gripper_in_the_base_frame():
    mapping = td.GamepadMapping(dead_zone=0.15)
    assert mapping.intent({}).is_idle
    assert mapping.intent({"lefty": -1.0}).linear == (1.0, 0.0, 0.0)  # stick up -> forward
    assert mapping.intent({"leftx": 1.0}).linear == (0.0, -1.0, 0.0)  # stick right -> right
    assert mapping.intent({"righty": -0.575}).linear == pytest.approx((0.0, 0.0, 0.5))  # up, rescaled
    assert mapping.intent({"rightx": -1.0}).angular == (0.0, 0.0, 1.0)  # stick left -> yaw left
    assert mapping.intent({"dpad_up": 1.0}).angular == (0.0, 1.0, 0.0)  # tilt forward
    assert mapping.intent({"dpad_up": 1.0, "dpad_down": 1.0}).angular == (0.0, 0.0, 0.0)
    assert mapping.intent({"triggerright": 1.0, "triggerleft": 0.575}).angular == pytest.approx((0.5, 0.0, 0.0))
    drift = mapping.intent({"leftx": 0.12, "lefty": -0.1, "rightx": 0.14, "triggerleft": 0.05})
    assert drift.is_idle


def test_gamepad_axes_past_full_scale_are_clipped():
    intent = td.GamepadMapping().intent({"lefty": -32768 / 32767, "leftx": -1.2})
    assert intent.linear == (1.0, 1.0, 0.0)


def test_gamepad_a_button_toggles_the_gripper_once_per_press():
    mapping = td.GamepadMapping()
    presses = [mapping.intent({"a": a}).gripper for a in (0, 1, 1, 1, 0, 0, 1, 0)]
    assert presses == [None, "toggle", None, None, None, None, "toggle", None]


def test_gamepad_help_covers_every_binding():
    assert len(td.GAMEPAD_HELP) == len(td.GAMEPAD_BINDINGS)
    assert all(label and text for label, text in td.GAMEPAD_HELP)
    assert {b.action for b in td.GAMEPAD_BINDINGS} == {"linear", "angular", "gripper"}


def test_read_gamepad_controls_normalises_sdl_values():
    class FakePad:
        def get_axis(self, code):
            return {10: 32767, 11: -32768, 12: 0}[code]

        def get_button(self, code):
            return {20: True, 21: False}[code]

    controls = td.read_gamepad_controls(FakePad(), {"leftx": 10, "lefty": 11, "triggerleft": 12,
                                                    "a": 20, "dpad_up": 21})
    assert controls == pytest.approx({"leftx": 1.0, "lefty": -32768 / 32767, "triggerleft": 0.0,
                                      "a": 1.0, "dpad_up": 0.0})


def test_every_binding_names_a_real_sdl_control():
    pygame = pytest.importorskip("pygame")
    codes = td.gamepad_codes(pygame)
    assert set(codes) == {b.control for b in td.GAMEPAD_BINDINGS}
    assert codes["leftx"] == pygame.CONTROLLER_AXIS_LEFTX and codes["a"] == pygame.CONTROLLER_BUTTON_A


# --- SpaceMouse decoding and mapping -------------------------------------------------------------
def test_decode_old_layout_translation_and_rotation_reports():
    # report 1: x=100, y=-100 (0xff9c), z=-350 (0xfea2), hand-written little-endian bytes
    assert td.decode_spacemouse_report(bytes([1, 0x64, 0x00, 0x9C, 0xFF, 0xA2, 0xFE])) == \
        td.SpaceMouseReport(translation=(100, -100, -350))
    assert td.decode_spacemouse_report(report(2, -1, 32767, -32768)) == \
        td.SpaceMouseReport(rotation=(-1, 32767, -32768))


def test_decode_new_layout_single_report():
    decoded = td.decode_spacemouse_report(report(1, 5, -6, 7, -350, 350, -2))
    assert decoded == td.SpaceMouseReport(translation=(5, -6, 7), rotation=(-350, 350, -2))


def test_decode_buttons_and_reports_without_motion():
    assert td.decode_spacemouse_report(bytes([3, 0x01, 0x00])).buttons == 1  # left button
    assert td.decode_spacemouse_report(bytes([3, 0x02, 0x00])).buttons == 2  # right button
    assert td.decode_spacemouse_report(bytes([3, 0x00, 0x00, 0x00, 0x80])).buttons == 1 << 31
    assert td.decode_spacemouse_report(bytes([4, 0x01])) == td.SpaceMouseReport()  # LED
    assert td.decode_spacemouse_report(bytes([1])) == td.SpaceMouseReport()
    assert td.decode_spacemouse_report(b"") == td.SpaceMouseReport()


def test_spacemouse_axes_map_into_the_base_frame():
    full = td.SPACEMOUSE_FULL_SCALE
    idle = (0, 0, 0)
    assert td.spacemouse_motion((0, -full, 0), idle) == ((1.0, 0.0, 0.0), (0.0, 0.0, 0.0))  # push away
    assert td.spacemouse_motion((full, 0, 0), idle)[0] == (0.0, -1.0, 0.0)  # slide right
    assert td.spacemouse_motion((0, 0, -full), idle)[0] == (0.0, 0.0, 1.0)  # lift
    assert td.spacemouse_motion(idle, (-full, 0, 0))[1] == (0.0, 1.0, 0.0)  # tilt forward -> pitch forward
    assert td.spacemouse_motion(idle, (0, -full, 0))[1] == (1.0, 0.0, 0.0)  # tilt right -> roll right
    assert td.spacemouse_motion(idle, (0, 0, -full))[1] == (0.0, 0.0, 1.0)  # twist left -> yaw left


def test_spacemouse_dead_zone_and_full_scale():
    assert td.spacemouse_motion((20, -30, 10), (-25, 0, 34)) == ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    linear, _ = td.spacemouse_motion((0, -0.55 * 350, 0), (0, 0, 0), full_scale=350, dead_zone=0.1)
    assert linear[0] == pytest.approx(0.5)
    assert td.spacemouse_motion((0, -900, 0), (0, 0, 0))[0] == (1.0, 0.0, 0.0)  # past full scale: clipped


@linux_only
def test_spacemouse_reader_follows_reports_and_goes_idle_when_unplugged(tmp_path):
    fifo = tmp_path / "hidraw0"  # a FIFO stands in for the hidraw node: one write is one report
    os.mkfifo(fifo)
    device = td.TeleopDevice("SpaceMouse", td.SpaceMouseHidraw(str(fifo)), start=False)
    writer = os.open(fifo, os.O_WRONLY)
    try:
        os.write(writer, report(1, 0, -350, 0))  # old layout: translation ...
        device.read_once()
        assert device.poll() == TeleopIntent((1.0, 0.0, 0.0))
        os.write(writer, report(2, 0, 0, -350))  # ... then rotation; the translation is kept
        device.read_once()
        assert device.poll() == TeleopIntent((1.0, 0.0, 0.0), (0.0, 0.0, 1.0))
        os.write(writer, report(1, 0, 0, 0, 0, 0, 0))  # new layout: released
        device.read_once()
        assert device.poll().is_idle
        os.write(writer, bytes([3, 1, 0]))  # left button down
        device.read_once()
        os.write(writer, bytes([3, 1, 0]))  # still down: no second toggle
        device.read_once()
        assert device.poll().gripper == "toggle"
        assert device.poll().gripper is None
        os.write(writer, bytes([3, 0, 0]))
        device.read_once()
        os.write(writer, bytes([3, 1, 0]))
        device.read_once()
        assert device.poll().gripper == "toggle"
        os.write(writer, report(1, 0, -350, 0))
        device.read_once()
    finally:
        os.close(writer)  # the "unplug": the next read sees end of file
    device.read_once()
    assert device.error is not None and device.error.startswith("SpaceMouse stopped")
    assert device.poll().is_idle
    device.close()


# --- the reader thread ---------------------------------------------------------------------------
class UnpluggedAfterOneRead:
    """A device that reports one deflection, then fails as an unplugged one does."""

    def __init__(self):
        self.reads = 0
        self.failed = threading.Event()
        self.closed = False

    def read(self):
        self.reads += 1
        if self.reads == 1:
            return TeleopIntent((0.5, 0.0, 0.0), gripper="toggle")
        self.failed.set()
        raise OSError("[Errno 19] No such device\nsecond line")

    def close(self):
        self.closed = True


def test_poll_is_idle_with_a_one_line_error_after_the_device_fails():
    device = td.TeleopDevice("pad", UnpluggedAfterOneRead(), start=False)
    device.read_once()
    assert device.poll() == TeleopIntent((0.5, 0.0, 0.0), gripper="toggle")
    assert device.poll() == TeleopIntent((0.5, 0.0, 0.0))  # the toggle is handed out once
    device.read_once()
    assert device.error == "pad stopped: [Errno 19] No such device"
    assert device.poll() == TeleopIntent()


def test_the_reader_thread_survives_a_failing_device():
    source = UnpluggedAfterOneRead()
    with td.TeleopDevice("pad", source) as device:
        assert source.failed.wait(timeout=5)
    assert "teleop pad" not in {t.name for t in threading.enumerate()}  # close() joined the reader thread
    assert source.closed
    assert device.error == "pad stopped: [Errno 19] No such device"
    assert device.poll().is_idle


def test_starting_sdl_prints_nothing_and_leaves_sigterm_alone(tmp_path):
    pytest.importorskip("pygame")
    script = ("import os, signal\n"
              "from recorders import teleop_devices as td\n"
              "try:\n"
              "    td.open_device(td.TeleopDeviceInfo('gamepad', 'pad', '0'))\n"
              "except td.TeleopDeviceError:\n"
              "    pass\n"
              "td.list_devices()\n"
              "os.kill(os.getpid(), signal.SIGTERM)\n"
              "signal.pause()\n")  # SDL's own SIGTERM handler would leave the process hanging here
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert done.stdout == ""  # no pygame banner in the recorder's output
