"""Microphone input without a microphone: discovery on this machine, a missing sounddevice or PortAudio,
and the callback path driven through a fake sounddevice (the chunks PortAudio would deliver), written to
a real episode file and read back."""
from __future__ import annotations

import importlib.abc
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from recorders import audio_input as aio
from recorders.audio_input import (
    AudioError, AudioRecorder, BlockAssembler, MicrophoneInfo, input_latency, list_microphones, stream_spec,
)
from recorders.episode_file import EpisodeMeta, StreamSpec, open_episode
from recorders.episode_writer import EpisodeWriter

SR, BLOCK = 16000, 800  # 50 ms blocks
NO_ADC_TIME = SimpleNamespace(inputBufferAdcTime=0.0, currentTime=0.0)  # what ALSA often reports
OK, OVERFLOW = SimpleNamespace(input_overflow=False), SimpleNamespace(input_overflow=True)


# ---- a fake sounddevice: the calls the module makes; the test plays PortAudio's thread -----------------
class FakePortAudioError(Exception):
    pass


class FakeStream:
    def __init__(self, sd, **kwargs):
        self.sd, self.kwargs, self.callback = sd, kwargs, kwargs["callback"]
        self.started = self.stopped = self.closed = False
        sd.streams.append(self)

    def start(self):
        if self.sd.open_error:
            raise FakePortAudioError(self.sd.open_error)
        self.started = True

    def stop(self):
        self.stopped = True

    def close(self):
        self.closed = True


def fake_sd(open_error=None):
    devices = [
        {"index": 0, "name": "HDA Intel PCH: ALC3246 Analog", "max_input_channels": 2, "max_output_channels": 2,
         "default_samplerate": 44100.0},
        {"index": 1, "name": "HDMI 0", "max_input_channels": 0, "max_output_channels": 8,
         "default_samplerate": 48000.0},
        {"index": 2, "name": "USB PnP Sound Device: Audio", "max_input_channels": 1, "max_output_channels": 0,
         "default_samplerate": 48000.0},
    ]

    def query_devices(device=None, kind=None):
        if device is None and kind is None:
            return devices
        matches = [d for d in devices if d["max_input_channels"] > 0 and
                   (device is None or device == d["index"] or (isinstance(device, str) and device in d["name"]))]
        if not matches:
            raise ValueError(f"No input device matching {device!r}")
        return matches[0]

    sd = SimpleNamespace(PortAudioError=FakePortAudioError, open_error=open_error, streams=[],
                         query_devices=query_devices, check_input_settings=lambda **kw: None)
    sd.InputStream = lambda **kw: FakeStream(sd, **kw)
    return sd


@pytest.fixture
def sd(monkeypatch):
    fake = fake_sd()
    monkeypatch.setattr(aio, "import_sounddevice", lambda: fake)
    return fake


@pytest.fixture
def clock(monkeypatch):
    """time.monotonic() as the module sees it, advanced by the test."""
    now = SimpleNamespace(t=100.0)
    monkeypatch.setattr(aio, "time", SimpleNamespace(monotonic=lambda: now.t))
    return now


def tone(n: int, channels: int = 1, start: int = 0) -> np.ndarray:
    i = np.arange(start, start + n, dtype=np.float32)[:, None]  # (n, 1)
    return np.sin(i * 0.01 + np.arange(channels, dtype=np.float32)).astype(np.float32)  # (n, channels)


# ---- discovery -----------------------------------------------------------------------------------------
def test_list_microphones_on_this_machine_never_raises():
    found = list_microphones()
    assert isinstance(found, list)
    if found:  # a machine with a microphone
        assert found.reason == "" and all(m.channels > 0 for m in found)
    else:
        assert found.reason and "\n" not in found.reason


def test_missing_sounddevice_is_a_reason_and_an_audio_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ModuleNotFoundError
    found = list_microphones()
    assert found == [] and "sounddevice is not installed" in found.reason and "pip install" in found.reason
    with pytest.raises(AudioError, match="pip install"):
        AudioRecorder().start()


