"""`python main.py bench run [--json] [--seconds S] [--planner RUN] [--policy RUN]`: the Run workspace
during a learned planner + policy run with both cameras, at the control rate, offscreen.

Measures, while the policy executes motion calls:
- GUI heartbeat: a 10 ms timer on the GUI thread; "blocked" is how much later than due it fired
  (goal: never more than 100 ms), i.e. how long the window could not react to the operator; over
  the whole run, and after its first second (when the simulated workcell opens: MuJoCo compiles
  the scene and creates its renderer holding the GIL, which stops every Python thread ~0.1 s);
- control stalls: paced control ticks that started more than a period late, and policy chunks not
  ready when the arm needed them (goal: 0 of each).
Models: the given runs, else the default-size rgb policy (untrained: inference time does not depend on
the weights; its termination head is held at "not finished", so a motion call runs until the bench
ends it) and a tiny planner
trained on two scripted pick_place demonstrations. Runs follow one another (seeds 0, 1, ...)
until the policy has run `seconds` or five runs have been made.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

HEARTBEAT_MS = 10
GOALS = {"gui_blocked_max_ms": 100.0, "late_ticks": 0, "chunk_stalls": 0}
MAX_RUNS = 5
START_S = 1.0  # a run's first second: the workcell opens (MuJoCo compiles the scene holding the GIL)


def bench_run_gui(seconds: float = 20.0, planner: str | None = None, policy: str | None = None) -> dict:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.bench_run import PLANNER_STEPS, default_rgb_policy, tiny_planner
    from app.record_session import RecordSession
    from app.run_models import ModelChoice
    from app.run_session import RunSession
    from widgets.gui_thread_gc import collect_on_gui_thread
    from widgets.workspaces import build_window
    from widgets.run_setup import RunSetup

    app = QApplication.instance() or QApplication([])
    collect_on_gui_thread(app)
    with tempfile.TemporaryDirectory(prefix="code2act-bench-run-") as tmp:
        data = Path(tmp)
        planner_key = planner or tiny_planner(data)
        loaders = {} if policy else {"policy_loader": default_rgb_policy}
        session = RunSession(data, obs="rgb", realtime=True, max_call_s=seconds + 60.0, **loaders)
        window = build_window(RecordSession(out_dir=data), data, session)
        window.resize(1440, 920)
        window.show()
        panel = window.run_panel
        window.tabs.setCurrentWidget(panel)
        for role, key in (("planner", planner_key), ("policy", policy or "default-rgb-untrained")):
            RunSetup._add(panel.setup.model_lists[role], ModelChoice(role, str(key), Path(str(key)).name, "bench"))
            panel.setup.choose(role, str(key))
        panel.setup.task.setCurrentText("pick_place")

        beats: list[tuple[float, float]] = []  # (ms later than due, seconds into the run)
        last = [time.perf_counter()]

        def beat() -> None:
            now = time.perf_counter()
            beats.append((1000 * (now - last[0]) - HEARTBEAT_MS, now - t0))
            last[0] = now

        heartbeat = QTimer()
        heartbeat.setTimerType(heartbeat.timerType().PreciseTimer)
        heartbeat.timeout.connect(beat)
        policy_s, runs, late, stalls, stall_ms, latencies = 0.0, [], 0, 0, 0.0, []
        try:
            for seed in range(MAX_RUNS):
                panel.setup.seed.setValue(seed)
                if not panel.start_run():
                    raise RuntimeError("the Run workspace did not start a run: " + panel.log_texts()[-1])
                _pump_until(app, lambda: panel.snapshot.state not in ("idle", "finished", "failed")
                            or panel.snapshot.error is not None, 120)
                beats.clear()
                last[0] = t0 = time.perf_counter()
                in_policy = 0.0
                heartbeat.start(HEARTBEAT_MS)
                while panel.snapshot.state not in ("finished", "failed") and policy_s + in_policy < seconds:
                    _pump(app, 0.05)
                    view = panel.snapshot.policy_view
                    if view is not None and view.call is not None:
                        in_policy += 0.05
                heartbeat.stop()
                window.run_session.stop()
                _pump_until(app, lambda: panel.snapshot.state in ("finished", "failed"), 120)
                snap = panel.snapshot
                view = snap.policy_view
                policy_s += in_policy
                late += snap.late_ticks
                if view is not None:
                    stalls, stall_ms = stalls + view.stalls, stall_ms + view.stall_ms
                    latencies += [view.mean_latency_ms] if view.mean_latency_ms else []
                runs.append({"seed": seed, "program": [f"{r.code} {r.status}" for r in snap.program],
                             "wall_s": round(time.perf_counter() - t0, 1), "policy_s": round(in_policy, 1),
                             "gui_blocked_max_ms": round(max((ms for ms, _ in beats), default=0.0), 1),
                             "gui_blocked_max_ms_after_start": round(max((ms for ms, at in beats if at > START_S),
                                                                         default=0.0), 1),
                             "gui_blocked_p99_ms": round(_p99([ms for ms, _ in beats]), 1), "late_ticks": snap.late_ticks,
                             "gui_blocked_worst": [(round(ms, 1), round(at, 2)) for ms, at in sorted(beats)[-5:]],
                             "chunks": view.chunks if view else 0, "chunk_stalls": view.stalls if view else 0,
                             "chunk_ms_mean": round(view.mean_latency_ms, 1) if view and view.mean_latency_ms else None,
                             "chunk_ms_max": round(view.max_latency_ms, 1) if view and view.max_latency_ms else None})
                if policy_s >= seconds:
                    break
        finally:
            heartbeat.stop()
            window.close()
            app.processEvents()
    return {"policy_seconds": round(policy_s, 1), "runs": runs,
            "gui_blocked_max_ms": max((r["gui_blocked_max_ms"] for r in runs), default=None),
            "gui_blocked_max_ms_after_start": max((r["gui_blocked_max_ms_after_start"] for r in runs), default=None),
            "late_ticks": late, "chunk_stalls": stalls, "stall_ms": round(stall_ms, 1),
            "chunk_ms_mean": round(statistics.mean(latencies), 1) if latencies else None,
            "planner": str(planner or f"tiny, trained {PLANNER_STEPS} steps on 2 pick_place demos"),
            "policy": str(policy or "default rgb, untrained"),
            "goals": GOALS}


def _pump(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)


def _pump_until(app, done, timeout: float) -> None:
    end = time.perf_counter() + timeout
    while not done():
        if time.perf_counter() > end:
            raise RuntimeError(f"bench run: gave up after {timeout:.0f} s")
        _pump(app, 0.02)


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[int(0.99 * (len(ordered) - 1))]
