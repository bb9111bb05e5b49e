"""The Record session's requests about teleop devices: scan for gamepads and SpaceMice, choose the one
polled beside the keyboard. A mixin of app/record_session.py's RecordSession: requests go to its
worker (`_submit`), which opens and closes the devices.

    scan_teleop_devices -> snapshot teleop_devices, teleop_devices_note
    use_teleop_device   -> the device polled every tick (None: keyboard only); a log line
"""
from __future__ import annotations


class TeleopDeviceRequests:
    """Needs the session's `_submit`, `_update`, `_event` and `_teleop` (recorders.teleop.TeleopInputs)."""

    # ---- requests (any thread; never block) ----------------------------------------------------------
    def add_teleop_device(self, device) -> None:
        """A gamepad or SpaceMouse (anything with poll() -> TeleopIntent), polled every tick."""
        self._teleop.add_device(device)

    def teleop_devices(self) -> tuple:
        """The gamepads / SpaceMice in use (the Run workspace drives with them too while taken over)."""
        return self._teleop.devices

    def scan_teleop_devices(self) -> None:
        """Look for gamepads and SpaceMice (in the worker: listing touches devices)."""
        self._submit(self._scan_devices)

    def use_teleop_device(self, info) -> None:
        """Poll this device (a TeleopDeviceInfo from the scan) beside the keyboard; None: keyboard only."""
        self._submit(lambda: self._use_device(info))

    # ---- worker ---------------------------------------------------------------------------------------
    def _scan_devices(self) -> None:
        from recorders.teleop_devices import list_devices, unavailable_reasons

        found = tuple(list_devices())
        reasons = unavailable_reasons()
        note = "; ".join(reasons.values()) if reasons else ""
        self._update(teleop_devices=found, teleop_devices_note=note or f"{len(found)} found")

    def _use_device(self, info) -> None:
        for device in self._teleop.set_devices(()):
            device.close()
        if info is None:
            self._update(teleop_devices_note="keyboard only")
            return
        from recorders.teleop_devices import open_device

        device = open_device(info)
        self.add_teleop_device(device)
        self._update(teleop_devices_note=f"using {device.name}")
        self._event("info", f"teleop with {device.name} and the keyboard")
