"""Setting a workcell up in the Record workspace, offscreen: teaching objects and targets by clicking the
live cameras (pixel mapping, the name form, the marks), Esc in teach mode next to the e-stop, the guided
camera calibration and the workspace box editor.

Widget-level tests drive the widgets with a recording fake session and hand-made snapshots; the end-to-end
ones run the real RecordSession on the simulated workcell with perceived objects. Waits are on conditions
(the session's snapshot, the widgets' state); their timeouts only bound a hang."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtWidgets import QApplication, QVBoxLayout, QWidget

from app.capture_devices import CameraStatus
from app.record_snapshot import SessionEvent, SessionSnapshot, TickSample
from app.workcell_setup import WorkcellSetup
from app.workcell_tools import CalibrationStatus

HANG_MS = 120_000
CAMERAS = (CameraStatus("front", 10, 10.0, 0, None, True), CameraStatus("wrist", 10, 10.0, 0, None, False))
PERCEIVED = WorkcellSetup(camera="sim", objects="perceived")


class FakeSession:
    """Records the requests the widgets send."""

    def __init__(self):
        self.sent: list[tuple] = []

    def __getattr__(self, name):
        if name in ("teach", "forget", "start_calibration", "calibration_step", "finish_calibration",
                    "cancel_calibration", "set_workspace"):
            return lambda *args: self.sent.append((name, *args))
        raise AttributeError(name)


def snapshot(**changes) -> SessionSnapshot:
    fields = dict(connection="live", setup=PERCEIVED, cameras=CAMERAS, tick=1,
                  taught=(("red cube", "object"), ("bin", "target")),
                  marks={"front": (("red cube", 100.0, 50.0, True), ("bin", 250.0, 200.0, True)),
                         "wrist": (("red cube", 30.0, 40.0, False),)})
    fields.update(changes)
    return SessionSnapshot(**fields)


def images() -> dict[str, np.ndarray]:
    front = np.zeros((240, 320, 3), np.uint8)  # not square: rows are v, columns are u
    front[:, :, 0] = np.arange(320, dtype=np.uint8)[None, :]
    return {"front": front, "wrist": np.full((128, 128, 3), 90, np.uint8)}


def click_image(qtbot, cameras, cam: str, u: float, v: float, button=Qt.MouseButton.LeftButton) -> None:
    """A mouse click on the screen pixel showing the centre of image pixel (u, v) of `cam`."""
    item = cameras.image_item(cam)
    view = item.scene().views()[0]
    where = view.mapFromScene(item.mapToScene(QPointF(u + 0.5, v + 0.5)))
    qtbot.mouseClick(view.viewport(), button, pos=where)


@pytest.fixture
def cameras(qtbot):
    from widgets.live_views import LiveCameras

    cams = LiveCameras()
    qtbot.addWidget(cams)
    cams.resize(1000, 420)
    cams.show()
    qtbot.waitExposed(cams)
    cams.show_images(images())
    return cams


def test_a_click_on_a_camera_image_is_that_images_pixel(qtbot, cameras):
    assert cameras.cameras == ["front", "wrist"]
    for cam, u, v in (("front", 300, 20), ("front", 4, 230), ("front", 160, 120), ("wrist", 100, 7)):
        with qtbot.waitSignal(cameras.image_clicked, timeout=5000) as clicked:
            click_image(qtbot, cameras, cam, u, v)
        got_cam, got_u, got_v = clicked.args
        assert got_cam == cam and (round(got_u), round(got_v)) == (u, v), clicked.args
        assert abs(got_u - u) < 0.5 and abs(got_v - v) < 0.5
    # the image's own content agrees: column u of the front image has red value u
    assert cameras.image_item("front").image[20, 300, 0] == 300 % 256


def test_names_by_close_marks_do_not_overlap_and_stay_in_the_image(qtbot, cameras):
    from widgets.image_marks import ABOVE_RIGHT

    marks = {"front": (("red cube", 100.0, 100.0, True), ("blue cube", 104.0, 108.0, True),
                       ("bin", 318.0, 5.0, True))}
    cameras.show_marks(marks, {"red cube": "object", "blue cube": "object", "bin": "target"})
    anchors = cameras.marks("front").labels()
    assert anchors["blue cube"] == ABOVE_RIGHT and anchors["red cube"] != ABOVE_RIGHT  # placed clear of it
    assert anchors["bin"][0] > 1 and anchors["bin"][1] < 0.5  # at the top-right corner: left of and below it


def test_teach_mode_names_the_clicked_pixel_and_draws_the_marks(qtbot, cameras):
    from widgets.teach_box import TeachBox

    session = FakeSession()
    box = TeachBox(session, cameras)
    qtbot.addWidget(box)
    box.show()
    asked = []
    box.ask_name = lambda cam, u, v: asked.append((cam, round(u), round(v))) or ("sponge", "object")
    box.show_snapshot(snapshot())
    assert box.taught_names() == ["red cube", "bin"]
    marks = cameras.marks("front")
    assert marks.positions() == {"red cube": (100.0, 50.0), "bin": (250.0, 200.0)}
    assert marks.styles() == {"red cube": ("object", True), "bin": ("target", True)}
    assert cameras.marks("wrist").styles() == {"red cube": ("object", False)}  # not seen now: hollow grey

    click_image(qtbot, cameras, "front", 120, 60)
    assert not asked and not session.sent  # teach mode is off: a click only focuses the cameras
    assert box.teach_button.isEnabled()
    box.teach_button.click()
    assert box.teaching and "Teach mode" in box.hint.text()
    assert cameras._view.viewport().cursor().shape() == Qt.CursorShape.CrossCursor
    click_image(qtbot, cameras, "front", 120, 60)
    assert asked == [("front", 120, 60)]
    name, cam, u, v, teach_name, kind = session.sent[-1]
    assert (name, cam, round(u), round(v), teach_name, kind) == ("teach", "front", 120, 60, "sponge", "object")
    box.ask_name = lambda cam, u, v: ("bowl", "target")
    click_image(qtbot, cameras, "wrist", 64, 30)
    assert session.sent[-1][0:2] == ("teach", "wrist") and session.sent[-1][4:] == ("bowl", "target")
    box.ask_name = lambda cam, u, v: None  # cancelled: nothing sent
    click_image(qtbot, cameras, "front", 10, 10)
    assert len(session.sent) == 2
    box.show_event(SessionEvent("error", "nothing stands on the table at (10, 10)"))
    assert "nothing stands" in box.note.text() and "c62828" in box.note.styleSheet()

    # the marks follow the next snapshot without new items; a forgotten name's mark goes
    item = marks._marks["red cube"].marker
    box.show_snapshot(snapshot(taught=(("red cube", "object"),),
                               marks={"front": (("red cube", 104.0, 52.0, False),)}))
    assert marks.positions() == {"red cube": (104.0, 52.0)} and marks._marks["red cube"].marker is item
    assert marks.styles()["red cube"] == ("object", False)

    box.taught_list.setCurrentRow(0)
    box.forget_button.click()
    assert session.sent[-1] == ("forget", "red cube")

    qtbot.keyClick(cameras.focusProxy(), Qt.Key.Key_Escape)
    assert not box.teaching
    assert cameras._view.viewport().cursor().shape() != Qt.CursorShape.CrossCursor


def test_teaching_needs_perceived_objects_and_no_recording(qtbot, cameras):
    from widgets.teach_box import TeachBox

    box = TeachBox(FakeSession(), cameras)
    qtbot.addWidget(box)
    box.show_snapshot(snapshot(setup=WorkcellSetup(camera="sim", objects="true"), taught=(), marks={}))
    assert not box.teach_button.isEnabled() and "perceived by the cameras" in box.hint.text()
    box.show_snapshot(snapshot())
    box.teach_button.click()
    assert box.teaching and "Not calibrated: wrist" in box.hint.text()
    box.show_snapshot(snapshot(connection="disconnected"))
    assert not box.teaching and not box.teach_button.isEnabled()


def test_the_name_form_takes_a_name_and_enter_and_refuses_a_taken_name(qtbot):
    from widgets.teach_box import TeachNameForm

    form = TeachNameForm("front", 12.0, 34.0, taken=("red cube",))
    qtbot.addWidget(form)
    form.open()
    qtbot.waitExposed(form)
    assert form.object.isChecked() and not form.ok.isEnabled()
    qtbot.keyClicks(form.name, "red cube")
    assert not form.ok.isEnabled() and "taught already" in form.note.text()
    qtbot.keyClick(form.name, Qt.Key.Key_Return)
    assert form.isVisible()  # a taken name is not accepted
    form.name.clear()
    qtbot.keyClicks(form.name, "sponge")
    with qtbot.waitSignal(form.accepted, timeout=5000):
        qtbot.keyClick(form.name, Qt.Key.Key_Return)
    assert form.answer() == ("sponge", "object")
    form.target.setChecked(True)
    assert form.answer() == ("sponge", "target")


def test_escape_in_teach_mode_still_stops_the_arm_and_cancels_only_the_name_form(qtbot, cameras):
    from widgets.main_window import MainWindow
    from widgets.teach_box import TeachBox

    stops = []
    record = QWidget()
    layout = QVBoxLayout(record)
    box = TeachBox(FakeSession(), cameras)
    layout.addWidget(cameras)
    layout.addWidget(box)
    window = MainWindow([("Record", record)], estop=lambda: stops.append("stop"), reset_estop=lambda: None,
                        estop_reason=lambda: None)
    qtbot.addWidget(window)
    window.resize(1100, 700)
    window.show()
    window.windowHandle().requestActivate()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    cameras.show_images(images())
    box.show_snapshot(snapshot())
    box.teach_button.click()

    forms, ask = [], box.ask_name

    def press_escape_in_the_form():
        form = QApplication.activePopupWidget()
        forms.append(type(form).__name__)
        if form is not None:
            qtbot.keyClick(form.name, Qt.Key.Key_Escape)

    def ask_then_escape(cam, u, v):
        QTimer.singleShot(0, press_escape_in_the_form)  # runs inside the form's own event loop
        return ask(cam, u, v)

    box.ask_name = ask_then_escape
    click_image(qtbot, cameras, "front", 50, 50)
    assert forms == ["TeachNameForm"]
    assert stops == [] and box.teaching  # Esc cancelled the form only
    assert box.session.sent == []
    qtbot.keyClick(cameras.focusProxy(), Qt.Key.Key_Escape)
    assert stops == ["stop"] and not box.teaching  # the e-stop fires; teach mode is left too


def test_the_calibration_dialog_steps_run_all_on_status_and_shows_the_result(qtbot):
    from widgets.calibration_dialog import CalibrationBox

    session = FakeSession()
    box = CalibrationBox(session)
    qtbot.addWidget(box)
    box.show_snapshot(snapshot(simulated=False))
    assert "front: calibrated" in box.state.text() and "wrist: not calibrated" in box.state.text()
    dialog = box.open_dialog()
    dialog.camera.setCurrentIndex(dialog.camera.findData("wrist"))
    assert "board flat on the table" in dialog.instructions.text() and "not calibrated" in dialog.camera_state.text()
    dialog.camera.setCurrentIndex(dialog.camera.findData("front"))
    assert "to the hand" in dialog.instructions.text()
    dialog.poses.setValue(3)  # fewer than the fewest poses: the spin box keeps 4
    dialog.start_button.click()
    assert session.sent == [("start_calibration", "front", 4)] and not dialog.start_button.isEnabled()
    status = CalibrationStatus("front", 0, 3, 0, "3 poses planned")
    box.show_snapshot(snapshot(simulated=False, calibration=status))
    assert dialog.next_button.isEnabled() and not dialog.solve_button.isEnabled()
    dialog.run_all_button.click()
    assert session.sent[-1] == ("calibration_step",)
    board = np.full((48, 64, 3), 200, np.uint8)
    for pose in (1, 2):
        box.show_snapshot(snapshot(simulated=False, calibration=CalibrationStatus(
            "front", pose, 3, pose, f"pose {pose}/3: 20 corners", board)))
        assert session.sent.count(("calibration_step",)) == pose + 1  # the next step once this one arrived
    assert not dialog.next_button.isEnabled() and not dialog.solve_button.isEnabled()
    box.show_snapshot(snapshot(simulated=False, calibration=CalibrationStatus("front", 3, 3, 3, "pose 3/3", board)))
    assert session.sent.count(("calibration_step",)) == 3 and not dialog.run_all_button.isChecked()
    assert dialog.progress.value() == 3 and "3 captures" in dialog.captures.text()
    assert dialog.image.image.shape == board.shape
    dialog.solve_button.click()
    assert session.sent[-1] == ("finish_calibration",)
    box.show_snapshot(snapshot(simulated=False, calibration=CalibrationStatus(
        "front", 3, 3, 3, "solved", board, 1.23, 0.456, "/data/workcells/franky/calibration.json")))
    assert "1.2 mm, 0.46 deg" in dialog.result.text() and "calibration.json" in dialog.result.text()
    assert dialog.start_button.isEnabled() and not dialog.cancel_button.isEnabled()

    # an error while Run all waits stops it
    dialog.start_button.click()
    box.show_snapshot(snapshot(simulated=False, calibration=CalibrationStatus("front", 0, 3, 0, "planned")))
    dialog.run_all_button.click()
    box.show_event(SessionEvent("error", "the safety layer refused the pose"))
    assert not dialog.run_all_button.isChecked() and "refused" in dialog.message.text()
    assert dialog.next_button.isEnabled()
    dialog.cancel_button.click()
    assert session.sent[-1] == ("cancel_calibration",)


def test_the_workspace_editor_edits_by_numbers_and_by_dragging(qtbot):
    from widgets.workspace_box_editor import WorkspaceBoxEditor

    session = FakeSession()
    editor = WorkspaceBoxEditor(session)
    qtbot.addWidget(editor)
    editor.show()
    box = ((0.2, -0.45, 0.005), (0.8, 0.45, 0.7))
    samples = (TickSample(0.0, (0.55, 0.0, 0.52), 0.08),)
    editor.show_snapshot(snapshot(workspace=box, samples=samples))
    assert editor.box() == box and not editor.apply_button.isEnabled()
    assert editor.tcp.data["x"].tolist() == [0.55]
    editor.upper[2].selectAll()
    qtbot.keyClicks(editor.upper[2], "0.45")
    assert editor.apply_button.isEnabled() and "outside" in editor.tcp_label.textItem.toPlainText()
    editor.apply_button.click()
    assert session.sent[-1] == ("set_workspace", (0.2, -0.45, 0.005), (0.8, 0.45, 0.45))
    editor.show_event(SessionEvent("error", "the gripper at (0.550, 0.000, 0.520) m is outside that box"))
    assert "outside that box" in editor.note.text() and "c62828" in editor.note.styleSheet()

    editor.revert_button.click()
    assert editor.box() == box
    editor.roi.setPos((0.25, -0.3), finish=False)
    editor.roi.setSize((0.5, 0.6))  # finishing, as a released drag does
    lower, upper = editor.box()
    assert np.allclose(lower, (0.25, -0.3, 0.005)) and np.allclose(upper, (0.75, 0.3, 0.7))
    assert editor.apply_button.isEnabled()


# ---- end to end on the simulated workcell -------------------------------------------------------------
@pytest.fixture
def perceived_panel(qtbot, tmp_path):
    from app.record_session import RecordSession
    from widgets.record_panel import RecordPanel

    session = RecordSession(tmp_path, task="stack", seed=3,
                            setup=WorkcellSetup(camera="sim", objects="perceived", folder=tmp_path / "workcell"))
    panel = RecordPanel(session)
    qtbot.addWidget(panel)
    panel.resize(1500, 950)
    panel.show()
    qtbot.waitExposed(panel)
    session.connect_robot()
    qtbot.waitUntil(lambda: panel._snap.connection == "live" and bool(panel._snap.marks.get("front")), timeout=HANG_MS)
    yield panel
    session.close(HANG_MS / 1000)
    assert not session._thread.is_alive()


def outcome(qtbot, teach) -> str:
    """The session's answer to the last teach or forget, once it arrives."""
    qtbot.waitUntil(lambda: not teach.note.text().endswith("..."), timeout=HANG_MS)
    return teach.note.text()


