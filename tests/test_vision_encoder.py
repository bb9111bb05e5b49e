"""The policy's image encoder: shapes, GroupNorm only, keypoints that follow the image, learnable."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from models.policy_config import VisionConfig
from models.vision_encoder import SpatialSoftmax, VisionEncoder

TINY = VisionConfig(feature_dim=16, hidden_sizes=(8, 16), depths=(1, 1), groups=4)


def test_encodes_uint8_and_float_images_to_features():
    torch.manual_seed(0)
    enc = VisionEncoder(TINY)
    images = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    out = enc(images)
    assert out.shape == (3, 16) and out.dtype == torch.float32
    assert torch.allclose(out, enc(images.float() / 255.0), atol=1e-5)
    with pytest.raises(ValueError, match="B, 3, H, W"):
        enc(torch.zeros(2, 64, 64, 3))


def test_batch_norm_is_replaced_by_group_norm():
    enc = VisionEncoder(TINY)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in enc.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in enc.modules())
    assert VisionConfig.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY


def test_spatial_softmax_finds_the_bright_spot():
    x = torch.full((1, 1, 9, 9), -50.0)
    x[0, 0, 2, 7] = 50.0  # row 2 (y), column 7 (x)
    ex, ey = SpatialSoftmax()(x)[0]
    assert ex == pytest.approx(-1 + 2 * 7 / 8, abs=1e-4) and ey == pytest.approx(-1 + 2 * 2 / 8, abs=1e-4)


def test_learns_where_a_square_is():
    """A few hundred steps regress the position of a white square: the keypoints carry position."""
    torch.manual_seed(0)
    enc = VisionEncoder(VisionConfig(feature_dim=2, hidden_sizes=(8, 16), depths=(1, 1), groups=4))
    opt = torch.optim.Adam(enc.parameters(), lr=3e-3)

    def batch(n):
        pos = torch.randint(4, 28, (n, 2))
        img = torch.zeros(n, 3, 32, 32)
        for i, (r, c) in enumerate(pos):
            img[i, :, r - 3:r + 3, c - 3:c + 3] = 1.0
        return img, pos.float() / 32.0

    test_img, test_pos = batch(64)
    before = nn.functional.mse_loss(enc(test_img), test_pos).item()
    for _ in range(250):
        img, pos = batch(32)
        loss = nn.functional.mse_loss(enc(img), pos)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = nn.functional.mse_loss(enc(test_img), test_pos).item()
    assert after < 0.2 * before and after < 0.01, (before, after)


def test_resize_and_crop_train_randomly_and_infer_from_the_centre():
    enc = VisionEncoder(VisionConfig(feature_dim=4, hidden_sizes=(8,), depths=(1,), groups=4, image_size=32, crop=0.75))
    images = torch.rand(4, 3, 128, 96)
    assert enc.resize(images).shape == (4, 3, 32, 32)
    x = enc.resize(images)
    enc.eval()
    centre = enc.crop(x)
    assert centre.shape == (4, 3, 24, 24) and torch.equal(centre, x[..., 4:28, 4:28])
    enc.train()
    torch.manual_seed(0)
    crops = enc.crop(x)
    assert crops.shape == (4, 3, 24, 24)
    for i in range(4):  # each crop is a window of its own image
        found = [(t, l) for t in range(9) for l in range(9) if torch.equal(crops[i], x[i, :, t:t + 24, l:l + 24])]
        assert found
    assert not all(torch.equal(enc.crop(x), crops) for _ in range(3))  # drawn anew each time
    assert enc(images).shape == (4, 4)


def test_image_options_are_validated():
    with pytest.raises(ValueError, match="crop"):
        VisionConfig(crop=0.2)
    with pytest.raises(ValueError, match="image_size"):
        VisionConfig(image_size=2)
    assert VisionConfig.from_dict({**TINY.to_dict(), "crop": 1}).crop == 1.0
