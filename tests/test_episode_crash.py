"""A writer killed with SIGKILL loses at most its last second; finished episodes stay intact."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from recorders.episode_file import episode_summary, find_partials, open_episode, recover_partial

ROOT = Path(__file__).resolve().parents[1]
RATE_HZ = 100.0

CHILD = r'''
import sys, time
import numpy as np
sys.path.insert(0, sys.argv[2])
from recorders.episode_file import EpisodeMeta, StreamSpec
from recorders.episode_writer import EpisodeWriter
out = sys.argv[1]
streams = [StreamSpec("action", "array", (8,), "float32", 100.0), StreamSpec("front_rgb", "rgb", (64, 64, 3), "uint8", 100.0),
           StreamSpec("wrist_depth", "depth", (64, 64), "uint16", 100.0)]
meta = EpisodeMeta("stack", "stack it", "sim", 100.0)
def frames(w, n, t0):
    for i in range(n):
        due = t0 + i / 100.0
        time.sleep(max(0.0, due - time.monotonic()))
        w.append("action", i / 100.0, np.full(8, i, np.float32))
        w.append("front_rgb", i / 100.0, np.full((64, 64, 3), i % 256, np.uint8))
        w.append("wrist_depth", i / 100.0, np.full((64, 64), i, np.uint16))
        print(i + 1, flush=True)
w = EpisodeWriter(out + "/first.h5", meta, streams)
frames(w, 50, time.monotonic())
w.finish(True, [])
print("first done", flush=True)
w = EpisodeWriter(out + "/second.h5", meta, streams)
frames(w, 100000, time.monotonic())
'''


def test_sigkill_loses_at_most_the_last_second(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(ROOT)], stdout=subprocess.PIPE, text=True)
    lines = []
    started = None
    try:
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("first done"):
                started = time.monotonic()
            if started is not None and time.monotonic() - started > 2.5:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    appended = int(lines[-1])  # samples the child had handed to the writer of episode 2
    with open_episode(tmp_path / "first.h5") as ep:
        assert ep.frames == 50 and ep.success is True
    (partial,) = find_partials(tmp_path)
    with open_episode(recover_partial(partial)) as ep:
        s = episode_summary(ep)
    assert s["recovered"] and appended - s["frames"] <= RATE_HZ  # at most one second lost
    assert s["streams"]["front_rgb"]["count"] >= appended - RATE_HZ
    assert s["frames"] > 100
