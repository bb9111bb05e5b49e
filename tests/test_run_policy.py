"""A learned policy inside the run engine (app/run_policy.py through app/run_session.py), and what every
run publishes over its cameras (app/run_overlay.py). Tests wait on the session, never on the clock."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from app.run_overlay import CameraOverlay
from app.run_session import RunSession
from recorders.episode_file import open_episode
from recorders.episode_meta import ModelRef
from recorders.memory import Memory
from recorders.observation import observe
from recorders.pose import Pose
from recorders.task_suite import make_instance

WAIT_S = 180.0
ENDED = ("finished", "failed")


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    """An untrained tiny call-conditioned policy with real norm stats: it predicts chunks, it cannot pick."""
    from models.diffusion_policy import DiffusionPolicy, PolicyConfig
    from models.policy_dataset import PolicyDataset
    from recorders.demo_recorder import RecordOptions, record_demo

    folder = tmp_path_factory.mktemp("run_policy_demo")
    demo = record_demo(make_instance("stack", 0), folder / "stack_0000.h5", RecordOptions(obs="state"))
    torch.manual_seed(0)
    config = PolicyConfig(embed_dim=32, down_dims=(32, 64), step_embed_dim=16)
    return DiffusionPolicy(config, PolicyDataset([demo.path]).norm_stats()).eval()


def ended(session: RunSession):
    assert session.wait_for(lambda s: s.state in ENDED, WAIT_S), session.snapshot()
    return session.snapshot()


def test_a_learned_policy_runs_the_motion_calls_and_the_run_records_it(sessions, tiny_policy):
    ref = ModelRef("policy", "runs/tiny", "runs/tiny/step_10")
    session = sessions(policy_loader=lambda path: (tiny_policy, ref), max_call_s=1.5)
    session.start("stack", 0, policy="runs/tiny")
    snap = ended(session)
    pick = snap.program[0]
    # An untrained policy cannot pick: the call fails with the policy's own reason, and the run stops there.
    assert pick.code.startswith("pick(") and pick.status == "failed" and pick.reason.startswith("the policy ")
    assert snap.state == "failed" and snap.error.startswith(f"{pick.code} failed")
    view = snap.policy_view
    assert view is not None and view.chunks >= 1 and view.call is None  # between calls once it ended
    assert view.last_latency_ms > 0 and view.max_latency_ms >= view.mean_latency_ms > 0
    assert view.done_trace and all(0.0 <= p <= 1.0 for _, p in view.done_trace)
    assert [t for t, _ in view.done_trace] == sorted(t for t, _ in view.done_trace)
    with open_episode(snap.episode) as ep:
        assert ep.meta.provenance.driver == "policy" and ep.meta.provenance.models == (ref,)
        assert ep.frames > 0 and [c.status for c in ep.calls] == ["failed"]


class HeldPolicy:
    """The tiny policy, never finished (P(finished) = 0), holding its `hold_at`-th prediction until the
    test releases it: the call is then certainly mid-motion when the test interrupts it."""

    def __init__(self, policy, hold_at: int = 2):
        import threading

        self.policy, self.hold_at, self.predictions = policy, hold_at, 0
        self.held, self.released = threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def predict(self, batch, generator=None):
        self.predictions += 1
        if self.predictions == self.hold_at:
            self.held.set()
            assert self.released.wait(WAIT_S), "the test never released the policy"
        out = self.policy.predict(batch, generator=generator)
        return {**out, "done": torch.zeros_like(out["done"])}


def test_a_policy_call_is_aborted_mid_motion_and_logged(sessions, tiny_policy):
    held = HeldPolicy(tiny_policy)
    session = sessions(policy_loader=lambda path: (held, ModelRef("policy", path, path)), max_call_s=60.0)
    session.start("stack", 0, policy="runs/tiny")
    assert held.held.wait(WAIT_S), "the policy never predicted a second chunk"
    session.abort_call()
    held.released.set()
    assert session.wait_for(lambda s: s.state == "paused", WAIT_S), session.snapshot()
    row = session.snapshot().program[-1]
    assert row.code.startswith("pick(") and row.status == "aborted" and "aborted" in row.reason
    session.stop()
    snap = ended(session)
    with open_episode(snap.episode) as ep:
        assert [i.kind for i in ep.interventions] == ["abort"]
        assert ep.calls[0].status == "aborted" and ep.frames > 0


def test_a_flat_policy_is_refused_with_the_reason(sessions, tiny_policy):
    from dataclasses import replace

    flat = type(tiny_policy).__new__(type(tiny_policy))
    flat.__dict__.update(tiny_policy.__dict__)
    flat.config = replace(tiny_policy.config, cond="flat")
    session = sessions(policy_loader=lambda path: (flat, ModelRef("policy", path, path)))
    session.start("stack", 0, policy="runs/flat")
    snap = ended(session)
    assert snap.state == "failed" and "a flat policy" in snap.error


def test_every_tick_publishes_the_cameras_with_the_memorys_key_poses_on_them(sessions):
    inst = make_instance("swap", 0)
    session = sessions(obs="rgb")
    session.start("swap", 0)
    snap = ended(session)
    assert snap.state == "finished", snap.error
    assert set(snap.images) == {"front", "wrist"} and set(snap.marks) == {"front", "wrist"}
    a, b = inst.roles["A"], inst.roles["B"]
    front = snap.marks["front"]
    assert {key for key, _, _ in front.memory} == {f"{a} start", f"{b} start"}
    h, w = snap.images["front"].shape[:2]
    assert all(-0.5 <= u < w - 0.5 and -0.5 <= v < h - 0.5 for _, u, v in front.memory)
    assert front.path is None  # the scripted skills predict no path


def test_the_overlay_puts_a_key_pose_where_the_camera_sees_it_and_follows_the_wrist():
    """A cube's remembered pose lands on the cube's own pixels in the front image (its colour), and the
    wrist camera's projection moves with the hand."""
    from recorders.cell.registry import open_workcell

    inst = make_instance("swap", 0)
    with open_workcell("sim", inst.scene, 10.0) as cell:
        cube = inst.roles["A"]
        memory = Memory()
        key = f"{cube} start"
        memory.remember(key, cell.object_pose(cube), 0.0)
        ob = observe(cell, cameras=True)
        overlay = CameraOverlay(cell)
        marks = overlay.marks(ob, memory, np.array([cell.arm.state().ee_pose.xyz]))
        (_, u, v), = marks["front"].memory
        rgb = ob.images["front"][0]
        from recorders.cell.scene import COLOURS

        colour = np.asarray(COLOURS[next(c.colour for c in inst.scene.cubes if c.name == cube)]) * 255
        patch = rgb[int(round(v)) - 1:int(round(v)) + 2, int(round(u)) - 1:int(round(u)) + 2].reshape(-1, 3)
        assert np.min(np.linalg.norm(patch - colour, axis=1)) < 90, (patch, colour)
        assert marks["front"].path.shape == (1, 2)
        moved = Pose.from_array(ob.state.ee_pose.to_array() + np.r_[0.02, 0.0, 0.0, 0, 0, 0, 0])
        from dataclasses import replace

        shifted = overlay.marks(replace(ob, state=replace(ob.state, ee_pose=moved)), memory, None)
        assert shifted["front"].memory == marks["front"].memory  # a fixed camera does not move with the hand
        (_, u0, v0), = marks["wrist"].memory
        (_, u1, v1), = shifted["wrist"].memory  # 2 cm along x: the cube slides across the wrist image
        assert np.hypot(u1 - u0, v1 - v0) > 2.0
        assert key in {k for k, _, _ in marks["front"].memory}
