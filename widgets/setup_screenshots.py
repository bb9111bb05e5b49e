"""The `screenshots` command's pictures of setting a workcell up in the Record workspace: teaching
objects and targets by clicking them (with the tracker's marks on both cameras), and a camera's
hand-eye calibration solved from the board. Offscreen, on the simulated workcell with perceived
objects, driven through the widgets as an operator would (widgets/launcher.py calls `shoot_setup`)."""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtWidgets import QScrollArea

from app.errors import UserError

CALIBRATION_POSES = 6


def _wait(app, done, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            raise UserError(f"screenshots: {what} did not happen within {timeout:.0f} s")
        app.processEvents()
        time.sleep(0.01)


def _settle(app, seconds: float = 0.3) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def shoot_setup(app, out: Path, data: Path) -> list[str]:
    from app.record_session import RecordSession
    from app.workcell_setup import WorkcellSetup
    from widgets.record_panel import RecordPanel

    session = RecordSession(data, task="stack", seed=3,
                            setup=WorkcellSetup(camera="sim", objects="perceived", folder=data / "workcells" / "sim"))
    panel = RecordPanel(session)
    panel.resize(1440, 920)
    panel.show()
    try:
        session.connect_robot()
        _wait(app, lambda: panel._snap.connection == "live" and bool(panel._snap.marks.get("front")), 120,
              "the perceived workcell")
        return [_shoot_teach(app, panel, out / "teach.png"), _shoot_calibration(app, panel, out / "calibration.png")]
    finally:
        session.close()
        panel.close()


def _shoot_teach(app, panel, path: Path) -> str:
    """Forget one cube, teach it again as "sponge" by clicking it, and a free spot as a target."""
    teach = panel.teach
    _wait(app, lambda: len(panel.cameras.marks("front").positions()) >= 3, 60, "the marks")
    name = next(n for n in teach.taught_names() if n.endswith("cube"))
    u, v = panel.cameras.marks("front").positions()[name]
    teach.taught_list.setCurrentRow(teach.taught_names().index(name))
    teach.forget_button.click()
    _wait(app, lambda: name not in teach.taught_names(), 30, f"forgetting the {name}")
    teach.teach_button.setChecked(True)
    teach.ask_name = lambda camera, cu, cv: ("sponge", "object")
    teach.image_clicked("front", u, v)
    _wait(app, lambda: "sponge" in teach.taught_names(), 30, "teaching the sponge")
    h, w = panel.cameras.image_item("front").image.shape[:2]
    teach.ask_name = lambda camera, cu, cv: ("drop spot", "target")
    teach.image_clicked("front", 0.25 * w, 0.85 * h)
    _wait(app, lambda: "drop spot" in teach.taught_names(), 30, "teaching the drop spot")
    _wait(app, lambda: "sponge" in panel.cameras.marks("wrist").positions(), 30, "the sponge in the wrist camera")
    scroll = panel.findChild(QScrollArea)
    scroll.verticalScrollBar().setValue(scroll.verticalScrollBar().maximum())
    _settle(app)
    panel.grab().save(str(path))
    teach.teach_button.setChecked(False)
    return str(path)


def _shoot_calibration(app, panel, path: Path) -> str:
    """The wrist camera calibrated from the table board: every pose visited, solved, the residual shown."""
    dialog = panel.calibration.open_dialog()
    dialog.camera.setCurrentIndex(dialog.camera.findData("wrist"))
    dialog.poses.setValue(CALIBRATION_POSES)
    dialog.start_button.click()
    _wait(app, lambda: dialog.run_all_button.isEnabled(), 120, "planning the calibration")
    dialog.run_all_button.click()
    _wait(app, lambda: dialog.solve_button.isEnabled() and panel._snap.calibration is not None
          and panel._snap.calibration.pose == CALIBRATION_POSES, 300, "the calibration poses")
    dialog.solve_button.click()
    _wait(app, lambda: "residual" in dialog.result.text(), 120, "solving the calibration")
    _settle(app)
    dialog.grab().save(str(path))
    dialog.close()
    return str(path)