class _NoPortAudio(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")  # what sounddevice raises without libportaudio2
        return None


def test_missing_portaudio_names_libportaudio2(monkeypatch):
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    found = list_microphones()
    assert found == [] and "libportaudio2" in found.reason and "PortAudio library not found" in found.reason
    with pytest.raises(AudioError, match="libportaudio2"):
        AudioRecorder().start()


def test_no_default_microphone_on_this_machine_is_an_audio_error():
    found = list_microphones()
    if found:
        pytest.skip("this machine has a microphone")
    with pytest.raises(AudioError, match="no default microphone|sounddevice"):
        AudioRecorder().start()


def test_only_input_devices_are_listed(sd):
    assert list_microphones() == [MicrophoneInfo(0, "HDA Intel PCH: ALC3246 Analog", 2, 44100.0),
                                  MicrophoneInfo(2, "USB PnP Sound Device: Audio", 1, 48000.0)]


def test_unknown_and_busy_microphones_say_what_to_do(sd, monkeypatch):
    with pytest.raises(AudioError, match="no microphone 'Blue Yeti'.*list_microphones"):
        AudioRecorder(device="Blue Yeti").start()
    monkeypatch.setattr(aio, "import_sounddevice", lambda: fake_sd(open_error="Device unavailable [PaErrorCode -9985]"))
    rec = AudioRecorder(device="USB")
    with pytest.raises(AudioError, match="USB PnP.*another program has it open"):
        rec.start()
    assert not rec.recording


def test_bad_settings_are_value_errors():
    with pytest.raises(ValueError, match="whole number of samples"):
        AudioRecorder(samplerate=44100, block_ms=7)
    with pytest.raises(ValueError, match="channels >= 1"):
        AudioRecorder(channels=0)


# ---- blocks and times ----------------------------------------------------------------------------------
def test_block_assembler_cuts_any_chunks_into_fixed_blocks():
    signal = tone(3000, channels=2)
    asm = BlockAssembler(SR, 2, BLOCK)
    blocks, start = [], 0
    for n in (300, 1000, 500, 1, 799, 400):  # contiguous chunks of any length
        blocks += asm.feed(5.0 + start / SR, signal[start:start + n])
        start += n
    assert len(blocks) == 3  # 3000 samples: 3 whole blocks, 600 left pending
    for k, (t, block) in enumerate(blocks):
        assert block.shape == (BLOCK, 2) and block.dtype == np.float32
        np.testing.assert_array_equal(block, signal[k * BLOCK:(k + 1) * BLOCK])
        assert t == pytest.approx(5.0 + k * BLOCK / SR)
    with pytest.raises(ValueError, match=r"\(m, 2\)"):
        asm.feed(0.0, signal[:10, :1])


def test_input_latency_prefers_portaudio_adc_time():
    assert input_latency(SimpleNamespace(inputBufferAdcTime=10.0, currentTime=10.08), 800, SR) == pytest.approx(0.08)
    assert input_latency(NO_ADC_TIME, 800, SR) == pytest.approx(0.05)


def test_callback_delivers_copied_blocks_on_the_monotonic_clock(sd, clock):
    got = []
    rec = AudioRecorder(on_block=lambda t, block: got.append((t, block)))
    rec.start()
    stream = sd.streams[0]
    assert stream.started and stream.kwargs["blocksize"] == BLOCK and stream.kwargs["dtype"] == "float32"
    assert stream.kwargs["samplerate"] == SR and stream.kwargs["channels"] == 1 and rec.device_name.startswith("HDA")
    buffer = np.empty((BLOCK, 1), np.float32)  # PortAudio hands the same buffer every time
    for k in range(4):
        clock.t += BLOCK / SR  # the callback runs when the chunk is complete
        buffer[:] = tone(BLOCK, start=k * BLOCK)
        stream.callback(buffer, BLOCK, NO_ADC_TIME, OVERFLOW if k == 2 else OK)
    rec.stop()
    assert stream.stopped and stream.closed and not rec.recording
    assert rec.blocks == 4 and rec.overflows == 1 and rec.error is None
    times = [t for t, _ in got]
    assert times == pytest.approx([100.0 + k * BLOCK / SR for k in range(4)])  # each block's first sample
    for k, (_, block) in enumerate(got):
        assert block.shape == (BLOCK, 1) and block.dtype == np.float32
        np.testing.assert_array_equal(block, tone(BLOCK, start=k * BLOCK))


def test_a_failing_consumer_never_raises_into_portaudio(sd, clock):
    def broken(t, block):
        raise RuntimeError("writer stopped")

    rec = AudioRecorder(on_block=broken)
    rec.start()
    sd.streams[0].callback(tone(BLOCK), BLOCK, NO_ADC_TIME, OK)
    sd.streams[0].callback(tone(BLOCK), BLOCK, NO_ADC_TIME, OK)
    rec.stop()
    assert "writer stopped" in str(rec.error) and rec.blocks == 0


# ---- into a real episode file --------------------------------------------------------------------------
def test_stream_spec_matches_what_the_episode_writer_records(sd, clock, tmp_path):
    rec = AudioRecorder(device=2, samplerate=SR, channels=1, block_ms=50)
    rec.start()
    spec = stream_spec("audio", rec)
    assert (spec.kind, spec.shape, spec.dtype, spec.rate_hz) == ("array", (BLOCK, 1), "float32", 20.0)
    assert spec.meta["samplerate"] == SR and spec.meta["device"] == "USB PnP Sound Device: Audio"

    action = StreamSpec("action", "array", (8,), "float32", 10.0)
    meta = EpisodeMeta(task="push", instruction="push the cube", robot="franky", control_hz=10.0)
    writer = EpisodeWriter(tmp_path / "ep.h5", meta, [action, spec], drop_when_full=False)
    t0 = clock.t
    rec.on_block = lambda t, block: writer.append("audio", t - t0, block)
    signal = tone(5 * BLOCK + 123)
    for start in range(0, len(signal), 640):  # chunks that do not line up with the blocks
        chunk = signal[start:start + 640]
        clock.t += len(chunk) / SR
        sd.streams[0].callback(chunk, len(chunk), NO_ADC_TIME, OK)
    rec.stop()
    writer.append("action", 0.0, np.zeros(8, np.float32))
    path = writer.finish(success=None, labels=[])

    with open_episode(path) as ep:
        assert ep.stream_spec("audio") == spec
        data, times = ep.stream_data("audio")[:], ep.stream_time("audio")
        assert data.shape == (5, BLOCK, 1) and data.dtype == np.float32
        np.testing.assert_array_equal(data.reshape(-1, 1), signal[:5 * BLOCK])
        assert times == pytest.approx([k * BLOCK / SR for k in range(5)])
