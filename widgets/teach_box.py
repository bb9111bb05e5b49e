"""The Record workspace's "Objects and targets" box: teach mode on the live cameras, the list of what
the workcell was taught, and the marks of what it tracks drawn on the cameras.

    Teach (toggle)  -> a cross cursor on the cameras; a left click on an image
                    -> LiveCameras.image_clicked(camera, u, v) (pixels, widgets/image_marks.py)
                    -> ask_name(camera, u, v): the TeachNameForm popup (type the name, Enter; "object"
                       unless "target" is chosen); None: cancelled
                    -> session.teach(camera, u, v, name, kind) -> the session's "info" line or its
                       "error" line, shown under the list
    Forget          -> session.forget(name) of the selected entry
    snapshot.taught -> the list;  snapshot.marks -> LiveCameras.show_marks (every poll; cheap)

Keys: Esc on the cameras (they have the keyboard focus in teach mode) leaves teach mode. Esc is also
the e-stop key (widgets/main_window.py), and it stays one: this box watches the key on the cameras and
never takes it, so leaving teach mode with Esc also stops the arm; the Teach button leaves without
stopping. In the name form Esc only cancels the form: the form is a popup, and the main window lets an
open popup have Esc.

The box holds no domain data: it renders the snapshot and sends requests to the session.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPoint, Qt
from PySide6.QtGui import QCursor, QKeyEvent
from PySide6.QtWidgets import (
    QApplication, QDialog, QDialogButtonBox, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem,
    QPushButton, QRadioButton, QVBoxLayout, QWidget,
)

from app.workcell_tools import TEACH_KINDS
from widgets.live_views import CAMERA_TITLES, LiveCameras

KIND_COLOURS = {"object": "#8d6e00", "target": "#0277bd"}
NOTE_STYLE = "color: #555; font-size: 11px;"
ERROR_STYLE = "color: #c62828; font-size: 11px;"
TEACHING_STYLE = "QPushButton:checked { background: #ffe082; font-weight: bold; }"


class TeachNameForm(QDialog):
    """A small popup at the cursor asking what was clicked: its name and whether it is an object or a
    target. Enter confirms (not with an empty name), Esc cancels."""

    def __init__(self, camera: str, u: float, v: float, taken: tuple[str, ...] = (), parent=None):
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("teachNameForm")
        self.setStyleSheet("#teachNameForm { border: 1px solid #888; }")
        self._taken = set(taken)
        where = QLabel(f"What is at pixel ({u:.0f}, {v:.0f}) of the {CAMERA_TITLES.get(camera, camera)}?")
        self.name = QLineEdit()
        self.name.setPlaceholderText('name, e.g. "red cube", "sponge", "bin"')
        self.name.setMinimumWidth(260)
        self.object = QRadioButton("&object (tracked)")
        self.target = QRadioButton("&target (a place on the table)")
        self.object.setChecked(True)
        self.note = QLabel("Enter: teach   Esc: cancel")
        self.note.setStyleSheet(NOTE_STYLE)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Teach")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        kinds = QHBoxLayout()
        kinds.addWidget(self.object)
        kinds.addWidget(self.target)
        layout = QVBoxLayout(self)
        for w in (where, self.name):
            layout.addWidget(w)
        layout.addLayout(kinds)
        layout.addWidget(self.note)
        layout.addWidget(buttons)
        self.name.textChanged.connect(self._check)
        self._check()
        self.name.setFocus()

    def _check(self) -> None:
        name = self.name.text().strip()
        self.ok.setEnabled(bool(name) and name not in self._taken)
        self.note.setText(f"{name!r} is taught already: forget it first or choose another name"
                          if name in self._taken else "Enter: teach   Esc: cancel")
        self.note.setStyleSheet(ERROR_STYLE if name in self._taken else NOTE_STYLE)

    def accept(self) -> None:
        if self.ok.isEnabled():
            super().accept()

    def answer(self) -> tuple[str, str]:
        return self.name.text().strip(), "target" if self.target.isChecked() else "object"


class TeachBox(QGroupBox):
    """Teach objects and targets by clicking them on `cameras`; `session` takes teach / forget."""

    def __init__(self, session, cameras: LiveCameras, parent=None):
        super().__init__("Objects and targets", parent)
        self.session = session
        self.cameras = cameras
        self._taught: tuple = ()
        self._marks: dict | None = None
        self._can_teach = False
        self._hint_state: tuple = ("disconnected", False, ())  # connection, perceived, cameras not calibrated
        self._waiting = False  # a teach / forget was sent: its outcome is the next info or error line
        self._esc = _EscWatcher(self.leave_teach_mode, self)

        self.teach_button = QPushButton("Teach: click a camera image")
        self.teach_button.setCheckable(True)
        self.teach_button.setStyleSheet(TEACHING_STYLE)
        self.teach_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with teleop
        self.teach_button.setToolTip("While on, a click on a camera image names what it lands on: an object "
                                     "(segmented by colour and depth, then tracked) or a target place on the table")
        self.teach_button.toggled.connect(self._teach_toggled)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet(NOTE_STYLE)
        self.taught_list = QListWidget()
        self.taught_list.setMaximumHeight(110)
        self.taught_list.setToolTip("What the workcell knows by name: the robot API's objects and targets")
        self.taught_list.itemSelectionChanged.connect(self._enable)
        self.forget_button = QPushButton("Forget")
        self.forget_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.forget_button.setToolTip("Forget the selected object or target (teach it again to bring it back)")
        self.forget_button.clicked.connect(self.forget_selected)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet(NOTE_STYLE)
        row = QHBoxLayout()
        row.addWidget(self.teach_button, 1)
        row.addWidget(self.forget_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.hint)
        layout.addWidget(self.taught_list)
        layout.addWidget(self.note)
        self.cameras.image_clicked.connect(self.image_clicked)
        self._enable()

    # ---- teach mode --------------------------------------------------------------------------------
    @property
    def teaching(self) -> bool:
        return self.teach_button.isChecked()

    def leave_teach_mode(self) -> None:
        self.teach_button.setChecked(False)

    def _teach_toggled(self, on: bool) -> None:
        self.cameras.set_teaching(on)
        for keys in {self.cameras, self.cameras.focusProxy() or self.cameras}:  # the focused view, or its parent
            if on:
                keys.installEventFilter(self._esc)
            else:
                keys.removeEventFilter(self._esc)
        if on:
            self.cameras.setFocus()
        self._show_hint()

    def image_clicked(self, camera: str, u: float, v: float) -> None:
        if not self.teaching:
            return
        answer = self.ask_name(camera, u, v)
        if answer is None:
            return
        name, kind = answer
        if kind not in TEACH_KINDS or not name.strip():
            return
        self._send(f"teaching {name!r} ...", lambda: self.session.teach(camera, u, v, name.strip(), kind))

    def ask_name(self, camera: str, u: float, v: float) -> tuple[str, str] | None:
        """(name, "object" | "target") of what was clicked at pixel (u, v) of `camera`, or None when the
        operator cancels. Replaced in tests."""
        form = TeachNameForm(camera, u, v, taken=tuple(n for n, _ in self._taught), parent=self)
        form.adjustSize()
        form.move(_fit_on_screen(QCursor.pos() + QPoint(12, 12), form))
        accepted = form.exec() == QDialog.DialogCode.Accepted
        answer = form.answer() if accepted else None
        form.deleteLater()
        return answer

    def forget_selected(self) -> None:
        item = self.taught_list.currentItem()
        if item is not None and item.isSelected():
            name = item.data(Qt.ItemDataRole.UserRole)
            self._send(f"forgetting {name!r} ...", lambda: self.session.forget(name))

    def _send(self, note: str, request) -> None:
        self._waiting = True
        self.note.setStyleSheet(NOTE_STYLE)
        self.note.setText(note)
        request()

    # ---- rendering ---------------------------------------------------------------------------------
    def show_snapshot(self, s) -> None:
        """The session's snapshot: what is taught, whether teaching is possible, the marks."""
        perceived = s.setup is not None and s.setup.objects == "perceived"
        can_teach = s.connection == "live" and perceived and s.recording is None
        hint = (s.connection, perceived, tuple(c.name for c in s.cameras if not c.calibrated))
        if can_teach != self._can_teach or hint != self._hint_state:
            self._can_teach, self._hint_state = can_teach, hint
            if not can_teach:
                self.leave_teach_mode()
            self._enable()
            self._show_hint()
        if s.taught != self._taught:
            self._taught = s.taught
            self._show_taught(s.taught)
        if s.marks is not self._marks:
            self._marks = s.marks
            self.cameras.show_marks(s.marks, dict(s.taught))

    def show_event(self, event) -> None:
        """A session event: the outcome of the last teach or forget (the next info or error line)."""
        if self._waiting and event.kind in ("info", "error"):
            self._waiting = False
            self.note.setStyleSheet(ERROR_STYLE if event.kind == "error" else NOTE_STYLE)
            self.note.setText(event.text)

    def _show_taught(self, taught: tuple) -> None:
        selected = self.taught_list.currentItem()
        keep = selected.data(Qt.ItemDataRole.UserRole) if selected is not None else None
        self.taught_list.clear()
        for name, kind in taught:
            item = QListWidgetItem(f"{name}    ({kind})")
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setForeground(_brush(KIND_COLOURS.get(kind, "#212121")))
            self.taught_list.addItem(item)
            if name == keep:
                self.taught_list.setCurrentItem(item)
        self._enable()

    def _show_hint(self) -> None:
        connection, perceived, uncalibrated = self._hint_state
        if connection != "live":
            text = "Connect to a workcell to teach its objects and targets."
        elif not perceived:
            text = ("Objects come from the simulator's truth. To teach them, choose Objects: perceived by the "
                    "cameras (Cameras, objects and sound box) and Apply.")
        elif not self._can_teach:
            text = "Stop the recording to teach objects."
        elif self.teaching:
            text = ("<b>Teach mode</b>: click an object, or a free spot on the table for a target, in a camera "
                    "image and name it. Leave with the button, or Esc (which also stops the arm).")
        else:
            text = "Press Teach, click an object or a place on the table in a camera image, and name it."
        if uncalibrated and connection == "live":
            text += f" <span style='color:#c62828'>Not calibrated: {', '.join(uncalibrated)}.</span>"
        self.hint.setText(text)

    def _enable(self) -> None:
        self.teach_button.setEnabled(self._can_teach)
        item = self.taught_list.currentItem()
        self.forget_button.setEnabled(self._can_teach and item is not None and item.isSelected())

    def taught_names(self) -> list[str]:
        return [self.taught_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.taught_list.count())]


class _EscWatcher(QObject):
    """The cameras' event filter while teach mode is on: Esc leaves it. It never takes the key, so the
    main window's e-stop shortcut still fires; an open popup (the name form) keeps Esc for itself."""

    def __init__(self, leave, parent: QObject):
        super().__init__(parent)
        self._leave = leave

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        if (isinstance(event, QKeyEvent) and event.type() in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress)
                and event.key() == Qt.Key.Key_Escape and QApplication.activePopupWidget() is None):
            self._leave()
        return False


def _fit_on_screen(pos: QPoint, widget: QWidget) -> QPoint:
    screen = QApplication.screenAt(pos) or QApplication.primaryScreen()
    if screen is None:
        return pos
    area = screen.availableGeometry()
    x = min(pos.x(), area.right() - widget.width())
    y = min(pos.y(), area.bottom() - widget.height())
    return QPoint(max(area.left(), x), max(area.top(), y))


def _brush(hex_colour: str):
    from PySide6.QtGui import QBrush, QColor

    return QBrush(QColor(hex_colour))
