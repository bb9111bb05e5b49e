"""What the run engine's and the Run workspace's tests share: a workcell that holds the arm at a chosen
tick (so an interruption lands mid-call however loaded the machine), a scripted stand-in for a learned
planner, and a tiny planner trained for a few steps."""
from __future__ import annotations

from recorders.episode_meta import ModelRef
from recorders.task_suite import make_instance

WAIT_S = 120.0  # generous: a loaded machine only makes the wait longer, never the test wrong


class TickGate:
    """A workcell factory whose arm stops at its `hold_at`-th control tick until the test releases it:
    the running call is then certainly mid-motion when the test interrupts it, however loaded the
    machine (no real-time pacing, no race with the wall clock)."""

    def __init__(self, hold_at: int = 5):
        import threading

        self.hold_at, self.ticks = hold_at, 0
        self.held, self.released = threading.Event(), threading.Event()

    def __call__(self, robot, spec, control_hz, robot_ip):
        from recorders.cell.registry import open_workcell

        cell = open_workcell(robot, spec, control_hz)
        wait_tick = cell.arm.wait_tick

        def gated_wait_tick() -> None:
            self.ticks += 1
            if self.ticks == self.hold_at:
                self.held.set()
                assert self.released.wait(WAIT_S), "the test never released the arm"
            wait_tick()

        cell.arm.wait_tick = gated_wait_tick
        return cell

    def interrupt(self, action) -> None:
        """Wait until the arm is held mid-call, do `action`, and let the arm go on."""
        assert self.held.wait(WAIT_S), "the arm never reached the held tick"
        action()
        self.released.set()


class ScriptedPlanner:
    """A learned planner's stand-in: `next_calls` answers from `script(instruction, history, keys)`,
    with one runner-up that is never chosen."""

    def __init__(self, script):
        self.script = script
        self.asked: list[tuple[str, tuple[str, ...]]] = []  # (instruction, history) of every proposal

    def next_calls(self, image, instruction, history, keys, names, k):
        from models.planner import ScoredCall

        assert image.ndim == 3  # the front camera's frame
        self.asked.append((instruction, tuple(history)))
        return ScoredCall(self.script(instruction, history, keys), -0.1, 0.9), ScoredCall("home()", -2.3, 0.1)


def loader(planner):
    return lambda path: (planner, ModelRef("planner", str(path), ""))


def train_tiny_planner(data, run, *extra: str) -> None:
    """A tiny planner trained for a few steps on two small pick_place demonstrations: it cannot do much.
    `extra`: more `train planner` arguments."""
    from app.cli import main
    from recorders.cell.scene import CameraSettings
    from recorders.demo_recorder import record_demo

    for seed in (0, 1):
        record_demo(make_instance("pick_place", seed, cameras=CameraSettings(48, 48)), data / f"pick_place_{seed}.h5")
    assert main(["train", "planner", "--data", str(data), "--out", str(run), "--steps", "4", "--tiny",
                 "--batch-size", "4", "--device", "cpu", *extra]) == 0


def reinstruction_planner(task: str = "stack", seed: int = 0) -> "ScriptedPlanner":
    """A planner stand-in that remembers the first cube for "remember the first cube", and the second
    for any other instruction, then ends."""
    inst = make_instance(task, seed)
    a, b = inst.roles["A"], inst.roles["B"]

    def script(instruction, history, keys):
        if instruction == "remember the first cube":
            return f'remember("first", "{a}")' if "first" not in keys else "home()"
        return f'remember("second", "{b}")' if "second" not in keys else "done()"

    return ScriptedPlanner(script)
