"""`bench training`: step times of the rgb policy on lossless and video-coded episodes, and of the
state policy, on a shortened run (one episode each, three steps of the tiny models)."""
from __future__ import annotations

import pytest

import app.bench_training as bench

pytestmark = pytest.mark.slow


def test_bench_training_reports_both_layouts(monkeypatch):
    monkeypatch.setattr(bench, "EPISODES", 1)
    monkeypatch.setattr(bench, "STEPS", 3)
    monkeypatch.setattr(bench, "TINY", True)
    variants = {"first": {}, "small latest": {"image_size": 16, "crop": 0.9, "image_frames": 1}}
    monkeypatch.setattr(bench, "RGB_VARIANTS", variants)
    r = bench.bench_training()
    assert list(r["rgb_variants"]) == list(variants)
    for v in r["rgb_variants"].values():
        assert v["step_s"] > 0 and v["samples_per_s"] == pytest.approx(64 / v["step_s"], rel=0.01)
    assert set(r["layouts"]) == {"lossless", "standard"}
    for layout in r["layouts"].values():
        assert layout["rgb_step_s"] > 0 and layout["rgb_samples_per_s"] == pytest.approx(64 / layout["rgb_step_s"], rel=0.01)
        assert layout["loader_samples_per_s"] > 0 and layout["dataset_build_s"] >= 0
    assert r["layouts"]["standard"]["episodes_mb"] < r["layouts"]["lossless"]["episodes_mb"]
    assert r["state_step_s"] > 0
