"""`python main.py bench annotate [--json]`: the Annotate workspace on a 10-minute, two-camera episode.

Times the real panel: from `open_episode` to the first frame of both cameras drawn, and scrubbing
(random-walk `set_frame` with the event loop processed after each frame, so every frame is
decoded and drawn). Runs offscreen.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from app.bench_annotate import MINUTES, write_long_episode


def bench_annotate_gui(scrub_frames: int = 300) -> dict:
    from PySide6.QtWidgets import QApplication

    from widgets.annotate_panel import AnnotatePanel

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory(prefix="code2act-bench-") as tmp:
        path = write_long_episode(Path(tmp) / "long_episode.h5")
        panel = AnnotatePanel()
        panel.resize(1400, 900)
        panel.show()
        app.processEvents()
        t = time.perf_counter()
        assert panel.open_episode(path), "the benchmark episode did not open"
        app.processEvents()
        first_frame_s = time.perf_counter() - t
        frames = panel.episode.frames
        rng = np.random.default_rng(1)
        order = np.clip(np.cumsum(rng.integers(-30, 31, scrub_frames)) + frames // 2, 0, frames - 1)
        t = time.perf_counter()
        for i in order:
            panel.player.set_frame(int(i))
            app.processEvents()
        scrub_fps = len(order) / (time.perf_counter() - t)
        panel.close()
        panel.deleteLater()
        app.processEvents()
    return {"episode_minutes": MINUTES, "frames": int(frames), "open_to_first_frame_s": round(first_frame_s, 3),
            "scrub_frames_per_s": round(scrub_fps, 1),
            "goals": {"open_to_first_frame_s": 1.0, "scrub_frames_per_s": 30.0}}
