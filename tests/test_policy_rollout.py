"""Policy rollouts: live features equal the training features, the execution loop, async chunking."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from app.policy_eval import evaluate
from models.policy_features import FeatureBuilder, remembered, state_row
from app.policy_rollout import rollout
from models.call_encoding import TARGET_KINDS, CallEncoding
from models.diffusion_policy import DiffusionPolicy, PolicyConfig
from models.policy_dataset import PolicyDataset
from models.vision_encoder import VisionConfig
from recorders.arms.base import ArmState
from recorders.episode_file import open_episode
from recorders.episode_meta import ModelRef, Provenance
from recorders.memory import Memory
from recorders.observation import Observation
from recorders.pose import Pose
from recorders.robot_api_spec import Call, vocabulary
from recorders.task_suite import make_instance

pytestmark = pytest.mark.slow
TINY = dict(embed_dim=32, down_dims=(32, 64), step_embed_dim=16,
            vision=VisionConfig(feature_dim=8, hidden_sizes=(8, 16), depths=(1, 1), groups=4))
FEATURE_KEYS = ("obs_state", "object_mask", "anchor", "call", "function", "memory", "task", "goal")


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    """State-only scripted demonstrations of stack and swap, seed 0."""
    from recorders.demo_recorder import RecordOptions, record_demo

    folder = tmp_path_factory.mktemp("rollout_demos")
    out = {}
    for task in ("stack", "swap"):
        result = record_demo(make_instance(task, 0), folder / f"{task}_0000.h5", RecordOptions(obs="state"))
        assert result.success
        out[task] = result.path
    return out


@pytest.fixture(scope="module")
def tiny_policy(demos):
    torch.manual_seed(0)
    return DiffusionPolicy(PolicyConfig(**TINY), PolicyDataset([demos["stack"]]).norm_stats()).eval()


def _streams(path):
    with open_episode(path) as ep:
        n = ep.frames
        read = lambda s: np.asarray(ep.stream_data(s)[:n], np.float32)  # noqa: E731
        names = list(ep.stream_spec("object_poses").meta["names"])
        return dict(n=n, ee=read("ee_pose"), grip=read("gripper_width"), obj=read("object_poses"), names=names,
                    action=read("action"), times=ep.stream_time("action"), calls=ep.calls, task=ep.task,
                    scene=ep.meta.scene, instruction=ep.instruction)


def _observation(s, f) -> Observation:
    z = np.zeros(7)
    state = ArmState(float(s["times"][f]), z, z, Pose.from_array(s["ee"][f]), float(s["grip"][f, 0]), False)
    return Observation(state, {n: Pose.from_array(s["obj"][f, j]) for j, n in enumerate(s["names"])})


def _assert_same(live: dict, item: dict, free_space: bool = False):
    assert set(live) == set(item) & set(FEATURE_KEYS)
    for k in live:
        a, b = live[k], item[k]
        assert a.dtype == b.dtype and a.shape == b.shape, k
        if k == "call" and free_space:  # live: the robot API's free_space pose; dataset: where the cube came to rest
            s = CallEncoding().slices["target"]
            pose = slice(s.start + 1 + len(TARGET_KINDS), s.start + 1 + len(TARGET_KINDS) + 7)
            keep = torch.ones_like(a, dtype=torch.bool)
            keep[pose] = False
            assert torch.equal(a[keep], b[keep])
            assert torch.allclose(a[pose][:3], b[pose][:3], atol=0.01)
        elif k == "anchor" and free_space:  # a place at free_space is anchored at that pose
            assert torch.allclose(a, b, atol=0.01)
        else:
            assert torch.equal(a, b), k


# ---- the most important check: live features are the training features -----------------------------------
@pytest.mark.parametrize("variant", [dict(), dict(memory=False), dict(cond="flat"), dict(cond="flat", goal=False)])
def test_live_features_equal_the_datasets_for_every_frame_of_a_recorded_swap(demos, variant):
    """Frames of a scripted swap replayed through the live builder, with memory filled as the robot
    API fills it, give PolicyDataset's item for every frame of every segment (recall targets included)."""
    config = PolicyConfig(**variant)
    data = PolicyDataset([demos["swap"]], cond=config.cond, memory=config.memory, goal=config.goal)
    s = _streams(demos["swap"])
    items = {(data.segments[p.segment].start, p.t): i for i, p in enumerate(data.samples)}
    starts = {seg.start: seg for seg in data.segments}
    remembers = [(c.t_start, c.args[0], c.args[1]) for c in s["calls"] if c.name == "remember"]
    builder = FeatureBuilder.for_scene(config, s["scene"], s["task"], s["instruction"])
    assert ("goal" in data[0]) == (config.cond == "flat" and config.goal)
    memory, compared, recalls = Memory(), 0, 0
    if config.cond == "flat":
        builder.begin_call(None, None)
    segment_start = 0
    for f in range(s["n"]):
        for t, key, obj in [r for r in remembers if r[0] <= s["times"][f] + 1e-6 and r[1] not in memory.poses]:
            memory.remember(key, Pose.from_array(s["obj"][f, s["names"].index(obj)]), t)  # what the API reads
        if f in starts and config.cond == "call":
            seg, target = starts[f], (starts[f].call.args[1] if starts[f].call.name == "place" else None)
            resolved = None
            if isinstance(target, Call) and target.name == "recall":
                resolved = memory.recall(target.args[0]).to_array().astype(np.float32)  # as api.execute returns it
                recalls += 1
            elif isinstance(target, Call):
                resolved = seg.resolved  # free_space: hindsight in a recording; checked live by the replay test
            builder.begin_call(seg.call, resolved)
            segment_start = f
        builder.add_frame(state_row(_observation(s, f), s["names"]))
        key = (segment_start, f)
        if key in items:
            _assert_same(builder.features(remembered(memory)), data[items[key]])
            compared += 1
    assert compared == len(data) and compared > 100
    assert recalls == (2 if config.cond == "call" else 0)


