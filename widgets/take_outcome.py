"""The take's outcome above the Annotate timeline: its instruction (a line edit) and success (succeeded /
failed / unknown).

It renders an `AnnotationModel`'s `instruction` and `success` (redrawing on `outcome_changed`, so undo
and redo show here) and emits intents: `instruction_edited` once the typing is finished (Return or
leaving the field) and only when the text differs, `success_chosen` when the user picks an entry.
The panel turns each into one undoable model edit. A real take (task id `teleop` or `instruction`)
has only its instruction to say what it does, so the field is large and says so when empty.
"""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QWidget

from app.annotation import AnnotationModel

SUCCESS_CHOICES = (("success unknown", None), ("succeeded", True), ("failed", False))
SUCCESS_STYLES = {True: "color: #1f8f3a; font-weight: bold", False: "color: #c03030; font-weight: bold", None: ""}


class TakeOutcomeWidget(QWidget):
    instruction_edited = Signal(str)
    success_chosen = Signal(object)  # True, False or None (unknown)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model: AnnotationModel | None = None
        self.kind = QLabel()
        self.kind.setStyleSheet("color: #a0a0a0")
        self.instruction = QLineEdit()
        self.instruction.setToolTip("The instruction this take carries out; the planner learns from it "
                                    "(Return or leaving the field makes it one undoable edit)")
        font = self.instruction.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        self.instruction.setFont(font)
        self.success = QComboBox()
        for text, value in SUCCESS_CHOICES:
            self.success.addItem(text, value)
        self.success.setToolTip("Whether the take did what its instruction says")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.kind)
        layout.addWidget(self.instruction, 1)
        layout.addWidget(self.success)
        self.instruction.editingFinished.connect(self._on_instruction_finished)
        self.success.activated.connect(lambda i: self.success_chosen.emit(self.success.itemData(i)))
        self.set_model(None)

    def set_model(self, model: AnnotationModel | None) -> None:
        if self.model is not None:
            self.model.outcome_changed.disconnect(self.refresh)
        self.model = model
        if model is not None:
            model.outcome_changed.connect(self.refresh)
            free = model.timeline.free_task
            self.kind.setText(f"real take ({model.timeline.task}):" if free else f"task {model.timeline.task}:")
            self.instruction.setPlaceholderText("type what this take does, e.g. put the red cube in the bowl" if free
                                                else "the task's instruction")
        else:
            self.kind.setText("instruction:")
            self.instruction.setPlaceholderText("")
        self.setEnabled(model is not None)
        self.refresh()

    def refresh(self) -> None:
        instruction = "" if self.model is None else self.model.instruction
        success = None if self.model is None else self.model.success
        if self.instruction.text() != instruction:
            self.instruction.setText(instruction)
            self.instruction.setCursorPosition(0)
        self.success.setCurrentIndex(next(i for i, (_, v) in enumerate(SUCCESS_CHOICES) if v is success))
        self.success.setStyleSheet(SUCCESS_STYLES[success])

    def _on_instruction_finished(self) -> None:
        if self.model is not None and self.instruction.text().strip() != self.model.instruction:
            self.instruction_edited.emit(self.instruction.text())
