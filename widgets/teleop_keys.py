"""Keyboard teleop: turns key presses in a workspace into teleop intents, and shows the key help
(with the main window's e-stop keys, SAFETY_KEYS).

`TeleopKeys` is an application event filter that is active only while its workspace is visible.
It takes the teleop keys (recorders/teleop.KEY_BINDINGS), the speed keys and the label hotkeys
(1-4) unless a text field has the focus, so typing a task text never moves the arm. Releasing
the window (focus lost, tab switched) releases every key: a key can never stay stuck down.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QLabel, QLineEdit, QPlainTextEdit, QTextEdit, QWidget

from app.domain import KEY_BINDINGS, SPEED_KEYS, TeleopIntent, intent_from_keys, is_teleop_key
from widgets.main_window import SAFETY_KEYS
from widgets.skill_palette import LABEL_HOTKEYS

_SHORTCUT_MODIFIERS = (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
                       | Qt.KeyboardModifier.MetaModifier)
_TEXT_INPUTS = (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox)


def key_name(event) -> str:
    """The key's name as KEY_BINDINGS spells it ("W", "Space", "+")."""
    return QKeySequence(event.key()).toString()


class TeleopKeys(QObject):
    intent_changed = Signal(object)  # TeleopIntent
    speed_step = Signal(int)  # +1 faster, -1 slower
    label_hotkey = Signal(str)  # "1".."4"

    def __init__(self, workspace: QWidget):
        super().__init__(workspace)
        self._workspace = workspace
        self._held: set[str] = set()
        QApplication.instance().installEventFilter(self)

    @property
    def held(self) -> set[str]:
        return set(self._held)

    def release_all(self) -> None:
        if self._held:
            self._held.clear()
            self.intent_changed.emit(TeleopIntent())

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt override
        kind = event.type()
        if kind in (QEvent.Type.ApplicationDeactivate, QEvent.Type.WindowDeactivate):
            self.release_all()
            return False
        if kind not in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) or not self._active():
            return False
        if event.modifiers() & _SHORTCUT_MODIFIERS:
            return False  # Ctrl/Alt shortcuts belong to the window
        name = key_name(event)
        if not (is_teleop_key(name) or name in LABEL_HOTKEYS.values()):
            return False
        focus = QApplication.focusWidget()
        if isinstance(focus, _TEXT_INPUTS):
            return False
        if kind == QEvent.Type.KeyPress:
            self._press(name, event.isAutoRepeat())
        elif not event.isAutoRepeat():
            self._release(name)
        return True

    def _active(self) -> bool:
        w = self._workspace
        return w.isVisible() and w.window().isActiveWindow()

    def _press(self, name: str, repeat: bool) -> None:
        if repeat:
            return
        if name in SPEED_KEYS:
            self.speed_step.emit(SPEED_KEYS[name])
        elif name in LABEL_HOTKEYS.values():
            self.label_hotkey.emit(name)
        else:
            if name == "Space":
                self.intent_changed.emit(intent_from_keys(self._held, {name}))
                return
            self._held.add(name)
            self.intent_changed.emit(intent_from_keys(self._held))

    def _release(self, name: str) -> None:
        if name in self._held:
            self._held.discard(name)
            self.intent_changed.emit(intent_from_keys(self._held))


def teleop_help_text(extra: tuple[tuple[str, str], ...] = ()) -> str:
    """Rich text listing every key, for the workspace's help box."""
    rows = [(b.key, b.help) for b in KEY_BINDINGS]
    rows += [("+ / -", "faster / slower")]
    rows += [(key, f"label teleop as {name}(...); {key} again: close")
             for name, key in LABEL_HOTKEYS.items()]
    rows += [*SAFETY_KEYS, *extra]
    return _table(rows, columns=2)


def device_help_text() -> str:
    """Rich text for the gamepad and SpaceMouse bindings (the device chooser's tooltip)."""
    from app.domain import GAMEPAD_HELP, SPACEMOUSE_HELP

    return ("A gamepad or SpaceMouse moves the arm together with the keyboard.<br><b>Gamepad</b>"
            + _table(GAMEPAD_HELP) + "<b>SpaceMouse</b>" + _table(SPACEMOUSE_HELP))


def _table(rows, columns: int = 1) -> str:
    """Key / meaning pairs as an HTML table, `columns` pairs per row (filled column by column)."""
    rows = list(rows)
    per_column = -(-len(rows) // columns)
    lines = []
    for i in range(per_column):
        cells = ""
        for c in range(columns):
            j = c * per_column + i
            k, v = rows[j] if j < len(rows) else ("", "")
            cells += f"<td><b>{k}</b>&nbsp;</td><td>{v}&nbsp;&nbsp;&nbsp;</td>"
        lines.append(f"<tr>{cells}</tr>")
    return f"<table cellspacing='0' cellpadding='1'>{''.join(lines)}</table>"


def help_label(extra: tuple[tuple[str, str], ...] = ()) -> QLabel:
    label = QLabel(teleop_help_text(extra))
    label.setWordWrap(True)
    label.setStyleSheet("font-size: 11px;")
    return label
