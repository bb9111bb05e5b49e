"""The Annotate workspace: dataset browser, episode player with sound, the take's instruction and
success, the timeline (state curves, audio waveform, segment track), segment and events (remember,
recall, free_space, done) tables, edit toolbar.

Composition only. The panel owns one QUndoStack (`undo_stack`) shared by the annotation model of
whichever episode is open; views render the `AnnotationModel` and send their intents (a finished
boundary drag, a typed code, an edited instruction, a toolbar action) to its methods, which validate,
push one command and emit `labels_changed` (or `outcome_changed`). The open episode file stays open
read-only for the player and is closed around `save()` so the labels can be rewritten in place; its
audio is read once into an `AudioTrack` that the player plays (Space) and the waveform draws.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QUndoStack
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel,
                               QMessageBox, QSpinBox, QSplitter, QToolBar, QVBoxLayout, QWidget)

from app.annotation import AnnotationError, AnnotationModel
from app.audio_playback import AudioPlayback, AudioTrack
from app.dataset import Dataset, DatasetError
from app.domain import IDLE, Episode, EpisodeError, open_episode
from widgets.audio_waveform import AudioWaveformWidget
from widgets.dataset_browser import DatasetBrowserWidget
from widgets.episode_player import EpisodePlayerWidget, StateCurvesWidget
from widgets.segment_table import EventTableView, SegmentTableView
from widgets.segment_track import SegmentTrackWidget
from widgets.take_outcome import TakeOutcomeWidget

INSERT_DEFAULT_FRAMES = 10


class AnnotateActions(NamedTuple):
    split: QAction
    merge: QAction
    insert: QAction
    delete: QAction
    trim_start: QAction
    trim_end: QAction
    resegment: QAction
    undo: QAction
    redo: QAction
    save: QAction
    play: QAction
    step_back: QAction
    step_forward: QAction


class InsertSegmentDialog(QDialog):
    """Asks for the frame range and code of a new segment."""

    def __init__(self, start: int, end: int, frames: int, suggestions: list[str], parent=None):
        super().__init__(parent)
        self.setWindowTitle("Insert segment")
        self.start, self.end = QSpinBox(), QSpinBox()
        for box, value in ((self.start, start), (self.end, end)):
            box.setRange(0, frames)
            box.setValue(value)
        self.code = QComboBox(editable=True)
        self.code.addItems(suggestions)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("first frame", self.start)
        form.addRow("end frame (exclusive)", self.end)
        form.addRow("code", self.code)
        form.addRow(buttons)


class AnnotatePanel(QWidget):
    """`playback`: where sound goes (tests hand in one with a fake output); None plays on the sound card."""

    def __init__(self, data_dir: Path | None = None, parent=None, playback: AudioPlayback | None = None):
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self.model: AnnotationModel | None = None
        self.episode: Episode | None = None
        self.audio: AudioTrack | None = None
        self.dataset: Dataset | None = None

        self.browser = DatasetBrowserWidget()
        self.player = EpisodePlayerWidget(playback)
        self.outcome = TakeOutcomeWidget()
        self.curves = StateCurvesWidget()
        self.waveform = AudioWaveformWidget()
        self.track = SegmentTrackWidget()
        self.table = SegmentTableView()
        self.event_table = EventTableView()
        self.track.setXLink(self.curves)
        self.waveform.setXLink(self.curves)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.title = QLabel("Open a dataset folder and double-click an episode")
        self.title.setStyleSheet("font-weight: bold")
        self.actions = self._make_actions()
        toolbar = QToolBar()
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for i, action in enumerate(self.actions):
            if action in (self.actions.undo, self.actions.save, self.actions.play):
                toolbar.addSeparator()
            if action not in (self.actions.step_back, self.actions.step_forward):
                toolbar.addAction(action)
            self.addAction(action)

        events_box = QWidget()
        events_layout = QVBoxLayout(events_box)
        events_layout.setContentsMargins(0, 0, 0, 0)
        events_layout.setSpacing(2)
        events_title = QLabel("Events: memory, query and done calls (not segments; click to seek)")
        events_title.setStyleSheet("color: #a0a0a0")
        events_layout.addWidget(events_title)
        events_layout.addWidget(self.event_table, 1)
        tables = QSplitter(Qt.Orientation.Vertical)
        tables.addWidget(self.table)
        tables.addWidget(events_box)
        tables.setSizes([220, 180])
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.player)
        top.addWidget(tables)
        top.setSizes([520, 500])
        timeline = QWidget()
        timeline_layout = QVBoxLayout(timeline)
        timeline_layout.setContentsMargins(0, 0, 0, 0)
        timeline_layout.setSpacing(0)
        timeline_layout.addWidget(self.curves, 1)
        timeline_layout.addWidget(self.waveform)
        timeline_layout.addWidget(self.track)
        editor_split = QSplitter(Qt.Orientation.Vertical)
        editor_split.addWidget(top)
        editor_split.addWidget(timeline)
        editor_split.setSizes([400, 380])
        editor = QWidget()
        editor_layout = QVBoxLayout(editor)
        editor_layout.setContentsMargins(0, 0, 0, 0)
        editor_layout.addWidget(self.title)
        editor_layout.addWidget(self.outcome)
        editor_layout.addWidget(toolbar)
        editor_layout.addWidget(editor_split, 1)
        editor_layout.addWidget(self.status)
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(self.browser)
        main.addWidget(editor)
        main.setSizes([330, 1070])
        layout = QHBoxLayout(self)
        layout.addWidget(main)

        self.browser.episode_activated.connect(self.open_episode)
        self.browser.episode_trashed.connect(self._on_trashed)
        self.browser.error_reported.connect(self.show_error)
        self.player.frame_changed.connect(self._on_frame)
        self.player.sound_unavailable.connect(self.show_warning)
        self.curves.seek_requested.connect(self.player.set_frame)
        self.waveform.seek_requested.connect(self.player.set_frame)
        self.outcome.instruction_edited.connect(lambda text: self._edit(lambda: self.model.set_instruction(text)))
        self.outcome.success_chosen.connect(lambda value: self._edit(lambda: self.model.set_success(value)))
        self.track.segment_clicked.connect(self._on_segment_clicked)
        self.track.boundary_drag_finished.connect(self._on_boundary_dropped)
        self.table.segment_selected.connect(self.track.set_selected)
        self.event_table.seek_requested.connect(self.player.set_frame)
        self.table.table_model.code_rejected.connect(
            lambda row, code, why: self.show_error(f"segment {row}: {code!r} rejected: {why}"))
        # A bound slot (not a lambda): Qt drops it when the panel goes, before the stack is deleted.
        self.undo_stack.cleanChanged.connect(self._on_clean_changed)
        self._set_editing_enabled(False)
        if data_dir is not None:
            self.open_folder(data_dir)

    # ---- public API --------------------------------------------------------------------------
    def open_folder(self, path) -> bool:
        try:
            self.dataset = Dataset(path)
        except DatasetError as e:
            self.show_error(str(e))
            return False
        self.browser.set_dataset(self.dataset)
        n_bad = len(self.dataset.unreadable)
        self.show_info(f"{len(self.dataset.entries)} episodes in {self.dataset.folder}"
                       + (f"; {n_bad} unreadable skipped" if n_bad else ""))
        return True

    def open_episode(self, path) -> bool:
        """Show an episode; asks first when the open one has unsaved edits. False if not opened."""
        path = Path(path)
        if self.has_unsaved_changes():
            choice = self.ask_unsaved()
            if choice == "cancel" or (choice == "save" and not self.save()):
                return False
        try:
            episode = open_episode(path)
        except (EpisodeError, OSError) as e:
            self.show_error(str(e))
            return False
        try:
            model = AnnotationModel.from_episode(episode, self.undo_stack, self)
        except (EpisodeError, OSError, ValueError) as e:
            episode.close()
            self.show_error(str(e))
            return False
        try:
            audio, about_audio = AudioTrack.from_episode(episode), ""
        except (EpisodeError, OSError, ValueError) as e:  # the labels can still be edited without it
            audio, about_audio = None, f"; its audio cannot be played ({e})"
        self._close_episode()
        self.episode, self.model, self.audio = episode, model, audio
        self._header = (path.name, f"{episode.frames} frames, {episode.duration_s:.1f} s")
        self.model.labels_changed.connect(self._update_title)
        self.player.set_episode(episode, audio=audio)
        self.outcome.set_model(model)
        self.curves.set_episode(episode)
        self.waveform.set_track(audio, model.timeline.frame_times, episode.control_hz)
        self.track.set_model(model)
        self.table.set_annotation(model, episode.control_hz)
        self.event_table.set_annotation(model)
        self.browser.select_path(path)
        self._set_editing_enabled(True)
        self._update_title()
        self.show_info(f"opened {path.name}: {len(model.segments)} segments, {len(model.events)} events, "
                       f"{len(model.gripper_events)} gripper events"
                       + (f"; {audio.describe()}" if audio is not None else about_audio))
        return True

    def has_unsaved_changes(self) -> bool:
        return self.model is not None and self.model.is_dirty()

    def save(self) -> bool:
        if self.model is None or self.episode is None:
            return False
        frame, path = self.player.frame, self.episode.path
        self.player.set_episode(None)
        self.episode.close()  # the labels are rewritten in place: no reader may hold the file
        try:
            self.model.save()
            ok = True
        except (EpisodeError, OSError) as e:
            self.show_error(f"not saved: {e}")
            ok = False
        try:
            self.episode = open_episode(path)
        except (EpisodeError, OSError) as e:
            self.episode = None
            self._close_episode()
            self.show_error(f"cannot reopen {path.name} after saving: {e}")
            return False
        self.player.set_episode(self.episode, frame, self.audio)
        if ok:
            self.browser.rescan()
            self.browser.select_path(path)
            self.show_info(f"saved the labels, instruction and success of {path.name}")
        return ok

    # ---- prompts (replaced in tests) ---------------------------------------------------------
    def ask_unsaved(self) -> str:
        """'save', 'discard' or 'cancel'."""
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(self, "Unsaved label edits",
                                      f"Save the label edits of {self.episode.path.name}?",
                                      buttons.Save | buttons.Discard | buttons.Cancel, buttons.Save)
        return {buttons.Save: "save", buttons.Discard: "discard"}.get(answer, "cancel")

    def ask_keep_edits(self) -> bool | None:
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(self, "Re-run auto-segmentation",
                                      "Keep the edited segments? (No derives every segment from the logged calls)",
                                      buttons.Yes | buttons.No | buttons.Cancel, buttons.Yes)
        return {buttons.Yes: True, buttons.No: False}.get(answer)

    def ask_insert(self, start: int, end: int) -> tuple[int, int, str] | None:
        suggestions = [IDLE] + sorted({s.code for s in self.model.segments if s.code != IDLE}) + ["home()"]
        dialog = InsertSegmentDialog(start, end, self.model.frames, suggestions, self)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        return dialog.start.value(), dialog.end.value(), dialog.code.currentText()

    # ---- messages ----------------------------------------------------------------------------
    def show_error(self, text: str) -> None:
        self.status.setStyleSheet("color: #e05050")
        self.status.setText(text)

    def show_info(self, text: str) -> None:
        self.status.setStyleSheet("color: #a0a0a0")
        self.status.setText(text)

    def show_warning(self, text: str) -> None:
        self.status.setStyleSheet("color: #e0a040")
        self.status.setText(text)

    # ---- intents -----------------------------------------------------------------------------
    def selected_segment(self) -> int:
        row = self.table.current_row()
        return row if row >= 0 else self.model.segment_at(self.player.frame)

    def _edit(self, fn: Callable[[], object]) -> None:
        """Run one model edit; a refused edit leaves the labels as they were and says why."""
        if self.model is None:
            return
        try:
            fn()
        except AnnotationError as e:
            self.show_error(str(e))
            self.track.redraw()  # put a dragged edge back where the labels are
        else:
            self.show_info(self.undo_stack.undoText())

    def _on_boundary_dropped(self, k: int, x: float) -> None:
        before = self.model.segments
        self._edit(lambda: self.model.move_boundary(k, int(round(x))))
        if self.model.segments == before:
            self.track.redraw()

    def _on_segment_clicked(self, k: int, frame: int) -> None:
        self.table.select_row(k)
        self.player.set_frame(frame)

    def _on_frame(self, frame: int) -> None:
        self.curves.set_cursor(frame)
        self.waveform.set_cursor(frame)
        self.track.set_cursor(frame)

    def _insert(self) -> None:
        start = self.player.frame
        answer = self.ask_insert(start, min(self.model.frames, start + INSERT_DEFAULT_FRAMES))
        if answer is not None:
            self._edit(lambda: self.model.insert(*answer))

    def _resegment(self) -> None:
        if self.model is not None and self.model.timeline.calls_missing is not None:
            self._edit(lambda: self.model.resegment())  # refused before asking anything: it says why
            return
        keep = self.ask_keep_edits()
        if keep is not None:
            self._edit(lambda: self.model.resegment(keep_edits=keep))

    def _on_trashed(self, path: Path) -> None:
        if self.episode is not None and self.episode.path == Path(path):
            self._close_episode()

    def _close_episode(self) -> None:
        self.player.set_episode(None)
        self.curves.set_episode(None)
        self.waveform.set_track(None)
        self.track.set_model(None)
        self.outcome.set_model(None)
        self.table.set_annotation(None)
        self.event_table.set_annotation(None)
        if self.model is not None:
            self.model.detach()
            self.model.deleteLater()
        if self.episode is not None:
            self.episode.close()
        self.model, self.episode, self.audio = None, None, None
        self.undo_stack.clear()
        self._set_editing_enabled(False)
        self._update_title()

    def _set_editing_enabled(self, on: bool) -> None:
        for action in self.actions:
            if action not in (self.actions.undo, self.actions.redo):
                action.setEnabled(on)

    def _on_clean_changed(self, clean: bool) -> None:
        self._update_title()

    def _update_title(self) -> None:
        if self.episode is None:
            self.title.setText("Open a dataset folder and double-click an episode")
            return
        name, about = self._header
        star = " *" if self.has_unsaved_changes() else ""
        t0, t1 = self.model.trim
        self.title.setText(f"{name}{star}   {about}" + (f", kept frames {t0}..{t1}" if (t0, t1) != (0, self.model.frames) else ""))

    def _make_actions(self) -> AnnotateActions:
        def make(text, shortcut, slot, tip):
            action = QAction(text, self)
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            action.setToolTip(f"{tip} ({QKeySequence(shortcut).toString()})")
            action.triggered.connect(slot)
            return action

        m = lambda: self.model  # noqa: E731  (the open episode's model at trigger time)
        undo = make("Undo", QKeySequence.StandardKey.Undo, self.undo_stack.undo, "undo")
        redo = make("Redo", "Ctrl+Shift+Z", self.undo_stack.redo, "redo")
        # Fixed button text; what would be undone goes in the tooltip.
        for action, can, text, word in ((undo, self.undo_stack.canUndoChanged, self.undo_stack.undoTextChanged, "Undo"),
                                        (redo, self.undo_stack.canRedoChanged, self.undo_stack.redoTextChanged, "Redo")):
            action.setEnabled(False)
            can.connect(action.setEnabled)
            text.connect(lambda t, a=action, w=word: a.setToolTip(f"{w} {t}"))
        return AnnotateActions(
            split=make("Split", "S", lambda: self._edit(lambda: m().split(self.player.frame)),
                       "split the segment at the cursor"),
            merge=make("Merge", "M", lambda: self._edit(lambda: m().merge(self.selected_segment())),
                       "merge the selected segment with the next"),
            insert=make("Insert…", "I", self._insert, "insert a segment over a frame range"),
            delete=make("Delete", "Delete", lambda: self._edit(lambda: m().delete(self.selected_segment())),
                        "make the selected segment idle"),
            trim_start=make("Trim start", "[", lambda: self._edit(lambda: m().trim_start(self.player.frame)),
                            "drop the frames before the cursor"),
            trim_end=make("Trim end", "]", lambda: self._edit(lambda: m().trim_end(self.player.frame + 1)),
                          "drop the frames after the cursor"),
            resegment=make("Re-segment…", "Ctrl+R", self._resegment, "re-run auto-segmentation from the logged calls"),
            undo=undo, redo=redo,
            save=make("Save", QKeySequence.StandardKey.Save, self.save, "save the labels into the episode file"),
            play=make("Play", "Space", self.player.toggle_play, "play / pause"),
            step_back=make("Back", "Left", lambda: self.player.step(-1), "previous frame"),
            step_forward=make("Forward", "Right", lambda: self.player.step(1), "next frame"),
        )