def log_texts(panel) -> list[str]:
    return [panel.log.item(i).text() for i in range(panel.log.count())]


@pytest.mark.slow
def test_click_a_cube_name_it_and_see_it_tracked(qtbot, perceived_panel):
    panel = perceived_panel
    teach = panel.teach
    qtbot.waitUntil(lambda: "red cube" in teach.taught_names(), timeout=HANG_MS)
    qtbot.waitUntil(lambda: "front" in panel.cameras.cameras
                    and "red cube" in panel.cameras.marks("front").positions(), timeout=HANG_MS)
    u, v, _ = next((u, v, s) for n, u, v, s in panel._snap.marks["front"] if n == "red cube")
    teach.taught_list.setCurrentRow(teach.taught_names().index("red cube"))
    teach.forget_button.click()
    assert outcome(qtbot, teach) == "forgot 'red cube'"
    qtbot.waitUntil(lambda: "red cube" not in teach.taught_names(), timeout=HANG_MS)
    qtbot.waitUntil(lambda: "red cube" not in panel.cameras.marks("front").positions(), timeout=HANG_MS)

    teach.ask_name = lambda cam, cu, cv: ("my cube", "object")
    teach.teach_button.click()
    click_image(qtbot, panel.cameras, "front", round(u), round(v))
    assert outcome(qtbot, teach).startswith("taught the object 'my cube'")
    qtbot.waitUntil(lambda: "my cube" in teach.taught_names(), timeout=HANG_MS)
    assert dict(panel._snap.taught)["my cube"] == "object"
    qtbot.waitUntil(lambda: "my cube" in panel.cameras.marks("front").positions(), timeout=HANG_MS)
    mu, mv = panel.cameras.marks("front").positions()["my cube"]
    assert abs(mu - u) < 6 and abs(mv - v) < 6  # tracked where the cube stands

    teach.ask_name = lambda cam, cu, cv: ("red cube", "object")  # the table, not an object: refused
    height, width = panel.cameras.image_item("front").image.shape[:2]
    click_image(qtbot, panel.cameras, "front", round(0.05 * width), round(0.95 * height))
    assert teach.note.text() == "teaching 'red cube' ..."
    assert outcome(qtbot, teach) and "c62828" in teach.note.styleSheet()
    assert "red cube" not in teach.taught_names()
    tick = panel.session.snapshot().tick
    qtbot.waitUntil(lambda: panel._snap.tick > tick + 2, timeout=HANG_MS)  # the teach was long done
    assert "my cube" in panel._snap.objects  # the robot API's object now
    panel.palette.choose("pick", "my cube")
    assert panel.palette.call_for("pick").code == 'pick("my cube")'  # the skill palette offers it


