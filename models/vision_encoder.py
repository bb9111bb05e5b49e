"""The policy's image encoder, trained from scratch: one ResNet per camera, images -> feature vectors.

As in Chi et al.'s diffusion policy, BatchNorm is replaced by GroupNorm (EMA weights and small
batches make batch statistics unreliable) and the global average pool by a spatial softmax that
keeps where features are (keypoints), which matters for manipulation. The ResNet body comes from
transformers' `ResNetConfig`/`ResNetModel` (no pretrained weights: there is no model hub here).

    uint8 (B, 3, H, W) -> [0, 1] -> resize (image_size) -> crop (random in training, centred otherwise)
        -> ResNet stages -> spatial softmax (x, y per channel) -> Linear -> (B, D)

Resizing and cropping live in the model, so training and inference see the same pixels; a smaller
image and a random crop (Chi et al. take 84 of 96) are what make the rgb policy trainable on a CPU
(README, "The rgb policy").
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from models.policy_config import VisionConfig


def _batch_to_group_norm(module: nn.Module, groups: int) -> nn.Module:
    """Every BatchNorm2d replaced, in place, by a GroupNorm over the same channels."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            c = child.num_features
            setattr(module, name, nn.GroupNorm(min(groups, c) if c % min(groups, c) == 0 else 1, c))
        else:
            _batch_to_group_norm(child, groups)
    return module


class SpatialSoftmax(nn.Module):
    """(B, C, H, W) -> (B, 2C): the expected image position of each channel's activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        attention = torch.softmax(x.flatten(2), dim=-1).view(b, c, h, w)
        ys = torch.linspace(-1.0, 1.0, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device, dtype=x.dtype)
        ex = (attention.sum(dim=2) * xs).sum(dim=-1)
        ey = (attention.sum(dim=3) * ys).sum(dim=-1)
        return torch.cat([ex, ey], dim=1)


class VisionEncoder(nn.Module):
    """One camera's images to a feature vector."""

    def __init__(self, config: VisionConfig = VisionConfig()):
        super().__init__()
        from transformers import ResNetConfig, ResNetModel

        if len(config.hidden_sizes) != len(config.depths):
            raise ValueError(f"hidden_sizes {config.hidden_sizes} and depths {config.depths} differ in length")
        self.config = config
        body = ResNetModel(ResNetConfig(num_channels=3, embedding_size=config.hidden_sizes[0],
                                        hidden_sizes=list(config.hidden_sizes), depths=list(config.depths),
                                        layer_type="basic", hidden_act="relu"))
        self.embedder = _batch_to_group_norm(body.embedder, config.groups)
        self.stages = _batch_to_group_norm(body.encoder, config.groups)
        self.keypoints = SpatialSoftmax()
        self.project = nn.Linear(2 * config.hidden_sizes[-1], config.feature_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """`images`: (B, 3, H, W) uint8 or float in [0, 1]; returns (B, feature_dim)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images
        x = self.crop(self.resize(x))
        x = self.stages(self.embedder(x), output_hidden_states=False).last_hidden_state
        return self.project(self.keypoints(x))

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        if size is None or tuple(x.shape[-2:]) == (size, size):
            return x
        return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """The crop of side `crop` * the image's: anywhere (one offset per image) in training, centred
        otherwise."""
        h, w = x.shape[-2:]
        ch, cw = max(1, round(h * self.config.crop)), max(1, round(w * self.config.crop))
        if (ch, cw) == (h, w):
            return x
        if not self.training:
            top, left = (h - ch) // 2, (w - cw) // 2
            return x[..., top:top + ch, left:left + cw]
        b = x.shape[0]
        tops = torch.randint(0, h - ch + 1, (b,), device=x.device)
        lefts = torch.randint(0, w - cw + 1, (b,), device=x.device)
        rows = (tops[:, None] + torch.arange(ch, device=x.device))[:, None, :, None].expand(b, x.shape[1], ch, w)
        x = x.gather(2, rows)
        cols = (lefts[:, None] + torch.arange(cw, device=x.device))[:, None, None, :].expand(b, x.shape[1], ch, cw)
        return x.gather(3, cols)
