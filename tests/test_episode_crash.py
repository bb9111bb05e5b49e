"""A recorder killed with SIGKILL loses at most its last second; finished episodes stay intact."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from recorders.episode_file import episode_summary, open_episode
from recorders.episode_recovery import find_partials, recover_partial

ROOT = Path(__file__).resolve().parents[1]
KILL_AFTER_S = 2.5

# Records episode 1 (50 ticks, finished), then episode 2 until killed: two 48x64 cameras and two arrays
# at 50 Hz on the wall clock, as a live recorder would (non-blocking appends). After each tick of
# episode 2 it prints how many ticks it has handed to the writer and when.
CHILD = r'''
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[2])
from recorders.episode_file import EpisodeMeta, StreamSpec
from recorders.episode_writer import EpisodeWriter
out, hz, quality = sys.argv[1], 50.0, sys.argv[3]
streams = [StreamSpec("action", "array", (8,), "float32", hz),
           StreamSpec("joint_positions", "array", (7,), "float64", hz),
           StreamSpec("front_rgb", "rgb", (48, 64, 3), "uint8", hz),
           StreamSpec("wrist_rgb", "rgb", (48, 64, 3), "uint8", hz),
           StreamSpec("front_depth", "depth", (48, 64), "uint16", hz)]
meta = EpisodeMeta("stack", "stack the red cube on the blue cube", "sim", hz, seed=1, clock="monotonic")
yx = np.indices((48, 64)).sum(axis=0)
noise = (np.stack([yx * 3, yx * 5, 255 - yx * 2], -1) % 256 + np.random.default_rng(0).integers(0, 8, (48, 64, 3))).astype(np.uint8)
depth = lambda i: (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 7 + i).astype(np.uint16)

def record(w, ticks, report):
    t0 = time.monotonic()
    for i in range(ticks):
        time.sleep(max(0.0, t0 + i / hz - time.monotonic()))
        t = time.monotonic() - t0
        w.append("action", t, np.full(8, i, np.float32))
        w.append("joint_positions", t, np.arange(7.0) + i)
        w.append("front_rgb", t, np.roll(noise, i, axis=1))
        w.append("wrist_rgb", t, np.roll(noise, -i, axis=0))
        w.append("front_depth", t, depth(i))
        if report:
            print(i + 1, time.monotonic() - t0, flush=True)

w = EpisodeWriter(out + "/first.h5", meta, streams, video_quality=quality)
record(w, 50, False)
w.log_call({"code": "home()", "name": "home", "args": [], "t_start": 0.0, "t_end": 0.5, "status": "ok",
            "source": "script", "reason": None})
w.finish(True, [{"start": 0, "end": 50, "code": "home()", "source": "auto"}])
print("first done", sum(w.dropped.values()), flush=True)
record(EpisodeWriter(out + "/second.h5", meta, streams, video_quality=quality), 10**9, True)
'''


@pytest.mark.parametrize("quality", ["lossless", "standard"])  # frames as recorded; H.264 colour, FFV1 depth
def test_sigkill_loses_at_most_the_last_second(tmp_path, quality):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(ROOT), quality],
                            stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(30.0, proc.kill)  # a hung child fails the test instead of hanging it
    watchdog.start()
    reports: list[tuple[int, float]] = []  # (ticks appended, seconds into episode 2)
    first_done = False
    try:
        for line in proc.stdout:
            if line.startswith("first done"):
                first_done = True
                assert line.split()[-1] == "0"  # episode 1 dropped nothing
            elif first_done:
                n, t = line.split()
                reports.append((int(n), float(t)))
                if reports[-1][1] >= KILL_AFTER_S:
                    break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    assert first_done and reports and reports[-1][1] >= KILL_AFTER_S, "the child died before it was killed"

    with open_episode(tmp_path / "first.h5") as ep:
        s = episode_summary(ep)
        assert np.array_equal(ep.stream_data("action")[:, 0], np.arange(50))
    assert s["frames"] == 50 and s["success"] is True and not s["recovered"]
    assert {name: st["count"] for name, st in s["streams"].items()} == dict.fromkeys(s["streams"], 50)
    assert [c["code"] for c in s["calls"]] == ["home()"] and s["segments"][0]["end"] == 50

    (partial,) = find_partials(tmp_path)
    final = recover_partial(partial)
    with open_episode(final) as ep:
        s = episode_summary(ep)
        action = ep.stream_data("action")[:, 0]
        times = ep.stream_time("action")
    elapsed = reports[-1][1]
    required = max((n for n, t in reports if t <= elapsed - 1.0), default=0)  # what was appended 1 s before
    assert s["recovered"] and s["success"] is None
    assert required > 0.9 * 50 * (KILL_AFTER_S - 1.0)
    assert min(st["count"] for st in s["streams"].values()) >= required
    assert np.array_equal(action, np.arange(len(action))) and np.all(np.diff(times) > 0)  # no holes
    if quality != "lossless":  # every flushed frame decodes: depth exactly, colour close to what was recorded
        assert s["format_version"] == 2
        assert s["streams"]["front_rgb"]["encoding"].startswith("h264")
        assert s["streams"]["front_depth"]["encoding"].startswith("ffv1")
    yx = np.indices((48, 64)).sum(axis=0)
    noise = (np.stack([yx * 3, yx * 5, 255 - yx * 2], -1) % 256
             + np.random.default_rng(0).integers(0, 8, (48, 64, 3))).astype(np.uint8)
    with open_episode(final) as ep:
        n = ep.stream_count("front_depth")
        depth = ep.stream_data("front_depth")[:]
        expected = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 7)[None] + np.arange(n, dtype=np.uint16)[:, None, None]
        assert np.array_equal(depth, expected)
        rgb = ep.stream_data("front_rgb")
        for i in (0, len(rgb) // 2, len(rgb) - 1):
            error = np.abs(rgb[i].astype(int) - np.roll(noise, i, axis=1)).mean()
            assert error < (1e-9 if quality == "lossless" else 8.0), (i, error)
