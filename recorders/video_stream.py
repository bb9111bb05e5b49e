"""Video-coded camera streams inside an episode file (format version 2): layout, appending, reading.

```
/streams/<name>        attrs kind (rgb | depth), rate_hz, meta (JSON, as a raw stream's), shape (JSON),
                       dtype, encoding (JSON: codec, pix_fmt, gop, crf, options; recorders/video_quality.py)
/streams/<name>/packets  (M,) uint8: the codec packets back to back, unfiltered (already compressed)
/streams/<name>/index    (N, 2) int64: [end of packet i in `packets`, 1 if packet i is a keyframe];
                       rows never written read -1
/streams/<name>/time     (N,) float64 seconds, as for raw streams (NaN: never written)
```
Packet i encodes frame i. The writer appends a batch's packets, then its index rows, then its times,
so a flushed time row means its packet and index row were flushed before it: what a killed recorder
flushed decodes (P-frames only refer back, to frames already written). Only recorders/episode_file.py
and recorders/episode_writer.py use this module.
"""
from __future__ import annotations

import json
from typing import Callable

import h5py
import numpy as np

from recorders.video_quality import VideoCodecError

PACKET_CHUNK = 1 << 16  # bytes per chunk of `packets`


def is_video(g: h5py.Group) -> bool:
    return "packets" in g


def create_video_stream(f: h5py.File, spec, encoding: dict) -> tuple[h5py.Dataset, h5py.Dataset, h5py.Dataset]:
    """Empty, resizable /streams/<name>/packets, index and time for `spec` (a StreamSpec); returns them."""
    g = f.create_group(f"streams/{spec.name}")
    g.attrs.update({"kind": spec.kind, "rate_hz": float(spec.rate_hz), "meta": json.dumps(spec.meta),
                    "shape": json.dumps(list(spec.shape)), "dtype": spec.dtype, "encoding": json.dumps(encoding)})
    packets = g.create_dataset("packets", shape=(0,), maxshape=(None,), dtype="uint8", chunks=(PACKET_CHUNK,))
    index = g.create_dataset("index", shape=(0, 2), maxshape=(None, 2), dtype="int64", chunks=(1024, 2),
                             fillvalue=-1)
    time = g.create_dataset("time", shape=(0,), maxshape=(None,), dtype="float64", chunks=(1024,), fillvalue=np.nan)
    return packets, index, time


def append_packets(datasets: tuple[h5py.Dataset, h5py.Dataset, h5py.Dataset],
                   items: list[tuple[float, bytes, bool]]) -> None:
    """Append (time, packet, keyframe) items, in frame order: packets, then index rows, then times."""
    packets, index, time = datasets
    end = packets.shape[0]
    blob = b"".join(p for _, p, _ in items)
    packets.resize((end + len(blob),))
    packets[end:] = np.frombuffer(blob, np.uint8)
    ends = end + np.cumsum([len(p) for _, p, _ in items])
    rows = np.stack([ends, [int(k) for _, _, k in items]], axis=1).astype(np.int64)  # (k, 2)
    n = index.shape[0]
    index.resize((n + len(items), 2))
    index[n:] = rows
    time.resize((n + len(items),))
    time[n:] = [t for t, _, _ in items]


def stream_fields(g: h5py.Group) -> tuple[str, tuple[int, ...], str, float, dict, dict]:
    """(kind, shape, dtype, rate_hz, meta, encoding) of a video stream's group."""
    a = g.attrs
    return (str(a["kind"]), tuple(json.loads(str(a["shape"]))), str(a["dtype"]), float(a.get("rate_hz", 1.0)),
            json.loads(str(a.get("meta", "{}"))), json.loads(str(a["encoding"])))


def row_count(g: h5py.Group) -> int:
    return min(g["index"].shape[0], g["time"].shape[0])


def readable_rows(g: h5py.Group) -> int:
    """Frames whose packet, index row and time were all flushed (a killed recorder's partial file)."""
    n = row_count(g)
    ends, times = g["index"][:n, 0], g["time"][:n]
    size = g["packets"].shape[0]
    bad = np.isnan(times) | (ends < 0) | (ends > size) | (np.diff(ends, prepend=0) < 0)
    missing = np.flatnonzero(bad)
    return int(missing[0]) if len(missing) else n


def copy_rows(src: h5py.Group, dst: tuple[h5py.Dataset, h5py.Dataset, h5py.Dataset], n: int) -> int:
    """Copy the first n frames of a video stream (packets, index, times); returns n."""
    packets, index, time = dst
    rows = src["index"][:n]  # (n, 2)
    size = int(rows[-1, 0]) if n else 0
    packets.resize((size,))
    for a in range(0, size, 1 << 24):  # 16 MB at a time
        b = min(size, a + (1 << 24))
        packets[a:b] = src["packets"][a:b]
    index.resize((n, 2))
    index[:] = rows
    time.resize((n,))
    time[:] = src["time"][:n]
    return n


class VideoFrames:
    """A video stream's frames, indexed like the h5py dataset of a raw stream: `frames[i]`,
    `frames[-1]`, `frames[a:b]`, `frames[[i, j]]`, `frames[:, y, x]`, `np.asarray(frames)`.
    Every read decodes (the decoder keeps the current GOP), and returns new arrays."""

    def __init__(self, g: h5py.Group, count: int, error: Callable[[str], Exception] = VideoCodecError):
        self._error = error  # builds what a read failure raises, from a one-line reason
        kind, shape, dtype, _, _, encoding = stream_fields(g)
        index = g["index"][:count]  # (N, 2)
        self._ends = index[:, 0].astype(np.int64)
        self._starts = np.concatenate([[0], self._ends[:-1]]).astype(np.int64)
        self._packets = g["packets"]
        self.kind = kind
        self.shape = (count, *shape)
        self.dtype = np.dtype(dtype)
        self.encoding = encoding
        from recorders.video_codec import FrameDecoder  # PyAV loads when a video stream is first read

        self._decoder = FrameDecoder(encoding, shape, self._packet, index[:, 1] == 1)

    def _packet(self, i: int) -> bytes:
        return self._packets[self._starts[i]:self._ends[i]].tobytes()

    def __len__(self) -> int:
        return self.shape[0]

    def _frame(self, i: int) -> np.ndarray:
        try:
            return self._decoder.frame(i)
        except IndexError:
            raise
        except (VideoCodecError, OSError, ValueError, KeyError) as e:
            raise self._error(f"frame {i} of the {self.kind} stream cannot be decoded ({e})") from None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key):
        rest = ()
        if isinstance(key, tuple):
            key, rest = key[0], key[1:]
        n = self.shape[0]
        if isinstance(key, (int, np.integer)):
            i = int(key) + (n if key < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"index {int(key)} is out of range for {n} frames")
            frame = self._frame(i)
            return np.array(frame[rest] if rest else frame)
        if isinstance(key, slice):
            rows = range(*key.indices(n))
        elif isinstance(key, (list, np.ndarray)) and np.asarray(key).dtype.kind in "iu":
            rows = [int(i) + (n if i < 0 else 0) for i in np.asarray(key).reshape(-1)]
        else:
            raise TypeError(f"video frames are indexed by an integer, a slice or a list of integers, got {key!r}")
        frames = [self._frame(i) for i in rows]
        out = np.stack(frames) if frames else np.empty((0, *self.shape[1:]), self.dtype)
        return out[(slice(None), *rest)] if rest else out

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

