"""The video encoder process: a take's camera frames encoded outside the recording process.

Encoding two 640x480 RGB-D cameras at 30 fps takes most of a core (H.264 3-4 ms a colour frame, FFV1
8 ms a depth frame). In a thread of the recording process it would compete for the GIL with the
control loop, the cameras and the GUI: measured against one busy Python thread, an encoder thread
managed 22 frame pairs a second instead of 90. So the encoders run in a child process, started with
`python -m recorders.video_encoder_process` (a fresh interpreter, as recorders/sim/franky_sim_server.py
does) and tied to the parent by a socket pair carrying `multiprocessing.connection` messages:

    parent (VideoEncoderProcess)                   child (`serve`)
    ----------------------------                   ---------------
    start() --- {stream: (encoding, shape, hz)} ->  one FrameEncoder and thread per stream
            <-- ("ready",) | ("failed", message)
    submit() -> sender thread:
            --- ("frame", stream, seq) + bytes --->  queued to the stream's thread, encoded
            <-- ("packet", stream, seq, key, bytes)  (one per frame, in order)
    close() --- ("close",) ------------------------>  flush every encoder, send what is left
            <-- ("closed",)                          exit

Starting a Python interpreter with numpy and PyAV takes 0.15 s on an idle machine and more on a busy
one, too long to stall a live take's control loop for. So a spare process is kept started and waiting
for its configuration (`warm_up`): a take takes it (configuring it is a few milliseconds) and starts
the next spare. Only the first take of a process, if nothing warmed up before, waits for a start.

`submit` never blocks: a stream with `max_in_flight` frames not yet back is behind, and its frame is
refused (the writer counts it as dropped); a refused frame costs nothing downstream because packets
are only ever made of frames that were sent. The child exits when the parent dies (its socket reads
EOF), so a killed recording leaves no process behind; what it had not sent back (under a second) is lost.
"""
from __future__ import annotations

import argparse
import atexit
import os
import queue
import socket
import subprocess
import sys
import threading
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable

import numpy as np

STARTUP_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 30.0
_REPO_ROOT = Path(__file__).resolve().parents[1]


class EncoderProcessError(Exception):
    """The encoder process could not start, or died; one line."""


class VideoEncoderProcess:
    """Parent-side handle: frames of named streams in, (stream, time, packet, keyframe) out through
    `on_packet`, called on this handle's receiver thread in each stream's frame order."""

    def __init__(self, streams: dict[str, tuple[dict, tuple[int, ...], str, float]],
                 on_packet: Callable[[str, float, bytes, bool], None],
                 on_failure: Callable[[str], None], max_in_flight: int = 30):
        self.streams = streams  # name -> (encoding, shape, dtype, rate_hz)
        self.on_packet, self.on_failure = on_packet, on_failure
        self.max_in_flight = max_in_flight
        self.failure: str | None = None
        self._times: dict[str, dict[int, float]] = {name: {} for name in streams}  # seq -> time, in flight
        self._seq = {name: 0 for name in streams}
        self._lock = threading.Lock()  # guards _times and _seq: producers of different streams
        self._room = threading.Condition(self._lock)  # notified as frames come back encoded, or on failure
        self._outbox: deque = deque()
        self._wake = threading.Event()
        self._closing = False
        self._closed = threading.Event()
        self._process: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._start()
        self._sender = threading.Thread(target=self._send_loop, name="video-encoder-send", daemon=True)
        self._receiver = threading.Thread(target=self._receive_loop, name="video-encoder-receive", daemon=True)
        self._sender.start()
        self._receiver.start()

    # ---- lifecycle -----------------------------------------------------------------------------
    def _start(self) -> None:
        self._process, self._conn = _take_spare() or _spawn()
        warm_up()  # the next take's process starts while this one records
        try:
            self._conn.send({name: (enc, list(shape), dtype, rate) for name, (enc, shape, dtype, rate)
                             in self.streams.items()})
            if not self._conn.poll(STARTUP_TIMEOUT_S):
                raise EncoderProcessError(f"the video encoder process did not start within {STARTUP_TIMEOUT_S:.0f} s")
            reply = self._conn.recv()
        except (EOFError, OSError) as e:
            self._kill()
            raise EncoderProcessError(f"the video encoder process died while starting: {e}") from None
        except BaseException:
            self._kill()
            raise
        if reply[0] != "ready":
            self._kill()
            raise EncoderProcessError(str(reply[1]))

    def close(self) -> None:
        """Encode what was submitted, deliver its packets, stop the process; safe to call twice."""
        if self._closing:
            self._closed.wait(CLOSE_TIMEOUT_S)
            return
        self._closing = True
        self._outbox.append(None)
        self._wake.set()
        if not self._closed.wait(CLOSE_TIMEOUT_S):
            self._fail(f"the video encoder did not finish within {CLOSE_TIMEOUT_S:.0f} s")
        self._sender.join(1.0)
        self._receiver.join(1.0)
        self._kill()

    def _kill(self) -> None:
        """Close the channel (the child exits on its EOF), reap the child, by force if it lingers."""
        if self._conn is not None:
            self._conn.close()
        p = self._process
        if p is not None and p.poll() is None:
            try:
                p.wait(2.0)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(2.0)

    # ---- producer side -------------------------------------------------------------------------
    def submit(self, stream: str, t: float, frame: np.ndarray) -> bool:
        """Queue one frame (copied) of `stream` for encoding; False if refused (the stream is behind,
        the process failed or is closing). Never blocks."""
        if self.failure is not None or self._closing:
            return False
        with self._lock:
            times = self._times[stream]
            if len(times) >= self.max_in_flight:
                return False
            seq = self._seq[stream]
            self._seq[stream] = seq + 1
            times[seq] = t
        self._outbox.append((stream, seq, np.ascontiguousarray(frame).tobytes()))
        self._wake.set()
        return True

    def wait_for_room(self, stream: str, timeout: float) -> bool:
        """Wait until `stream` may submit again (or the process failed); False on timeout."""
        with self._room:
            return self._room.wait_for(lambda: len(self._times[stream]) < self.max_in_flight
                                       or self.failure is not None, timeout)

    def in_flight(self) -> int:
        with self._lock:
            return sum(len(t) for t in self._times.values())

    # ---- threads -------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                while self._outbox:
                    item = self._outbox.popleft()
                    if item is None:
                        self._conn.send(("close",))
                        return
                    stream, seq, data = item
                    self._conn.send(("frame", stream, seq))
                    self._conn.send_bytes(data)
        except (OSError, ValueError) as e:
            self._fail(f"the video encoder process stopped taking frames ({e})")

    def _receive_loop(self) -> None:
        try:
            while True:
                msg = self._conn.recv()
                if msg[0] == "packet":
                    _, stream, seq, key, data = msg
                    with self._room:
                        t = self._times[stream].pop(seq)
                        self._room.notify_all()
                    self.on_packet(stream, t, data, key)
                elif msg[0] == "closed":
                    break
                else:  # ("failed", message)
                    self._fail(str(msg[1]))
                    break
        except (EOFError, OSError, KeyError) as e:
            self._fail(f"the video encoder process died ({type(e).__name__}: {e})")
        finally:
            self._closed.set()

    def _fail(self, message: str) -> None:
        if self.failure is None:
            self.failure = message
            self.on_failure(message)
        with self._room:
            self._room.notify_all()
        self._closed.set()


