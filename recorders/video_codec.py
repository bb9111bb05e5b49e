"""Frames <-> codec packets (PyAV), for the encodings of recorders/video_quality.py.

Packets map one to one onto frames (zero-latency encoding: a frame in, its packet out), so a frame is
decoded from the last keyframe at or before it; `FrameDecoder` keeps what it decoded of the current
GOP (converted to RGB only when asked for), so stepping or scrubbing near a frame decodes little.

Nothing here touches files or threads: recorders/video_encoder_process.py runs the encoders off the
recording process, recorders/video_stream.py stores and reads the packets.
"""
from __future__ import annotations

import fractions
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import av
import numpy as np

from recorders.video_quality import VideoCodecError

def _array_format(encoding: dict) -> str:
    return "gray16le" if encoding["pix_fmt"] == "gray16le" else "rgb24"


@dataclass(frozen=True)
class Packet:
    index: int  # the frame it encodes (the order frames went in)
    data: bytes
    keyframe: bool


class FrameEncoder:
    """One stream's encoder: frames in order in, their packets out (one each, in order)."""

    def __init__(self, encoding: dict, shape: tuple[int, ...], rate_hz: float = 30.0):
        self.encoding = encoding
        self.shape = tuple(shape)
        try:
            ctx = av.CodecContext.create(encoding.get("encoder", encoding["codec"]), "w")
        except (av.FFmpegError, ValueError) as e:
            raise VideoCodecError(f"this PyAV cannot encode {encoding['codec']}: {e}") from None
        ctx.height, ctx.width = self.shape[:2]
        ctx.pix_fmt = encoding["pix_fmt"]
        ctx.time_base = fractions.Fraction(1, max(1, round(rate_hz)))
        ctx.gop_size = int(encoding["gop"])
        ctx.thread_count = 1  # the encoder process runs one thread per stream
        ctx.options = dict(encoding.get("options", {}))
        self._ctx = ctx
        self._format = _array_format(encoding)
        self._next = 0

    def encode(self, frame: np.ndarray) -> list[Packet]:
        if frame.shape != self.shape:
            raise ValueError(f"frame of shape {frame.shape}, expected {self.shape}")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=self._format)
        vf.pts = self._next
        self._next += 1
        return self._packets(self._ctx.encode(vf))

    def flush(self) -> list[Packet]:
        return self._packets(self._ctx.encode(None))

    @staticmethod
    def _packets(packets) -> list[Packet]:
        return [Packet(int(p.pts), bytes(p), bool(p.is_keyframe)) for p in packets]


class FrameDecoder:
    """Random access to the frames of one stream's packets.

    `read_packet(i)` returns packet i's bytes and `keyframes` flags which packets start a GOP. A frame
    is decoded from the last keyframe at or before it; the frames decoded on the way stay in a
    small cache, and a request further into the GOP just being decoded continues from there.
    """

    def __init__(self, encoding: dict, shape: tuple[int, ...], read_packet: Callable[[int], bytes],
                 keyframes: np.ndarray, cache_frames: int = 64):
        self.encoding, self.shape = encoding, tuple(shape)
        self._read_packet = read_packet
        self._key_index = np.flatnonzero(np.asarray(keyframes, bool))  # (K,) frame indices of keyframes
        self._count = len(keyframes)
        self._format = _array_format(encoding)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_frames = max(int(encoding.get("gop", 1)) + 1, cache_frames)
        self._ctx = None
        self._position = -1  # the last frame the decoder produced; -1: a fresh decoder

    def __len__(self) -> int:
        return self._count

    def frame(self, i: int) -> np.ndarray:
        """Frame i, (H, W, 3) uint8 or (H, W) uint16, read-only (it is also cached)."""
        if not 0 <= i < self._count:
            raise IndexError(f"frame {i} is out of range (0..{self._count - 1})")
        hit = self._cache.get(i)
        if hit is not None:
            self._cache.move_to_end(i)
            return self._array(i, hit)
        k = np.searchsorted(self._key_index, i, side="right") - 1
        if k < 0:
            raise VideoCodecError(f"frame {i} has no keyframe before it")
        key = int(self._key_index[k])
        start = self._position + 1 if key <= self._position < i else key
        if start == key:
            self._open()
        for j in range(start, i + 1):
            frame = self._decode(j)
        return self._array(i, frame)

    def _array(self, i: int, frame) -> np.ndarray:
        """The cached frame as an array, converted from the decoder's picture on first use (only the
        frames asked for pay for the conversion, not the ones decoded on the way to them)."""
        if isinstance(frame, np.ndarray):
            return frame
        array = frame.to_ndarray(format=self._format)
        array.flags.writeable = False
        self._cache[i] = array
        return array

    def _open(self) -> None:
        try:
            ctx = av.CodecContext.create(self.encoding["codec"], "r")
        except (av.FFmpegError, ValueError) as e:
            raise VideoCodecError(f"this PyAV cannot decode {self.encoding['codec']}: {e}") from None
        ctx.height, ctx.width = self.shape[:2]
        ctx.pix_fmt = self.encoding["pix_fmt"]
        ctx.thread_count = 1
        self._ctx, self._position = ctx, -1

    def _decode(self, j: int):
        packet = av.Packet(self._read_packet(j))
        packet.pts = j
        try:
            frames = self._ctx.decode(packet)
        except av.FFmpegError as e:
            self._position = -1
            raise VideoCodecError(f"frame {j} does not decode: {e}") from None
        if len(frames) != 1:
            self._position = -1
            raise VideoCodecError(f"packet {j} gave {len(frames)} frames (a stream with delayed frames)")
        self._position = j
        self._cache[j] = frames[0]
        while len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)
        return frames[0]
