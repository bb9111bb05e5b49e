"""`bench inference` times real chunks of a policy (a tiny one here; the figures come from the CLI)."""
from __future__ import annotations

from app.bench_inference import _norm, chunk_latency_ms
from models.diffusion_policy import DiffusionPolicy
from models.policy_config import PolicyConfig, VisionConfig


def test_chunk_latency_of_state_and_rgb_policies():
    vision = VisionConfig(feature_dim=8, hidden_sizes=(8, 16), depths=(1, 1), groups=4)
    for obs in ("state", "rgb"):
        policy = DiffusionPolicy(PolicyConfig(obs=obs, embed_dim=16, down_dims=(16, 32), step_embed_dim=8,
                                              vision=vision), _norm())
        r = chunk_latency_ms(policy, chunks=3)
        assert 0 < r["median_ms"] <= r["p95_ms"] and r["chunks"] == 3 and r["inference_steps"] == 10
        assert r["parameters"] == sum(p.numel() for p in policy.parameters())
