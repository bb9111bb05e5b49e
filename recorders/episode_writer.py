"""Writing an episode while it is recorded: crash-safe, off the producers' threads.

Producers (control loop, camera threads, audio callback) call `append`, which checks the sample,
copies it and puts it on a bounded queue; when the queue is full the sample is dropped and counted
(`dropped[stream]`) rather than stalling a camera or the control loop. One writer thread owns the
HDF5 file: it takes everything queued, appends it stream by stream to `EPISODE.h5.partial` (opened
in SWMR mode, so the file on disk is consistent after every flush) and flushes at least every
`flush_interval` seconds: a SIGKILL loses at most the last second, and
`recorders.episode_recovery.recover_partial` turns the partial into an episode. `finish` drains the
queue, closes the file, reopens it to write success and labels (attributes cannot be created in
SWMR mode) and renames it to its final name. A finished episode is never overwritten: a writer
refuses a path where an episode or a partial already is (`EpisodeExistsError`).

At a `video_quality` other than lossless (recorders/video_quality.py) the rgb and depth streams are
video-coded: `append` hands their frames to the encoder process (recorders/video_encoder_process.py,
off this process and its GIL), whose packets come back to the writer thread and are stored with
recorders/video_stream.py. A frame the encoder is too far behind to take is dropped and counted like
any other; if the encoder dies, its streams stop with a fault row and the take goes on without them.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import queue
import threading
import time
from collections import Counter, defaultdict, deque
from pathlib import Path

import h5py
import numpy as np

from recorders.episode_file import (
    CONTROL_STREAM, PARTIAL_SUFFIX, EpisodeExistsError, EpisodeMeta, EpisodeWriteError, ROW_LOGS, StreamSpec,
    create_rows, create_stream, create_video_stream, encode_labels, root_attrs, store_labels,
)
from recorders.video_quality import encoding_for
from recorders.video_encoder_process import EncoderProcessError, VideoEncoderProcess
from recorders.video_stream import append_packets

_STOP = object()
_MAX_BATCH = 1024  # samples written between two looks at the flush clock


class EpisodeWriter:
    """Appends timestamped samples of declared streams, logged calls and interventions to one episode file.

    `queue_size` bounds the samples waiting in memory (a 640x480 RGB frame is 0.9 MB, its depth
    0.6 MB). With `drop_when_full=False` (scripted recording, where waiting costs nothing) `append`
    blocks instead of dropping.
    """

    def __init__(self, path, meta: EpisodeMeta, streams: list[StreamSpec], queue_size: int = 512,
                 flush_interval: float = 0.5, drop_when_full: bool = True, video_quality: str = "lossless"):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self.meta = meta
        self.specs = {s.name: s for s in streams}
        if len(self.specs) != len(streams):
            raise ValueError("stream names must be unique")
        if CONTROL_STREAM not in self.specs:
            raise ValueError(f"an episode needs the control stream {CONTROL_STREAM!r}")
        if not 0 < flush_interval <= 1.0:
            raise ValueError(f"flush_interval must be in (0, 1] s, got {flush_interval}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.video_quality = video_quality
        self.encodings = {s.name: e for s in streams if (e := encoding_for(s.kind, s.shape, video_quality))}
        self._refuse_existing()
        self.flush_interval = flush_interval
        self.drop_when_full = drop_when_full
        self.dropped: Counter[str] = Counter()
        # samples queued per stream; every key exists from the start, so other threads may copy it any time
        self.appended: Counter[str] = Counter({name: 0 for name in self.specs})
        self.written: Counter[str] = Counter()  # touched by the writer thread only
        self._drop_lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._rows: dict[str, deque[str]] = {name: deque() for name in ROW_LOGS}  # JSON rows; never dropped
        self._error: BaseException | None = None
        self._done = False
        self._last_t: dict[str, float] = {}  # per video stream: the newest frame's time, for its fault row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._encoder = self._start_encoder()
        try:
            self._h5 = self._create()
        except BaseException:
            if self._encoder is not None:
                self._encoder.close()
            raise
        self._thread = threading.Thread(target=self._run, name=f"episode-writer:{self.path.name}", daemon=True)
        self._thread.start()

    # ---- producer side -----------------------------------------------------------------------------
    def append(self, stream: str, t: float, data) -> bool:
        """Queue one sample taken `t` seconds after the episode start; returns False if it was
        dropped because the writer is behind. Thread-safe; never blocks unless drop_when_full=False."""
        spec = self.specs.get(stream)
        if spec is None:
            raise KeyError(f"unknown stream {stream!r}; streams: {', '.join(self.specs)}")
        self._check_open()
        sample = np.asarray(data)
        if sample.shape != spec.shape:
            raise ValueError(f"stream {stream!r} takes samples of shape {spec.shape}, got {sample.shape}")
        if not np.can_cast(sample.dtype, spec.dtype, "same_kind"):
            raise TypeError(f"stream {stream!r} holds {spec.dtype}, got {sample.dtype}")
        if stream in self.encodings:
            return self._submit_frame(stream, float(t), sample.astype(spec.dtype, copy=False))
        item = (stream, float(t), sample.astype(spec.dtype, copy=True))  # the producer may reuse its buffer
        if not self.drop_when_full:
            self._put(item)
            self.appended[stream] += 1
            return True
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._drop_lock:
                self.dropped[stream] += 1
            return False
        self.appended[stream] += 1
        return True

    def _submit_frame(self, stream: str, t: float, frame: np.ndarray) -> bool:
        """Hand a frame of a video-coded stream to the encoder (it copies it); with drop_when_full=False
        wait while the encoder is behind."""
        self._last_t[stream] = t
        while not self._encoder.submit(stream, t, frame):
            if self.drop_when_full or self._encoder.failure is not None:
                with self._drop_lock:
                    self.dropped[stream] += 1
                return False
            self._encoder.wait_for_room(stream, 1.0)
        self.appended[stream] += 1
        return True

    def _start_encoder(self) -> VideoEncoderProcess | None:
        if not self.encodings:
            return None
        streams = {name: (enc, self.specs[name].shape, self.specs[name].dtype, self.specs[name].rate_hz)
                   for name, enc in self.encodings.items()}
        try:
            return VideoEncoderProcess(streams, self._on_packet, self._on_encoder_failure)
        except EncoderProcessError as e:
            raise EpisodeWriteError(f"{self.path}: cannot record video ({e}); record at video quality lossless "
                                    f"instead") from e

    def _on_packet(self, stream: str, t: float, data: bytes, keyframe: bool) -> None:
        self._put((stream, t, (data, keyframe)))  # never dropped: a missing packet breaks the frames after it

    def _on_encoder_failure(self, message: str) -> None:
        for stream in self.encodings:  # straight to the row log: this may come while finish() closes the encoder
            row = {"t": round(self._last_t.get(stream, 0.0), 4), "stream": stream,
                   "text": f"video encoding stopped: {message}"}
            self._rows["faults"].append(json.dumps(row))

    def log_call(self, call: dict) -> None:
        """Record one logged robot-API call (a JSON object); never dropped, never blocks."""
        self._log("calls", call)

    def log_intervention(self, intervention: dict) -> None:
        """Record one intervention of a supervised run (a JSON object); never dropped, never blocks."""
        self._log("interventions", intervention)

    def log_fault(self, t: float, stream: str, text: str) -> None:
        """Record that a device failed `t` seconds into the episode (`stream`: the stream it feeds, or
        "arm"); never dropped, never blocks."""
        self._log("faults", {"t": round(float(t), 4), "stream": stream, "text": text})

    def _log(self, name: str, row: dict) -> None:
        self._check_open()
        self._rows[name].append(json.dumps(row, default=str))  # deque.append: safe from any thread

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # ---- ending ------------------------------------------------------------------------------------
    def finish(self, success: bool | None, labels: list[dict], memory: dict | None = None) -> Path:
        """Write everything queued, then success, labels and the robot's memory (`Memory.to_json()`);
        rename to the final path and return it. Stop the producers first: a sample appended while
        finish runs may be lost."""
        rows = encode_labels(labels)  # a bad label is a ValueError before anything is closed
        self._check_open()
        self._stop()
        self._raise_writer_error()
        self._refuse_existing(partial=False)
        try:
            with h5py.File(self.partial, "r+") as f:
                f.attrs["success"] = -1 if success is None else int(bool(success))
                f.attrs["labels_edited"] = int(any(json.loads(r)["source"] == "edited" for r in rows))
                store_labels(f, rows)
                if memory is not None:
                    f.attrs["memory"] = json.dumps(memory)
            os.replace(self.partial, self.path)
        except OSError as e:
            raise EpisodeWriteError(f"{self.path}: cannot finish the recording ({e})") from e
        return self.path

    def discard(self) -> None:
        """Stop and delete what was recorded."""
        if not self._done:
            self._stop()
        self.partial.unlink(missing_ok=True)

    def close_unfinished(self) -> None:
        """Stop writing and keep the flushed partial file for `recover_partial`."""
        if not self._done:
            self._stop()

    def __enter__(self) -> "EpisodeWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close_unfinished()  # leaving without finish(): keep what was recorded, recoverable

    # ---- writer thread -----------------------------------------------------------------------------
    def _create(self) -> h5py.File:
        created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        f = h5py.File(self.partial, "w", libver="latest")
        try:
            f.attrs.update(root_attrs(self.meta, created, video=bool(self.encodings)))
            self._datasets = {s.name: create_video_stream(f, s, self.encodings[s.name]) if s.name in self.encodings
                              else create_stream(f, s) for s in self.specs.values()}
            self._row_datasets = {name: create_rows(f, name) for name in ROW_LOGS}
            f.swmr_mode = True  # every dataset and attribute exists: from here the file stays readable
        except BaseException:
            f.close()
            self.partial.unlink(missing_ok=True)
            raise
        return f

    def _run(self) -> None:
        last_flush = time.monotonic()
        stop = False
        try:
            while not stop:
                timeout = max(0.0, last_flush + self.flush_interval - time.monotonic())
                items = []
                try:  # wait for one sample, then take what else is waiting: fewer, larger writes
                    items.append(self._queue.get(timeout=timeout))
                    while len(items) < _MAX_BATCH and items[-1] is not _STOP:
                        items.append(self._queue.get_nowait())
                except queue.Empty:
                    pass
                if items and items[-1] is _STOP:
                    stop = True
                    items.pop()
                batch: dict[str, list] = defaultdict(list)
                for item in items:
                    batch[item[0]].append(item)
                for name, samples in batch.items():
                    self._write_stream(name, samples)
                self._write_rows()
                if stop or time.monotonic() - last_flush >= self.flush_interval:
                    self._h5.flush()
                    last_flush = time.monotonic()
        except BaseException as e:  # noqa: BLE001 - surfaced to the producer on its next call
            self._error = e
        finally:
            try:
                self._h5.close()
            except Exception:  # noqa: BLE001 - the partial stays recoverable from its last flush
                pass

    def _write_stream(self, name: str, items: list) -> None:
        if name in self.encodings:  # items (name, t, (packet, keyframe)) from the encoder
            append_packets(self._datasets[name], [(t, p, k) for _, t, (p, k) in items])
            self.written[name] += len(items)
            return
        data, times = self._datasets[name]
        n, k = data.shape[0], len(items)
        data.resize(n + k, axis=0)
        if self.specs[name].kind in ("rgb", "depth"):
            for i, (_, _, x) in enumerate(items):  # one chunk per frame: no need to stack a copy
                data[n + i] = x
        else:
            data[n:n + k] = np.stack([x for _, _, x in items])
        times.resize((n + k,))  # after the data: a time row flushed means its sample was written
        times[n:n + k] = [t for _, t, _ in items]
        self.written[name] += k

    def _write_rows(self) -> None:
        for name, queued in self._rows.items():
            rows = []
            while queued:
                rows.append(queued.popleft())
            if rows:
                d = self._row_datasets[name]
                n = d.shape[0]
                d.resize((n + len(rows),))
                d[n:] = rows

    # ---- plumbing ----------------------------------------------------------------------------------
    def _put(self, item) -> None:
        """Blocking put that gives up if the writer thread has died (its queue would never drain)."""
        while True:
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    self._raise_writer_error()
                    raise EpisodeWriteError(f"the episode writer for {self.path} stopped")

    def _stop(self) -> None:
        self._done = True
        if self._encoder is not None:
            self._encoder.close()  # its last packets reach the queue before the writer is told to stop
        if self._thread.is_alive():
            try:
                self._put(_STOP)
            except EpisodeWriteError:
                pass
            self._thread.join()

    def _refuse_existing(self, partial: bool = True) -> None:
        if self.path.exists():
            raise EpisodeExistsError(f"{self.path} is a finished episode; a recording never overwrites one")
        if partial and self.partial.exists():
            raise EpisodeExistsError(f"{self.partial} is an unfinished recording; recover or delete it first")

    def _check_open(self) -> None:
        self._raise_writer_error()
        if self._done:
            raise EpisodeWriteError(f"the recording {self.path} has already ended")

    def _raise_writer_error(self) -> None:
        if self._error is not None:
            raise EpisodeWriteError(f"writing {self.partial} failed: {self._error}") from self._error
