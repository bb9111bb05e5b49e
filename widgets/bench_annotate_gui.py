"""`python main.py bench annotate [--json]`: the Annotate workspace on a 10-minute, two-camera episode,
stored lossless (128x128, a simulated take) and as video (640x480 at 30 fps, H.264: a RealSense take).

Times the real panel: from `open_episode` to the first frame of both cameras drawn, and scrubbing
(random-walk `set_frame` with the event loop processed after each frame, so every frame is
decoded and drawn). Runs offscreen.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from app.bench_annotate import LAYOUTS, MINUTES, scrub_order, write_long_episode


def bench_annotate_gui(scrub_frames: int = 300, layouts: tuple[str, ...] = LAYOUTS) -> dict:
    return {layout: _bench_layout(layout, scrub_frames) for layout in layouts}


def _bench_layout(layout: str, scrub_frames: int) -> dict:
    from PySide6.QtWidgets import QApplication

    from widgets.annotate_panel import AnnotatePanel

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory(prefix="code2act-bench-") as tmp:
        path = write_long_episode(Path(tmp) / "long_episode.h5", layout=layout)
        panel = AnnotatePanel()
        panel.resize(1400, 900)
        panel.show()
        app.processEvents()
        t = time.perf_counter()
        assert panel.open_episode(path), "the benchmark episode did not open"
        app.processEvents()
        first_frame_s = time.perf_counter() - t
        frames = panel.episode.frames
        order = scrub_order(frames, scrub_frames)
        t = time.perf_counter()
        for i in order:
            panel.player.set_frame(int(i))
            app.processEvents()
        scrub_fps = len(order) / (time.perf_counter() - t)
        panel.close()
        panel.deleteLater()
        app.processEvents()
    return {"episode_minutes": MINUTES, "frames": int(frames), "open_to_first_frame_s": round(first_frame_s, 3),
            "camera_size": "640x480 at 30 fps, H.264" if layout == "video" else "128x128 at 10 Hz, lossless",
            "scrub_frames_per_s": round(scrub_fps, 1),
            "goals": {"open_to_first_frame_s": 1.0, "scrub_frames_per_s": 30.0}}
