"""The low-level policy's noise-prediction network: Chi et al.'s conditional 1-D temporal U-Net.

Owns the network only (DESIGN.md section 7): it never sees normalisation, schedulers or optimisers.
A noisy action sequence (B, T, action_dim), the diffusion timestep and one global condition vector
(observation features, call embedding, memory; concatenated by the policy) go in; the predicted
noise (or sample, as the policy's scheduler decides) of the same shape comes out.

Data flow: timestep -> sinusoidal embedding -> MLP; joined with the global condition it drives FiLM
(per-channel scale and bias) in every residual block. The sequence is treated as channels = action
dimensions over time, goes down through stride-2 convolutions, through a mid block, and back up
through transposed convolutions joined with the skip of the same resolution, then a 1x1 conv maps
back to the action dimension. `UnetConfig` is what checkpoints store as `config.json`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn


@dataclass(frozen=True)
class UnetConfig:
    action_dim: int
    global_cond_dim: int
    step_embed_dim: int = 128
    down_dims: tuple[int, ...] = (256, 512, 1024)
    kernel_size: int = 5
    n_groups: int = 8

    def __post_init__(self):
        object.__setattr__(self, "down_dims", tuple(int(d) for d in self.down_dims))
        for name in ("action_dim", "global_cond_dim", "kernel_size", "n_groups"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.step_embed_dim < 4 or self.step_embed_dim % 2:
            raise ValueError(f"step_embed_dim must be even and at least 4, got {self.step_embed_dim}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd to keep the horizon, got {self.kernel_size}")
        if not self.down_dims:
            raise ValueError("down_dims must name at least one level")
        bad = [d for d in self.down_dims if d < 1 or d % self.n_groups]
        if bad:
            raise ValueError(f"down_dims {bad} must be positive multiples of n_groups={self.n_groups}")

    @property
    def horizon_multiple(self) -> int:
        """The prediction horizon must be divisible by this (one halving per down level but the last)."""
        return 2 ** (len(self.down_dims) - 1)

    def to_dict(self) -> dict:
        return {**asdict(self), "down_dims": list(self.down_dims)}

    @classmethod
    def from_dict(cls, data: dict) -> UnetConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown UnetConfig keys: {sorted(unknown)}")
        return cls(**data)


class SinusoidalStepEmbedding(nn.Module):
    """Transformer-style sin/cos features of the (possibly fractional) diffusion timestep."""

    def __init__(self, dim: int):
        super().__init__()
        half = dim // 2
        freqs = torch.exp(torch.arange(half) * (-math.log(10000.0) / (half - 1)))
        self.register_buffer("freqs", freqs, persistent=False)  # derived, so not in checkpoints

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, dim)
        angles = t.float()[:, None] * self.freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Conv1dBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish; 'same' padding keeps the horizon."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, n_groups: int):
        super().__init__(nn.Conv1d(in_ch, out_ch, kernel_size, padding=kernel_size // 2),
                         nn.GroupNorm(n_groups, out_ch), nn.Mish())


class ConditionalResidualBlock1D(nn.Module):
    """Two conv blocks; the condition sets a per-channel scale and bias (FiLM) between them."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, kernel_size: int, n_groups: int):
        super().__init__()
        self.out_ch = out_ch
        self.block1 = Conv1dBlock(in_ch, out_ch, kernel_size, n_groups)
        self.block2 = Conv1dBlock(out_ch, out_ch, kernel_size, n_groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_ch))
        self.residual = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.block1(x)                                   # (B, C_out, T)
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)  # (B, C_out, 1) each
        h = self.block2(scale * h + bias)
        return h + self.residual(x)


