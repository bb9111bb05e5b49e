"""The diffusion policy's conditional 1-D U-Net: shapes, conditioning, config, and a tiny overfit."""
from __future__ import annotations

import json

import pytest
import torch

from models.conditional_unet1d import ConditionalUnet1D, UnetConfig

ACTION_DIM, COND_DIM, HORIZON = 3, 8, 16


def tiny(seed: int = 0, **overrides) -> ConditionalUnet1D:
    torch.manual_seed(seed)
    kwargs = dict(action_dim=ACTION_DIM, global_cond_dim=COND_DIM, step_embed_dim=16,
                  down_dims=(32, 64), kernel_size=5, n_groups=8) | overrides
    return ConditionalUnet1D(**kwargs)


def test_output_shape_and_dtype_match_the_sample():
    model = tiny(down_dims=(16, 32, 64))  # three levels: 16 -> 8 -> 4
    sample = torch.randn(4, HORIZON, ACTION_DIM)
    out = model(sample, torch.tensor([0, 10, 50, 99]), torch.randn(4, COND_DIM))
    assert out.shape == (4, HORIZON, ACTION_DIM)
    assert out.dtype == sample.dtype
    assert torch.isfinite(out).all()


def test_global_condition_changes_the_output_and_film_gets_gradient():
    model = tiny()
    sample = torch.randn(2, HORIZON, ACTION_DIM)
    cond_a, cond_b = torch.randn(2, COND_DIM), torch.randn(2, COND_DIM)
    out_a, out_b = model(sample, 7, cond_a), model(sample, 7, cond_b)
    assert (out_a - out_b).abs().max() > 1e-4

    out_a.square().mean().backward()
    film_linear = model.down[0][0].film[-1]
    assert isinstance(film_linear, torch.nn.Linear)
    assert film_linear.weight.grad is not None and film_linear.weight.grad.abs().sum() > 0
    # The condition reaches the deepest blocks too, not only the first.
    assert model.mid[1].film[-1].weight.grad.abs().sum() > 0


def test_timestep_may_be_int_zero_d_tensor_or_batch_vector():
    model = tiny().eval()
    sample, cond = torch.randn(3, HORIZON, ACTION_DIM), torch.randn(3, COND_DIM)
    with torch.no_grad():
        from_int = model(sample, 42, cond)
        from_scalar = model(sample, torch.tensor(42), cond)
        from_vector = model(sample, torch.full((3,), 42), cond)
        other_step = model(sample, torch.tensor([1, 42, 99]), cond)
    torch.testing.assert_close(from_int, from_scalar)
    torch.testing.assert_close(from_int, from_vector)
    assert not torch.allclose(from_int[0], other_step[0])
    torch.testing.assert_close(from_int[1], other_step[1])


def test_horizon_not_divisible_by_the_downsampling_raises_naming_it():
    model = tiny(down_dims=(16, 32, 64))  # needs a multiple of 4
    with pytest.raises(ValueError, match="horizon 10 must be divisible by 4"):
        model(torch.randn(1, 10, ACTION_DIM), 0, torch.randn(1, COND_DIM))
    with pytest.raises(ValueError, match="global_cond"):
        model(torch.randn(1, 8, ACTION_DIM), 0, torch.randn(1, COND_DIM + 1))


def test_config_round_trips_through_json_and_validates():
    model = tiny(down_dims=(16, 32, 64))
    text = json.dumps(model.config.to_dict())
    config = UnetConfig.from_dict(json.loads(text))
    assert config == model.config and config.down_dims == (16, 32, 64)
    rebuilt = ConditionalUnet1D.from_config(config)
    assert rebuilt.num_parameters() == model.num_parameters() > 0
    assert set(rebuilt.state_dict()) == set(model.state_dict())

    with pytest.raises(ValueError, match="unknown UnetConfig keys"):
        UnetConfig.from_dict({**config.to_dict(), "dropout": 0.1})
    with pytest.raises(ValueError, match="n_groups=8"):
        UnetConfig(action_dim=2, global_cond_dim=4, down_dims=(12, 24))
    with pytest.raises(ValueError, match="kernel_size"):
        UnetConfig(action_dim=2, global_cond_dim=4, kernel_size=4)


def test_tiny_model_overfits_conditioned_sequences_and_ddim_samples_them():
    from diffusers import DDIMScheduler, DDPMScheduler

    torch.manual_seed(0)
    n, horizon, action_dim = 8, HORIZON, 2
    time = torch.linspace(0, 1, horizon)
    phases = torch.arange(n) * (2 * torch.pi / n)
    # Each target is a distinct circle arc: (cos, sin) of a phase-shifted ramp, in [-1, 1].
    angle = phases[:, None] + 1.5 * time[None, :]                     # (N, T)
    targets = torch.stack([angle.cos(), angle.sin()], dim=-1)         # (N, T, 2)
    conds = torch.eye(n)                                              # (N, N) one-hot
    model = ConditionalUnet1D(action_dim, n, step_embed_dim=16, down_dims=(32, 64))
    scheduler = DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2")

    repeats = 8  # each step sees every target with several noise levels
    x0, cond = targets.repeat(repeats, 1, 1), conds.repeat(repeats, 1)
    eval_gen = torch.Generator().manual_seed(1)
    eval_noise = torch.randn(x0.shape, generator=eval_gen)
    eval_t = torch.randint(0, 100, (len(x0),), generator=eval_gen)

    def eval_loss() -> float:
        with torch.no_grad():
            noisy = scheduler.add_noise(x0, eval_noise, eval_t)
            return torch.nn.functional.mse_loss(model(noisy, eval_t, cond), eval_noise).item()

    initial = eval_loss()
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(300):
        noise = torch.randn_like(x0)
        t = torch.randint(0, 100, (len(x0),))
        loss = torch.nn.functional.mse_loss(model(scheduler.add_noise(x0, noise, t), t, cond), noise)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    final = eval_loss()
    assert final < 0.1 * initial, (initial, final)

    model.eval()
    sampler = DDIMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2")
    sampler.set_timesteps(10)
    x = torch.randn(n, horizon, action_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for t in sampler.timesteps:
            x = sampler.step(model(x, t, conds), t, x).prev_sample
    distances = ((x[:, None] - targets[None]) ** 2).mean(dim=(2, 3))  # (N samples, N targets)
    assert (distances.argmin(dim=1) == torch.arange(n)).all(), distances
    own = distances.diagonal()
    assert (own < 0.1).all(), own
