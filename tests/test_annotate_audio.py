"""Sound and real takes in the Annotate workspace: the waveform lane, playback in step with the video
(through a sound card the test plays: there is none in CI), silence for dropped blocks, no output
device, and the take's instruction and success edited, undone, saved and reopened."""
from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.annotation import AnnotationModel
from app.audio_playback import AudioPlayback, AudioTrack, block_offsets
from recorders import audio_output
from recorders.audio_output import AudioOutputError, SoundDeviceOutput
from recorders.episode_file import TruncatedEpisodeError, open_episode, write_outcome
from synthetic_episodes import (AUDIO_BLOCK, AUDIO_BLOCKS, AUDIO_RATE, FRAMES, narration, write_narrated,
                                write_pick_place)

pytest.importorskip("pytestqt")
FIXTURES = Path(__file__).parent / "fixtures"


class FakeStream:
    def __init__(self, card: "FakeSoundCard", samplerate: int, channels: int, fill):
        self.card, self.samplerate, self.channels, self.fill = card, samplerate, channels, fill
        self.latency_s, self.closed = 0.0, False

    def close(self) -> None:
        self.closed = True


class FakeSoundCard:
    """A sound output the test plays as a card would: `play(n)` asks the open stream for n samples
    (one buffer) and lets their duration pass on `clock`."""

    def __init__(self):
        self.now = 1000.0
        self.streams: list[FakeStream] = []

    def clock(self) -> float:
        return self.now

    def open(self, samplerate: int, channels: int, fill) -> FakeStream:
        self.streams.append(FakeStream(self, samplerate, channels, fill))
        return self.streams[-1]

    def play(self, n: int) -> np.ndarray:
        stream = self.streams[-1]
        assert not stream.closed
        out = np.full((n, stream.channels), np.nan, np.float32)
        stream.fill(out)
        self.now += n / stream.samplerate
        return out[:, 0]


@pytest.fixture
def card() -> FakeSoundCard:
    return FakeSoundCard()


@pytest.fixture
def takes(tmp_path) -> Path:
    folder = tmp_path / "takes"
    folder.mkdir()
    write_narrated(folder / "narrated.h5", jitter_s=0.002)
    write_narrated(folder / "dropped.h5", dropped=(42,), jitter_s=0.002)
    write_pick_place(folder / "silent.h5")
    return folder


def make_panel(qtbot, folder: Path, playback: AudioPlayback | None, name: str = "narrated.h5"):
    from widgets.annotate_panel import AnnotatePanel

    panel = AnnotatePanel(folder, playback=playback)
    qtbot.addWidget(panel)
    panel.resize(1400, 900)
    panel.show()
    assert panel.open_episode(folder / name)
    return panel


@pytest.fixture
def panel(qtbot, takes, card):
    return make_panel(qtbot, takes, AudioPlayback(card, clock=card.clock))


def wait_for_frame(qtbot, player, frame: int) -> None:
    if player.frame != frame:
        with qtbot.waitSignal(player.frame_changed, check_params_cb=lambda f: f == frame, timeout=2000):
            pass


# ---- the track: blocks placed on the clock, the envelope ---------------------------------------------
def test_blocks_are_placed_by_time_with_jitter_and_gaps():
    times = np.array([0.0, 0.051, 0.099, 0.2, 0.248, 0.9])  # jitter, a dropped block, a clock jump
    assert block_offsets(times, 800, AUDIO_RATE).tolist() == [0, 800, 1600, 3200, 4000, 14400]


def test_track_holds_the_takes_samples_with_silence_for_a_dropped_block(takes):
    with open_episode(takes / "dropped.h5") as ep:
        track = AudioTrack.from_episode(ep)
    assert (track.samplerate, track.channels, track.t_start) == (AUDIO_RATE, 1, 0.0)
    assert (track.blocks, track.missing_blocks) == (AUDIO_BLOCKS - 1, 1) and "1 dropped block" in track.describe()
    expected = narration(np.arange(AUDIO_BLOCKS * AUDIO_BLOCK))
    gap = slice(42 * AUDIO_BLOCK, 43 * AUDIO_BLOCK)
    expected[gap] = 0.0
    np.testing.assert_array_equal(track.samples[:, 0], expected)  # jittered stamps, samples exactly in place
    assert track.index_at(2.1) == 42 * AUDIO_BLOCK and track.read(-2, 4)[:2, 0].tolist() == [0.0, 0.0]