# ---- a test double that replays a demonstration through the execution loop ------------------------------
class ReplayPolicy:
    """predict: the demonstrated actions from the recorded frame whose state equals the window's latest
    (searched within segments of the batch's function, forward from the last match)."""

    def __init__(self, path):
        self.config = PolicyConfig()
        data = PolicyDataset([path])
        s = _streams(path)
        padded = np.zeros((s["n"], 5, 7), np.float32)
        padded[:, :len(s["names"])] = s["obj"]
        self.states = np.concatenate([s["ee"], s["grip"], padded.reshape(s["n"], -1)], 1)
        self.actions, self.segments, self.last = s["action"], data.segments, 0
        self.seen: list[tuple[int, float, dict]] = []  # matched frame, distance, batch

    def predict(self, batch, generator=None):
        row = batch["obs_state"][0, -1].numpy()
        name = vocabulary()[int(batch["function"][0])]
        frames = np.concatenate([np.arange(g.start, g.end) for g in self.segments if g.call.name == name])
        d = np.abs(self.states[frames] - row).max(1)
        hits = frames[d <= d.min() + 1e-7]
        later = hits[hits >= self.last]
        f = self.last = int(later[0] if len(later) else hits[0])
        end = next(g.end for g in self.segments if g.start <= f < g.end)
        steps = np.arange(f, f + self.config.pred_horizon)
        self.seen.append((f, float(d.min()), {k: v[0].clone() for k, v in batch.items()}))
        return {"action": torch.from_numpy(self.actions[np.minimum(steps, end - 1)])[None],
                "done": torch.from_numpy((steps >= end).astype(np.float32))[None]}


@pytest.mark.parametrize("task", ["stack", "swap"])
def test_replayed_demonstration_completes_the_task_and_its_live_inputs_match_training(demos, task, tmp_path):
    policy = ReplayPolicy(demos[task])
    result = rollout(make_instance(task, 0), policy, tmp_path / "replay.h5", max_call_s=10.0, policy_name="replay")
    assert result.success, result.failure
    assert all(c.status == "ok" for c in result.calls)
    motions = [c for c in result.calls if c.ticks]
    assert [c.code for c in motions] == [g.code for g in policy.segments]
    assert [c.ticks for c in motions] == [g.end - g.start for g in policy.segments]  # ended by the termination head
    # float32 actions replay float64 commands: states agree to float32 round-off
    assert result.stalls == 0 and all(dist < 1e-6 for _, dist, _ in policy.seen)
    data = PolicyDataset([result.path])
    items = {(data.segments[p.segment].start, p.t): i for i, p in enumerate(data.samples)}
    for f, _, batch in policy.seen:
        seg = next(g for g in data.segments if g.start <= f < g.end)
        free = any(isinstance(a, Call) and a.name == "free_space" for a in seg.call.args)
        _assert_same(batch, data[items[(seg.start, f)]], free_space=free)
    with open_episode(result.path) as ep:
        assert ep.success and ep.frames == result.frames
        assert ep.provenance == Provenance("policy", "sim", (ModelRef("policy", "replay"),))


