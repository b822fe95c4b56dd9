"""FrameBatchNorm2d: eval-time normalisation by each frame's own camera images."""

import pytest
import torch
from torch import nn

from occkit.models.norm import FrameBatchNorm2d, frame_batchnorms


def _trained_bn(C: int = 4) -> nn.BatchNorm2d:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(C)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-1, 1)
    for _ in range(3):
        bn(torch.randn(6, C, 5, 7) * 2 + 1)
    return bn


def test_conversion_keeps_state_and_training_behaviour():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), _trained_bn(), nn.Sequential(nn.ReLU(), nn.BatchNorm2d(4)))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    norms = frame_batchnorms(net)
    assert len(norms) == 2 and all(isinstance(m, FrameBatchNorm2d) for m in norms)
    assert frame_batchnorms(net) == norms  # idempotent
    after = net.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    x = torch.randn(6, 3, 5, 7)
    ref = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Sequential(nn.ReLU(), nn.BatchNorm2d(4)))
    ref.load_state_dict(before)
    net.eval(), ref.eval()
    torch.testing.assert_close(net(x), ref(x))  # frame_stats off: running statistics, as before


def test_frame_statistics_are_per_frame_and_equal_a_one_frame_training_batch():
    bn = _trained_bn()
    fbn = frame_batchnorms(nn.Sequential(bn))[0]
    fbn.eval()
    fbn.frame_stats, fbn.images_per_frame = True, 3
    a, b = torch.randn(3, 4, 5, 7), torch.randn(3, 4, 5, 7) * 5 + 3  # two frames of 3 images, different looks
    y = fbn(torch.cat([a, b]))
    for frame, out in ((a, y[:3]), (b, y[3:])):  # each as a training batch of its own (no running-stat update)
        expect = nn.functional.batch_norm(frame, None, None, fbn.weight, fbn.bias, training=True, eps=fbn.eps)
        torch.testing.assert_close(out, expect, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fbn(a), y[:3], rtol=1e-5, atol=1e-5)  # one frame's output ignores the other frame
    mean, var = fbn.running_mean.clone(), fbn.running_var.clone()
    fbn(torch.cat([a, b]))
    assert torch.equal(fbn.running_mean, mean) and torch.equal(fbn.running_var, var)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fbn(a.bfloat16()).dtype == torch.bfloat16
    fbn.images_per_frame = 4
    with pytest.raises(ValueError, match="whole frames"):
        fbn(torch.cat([a, b]))


def test_occnet_option():
    from occkit.experiment import build_method, load_experiment

    cfg = load_experiment("synth-cpu", ["supervised.class_counts=null", "model.image_norm_eval=frame"])
    net = build_method(cfg).model
    assert net._frame_norms and all(m.frame_stats for m in net._frame_norms)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == len(
        net._frame_norms
    )  # every 2D BN of the image path
    cfg.model.image_norm_eval = "running"
    assert not any(m.frame_stats for m in build_method(cfg).model._frame_norms)
    cfg.model.image_norm_eval = "instance"
    with pytest.raises(ValueError, match="image_norm_eval"):
        build_method(cfg)
