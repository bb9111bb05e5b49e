"""The diffusion policy around the U-Net: conditioning variants, loss, sampling, checkpoints, learning."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from models.anchor_frame import action_to_anchor
from models.diffusion_policy import DiffusionPolicy
from models.policy_dataset import PolicyDataset
from models.policy_config import PolicyConfig, VisionConfig

pytestmark = pytest.mark.slow
TINY = dict(embed_dim=32, down_dims=(32, 64), step_embed_dim=16,
            vision=VisionConfig(feature_dim=8, hidden_sizes=(8, 16), depths=(1, 1), groups=4))


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    from recorders.demo_recorder import RecordOptions, record_demo
    from recorders.task_suite import make_instance

    folder = tmp_path_factory.mktemp("policy")
    return [record_demo(make_instance("swap", 0), folder / "swap_0000.h5", RecordOptions(obs="rgb")).path]


def batch_of(dataset, n=8):
    return next(iter(DataLoader(dataset, batch_size=n, shuffle=True, generator=torch.Generator().manual_seed(0))))


@pytest.mark.parametrize("variant", [dict(), dict(memory=False), dict(cond="flat"), dict(obs="rgb")])
def test_every_variant_trains_and_samples_chunks(episodes, variant):
    torch.manual_seed(0)
    config = PolicyConfig(**TINY, **variant)
    data = PolicyDataset(episodes, obs=config.obs, cond=config.cond, memory=config.memory)
    policy = DiffusionPolicy(config, data.norm_stats())
    batch = batch_of(data)
    losses = policy.loss(batch)
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"]) and set(losses) == {"loss", "diffusion", "done"}
    assert all(p.grad is not None for p in policy.unet.parameters())
    out = policy.predict(batch, generator=torch.Generator().manual_seed(1))
    assert out["action"].shape == (8, 16, 8) and out["done"].shape == (8, 16)
    assert ((0 <= out["done"]) & (out["done"] <= 1)).all()


def test_checkpoint_round_trip_gives_the_same_chunks(episodes, tmp_path):
    data = PolicyDataset(episodes)
    policy = DiffusionPolicy(PolicyConfig(**TINY), data.norm_stats()).eval()
    batch = batch_of(data, 4)
    policy.save(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["config.json", "model.safetensors",
                                                                     "norm_stats.json"]
    loaded = DiffusionPolicy.load(tmp_path / "ckpt")
    a = policy.predict(batch, generator=torch.Generator().manual_seed(3))["action"]
    b = loaded.predict(batch, generator=torch.Generator().manual_seed(3))["action"]
    assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="not a policy checkpoint"):
        DiffusionPolicy.load(tmp_path)


def test_a_flat_policy_saved_before_tasks_were_added_still_loads(episodes, tmp_path):
    from safetensors.torch import load_file, save_file

    data = PolicyDataset(episodes, cond="flat")
    policy = DiffusionPolicy(PolicyConfig(**TINY, cond="flat"), data.norm_stats()).eval()
    policy.save(tmp_path / "old")
    weights = tmp_path / "old" / "model.safetensors"
    tensors = load_file(str(weights))
    rows = tensors["task_embedding.weight"]
    save_file({**tensors, "task_embedding.weight": rows[:7].contiguous()}, str(weights))  # the suite had 7 tasks
    loaded = DiffusionPolicy.load(tmp_path / "old")
    assert torch.equal(loaded.state_dict()["task_embedding.weight"][:7], rows[:7])
    batch = batch_of(data, 4)  # swap: one of the first seven tasks
    a = policy.predict(batch, generator=torch.Generator().manual_seed(3))["action"]
    b = loaded.predict(batch, generator=torch.Generator().manual_seed(3))["action"]
    assert torch.allclose(a, b, atol=1e-5)
    save_file({**tensors, "task_embedding.weight": rows[:, :5].contiguous()}, str(weights))
    with pytest.raises(ValueError):  # another width is no older suite: refused
        DiffusionPolicy.load(tmp_path / "old")


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="action_horizon"):
        PolicyConfig(action_horizon=20)
    with pytest.raises(ValueError, match="obs must be"):
        PolicyConfig(obs="depth")
    with pytest.raises(ValueError, match="prediction must be"):
        PolicyConfig(prediction="velocity")


@pytest.mark.parametrize("prediction", ["sample", "epsilon"])
def test_sampling_inverts_the_noising_given_a_perfect_predictor(episodes, prediction):
    """DDIM with a perfect U-Net (the true clean chunk, or the true noise) recovers the demonstrated
    chunk exactly: schedulers, anchor frame and normalisation agree."""
    data = PolicyDataset(episodes)
    policy = DiffusionPolicy(PolicyConfig(**TINY, prediction=prediction), data.norm_stats())
    batch = batch_of(data, 6)
    x0 = policy.norm.normalize("action", action_to_anchor(batch["action"].float(), batch["anchor"]))
    alphas = policy.sample_scheduler.alphas_cumprod

    class Perfect(torch.nn.Module):
        def forward(self, x, t, cond):
            a = alphas[int(t)]
            return x0 if prediction == "sample" else (x - a.sqrt() * x0) / (1 - a).sqrt()

    policy.unet = Perfect()
    out = policy.predict(batch)
    assert torch.allclose(out["action"], batch["action"].float(), atol=1e-5)


def test_a_few_hundred_steps_learn_the_demonstrated_chunks(episodes):
    """Training lowers the loss, and sampled chunks move towards the demonstrated ones."""
    torch.manual_seed(0)
    data = PolicyDataset(episodes)
    policy = DiffusionPolicy(PolicyConfig(**{**TINY, "down_dims": (64, 128)}), data.norm_stats())
    probe = batch_of(data, 32)

    def chunk_error() -> float:
        policy.eval()
        out = policy.predict(probe, generator=torch.Generator().manual_seed(2))
        policy.train()
        return (out["action"][:, :8, :3] - probe["action"][:, :8, :3]).norm(dim=-1).mean().item()

    torch.manual_seed(1)
    first_loss, first_error = policy.loss(probe)["diffusion"].item(), chunk_error()
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    loader = DataLoader(data, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    for _ in range(20):
        for batch in loader:
            loss = policy.loss(batch)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.manual_seed(1)
    assert policy.loss(probe)["diffusion"].item() < 0.3 * first_loss
    assert chunk_error() < 0.7 * first_error


def test_a_call_conditioned_policy_sees_only_the_objects_its_call_names(episodes):
    """cond="call": the state input is the arm's alone, so moving an object the call does not name
    changes nothing; the flat baseline (no call to name objects) sees every object."""
    data = PolicyDataset(episodes)
    batch = batch_of(data, 4)
    moved = {**batch, "obs_state": batch["obs_state"].clone()}
    moved["obs_state"][..., 8 + 7 * 2] += 0.1  # the third object's x, wherever it is named or not
    call_policy = DiffusionPolicy(PolicyConfig(**TINY), data.norm_stats()).eval()
    assert not call_policy.config.state_objects
    torch.testing.assert_close(call_policy.condition(moved), call_policy.condition(batch))
    flat_data = PolicyDataset(episodes, cond="flat")
    flat = DiffusionPolicy(PolicyConfig(**TINY, cond="flat"), flat_data.norm_stats()).eval()
    assert flat.config.state_objects
    flat_batch = batch_of(flat_data, 4)
    flat_moved = {**flat_batch, "obs_state": flat_batch["obs_state"].clone()}
    flat_moved["obs_state"][..., 8 + 7 * 2] += 0.1
    assert not torch.allclose(flat.condition(flat_moved), flat.condition(flat_batch))
    old = PolicyConfig.from_dict({k: v for k, v in PolicyConfig(**TINY).to_dict().items()
                                  if k not in ("frame", "prediction", "state_objects")})
    assert (old.frame, old.prediction, old.state_objects) == ("world", "epsilon", True)  # checkpoints before these



def test_cameras_can_see_only_the_latest_frame_resized_and_cropped(episodes):
    torch.manual_seed(0)
    vision = VisionConfig(feature_dim=8, hidden_sizes=(8, 16), depths=(1, 1), groups=4, image_size=32, crop=0.9)
    both = PolicyConfig(**{**TINY, "obs": "rgb", "vision": vision})
    latest = PolicyConfig(**{**TINY, "obs": "rgb", "vision": vision, "image_frames": 1})
    assert latest.camera_frames == 1 and both.camera_frames == both.obs_horizon
    with pytest.raises(ValueError, match="image_frames"):
        PolicyConfig(**{**TINY, "obs": "rgb", "image_frames": 3})
    data = PolicyDataset(episodes, obs="rgb")
    batch = batch_of(data)
    widths = [DiffusionPolicy(c, data.norm_stats()).condition(batch).shape[1] for c in (both, latest)]
    assert widths[0] - widths[1] == 2 * vision.feature_dim  # two cameras, one frame fewer each
    policy = DiffusionPolicy(latest, data.norm_stats())
    policy.loss(batch)["loss"].backward()
    policy.eval()
    assert policy.predict(batch)["action"].shape == (8, latest.pred_horizon, 8)
    lean = PolicyDataset(episodes, obs="rgb", camera_frames=1)  # reads only the frame the cameras encode
    item, full = lean[5], data[5]
    assert item["front_rgb"].shape[0] == 1 and torch.equal(item["front_rgb"][0], full["front_rgb"][-1])
    torch.manual_seed(1)
    a = policy.predict(batch_of(lean))["action"]
    torch.manual_seed(1)
    assert torch.allclose(a, policy.predict(batch)["action"])  # the same batch order: the same prediction


def test_a_flat_policy_reads_the_cubes_and_zones_its_instruction_names(episodes):
    """The flat baseline's goal: which cubes and zones the instruction names, where they are and
    where they started; --no-goal (and a flat checkpoint saved before the goal existed) has the task alone."""
    from models.instruction_check import mentioned
    from models.policy_layout import GOAL_SLOT_DIM

    assert mentioned("Stack the RED block on the blue one", ["blue cube", "red cube"], ["red zone"]) == \
        ["red cube", "blue cube"]
    assert mentioned("put every orange cube in the red zone", ["orange cube 1", "orange cube 2", "red cube"],
                     ["red zone"]) == ["orange cube 1", "orange cube 2", "red zone"]
    assert mentioned("open the drawer", ["red cube"], ["red zone"]) == []
    data = PolicyDataset(episodes, cond="flat")
    flat = DiffusionPolicy(PolicyConfig(**TINY, cond="flat"), data.norm_stats()).eval()
    assert flat.config.goal and data.goal
    batch = batch_of(data, 4)
    goal = batch["goal"].view(4, -1, GOAL_SLOT_DIM)
    assert (goal[:, :2, 0] == 1).all()  # every recorded task names at least two things
    other = {**batch, "goal": torch.roll(batch["goal"].view(4, -1, GOAL_SLOT_DIM), 1, dims=1).reshape(4, -1)}
    assert not torch.allclose(flat.condition(other), flat.condition(batch))  # another cube named: another condition
    blind = PolicyConfig(**TINY, cond="flat", goal=False)
    assert not PolicyDataset(episodes, cond="flat", goal=False).goal
    assert "goal" not in PolicyDataset(episodes, cond="flat", goal=False)[0]
    assert not hasattr(DiffusionPolicy(blind, data.norm_stats()), "goal_encoder")
    old = PolicyConfig.from_dict({k: v for k, v in flat.config.to_dict().items() if k != "goal"})
    assert old.goal is False
    with pytest.raises(ValueError, match="flat baseline"):
        PolicyConfig(goal=True)