# ---- an untrained policy ------------------------------------------------------------------------------------
def test_untrained_policy_rollout_logs_failed_calls_and_saves_an_episode(tiny_policy, tmp_path):
    result = rollout(make_instance("stack", 0), tiny_policy, tmp_path / "tiny.h5", max_call_s=2.0,
                     stop_on_failure=False, policy_name="runs/tiny")
    assert not result.success and result.failure
    motions = [c for c in result.calls if c.name in ("pick", "place")]
    assert [c.name for c in motions] == ["pick", "place"]
    assert all(c.status == "failed" and c.reason and 1 <= c.ticks <= 20 for c in motions)
    assert result.inference_ms and result.frames == sum(c.ticks for c in motions)
    with open_episode(result.path) as ep:
        assert ep.success is False and ep.provenance.models[0].run == "runs/tiny" and ep.frames == result.frames
        assert [c.status for c in ep.calls if c.name in ("pick", "place")] == ["failed", "failed"]
        assert {lab.code for lab in ep.labels} >= {m.code for m in motions}


def test_evaluate_reports_rates_with_95_percent_intervals(tiny_policy, tmp_path):
    folder = tiny_policy.save(tmp_path / "ckpt")
    result = evaluate(["stack"], 1, folder, max_call_s=0.5)
    json.dumps(result)
    (row,) = result["tasks"]
    assert row["successes"] == 0 and row["ci95"][0] == 0.0 and 0.5 < row["ci95"][1] < 1.0
    assert result["calls"]["pick"]["calls"] == 1 and result["calls"]["pick"]["rate"] == 0.0
    assert result["policy"] == str(folder) and result["inference_ms"]["chunks"] >= 1


# ---- asynchronous chunking ------------------------------------------------------------------------------------
class HoldPolicy:
    """Holds the arm where it is (never finished); sleeps `delay_s` per chunk to stand for inference."""

    def __init__(self, delay_s: float = 0.0):
        self.config, self.delay_s = PolicyConfig(), delay_s

    def predict(self, batch, generator=None):
        time.sleep(self.delay_s)
        pose = batch["obs_state"][:, -1, :7]  # (B, 7)
        action = torch.cat([pose, torch.zeros(len(pose), 1)], 1)[:, None].repeat(1, 16, 1)
        return {"action": action, "done": torch.zeros(len(pose), 16)}


def test_async_chunks_never_stall_with_fast_inference(tmp_path):
    result = rollout(make_instance("stack", 0), HoldPolicy(), None, max_call_s=2.0)
    assert result.calls[0].status == "failed" and "within 2 s" in result.calls[0].reason
    assert len(result.inference_ms) == 3  # 20 ticks: chunks starting at ticks 0, 8, 16
    assert result.stalls == 0 and result.stall_ms == 0.0


def test_async_chunks_stall_when_inference_outlasts_the_chunk(tmp_path):
    # lead 4 steps at 10 Hz leaves 0.4 s of arm time for each chunk after the first; 0.55 s is too long
    result = rollout(make_instance("stack", 0), HoldPolicy(delay_s=0.55), None, max_call_s=2.0)
    assert len(result.inference_ms) == 3 and result.stalls == 2
    assert result.stall_ms == pytest.approx(2 * 150, abs=120)


def test_a_planner_can_propose_the_calls_the_policy_executes(demos, tmp_path):
    inst = make_instance("swap", 0)
    program = iter(inst.program)
    result = rollout(inst, ReplayPolicy(demos["swap"]), tmp_path / "planned.h5", max_call_s=10.0,
                     source="planner", propose=lambda _api: next(program))
    assert result.success, result.failure
    with open_episode(result.path) as ep:
        assert {c.source for c in ep.calls} == {"planner"}
        assert ep.memory["history"] == [c.code for c in inst.program]


def test_a_refused_proposal_or_no_done_ends_the_rollout_with_a_reason(demos, tmp_path):
    from recorders.call_log import SkillFailed

    def refuse(_api):
        raise SkillFailed("the planner proposed an invalid call pick(\"unicorn\")")
    inst = make_instance("stack", 0)
    result = rollout(inst, ReplayPolicy(demos["stack"]), None, max_call_s=10.0, source="planner", propose=refuse)
    assert not result.success and "unicorn" in result.failure
    result = rollout(inst, ReplayPolicy(demos["stack"]), None, max_call_s=10.0, source="planner", max_calls=2,
                     propose=lambda _api: Call("remember", ("k", inst.roles["A"])))
    assert not result.success and result.failure == "no done() after 2 calls"