# ---- spare processes ---------------------------------------------------------------------------
_spare: list[tuple[subprocess.Popen, Connection]] = []
_spare_lock = threading.Lock()


def _spawn() -> tuple[subprocess.Popen, Connection]:
    parent_sock, child_sock = socket.socketpair()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "recorders.video_encoder_process", "--fd", str(child_sock.fileno())],
            pass_fds=(child_sock.fileno(),), stdin=subprocess.DEVNULL, cwd=_REPO_ROOT,
            env={**os.environ, "OMP_NUM_THREADS": "1"})
    except OSError as e:
        parent_sock.close()
        raise EncoderProcessError(f"could not start the video encoder process: {e}") from e
    finally:
        child_sock.close()
    return process, Connection(parent_sock.detach())


def warm_up() -> None:
    """Start a spare encoder process now, if none is waiting, so the next take need not wait for one."""
    with _spare_lock:
        if _spare and _spare[0][0].poll() is None:
            return
        for process, conn in _spare:
            conn.close()
        _spare.clear()
        try:
            _spare.append(_spawn())
        except EncoderProcessError:
            pass  # the take that needs one will say why


@atexit.register
def release_spare() -> None:
    """A spare exits when its socket closes; reap it so nothing is left running."""
    with _spare_lock:
        spares = list(_spare)
        _spare.clear()
    for process, conn in spares:
        conn.close()
        try:
            process.wait(2.0)
        except subprocess.TimeoutExpired:
            process.kill()


def _take_spare() -> tuple[subprocess.Popen, Connection] | None:
    with _spare_lock:
        if not _spare:
            return None
        process, conn = _spare.pop()
    if process.poll() is not None:
        conn.close()
        return None
    return process, conn


# ---- child -------------------------------------------------------------------------------------
def serve(conn: Connection) -> None:
    from recorders.video_codec import FrameEncoder  # av is imported while the process waits as a spare

    config = conn.recv()
    try:
        encoders = {name: FrameEncoder(enc, tuple(shape), rate) for name, (enc, shape, _, rate) in config.items()}
    except Exception as e:  # noqa: BLE001 - reported to the parent as a startup failure
        conn.send(("failed", f"the video encoder could not open its codecs: {e}"))
        return
    dtypes = {name: (np.dtype(dtype), tuple(shape)) for name, (_, shape, dtype, _) in config.items()}
    send_lock = threading.Lock()
    queues = {name: queue.Queue() for name in encoders}

    def send(msg) -> None:
        with send_lock:
            conn.send(msg)

    def encode_loop(name: str) -> None:
        enc, q = encoders[name], queues[name]
        try:
            while (item := q.get()) is not None:
                _, frame = item  # seqs count from 0 with no gaps, as the encoder numbers its frames
                for p in enc.encode(frame):
                    send(("packet", name, p.index, p.keyframe, p.data))
            for p in enc.flush():
                send(("packet", name, p.index, p.keyframe, p.data))
        except Exception as e:  # noqa: BLE001 - the parent records it as the streams' fault
            send(("failed", f"encoding {name} failed: {e}"))

    threads = [threading.Thread(target=encode_loop, args=(n,), daemon=True) for n in encoders]
    for th in threads:
        th.start()
    send(("ready",))
    try:
        while True:
            msg = conn.recv()
            if msg[0] == "close":
                break
            _, name, seq = msg
            dtype, shape = dtypes[name]
            queues[name].put((seq, np.frombuffer(conn.recv_bytes(), dtype).reshape(shape)))
    except (EOFError, OSError):
        os._exit(0)  # the parent died: nothing to deliver to
    for q in queues.values():
        q.put(None)
    for th in threads:
        th.join()
    send(("closed",))


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Code2Act's video encoder process (started by the episode writer)")
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setscheduler") and os.sched_getscheduler(0) != os.SCHED_OTHER:
        # started from a thread libfranka raised to SCHED_FIFO 99: an encoder at real-time priority
        # would starve the arm's own threads, so it runs on the normal scheduler
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    conn = Connection(args.fd)
    try:
        serve(conn)
    except (EOFError, OSError):
        return 0
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
