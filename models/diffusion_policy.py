"""The low-level policy: a diffusion policy that executes one robot-API call, conditioned on it.

Owns the whole model around the noise-prediction U-Net (models/conditional_unet1d.py): the
observation encoder (proprioception and object poses, plus one vision encoder per camera with
`obs="rgb"`), the condition (the call vector, or with `cond="flat"` the task and, with `goal`, the
instruction's named cubes and zones; memory features
unless `memory=False`), the coordinates (positions relative to the call's anchor by default: models/anchor_frame.py),
normalisation (the dataset's `NormStats` in those coordinates, stored with the model), the DDPM
training loss, DDIM sampling and the termination head that says when the call is finished.

    batch (PolicyDataset items) -> anchor frame -> normalise -> [state MLP | vision encoders]
        + [call | task + goal] + [memory]
        -> global condition -> U-Net (noise prediction, DDPM 100 steps / DDIM 10 steps) -> action chunk
                            -> termination head -> P(call finished) per predicted step

A checkpoint is a folder: `config.json` (models/policy_config.py), `model.safetensors`,
`norm_stats.json` (models/norm_stats.py). Nothing is pickled; `load` checks every file before it
allocates a weight (models/checkpoint_files.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from models.anchor_frame import (action_from_anchor, action_to_anchor, call_to_anchor, memory_to_anchor,
                                 state_to_anchor)
from models.call_encoding import MEMORY_DIM, CallEncoding
from models.checkpoint_files import check_finite, check_shapes, read_header
from models.conditional_unet1d import ConditionalUnet1D
from models.norm_stats import NORM_STATS_FILE, NormStats
from models.policy_config import PolicyConfig
from models.policy_layout import ACTION_DIM, CAMERAS, GOAL_DIM, STATE_DIM, TASK_VOCAB
from models.vision_encoder import VisionEncoder

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "code2act-diffusion-policy"


def _mlp(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_out), nn.Mish(), nn.Linear(n_out, n_out))


class DiffusionPolicy(nn.Module):
    def __init__(self, config: PolicyConfig, norm: NormStats):
        super().__init__()
        from diffusers import DDIMScheduler, DDPMScheduler

        self.config, self.norm = config, norm
        c, e = config, config.embed_dim
        self.state_encoder = _mlp(c.state_dim * c.obs_horizon, e)
        self.cameras = CAMERAS if c.obs == "rgb" else ()
        self.vision = nn.ModuleDict({cam: VisionEncoder(c.vision) for cam in self.cameras})
        if c.cond == "call":
            self.call_encoder = _mlp(CallEncoding().dim, e)
        else:
            self.task_embedding = nn.Embedding(len(TASK_VOCAB), e)
        if c.uses_goal:
            self.goal_encoder = _mlp(GOAL_DIM, e)
        if c.uses_memory:
            self.memory_encoder = _mlp(MEMORY_DIM, e)
        cond_dim = (e * (2 + int(c.uses_memory) + int(c.uses_goal))
                    + len(self.cameras) * c.camera_frames * c.vision.feature_dim)
        self.unet = ConditionalUnet1D(ACTION_DIM, cond_dim, c.step_embed_dim, c.down_dims)
        self.termination = nn.Sequential(nn.Linear(cond_dim, 256), nn.Mish(), nn.Linear(256, c.pred_horizon))
        scheduler = dict(num_train_timesteps=c.train_timesteps, beta_schedule="squaredcos_cap_v2",
                         clip_sample=True, prediction_type=c.prediction)
        self.train_scheduler = DDPMScheduler(**scheduler)
        self.sample_scheduler = DDIMScheduler(**scheduler)

    # ---- conditioning ----------------------------------------------------------------------------
    def _anchor(self, batch: dict) -> torch.Tensor | None:
        """(B, 3) anchors with frame="anchor" (zeros where the batch has none, e.g. flat), else None."""
        if self.config.frame != "anchor":
            return None
        if "anchor" in batch:
            return batch["anchor"].float()
        return batch["obs_state"].new_zeros((batch["obs_state"].shape[0], 3)).float()

    def condition(self, batch: dict) -> torch.Tensor:
        """(B, cond_dim): the observation window, the call (or task) and the memory."""
        anchor = self._anchor(batch)
        state, call, memory = batch["obs_state"].float(), batch.get("call"), batch.get("memory")
        if anchor is not None:
            state = state_to_anchor(state, batch["object_mask"].float(), anchor)
            call = None if call is None else call_to_anchor(call.float(), anchor)
            memory = None if memory is None else memory_to_anchor(memory.float(), anchor)
        state = self.norm.normalize("obs_state", state)
        parts = [self.state_encoder(state[..., :self.config.state_dim].flatten(1))]
        for cam in self.cameras:
            images = batch[cam][:, -self.config.camera_frames:]  # (B, frames, 3, H, W) uint8: the latest frames
            b, t = images.shape[:2]
            parts.append(self.vision[cam](images.flatten(0, 1)).view(b, t * self.config.vision.feature_dim))
        if self.config.cond == "call":
            parts.append(self.call_encoder(call.float()))
        else:
            parts.append(self.task_embedding(batch["task"].long().view(-1)))
        if self.config.uses_goal:
            parts.append(self.goal_encoder(batch["goal"].float()))
        if self.config.uses_memory:
            parts.append(self.memory_encoder(memory.float()))
        return torch.cat(parts, dim=-1)

    # ---- training --------------------------------------------------------------------------------
    def loss(self, batch: dict) -> dict[str, torch.Tensor]:
        """DDPM noise-prediction loss on the normalised action chunk, plus the termination loss."""
        cond = self.condition(batch)
        actions, anchor = batch["action"].float(), self._anchor(batch)
        if anchor is not None:
            actions = action_to_anchor(actions, anchor)
        actions = self.norm.normalize("action", actions)
        noise = torch.randn_like(actions)
        steps = torch.randint(0, self.config.train_timesteps, (actions.shape[0],), device=actions.device)
        noisy = self.train_scheduler.add_noise(actions, noise, steps)
        diffusion = F.mse_loss(self.unet(noisy, steps, cond), noise if self.config.prediction == "epsilon" else actions)
        done = F.binary_cross_entropy_with_logits(self.termination(cond), batch["done"].float())
        return {"loss": diffusion + done, "diffusion": diffusion.detach(), "done": done.detach()}

    # ---- inference -------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, batch: dict, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """A sampled action chunk (B, pred_horizon, 8) in robot units and P(finished) per step."""
        cond = self.condition(batch)
        b = cond.shape[0]
        x = torch.randn((b, self.config.pred_horizon, ACTION_DIM), generator=generator, device=cond.device)
        scheduler = self.sample_scheduler
        scheduler.set_timesteps(self.config.inference_steps, device=cond.device)
        for t in scheduler.timesteps:
            x = scheduler.step(self.unet(x, t, cond), t, x, generator=generator).prev_sample
        action, anchor = self.norm.unnormalize("action", x), self._anchor(batch)
        if anchor is not None:
            action = action_from_anchor(action, anchor)
        return {"action": action, "done": torch.sigmoid(self.termination(cond))}

    # ---- checkpoints -----------------------------------------------------------------------------
    def save(self, folder) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps({"format": FORMAT, "policy": self.config.to_dict()}, indent=1))
        self.norm.save(folder / NORM_STATS_FILE)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, str(folder / WEIGHTS_FILE))
        return folder

    @staticmethod
    def load(folder, device: str = "cpu") -> "DiffusionPolicy":
        """A saved policy; ValueError (one line) naming the problem when the folder is not one: its
        config or norm stats unreadable, out of bounds or not finite, its weights cut short, not
        safetensors, not the config's shapes, or not finite. Shapes are checked against the file's
        header with the model built on torch's meta device, before any weight is allocated."""
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            meta = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise ValueError(f"{folder} is not a policy checkpoint: no readable {CONFIG_FILE} ({type(e).__name__})") \
                from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else None
            raise ValueError(f"{folder} is not a diffusion-policy checkpoint (format {found!r})")
        try:
            config = PolicyConfig.from_dict(meta.get("policy"))
            norm = NormStats.load(folder / NORM_STATS_FILE)
        except ValueError as e:
            raise ValueError(f"{folder}: {e}") from None
        for key, width in (("action", ACTION_DIM), ("obs_state", STATE_DIM)):
            if key not in norm.mins or norm.width(key) != width:
                raise ValueError(f"{folder / NORM_STATS_FILE} has no {width}-wide stats for {key}")
        weights = folder / WEIGHTS_FILE
        header = read_header(weights)
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in DiffusionPolicy(config, norm).state_dict().items()}
        tasks_then = _tasks_when_saved(header, expected)
        if tasks_then is not None:
            expected[TASK_ROWS] = (tasks_then, expected[TASK_ROWS][1])
        check_shapes(weights, header, expected)
        tensors = load_file(str(weights), device=device)
        check_finite(weights, tensors)
        policy = DiffusionPolicy(config, norm)
        if tasks_then is not None:  # tasks added to the suite since: their rows stay as initialised (never trained)
            fresh = policy.state_dict()[TASK_ROWS].to(tensors[TASK_ROWS].device)
            tensors[TASK_ROWS] = torch.cat([tensors[TASK_ROWS], fresh[tasks_then:]])
        policy.load_state_dict(tensors)
        return policy.to(device).eval()


TASK_ROWS = "task_embedding.weight"


def _tasks_when_saved(header, expected: dict) -> int | None:
    """The rows of a flat policy's task embedding saved when the suite had fewer tasks (tasks are only
    ever appended to it), else None."""
    if TASK_ROWS not in header or TASK_ROWS not in expected:
        return None
    rows, width = tuple(header[TASK_ROWS].shape), expected[TASK_ROWS]
    return rows[0] if len(rows) == 2 and rows[1] == width[1] and 0 < rows[0] < width[0] else None
