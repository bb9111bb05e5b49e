"""Writing episodes while they are recorded: crash-safe, off the producer's thread.

Producers (control loop, camera threads, audio callback) call `append`, which only enqueues. One
writer thread owns the HDF5 file: it appends samples in batches to `EPISODE.h5.partial`, opened in
SWMR mode so that the file on disk is consistent after every flush, and flushes at least every
`flush_interval` seconds: a SIGKILL loses at most the last second, and `recover_partial` turns the
partial into an episode. `finish` drains the queue, writes success and labels, and renames the
partial to its final name.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import queue
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import h5py
import numpy as np

from recorders.episode_file import FORMAT_VERSION, PARTIAL_SUFFIX, EpisodeMeta, StreamSpec, image_compression

_STOP = object()


def _chunks(spec: StreamSpec) -> tuple[int, ...]:
    if spec.kind in ("rgb", "depth"):
        return (1, *spec.shape)  # one frame per chunk: random access while scrubbing
    rows = 4096 if spec.kind == "audio" else 256
    return (rows, *spec.shape)


class EpisodeWriter:
    """Appends timestamped samples of declared streams to one episode file."""

    def __init__(self, path, meta: EpisodeMeta, streams: list[StreamSpec], queue_size: int = 512,
                 flush_interval: float = 0.5, drop_when_full: bool = True):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self.meta = meta
        self.specs = {s.name: s for s in streams}
        if len(self.specs) != len(streams):
            raise ValueError("stream names must be unique")
        self.flush_interval = flush_interval
        self.drop_when_full = drop_when_full
        self.dropped: Counter[str] = Counter()
        self.written: Counter[str] = Counter()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: BaseException | None = None
        self._finished = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._h5 = self._create()
        self._thread = threading.Thread(target=self._run, name=f"episode-writer:{self.path.name}", daemon=True)
        self._thread.start()

    # ---- producer side -------------------------------------------------------------------------
    def append(self, stream: str, t: float, data) -> bool:
        """Queue one sample; returns False if it was dropped because the writer is behind."""
        if stream not in self.specs:
            raise KeyError(f"unknown stream {stream!r}; streams: {', '.join(self.specs)}")
        self._raise_writer_error()
        item = (stream, float(t), np.asarray(data))
        if self.drop_when_full:
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                self.dropped[stream] += 1
                return False
        else:
            self._queue.put(item)
        return True

    def log_call(self, call: dict) -> None:
        """Queue one logged robot-API call (never dropped)."""
        self._raise_writer_error()
        self._queue.put(("__call__", 0.0, call))

    def finish(self, success: bool | None, labels: list[dict]) -> Path:
        """Write everything queued, then success and labels; rename to the final path."""
        self._stop_thread()
        self._raise_writer_error()
        self._h5.close()
        with h5py.File(self.partial, "r+") as f:
            f.attrs["success"] = -1 if success is None else int(bool(success))
            if "labels" in f:
                del f["labels"]
            f.create_dataset("labels", data=json.dumps(labels).encode("utf-8"))
        os.replace(self.partial, self.path)
        self._finished = True
        return self.path

    def discard(self) -> None:
        """Stop and delete what was recorded."""
        self._stop_thread()
        try:
            self._h5.close()
        finally:
            self.partial.unlink(missing_ok=True)
            self._finished = True

    def close_unfinished(self) -> None:
        """Stop writing and keep the partial (flushed) file for recovery."""
        self._stop_thread()
        try:
            self._h5.close()
        except Exception:  # noqa: BLE001 - the file stays recoverable from its last flush
            pass
        self._finished = True

    def __enter__(self) -> "EpisodeWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._finished:
            self.close_unfinished()

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # ---- writer thread -------------------------------------------------------------------------
    def _create(self) -> h5py.File:
        f = h5py.File(self.partial, "w", libver="latest")
        m = self.meta
        f.attrs.update({
            "format_version": FORMAT_VERSION, "task": m.task, "instruction": m.instruction, "robot": m.robot,
            "control_hz": float(m.control_hz), "seed": int(m.seed), "split": m.split, "clock": m.clock,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "scene": json.dumps(m.scene), "success": -1, "recovered": 0, "labels_edited": 0,
        })
        for s in self.specs.values():
            g = f.create_group(f"streams/{s.name}")
            filters = image_compression() if s.kind in ("rgb", "depth") else {}
            d = g.create_dataset("data", shape=(0, *s.shape), maxshape=(None, *s.shape), dtype=s.dtype,
                                 chunks=_chunks(s), **filters)
            d.attrs.update({"kind": s.kind, "rate_hz": float(s.rate_hz), "meta": json.dumps(s.meta)})
            g.create_dataset("time", shape=(0,), maxshape=(None,), dtype="float64", chunks=(1024,))
        f.create_dataset("calls", shape=(0,), maxshape=(None,), dtype="uint8", chunks=(4096,))
        f.swmr_mode = True  # from here on the file on disk stays readable after every flush
        return f

    def _run(self) -> None:
        pending: dict[str, list] = defaultdict(list)
        last_flush = time.monotonic()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=self.flush_interval / 2)
                except queue.Empty:
                    item = None
                stop = item is _STOP
                if item is not None and not stop:
                    pending[item[0]].append(item)
                    # Take whatever else is waiting, so writes happen in batches.
                    while len(pending[item[0]]) < 64:
                        try:
                            nxt = self._queue.get_nowait()
                        except queue.Empty:
                            break
                        if nxt is _STOP:
                            stop = True
                            break
                        pending[nxt[0]].append(nxt)
                due = time.monotonic() - last_flush >= self.flush_interval
                if stop or due or sum(map(len, pending.values())) >= 256:
                    self._write(pending)
                    pending.clear()
                if stop or due:
                    self._h5.flush()
                    last_flush = time.monotonic()
                if stop:
                    return
        except BaseException as e:  # noqa: BLE001 - surfaced to the producer on its next call
            self._error = e

    def _write(self, pending: dict[str, list]) -> None:
        f = self._h5
        for name, items in pending.items():
            if not items:
                continue
            if name == "__call__":
                raw = "".join(json.dumps(c, default=str) + "\n" for _, _, c in items).encode("utf-8")
                d = f["calls"]
                n = d.shape[0]
                d.resize((n + len(raw),))
                d[n:] = np.frombuffer(raw, np.uint8)
                continue
            g = f["streams"][name]
            data, times = g["data"], g["time"]
            n = data.shape[0]
            k = len(items)
            data.resize(n + k, axis=0)
            if self.specs[name].kind in ("rgb", "depth"):
                for i, (_, _, x) in enumerate(items):  # one chunk each: no batch copy needed
                    data[n + i] = x
            else:
                data[n:n + k] = np.stack([x for _, _, x in items]).astype(data.dtype, copy=False)
            times.resize((n + k,))
            times[n:n + k] = [t for _, t, _ in items]
            self.written[name] += k

    def _stop_thread(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _raise_writer_error(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"the episode writer for {self.path} failed: {self._error}") from self._error
