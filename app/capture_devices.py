"""The Record session's capture devices besides the arm: how each camera is doing, which microphone
takes record, how takes store their cameras, and scans for RealSense cameras and microphones. Worker thread only; what the operator
sees goes out through the session's `update` (snapshot fields) and `event` (log lines).

    scan()                -> snapshot realsense, microphones, capture_note
    choose_microphone()   -> snapshot microphone; start_microphone() when a take starts, stop_ when it ends
    camera_statuses(cell) -> snapshot cameras (fps, drops, fault, calibrated) every tick
    choose_video_quality() -> `video_quality` of the next takes; warm_up_encoder(cell, obs) on connect
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from app.errors import one_line


@dataclass(frozen=True)
class CameraStatus:
    name: str
    frames: int
    fps: float  # delivered rate (device cameras); 0 for rendered ones, which follow the ticks
    drops: int
    error: str | None  # why the camera stopped, once it did
    calibrated: bool


def camera_statuses(cell) -> tuple[CameraStatus, ...]:
    if cell is None:
        return ()
    statuses = []
    for name in cell.cameras:
        cam = cell.camera(name)
        st = cam.stats()
        statuses.append(CameraStatus(name, st.frames, round(st.fps, 1), st.drops, st.error,
                                     getattr(cam, "calibrated", True)))
    return tuple(statuses)


class CaptureDevices:
    def __init__(self, update: Callable[..., None], event: Callable[[str, str], None]):
        self._update, self._event = update, event
        self._microphone = None  # (device, label) of the microphone takes record, or None
        self._audio = None  # the microphone recording the current take
        self.video_quality: str | None = None  # how takes store their cameras; None: the take's default

    def scan(self) -> None:
        from recorders.audio_input import list_microphones
        from recorders.realsense_cameras import list_cameras

        cameras, microphones = list_cameras(), list_microphones()
        notes = [f"RealSense: {cameras.reason}" if not cameras else f"{len(cameras)} RealSense camera(s)",
                 f"microphones: {microphones.reason}" if not microphones else f"{len(microphones)} microphone(s)"]
        self._update(realsense=tuple(cameras), microphones=tuple(microphones), capture_note="; ".join(notes))

    def choose_microphone(self, device, label: str) -> None:
        """`device`: a PortAudio index, or anything with AudioRecorder's interface; None: no sound."""
        self._microphone = None if device is None else (device, label or str(device))
        self._update(microphone="off" if device is None else (label or str(device)))

    def choose_video_quality(self, quality: str | None, cell, obs: str) -> None:
        """From the next take (recorders/video_quality.py; None: the default for `cell`'s cameras)."""
        self.video_quality = quality
        self.warm_up_encoder(cell, obs)

    def warm_up_encoder(self, cell, obs: str) -> None:
        """Start a spare video encoder process when the next take will code video, so it starts at once."""
        from recorders.take import take_video_quality
        from recorders.video_encoder_process import warm_up

        if cell is not None and obs == "rgb" and cell.cameras \
                and take_video_quality(cell, self.video_quality) != "lossless":
            warm_up()

    def start_microphone(self):
        """The chosen microphone, recording; None (with an error event) when it cannot be opened."""
        if self._microphone is None:
            return None
        device, _label = self._microphone
        if hasattr(device, "on_block"):  # an already made recorder (tests, fake devices)
            recorder = device
        else:
            from recorders.audio_input import AudioRecorder

            recorder = AudioRecorder(device)
        try:
            recorder.start()
        except Exception as e:  # noqa: BLE001 - the take goes on without sound
            self._event("error", f"recording without sound: {one_line(e)}")
            return None
        self._audio = recorder
        return recorder

    def stop_microphone(self) -> None:
        audio, self._audio = self._audio, None
        if audio is not None:
            try:
                audio.stop()
            except Exception as e:  # noqa: BLE001 - a vanished microphone cannot be stopped cleanly
                self._event("error", f"the microphone did not stop cleanly: {one_line(e)}")
