"""The models `bench run` (widgets/bench_run_gui.py) runs when none are given: a tiny planner trained on
two scripted pick_place demonstrations, and the default-size rgb policy, untrained (its inference
time does not depend on the weights) with its termination head held at "not finished", so a motion
call runs until the bench ends it.
"""
from __future__ import annotations

from pathlib import Path

PLANNER_STEPS = 200  # enough for the tiny planner to write its training task's program


def tiny_planner(data: Path) -> str:
    """A tiny planner trained on two small scripted pick_place demonstrations."""
    import contextlib
    import io

    from app.cli import main
    from recorders.cell.scene import CameraSettings
    from recorders.demo_recorder import record_demo
    from recorders.task_suite import make_instance

    demos, run = data / "demos", data / "runs" / "bench-planner"
    demos.mkdir(parents=True)
    for seed in (0, 1):
        record_demo(make_instance("pick_place", seed, cameras=CameraSettings(48, 48)), demos / f"pick_place_{seed}.h5")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        if main(["train", "planner", "--data", str(demos), "--out", str(run), "--steps", str(PLANNER_STEPS), "--tiny",
                 "--batch-size", "8", "--lr", "3e-3", "--device", "cpu"]) != 0:
            raise RuntimeError("bench run: training the tiny planner failed")
    for demo in demos.iterdir():  # not episodes of the run's own folder
        demo.unlink()
    return str(run)


class NeverFinished:
    """A policy whose termination head never says finished: a motion call runs until the bench ends it."""

    def __init__(self, policy):
        self.policy = policy

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def predict(self, batch, generator=None):
        import torch

        out = self.policy.predict(batch, generator=generator)
        return {**out, "done": torch.zeros_like(out["done"])}


def default_rgb_policy(path: str):
    from app.bench_inference import _norm
    from models.diffusion_policy import DiffusionPolicy
    from models.policy_config import trained_default
    from recorders.episode_meta import ModelRef

    return NeverFinished(DiffusionPolicy(trained_default("rgb"), _norm()).eval()), ModelRef("policy", path, "")
