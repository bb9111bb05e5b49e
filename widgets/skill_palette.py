"""The skill palette: one row per robot-API function, its arguments chosen from the scene.

Rows are built from the registry (recorders/robot_api_spec.API), so a function added there shows
up here. Object choosers list the scene's objects; target choosers add the zones, recall(key) for
every remembered key and free_space(obj). A row's button emits `call_requested(Call)`; the hotkey
of a motion row (1-4) emits `label_requested(Call)` to label a teleoperated stretch instead. The
palette only composes calls: running them is the record session's job.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QDoubleSpinBox, QGridLayout, QLabel, QLineEdit, QPushButton, QSizePolicy, QWidget,
)

from app.domain import API, DIRECTIONS, MAX_DISTANCE_M, Call, FunctionSpec, InvalidCallError

PALETTE_FUNCTIONS = ("pick", "place", "push", "home", "remember", "done")
LABEL_HOTKEYS = {"pick": "1", "place": "2", "push": "3", "home": "4"}  # open / close a labelled stretch


class SkillPalette(QWidget):
    call_requested = Signal(object)  # Call
    label_requested = Signal(object)  # Call

    def __init__(self, parent=None, label_hotkeys: bool = True):
        """`label_hotkeys`: show the 1-4 keys that label a teleoperated stretch (Record; a Run take-over
        is labelled with the call it corrects, so it has none)."""
        super().__init__(parent)
        self._objects: list[str] = []
        self._zones: list[str] = []
        self._keys: list[str] = []
        self._inputs: dict[str, list[QWidget]] = {}
        self.buttons: dict[str, QPushButton] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        for row, name in enumerate(PALETTE_FUNCTIONS):
            f = API[name]
            button = QPushButton(name)
            hotkey = LABEL_HOTKEYS.get(name) if label_hotkeys else None
            tip = f"{f.signature}: {f.doc}"
            if hotkey:
                tip += f"\nKey {hotkey}: label what you teleoperate next as this call (press {hotkey} again to close)"
            button.setToolTip(tip)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with teleop
            button.clicked.connect(lambda _=False, n=name: self._emit(n, self.call_requested))
            self.buttons[name] = button
            grid.addWidget(button, row, 0)
            self._inputs[name] = [self._input_for(f, p.type) for p in f.params]
            for col, widget in enumerate(self._inputs[name], start=1):
                grid.addWidget(widget, row, col)
            if hotkey:
                key = QLabel(hotkey)
                key.setToolTip(button.toolTip())
                key.setStyleSheet("color: #888; border: 1px solid #888; border-radius: 3px; padding: 0 4px;")
                grid.addWidget(key, row, 4)
        self.preview = QLabel("")
        self.preview.setStyleSheet("font-family: monospace; color: #555;")
        self.preview.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        grid.addWidget(self.preview, len(PALETTE_FUNCTIONS), 0, 1, 5)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(2, 1)
        grid.setColumnStretch(3, 1)

    # ---- scene -------------------------------------------------------------------------------------
    def set_scene(self, objects: list[str], zones: list[str], memory_keys: list[str] = ()) -> None:
        """Refill every chooser, keeping the current choice where it still exists."""
        if (list(objects), list(zones), list(memory_keys)) == (self._objects, self._zones, self._keys):
            return
        self._objects, self._zones, self._keys = list(objects), list(zones), list(memory_keys)
        for name, widgets in self._inputs.items():
            for p, widget in zip(API[name].params, widgets):
                if isinstance(widget, QComboBox) and p.type in ("object", "target"):
                    current = widget.currentText()
                    widget.clear()
                    widget.addItems(self._choices(p.type))
                    if current:
                        widget.setCurrentText(current)
        for name, button in self.buttons.items():
            button.setEnabled(bool(objects) or not any(p.type == "object" for p in API[name].params))

    def _choices(self, kind: str) -> list[str]:
        if kind == "object":
            return self._objects
        return (self._objects + self._zones + [f'recall("{k}")' for k in self._keys]
                + [f'free_space("{o}")' for o in self._objects])

    # ---- composing calls ---------------------------------------------------------------------------
    def call_for(self, name: str) -> Call:
        """The call a row's button would run now; InvalidCallError if an argument is missing or bad."""
        f = API[name]
        args = []
        for p, widget in zip(f.params, self._inputs[name]):
            if isinstance(widget, QDoubleSpinBox):
                args.append(repr(round(widget.value(), 3)))
                continue
            text = widget.currentText() if isinstance(widget, QComboBox) else widget.text()
            if not text.strip():
                raise InvalidCallError(f"{name}(): choose a value for {p.name}")
            nested = p.type == "target" and text.endswith(")") and "(" in text
            args.append(text if nested else _quote(text.strip()))
        return Call.from_code(f"{name}({', '.join(args)})", self._objects + self._zones)

    def choose(self, name: str, *values) -> None:
        """Set a row's arguments (scripts and tests)."""
        for widget, value in zip(self._inputs[name], values):
            if isinstance(widget, QComboBox):
                widget.setCurrentText(str(value))
            elif isinstance(widget, QDoubleSpinBox):
                widget.setValue(float(value))
            else:
                widget.setText(str(value))

    def request_label(self, hotkey: str) -> bool:
        """The hotkey of a motion row was pressed; False if no row has that key."""
        for name, key in LABEL_HOTKEYS.items():
            if key == hotkey:
                self._emit(name, self.label_requested)
                return True
        return False

    def _emit(self, name: str, signal) -> None:
        try:
            call = self.call_for(name)
        except InvalidCallError as e:
            self.preview.setText(f"cannot call {name}: {e}")
            self.preview.setStyleSheet("font-family: monospace; color: #c62828;")
            return
        self.preview.setText(call.code)
        self.preview.setStyleSheet("font-family: monospace; color: #555;")
        signal.emit(call)

    def _input_for(self, f: FunctionSpec, kind: str) -> QWidget:
        if kind in ("object", "target"):
            w = QComboBox()
            w.setMinimumContentsLength(10)
            w.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        elif kind == "direction":
            w = QComboBox()
            w.addItems(DIRECTIONS)
        elif kind == "distance":
            w = QDoubleSpinBox()
            w.setRange(0.01, MAX_DISTANCE_M)
            w.setSingleStep(0.01)
            w.setValue(0.1)
            w.setSuffix(" m")
        else:  # key
            w = QLineEdit("A")
            w.setPlaceholderText("key")
            w.setMaximumWidth(90)
        w.setToolTip(f"{f.name}(): {kind}")
        w.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        return w


def _quote(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)
