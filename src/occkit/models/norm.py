"""Batch normalisation of the image path that can use each frame's own statistics at inference.

A camera occupancy network sees one frame per sample: its N camera images pass the 2D backbone
together, so with a small batch every BatchNorm of the image path normalises by the statistics of
one or a few frames (one scene, one light, one weather). The running averages used in eval mode
are the mean over many scenes instead, and a network trained from scratch that came to lean on the
per-frame normalisation can lose several mIoU points on a scene whose look is far from that mean:
in 30-minute ``synth-cpu`` runs (batch 1) the same weights scored 15.1 mIoU with running
statistics and 21.3 with each frame's own (BENCHMARKS.md). :class:`FrameBatchNorm2d` normalises at
inference as training did: by the statistics of the frame's own N images, computed per frame, so
nothing of one frame leaks into another's prediction.
"""

from __future__ import annotations

import torch
from torch import nn


class FrameBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters, buffers and state dict) that, in eval mode with
    ``frame_stats`` set, normalises the ``(B * N, C, H, W)`` input by the mean and (biased)
    variance of each frame's ``N = images_per_frame`` images over (N, H, W), as a training batch of
    one frame does. Training mode is plain BatchNorm; the running statistics are still kept (and
    are what eval mode uses without ``frame_stats``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.frame_stats = False
        self.images_per_frame = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.frame_stats:
            return super().forward(x)
        n = self.images_per_frame
        M, C = x.shape[:2]
        if M % n:
            raise ValueError(f"FrameBatchNorm2d: {M} images are not whole frames of {n}")
        g = x.float().reshape(M // n, n, C, -1)
        mean = g.mean(dim=(1, 3), keepdim=True)
        var = (g - mean).square().mean(dim=(1, 3), keepdim=True)
        y = (g - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight.float().view(1, 1, C, 1) + self.bias.float().view(1, 1, C, 1)
        return y.reshape(x.shape).to(x.dtype)


def frame_batchnorms(module: nn.Module) -> list[FrameBatchNorm2d]:
    """Replace every ``nn.BatchNorm2d`` under ``module`` (in place) by a :class:`FrameBatchNorm2d`
    holding the same parameters and buffers; returns them all."""
    out: list[FrameBatchNorm2d] = []
    for name, child in list(module.named_children()):
        if type(child) is nn.BatchNorm2d:
            new = FrameBatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            setattr(module, name, new)
            out.append(new)
        elif isinstance(child, FrameBatchNorm2d):
            out.append(child)
        else:
            out.extend(frame_batchnorms(child))
    return out