@pytest.mark.slow
def test_calibrate_the_wrist_camera_in_the_simulator(qtbot, perceived_panel):
    panel = perceived_panel
    dialog = panel.calibration.open_dialog()
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=HANG_MS)
    dialog.camera.setCurrentIndex(dialog.camera.findData("wrist"))
    dialog.poses.setValue(4)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.run_all_button.isEnabled(), timeout=HANG_MS)
    dialog.run_all_button.click()
    qtbot.waitUntil(lambda: panel._snap.calibration is not None and panel._snap.calibration.pose == 4, timeout=HANG_MS)
    qtbot.waitUntil(lambda: not dialog.run_all_button.isChecked(), timeout=HANG_MS)
    status = panel._snap.calibration
    assert status.captures >= 3, status.message  # the board seen from most poses
    assert dialog.solve_button.isEnabled() and dialog.image.image is not None
    assert dialog.progress.value() == 4 and f"{status.captures} captures" in dialog.captures.text()
    dialog.solve_button.click()
    qtbot.waitUntil(lambda: "residual" in dialog.result.text(), timeout=HANG_MS)
    status = panel._snap.calibration
    assert status.residual_mm < 10 and "calibration.json" in dialog.result.text()
    assert f"{status.residual_mm:.1f} mm" in dialog.result.text()
    assert any(t.startswith("solved from") for t in log_texts(panel))


