"""The Record workspace's capture devices, offscreen: the camera / objects / sound box, the per-camera
status, and a real take judged by the operator when it is stopped."""
from __future__ import annotations

import pytest

from app.record_session import RecordSession
from recorders.episode_file import open_episode
from tests.fake_devices import FakeCameraDevice
from tests.test_real_takes import FakeRealCell

pytestmark = pytest.mark.slow
HANG_MS = 120_000


@pytest.fixture
def real_panel(qtbot, tmp_path):
    from widgets.record_panel import RecordPanel

    devices = {"front": FakeCameraDevice("111"), "wrist": FakeCameraDevice("222", seed=1)}
    session = RecordSession(tmp_path, robot="franky", robot_ip="10.0.0.2",
                            workcell_factory=lambda robot, inst, hz, ip: FakeRealCell(devices))
    panel = RecordPanel(session)
    qtbot.addWidget(panel)
    panel.resize(1400, 900)
    panel.show()
    session.connect_robot()
    qtbot.waitUntil(lambda: panel._snap.connection == "live", timeout=HANG_MS)
    yield panel
    session.close(HANG_MS / 1000)
    assert not session._thread.is_alive()


def test_a_real_take_is_judged_by_the_operator_when_it_stops(qtbot, real_panel, tmp_path):
    panel = real_panel
    qtbot.waitUntil(lambda: panel.devices.status.rowCount() == 2, timeout=HANG_MS)
    qtbot.waitUntil(lambda: panel.devices.status.item(0, 1).text() not in ("0.0", "with ticks"), timeout=HANG_MS)
    assert panel.devices.status.item(0, 0).text() == "front"
    assert "not calibrated" in panel.devices.status.item(0, 3).text()
    assert panel.devices.camera_source.currentData() == "realsense"
    assert not panel.devices.objects.isEnabled()  # a real arm only perceives its objects
    assert "in your words" in panel.instruction.placeholderText() and panel.instruction.text() == ""
    panel.instruction.setText("put the sponge in the bowl")
    video = panel.devices.video
    assert video.currentData() is None  # automatic: H.264 for these device cameras
    high = video.findData("high")
    video.setCurrentIndex(high)
    video.activated.emit(high)  # as a click on the item does
    panel.toggle_recording()
    qtbot.waitUntil(lambda: panel._snap.recording is not None, timeout=HANG_MS)
    qtbot.waitUntil(lambda: panel._snap.tick > 5, timeout=HANG_MS)
    panel.ask_success = lambda: "cancel"
    panel.toggle_recording()  # cancelled: still recording
    assert panel.session.wait_until_idle(HANG_MS / 1000)  # every request sent so far was handled
    assert panel.session.snapshot().recording is not None
    panel.ask_success = lambda: False
    with qtbot.waitSignal(panel.episode_saved, timeout=HANG_MS) as saved:
        panel.toggle_recording()
    with open_episode(saved.args[0]) as ep:
        assert ep.success is False and ep.instruction == "put the sponge in the bowl"
        assert ep.stream_count("front_rgb") > 0
        assert ep.stream_encoding("front_rgb")["crf"] == 18 and ep.stream_data("front_rgb")[0].shape == (48, 64, 3)
    panel.grab().save(str(tmp_path / "record_real.png"))


def test_the_box_refuses_a_camera_twice_and_lists_what_the_scan_found(qtbot, tmp_path):
    from widgets.record_devices import CaptureDevicesBox
    from recorders.realsense_cameras import CameraInfo

    box = CaptureDevicesBox()
    qtbot.addWidget(box)
    box.show_robot("franky", tmp_path, None)
    box.show_devices((CameraInfo("111", "Intel RealSense D435", "5.16"), CameraInfo("222", "Intel RealSense D405", "5.16")),
                     (), "2 RealSense camera(s); microphones: no microphone found")
    assert box.front.count() == 3 and box.front.itemData(1) == "111"
    box.front.setCurrentIndex(1)
    box.wrist.setCurrentIndex(1)
    chosen = []
    box.setup_chosen.connect(chosen.append)
    box.apply_button.click()
    assert not chosen and "both" in box.note.text()
    box.wrist.setCurrentIndex(2)
    box.apply_button.click()
    setup = chosen[-1]
    assert setup.camera == "realsense" and setup.objects == "perceived"
    assert (setup.rig.front, setup.rig.wrist, setup.rig.width, setup.rig.fps) == ("111", "222", 640, 30)
    assert setup.folder == tmp_path / "workcells" / "franky"
    box.show_robot("sim", tmp_path, None)
    assert box.camera_source.currentData() == "sim" and not box.front.isEnabled() and box.objects.isEnabled()