def test_envelope_is_min_and_max_per_bucket(takes):
    with open_episode(takes / "narrated.h5") as ep:
        env = AudioTrack.from_episode(ep).envelope(hz=100)
    buckets = narration(np.arange(AUDIO_BLOCKS * AUDIO_BLOCK)).reshape(-1, AUDIO_RATE // 100)
    np.testing.assert_array_equal(env.lo, buckets.min(axis=1))
    np.testing.assert_array_equal(env.hi, buckets.max(axis=1))
    assert env.times[0] == pytest.approx(0.005) and len(env.times) == 400


def test_no_audio_stream_is_no_track(takes):
    with open_episode(takes / "silent.h5") as ep:
        assert AudioTrack.from_episode(ep) is None


# ---- the waveform lane ----------------------------------------------------------------------------
def test_waveform_shows_for_an_episode_with_audio_and_hides_without(panel, takes):
    wave = panel.waveform
    assert wave.isVisible() and "audio 16 kHz mono, 4.0 s" in panel.status.text()
    x, lo, hi = wave.drawn()
    assert 0 < len(x) <= wave.getPlotItem().vb.width() + 2  # about one bucket per pixel
    assert x[0] == pytest.approx(0.0, abs=0.05) and x[-1] == pytest.approx(FRAMES, abs=0.2)  # on the frame axis
    assert hi.max() == pytest.approx(narration(np.arange(64000)).max()) and lo.min() < 0
    assert wave.getPlotItem().vb.viewRange()[0] == pytest.approx(panel.track.getPlotItem().vb.viewRange()[0])
    panel.player.set_frame(25)
    assert wave.cursor.value() == 25
    panel.track.setXRange(10, 12, padding=0)  # zoomed in: the x ranges stay linked, every 5 ms bucket drawn
    x, _, _ = wave.drawn()
    assert wave.getPlotItem().vb.viewRange()[0] == pytest.approx([10, 12])
    assert np.allclose(np.diff(x), 0.05) and x[0] < 10 < 12 < x[-1]
    assert panel.open_episode(takes / "silent.h5")
    assert not wave.isVisible() and len(wave.drawn()[0]) == 0


# ---- playback -------------------------------------------------------------------------------------
def test_playback_follows_the_heard_samples(panel, card, qtbot):
    player = panel.player
    player.set_frame(10)
    qtbot.keyClick(player, Qt.Key.Key_Space)  # the Annotate panel's play shortcut
    assert player.playing and len(card.streams) == 1
    assert (card.streams[0].samplerate, card.streams[0].channels) == (AUDIO_RATE, 1)
    start = AUDIO_RATE  # frame 10 is at 1.0 s
    heard = np.concatenate([card.play(512) for _ in range(7)])  # 3584 samples: 0.224 s
    np.testing.assert_array_equal(heard, narration(np.arange(start, start + len(heard))))
    assert player.playback.time() == pytest.approx(1.224)
    wait_for_frame(qtbot, player, 12)
    assert panel.track.cursor.value() == 12 == panel.waveform.cursor.value()
    card.play(512)  # 1.256 s: still frame 12
    card.play(1024)  # 1.32 s
    wait_for_frame(qtbot, player, 13)

    player.set_frame(30)  # scrubbing while playing: the sound goes on from 3.0 s, on the same stream
    heard = card.play(800)
    np.testing.assert_array_equal(heard, narration(np.arange(3 * AUDIO_RATE, 3 * AUDIO_RATE + 800)))
    assert len(card.streams) == 1 and player.playing
    wait_for_frame(qtbot, player, 30)
    card.play(15 * 800)  # 3.8 s
    wait_for_frame(qtbot, player, 38)
    card.now += 0.2  # the card asks for nothing (unplugged?): the picture waits a moment, then goes on alone
    assert player.playback.time() == pytest.approx(3.8)
    card.now += 0.4
    assert player.playback.time() == pytest.approx(3.9)
    heard = card.play(8 * 800)  # past the end of the take: silence, and playing stops
    assert np.all(heard[3200:] == 0.0)
    qtbot.waitUntil(lambda: not player.playing, timeout=2000)
    assert player.frame == FRAMES - 1 and card.streams[0].closed


def test_pause_closes_the_output_and_play_restarts_at_the_cursor(panel, card):
    player = panel.player
    panel.actions.play.trigger()
    card.play(1600)
    panel.actions.play.trigger()
    assert not player.playing and card.streams[0].closed
    player.set_frame(20)
    panel.actions.play.trigger()
    np.testing.assert_array_equal(card.play(400), narration(np.arange(2 * AUDIO_RATE, 2 * AUDIO_RATE + 400)))
    panel.actions.play.trigger()


def test_a_dropped_block_plays_as_silence(qtbot, takes, card):
    panel = make_panel(qtbot, takes, AudioPlayback(card, clock=card.clock), "dropped.h5")
    assert "1 dropped block(s) silent" in panel.status.text()
    panel.player.set_frame(21)  # 2.1 s: the start of block 42, which was dropped
    panel.actions.play.trigger()
    np.testing.assert_array_equal(card.play(AUDIO_BLOCK), np.zeros(AUDIO_BLOCK, np.float32))
    after = 43 * AUDIO_BLOCK
    np.testing.assert_array_equal(card.play(AUDIO_BLOCK), narration(np.arange(after, after + AUDIO_BLOCK)))
    wait_for_frame(qtbot, panel.player, 22)  # the video goes on through the gap
    panel.actions.play.trigger()


def test_episode_without_audio_plays_on_the_clock(qtbot, takes, card):
    panel = make_panel(qtbot, takes, AudioPlayback(card, clock=card.clock), "silent.h5")
    panel.actions.play.trigger()
    assert panel.player.playing and card.streams == []  # nothing to hear: no output opened
    card.now += 1.55
    wait_for_frame(qtbot, panel.player, 15)
    panel.actions.play.trigger()


def fake_sounddevice(**overrides):
    class PortAudioError(Exception):
        pass

    def query_devices(device=None, kind=None):
        raise PortAudioError("Error querying device -1")

    return SimpleNamespace(PortAudioError=PortAudioError, query_devices=query_devices, **overrides)


def test_no_output_device_is_a_message_and_the_video_still_plays(qtbot, takes, card, monkeypatch):
    monkeypatch.setattr(audio_output, "import_sounddevice", lambda: fake_sounddevice())
    panel = make_panel(qtbot, takes, AudioPlayback(clock=card.clock))  # the sound card: there is none
    panel.actions.play.trigger()
    status = panel.status.text()
    assert status.startswith("playing without sound: no sound output device") and "\n" not in status
    assert panel.player.playing and not panel.player.playback.audible
    card.now += 0.75
    wait_for_frame(qtbot, panel.player, 7)
    panel.actions.play.trigger()
    assert not panel.player.playing


def test_sound_device_output_says_why_it_cannot_open(monkeypatch):
    fill = lambda out: None  # noqa: E731
    monkeypatch.setattr(audio_output, "import_sounddevice", lambda: fake_sounddevice())
    with pytest.raises(AudioOutputError, match="^no sound output device .*audio. group"):
        SoundDeviceOutput().open(AUDIO_RATE, 1, fill)

    def refuse(**settings):
        raise ValueError("Invalid sample rate")
    sd = fake_sounddevice(check_output_settings=refuse)
    sd.query_devices = lambda device=None, kind=None: {"name": "HDMI 0"}
    monkeypatch.setattr(audio_output, "import_sounddevice", lambda: sd)
    with pytest.raises(AudioOutputError, match="HDMI 0 cannot play 1 channel.s. at 16000 Hz"):
        SoundDeviceOutput().open(AUDIO_RATE, 1, fill)

    def missing():
        from recorders.audio_input import AudioError
        raise AudioError("sounddevice is not installed; install it with: pip install 'sounddevice>=0.4.6'")
    monkeypatch.setattr(audio_output, "import_sounddevice", missing)
    with pytest.raises(AudioOutputError, match="pip install"):
        SoundDeviceOutput().open(AUDIO_RATE, 1, fill)


# ---- a real take's instruction and success -----------------------------------------------------------
def test_instruction_and_success_are_edited_undone_saved_and_reopened(panel, takes, qtbot):
    outcome = panel.outcome
    assert outcome.kind.text() == "real take (teleop):"
    assert outcome.instruction.text() == "pick up the red cube and put it on the blue one"
    assert outcome.success.currentText() == "success unknown"
    outcome.instruction.clear()
    qtbot.keyClicks(outcome.instruction, "  stack the red cube on the blue cube ")
    assert not panel.player.playing  # Space types a space in the field: it does not play
    with qtbot.waitSignal(panel.model.outcome_changed):
        qtbot.keyClick(outcome.instruction, Qt.Key.Key_Return)
    assert panel.model.instruction == "stack the red cube on the blue cube"
    outcome.success.activated.emit(outcome.success.findText("succeeded"))
    assert panel.model.success is True and panel.undo_stack.count() == 2 and panel.has_unsaved_changes()
    assert "mark the take succeeded" in panel.status.text() and panel.title.text().startswith("narrated.h5 *")
    assert len(panel.track.regions) == 2  # the segments are untouched

    panel.actions.undo.trigger()
    assert outcome.success.currentText() == "success unknown" and panel.model.success is None
    panel.actions.undo.trigger()
    assert outcome.instruction.text() == "pick up the red cube and put it on the blue one"
    assert not panel.has_unsaved_changes()
    panel.actions.redo.trigger()
    panel.actions.redo.trigger()
    assert outcome.instruction.text() == "stack the red cube on the blue cube"
    assert outcome.success.currentText() == "succeeded"

    panel.actions.save.trigger()
    assert not panel.has_unsaved_changes()
    with open_episode(takes / "narrated.h5") as ep:
        assert ep.instruction == "stack the red cube on the blue cube" and ep.success is True
        assert ep.task == "teleop" and len(ep.labels) == 2 and not ep.labels_edited
    assert panel.open_episode(takes / "dropped.h5") and outcome.success.currentText() == "success unknown"
    assert panel.open_episode(takes / "narrated.h5")
    assert outcome.instruction.text() == "stack the red cube on the blue cube"
    assert outcome.success.currentText() == "succeeded" and panel.undo_stack.count() == 0
    outcome.success.activated.emit(outcome.success.findText("failed"))
    panel.actions.save.trigger()
    with open_episode(takes / "narrated.h5") as ep:
        assert ep.success is False


def test_model_outcome_edits_are_undoable_and_apart_from_the_labels(takes, qtbot):
    model = AnnotationModel.load(takes / "narrated.h5")
    assert model.timeline.free_task and model.success is None
    labels = []
    model.labels_changed.connect(lambda: labels.append(1))
    with qtbot.waitSignal(model.outcome_changed):
        model.set_instruction("stack them")
    model.set_instruction(" stack them ")  # the same text: no edit
    model.set_success(False)
    model.set_success(False)
    assert model.undo_stack.count() == 2 and labels == []
    model.split(5)
    model.undo_stack.undo()
    assert model.success is False and len(labels) == 2  # undoing the split leaves the outcome alone
    model.undo_stack.undo()
    assert model.success is None and model.instruction == "stack them"
    model.undo_stack.redo()
    model.save()
    with open_episode(takes / "narrated.h5") as ep:
        assert (ep.instruction, ep.success) == ("stack them", False)


def test_write_outcome_keeps_old_files_readable(tmp_path):
    for name in ("episode_v1.h5", "episode_v1_jsonlines.h5"):
        path = tmp_path / name
        shutil.copy(FIXTURES / name, path)
        with open_episode(path) as ep:
            labels, frames = ep.labels, ep.frames
        write_outcome(path, "put the red cube away", None)
        with open_episode(path) as ep:
            assert ep.format_version == 1 and ep.instruction == "put the red cube away" and ep.success is None
            assert ep.labels == labels and ep.frames == frames
            track = AudioTrack.from_episode(ep)  # the old "audio" kind: one int16 sample per row
            assert track.samplerate == 160 and len(track.samples) == 16
        with pytest.raises(ValueError, match="one line"):
            write_outcome(path, "first\nsecond", True)
        with open_episode(path) as ep:
            assert ep.success is None  # nothing was written
    partial = tmp_path / "take.h5.partial"
    shutil.copy(FIXTURES / "episode_v1.h5", partial)
    with pytest.raises(TruncatedEpisodeError, match="unfinished recording"):
        write_outcome(partial, "x", True)


# ---- how it looks -----------------------------------------------------------------------------------
def test_screenshot_with_audio(qtbot, tmp_path, card):
    write_narrated(tmp_path / "narrated_take.h5", dropped=(50, 51), cameras=True, jitter_s=0.002)
    panel = make_panel(qtbot, tmp_path, AudioPlayback(card, clock=card.clock), "narrated_take.h5")
    panel.player.set_frame(17)
    QApplication.processEvents()  # the pending layout requests, as the event loop would
    assert panel.outcome.kind.width() >= panel.outcome.kind.sizeHint().width()  # "real take (teleop):" uncut
    assert panel.grab().save("/tmp/annotate_audio.png")