class ConditionalUnet1D(nn.Module):
    def __init__(self, action_dim: int, global_cond_dim: int, step_embed_dim: int = 128,
                 down_dims: tuple[int, ...] = (256, 512, 1024), kernel_size: int = 5, n_groups: int = 8):
        super().__init__()
        self.config = cfg = UnetConfig(action_dim, global_cond_dim, step_embed_dim, tuple(down_dims),
                                       kernel_size, n_groups)
        self.step_encoder = nn.Sequential(
            SinusoidalStepEmbedding(step_embed_dim),
            nn.Linear(step_embed_dim, 4 * step_embed_dim), nn.Mish(),
            nn.Linear(4 * step_embed_dim, step_embed_dim))
        cond_dim = step_embed_dim + global_cond_dim

        def res(i: int, o: int) -> ConditionalResidualBlock1D:
            return ConditionalResidualBlock1D(i, o, cond_dim, kernel_size, n_groups)

        dims = (action_dim, *cfg.down_dims)
        n_levels = len(cfg.down_dims)
        self.down = nn.ModuleList()
        for level, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            is_deepest = level == n_levels - 1
            self.down.append(nn.ModuleList([
                res(d_in, d_out), res(d_out, d_out),
                nn.Identity() if is_deepest else nn.Conv1d(d_out, d_out, 3, stride=2, padding=1)]))
        deepest = cfg.down_dims[-1]
        self.mid = nn.ModuleList([res(deepest, deepest), res(deepest, deepest)])
        # Each up level takes the skip of its resolution (doubling channels) and doubles the horizon.
        self.up = nn.ModuleList()
        for d_in, d_out in reversed(list(zip(cfg.down_dims[:-1], cfg.down_dims[1:]))):
            self.up.append(nn.ModuleList([
                res(2 * d_out, d_in), res(d_in, d_in),
                nn.ConvTranspose1d(d_in, d_in, 4, stride=2, padding=1)]))
        first = cfg.down_dims[0]
        self.final = nn.Sequential(Conv1dBlock(first, first, kernel_size, n_groups),
                                   nn.Conv1d(first, action_dim, 1))

    @classmethod
    def from_config(cls, config: UnetConfig) -> ConditionalUnet1D:
        return cls(**asdict(config))

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int | float,
                global_cond: torch.Tensor) -> torch.Tensor:
        """sample (B, T, action_dim), timestep scalar or (B,), global_cond (B, global_cond_dim)."""
        cfg = self.config
        if sample.ndim != 3 or sample.shape[-1] != cfg.action_dim:
            raise ValueError(f"sample must be (B, T, {cfg.action_dim}), got {tuple(sample.shape)}")
        batch, horizon = sample.shape[:2]
        if horizon % cfg.horizon_multiple:
            raise ValueError(f"horizon {horizon} must be divisible by {cfg.horizon_multiple} "
                             f"(2 ** (len(down_dims) - 1) for down_dims={cfg.down_dims})")
        if tuple(global_cond.shape) != (batch, cfg.global_cond_dim):
            raise ValueError(f"global_cond must be ({batch}, {cfg.global_cond_dim}), "
                             f"got {tuple(global_cond.shape)}")
        t = torch.as_tensor(timestep, device=sample.device)
        t = t.reshape(-1).expand(batch) if t.numel() == 1 else t.reshape(batch)  # (B,)

        cond = torch.cat([self.step_encoder(t), global_cond.to(sample.dtype)], dim=-1)  # (B, cond_dim)
        x = sample.transpose(1, 2)                           # (B, action_dim, T)
        skips = []
        for block_a, block_b, downsample in self.down:
            x = block_b(block_a(x, cond), cond)              # (B, C_level, T_level)
            skips.append(x)
            x = downsample(x)
        for block in self.mid:
            x = block(x, cond)                               # (B, C_deepest, T_deepest)
        for block_a, block_b, upsample in self.up:
            x = torch.cat([x, skips.pop()], dim=1)           # (B, 2 * C_level, T_level)
            x = upsample(block_b(block_a(x, cond), cond))    # (B, C_level_above, 2 * T_level)
        return self.final(x).transpose(1, 2)                 # (B, T, action_dim)