@pytest.mark.slow
def test_the_workspace_box_is_set_from_the_editor(qtbot, perceived_panel):
    panel = perceived_panel
    editor = panel.workspace_box
    qtbot.waitUntil(lambda: editor.box() == panel._snap.workspace and len(panel._snap.samples) > 0, timeout=HANG_MS)
    lower, upper = panel._snap.workspace
    editor.upper[0].selectAll()
    qtbot.keyClicks(editor.upper[0], "0.75")
    editor.apply_button.click()
    qtbot.waitUntil(lambda: panel._snap.workspace[1][0] == pytest.approx(0.75), timeout=HANG_MS)
    assert panel._snap.workspace[0] == pytest.approx(lower)
    qtbot.waitUntil(lambda: "saved in" in editor.note.text(), timeout=HANG_MS)
    assert not editor.apply_button.isEnabled()

    tcp_z = panel._snap.samples[-1].ee_xyz[2]
    editor.upper[2].setValue(round(tcp_z - 0.1, 3))  # a box below the gripper
    editor.apply_button.click()
    qtbot.waitUntil(lambda: "outside that box" in editor.note.text(), timeout=HANG_MS)
    assert "c62828" in editor.note.styleSheet() and panel._snap.workspace[1][2] == pytest.approx(upper[2])
