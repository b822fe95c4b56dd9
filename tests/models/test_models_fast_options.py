"""The speed options of the camera network (issue 72's GPU work): each leaves the weights alone and gives
the default path's outputs, up to the order of float sums (float32) or the autocast dtype's rounding.

- ``encoder_fuse: split``: the decoder's fusion as a conv of the skip plus a stride-2 transposed conv of
  the coarse stage, instead of upsample + concat + conv;
- ``image_channels_last``: the image path in NHWC;
- ``channels_last``: the splat then writes its volume channels-last directly (no copy);
- ``lifted_autocast``: under autocast the lifted volume enters the 3D encoder in bf16 (its stage 0 then
  stays bf16 instead of being promoted to float32 by the identity skip).
"""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from test_models_occnet import tiny_cfg, tiny_inputs  # noqa: E402

from occkit.geometry.grid import Grid  # noqa: E402
from occkit.models.encoder3d import UNetEncoder  # noqa: E402
from occkit.models.lift import splat  # noqa: E402
from occkit.models.occnet import build_occnet  # noqa: E402


def _randomise_norms(module: torch.nn.Module, seed: int = 0) -> None:
    """Running statistics and affine parameters away from 0 / 1, so eval-mode BatchNorm is not the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def test_upsampling_folded_into_a_transposed_conv_matches_by_hand():
    """1D, hand-sized: a 3-tap conv (padding 1) of x repeated twice equals the 4-tap stride-2 transposed
    conv whose taps are (w+1, w0 + w+1, w-1 + w0, w-1), the rows of ``up_taps`` applied to (w-1, w0, w+1)."""
    x = torch.tensor([[[1.0, 2.0, 4.0]]])  # (1, 1, 3)
    w = torch.tensor([[[10.0, 100.0, 1000.0]]])  # taps -1, 0, +1
    up = x.repeat_interleave(2, -1)  # 1 1 2 2 4 4
    ref = F.conv1d(up, w, padding=1)
    # by hand: out[0] = 0*10 + 1*100 + 1*1000 = 1100; out[1] = 1*10 + 1*100 + 2*1000 = 2110
    assert ref[0, 0, :2].tolist() == [1100.0, 2110.0]
    taps = UNetEncoder(2, 1, (1, 1), fuse="split").up_taps
    wt = (taps @ w[0, 0]).view(1, 1, 4)  # (in, out, 4)
    assert wt[0, 0].tolist() == [1000.0, 1100.0, 110.0, 10.0]
    assert torch.equal(F.conv_transpose1d(x, wt, stride=2, padding=1), ref)


@pytest.mark.parametrize("dims", [2, 3])
def test_split_fuse_gives_the_concat_fuse_values_and_gradients(dims):
    torch.manual_seed(0)
    widths = (4, 6, 8)
    ref = UNetEncoder(dims, 5, widths, blocks=1)
    split = UNetEncoder(dims, 5, widths, blocks=1, fuse="split")
    _randomise_norms(ref)
    split.load_state_dict(ref.state_dict())  # the same parameters: the option adds no weight
    calls = []
    inner = split._fuse_split
    split._fuse_split = lambda *a: calls.append(1) or inner(*a)
    # 8 x 6 (x 4): level 1 is exactly half (split), level 2 (3 -> 2 on an axis) is not (concatenated)
    size = (8, 6, 4) if dims == 3 else (8, 6)
    x = torch.randn(2, 5, *size)
    for train in (False, True):
        ref.train(train), split.train(train)
        calls.clear()
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = ref(a), split(b)
        assert len(calls) == 1  # the exact level took the split path, the other fell back
        torch.testing.assert_close(yb, ya, rtol=1e-5, atol=1e-5)
        g = torch.randn_like(ya)
        (ya * g).sum().backward()
        (yb * g).sum().backward()
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5)
        for (n, pa), pb in zip(ref.named_parameters(), split.parameters()):
            torch.testing.assert_close(pb.grad, pa.grad, rtol=1e-4, atol=1e-4, msg=n)
        ref.zero_grad(), split.zero_grad()
    with pytest.raises(ValueError, match="encoder_fuse"):
        UNetEncoder(dims, 5, widths, fuse="sum")


def _same_weights(cfg_kw: dict, **opt):
    torch.manual_seed(0)
    ref = build_occnet(tiny_cfg(**cfg_kw)).eval()
    _randomise_norms(ref)
    fast = build_occnet(tiny_cfg(**cfg_kw, **opt)).eval()
    fast.load_state_dict({k: v.contiguous() for k, v in ref.state_dict().items()})
    return ref, fast


@pytest.mark.parametrize("head", ["voxel", "bev"])
def test_split_fuse_in_the_network(head):
    ref, fast = _same_weights({"head": head, "lift_downsample": (2, 2, 1)}, encoder_fuse="split")
    images, K, T = tiny_inputs()
    with torch.no_grad():
        a, b = ref(images, K, T), fast(images, K, T)
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-4, atol=1e-5)


def test_image_path_channels_last_keeps_the_outputs():
    ref, fast = _same_weights({}, image_channels_last=True)
    convs = [p for part in (fast.backbone, fast.neck, fast.view_transform) for p in part.parameters() if p.dim() == 4]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not all(w.is_contiguous() for w in convs)
    assert all(p.is_contiguous() for p in ref.backbone.parameters())  # off by default
    images, K, T = tiny_inputs()
    with torch.no_grad():
        a, b = ref(images, K, T), fast(images, K, T)
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(b.depth_prob, a.depth_prob, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("collapse_z", [False, True])
def test_splat_writes_channels_last_without_a_copy(collapse_z):
    torch.manual_seed(0)
    grid = Grid((-2.0, -2.0, -1.0), (2.0, 2.0, 1.0), (1.0, 1.0, 0.5))
    B, N, D, h, w, C = 2, 2, 3, 2, 4, 5
    p = torch.rand(B, N, D, h, w).softmax(2)
    ctx = torch.randn(B, N, C, h, w)
    pts = torch.rand(B, N, D, h, w, 3) * 5 - 2.5  # some outside the grid
    ref = splat(p, ctx, pts, grid, collapse_z)
    cl = splat(p, ctx, pts, grid, collapse_z, channels_last=True)
    assert torch.equal(cl, ref) and ref.is_contiguous()
    fmt = torch.channels_last if collapse_z else torch.channels_last_3d
    assert cl.is_contiguous(memory_format=fmt) and not cl.is_contiguous()


def test_channels_last_network_lifts_straight_into_its_layout():
    ref, fast = _same_weights({"lift_downsample": (2, 2, 1)}, channels_last=True)
    assert fast.view_transform.channels_last and not ref.view_transform.channels_last
    images, K, T = tiny_inputs()
    with torch.no_grad():
        a, b = ref(images, K, T), fast(images, K, T)
    assert b.lifted.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(b.lifted, a.lifted)
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-4, atol=1e-5)


def test_lifted_autocast_keeps_the_encoder_in_bf16_within_its_rounding():
    ref, fast = _same_weights({"lift_downsample": (2, 2, 1)}, lifted_autocast=True)
    images, K, T = tiny_inputs()
    with torch.no_grad():  # no autocast: nothing changes, bit for bit
        assert torch.equal(fast(images, K, T).logits, ref(images, K, T).logits)
    dtypes = {}
    for name, net in (("ref", ref), ("fast", fast)):
        net.encoder.stages[0].register_forward_hook(lambda m, a, o, name=name: dtypes.__setitem__(name, o.dtype))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = ref(images, K, T), fast(images, K, T)
    # the point of the option: stage 0's output (the decoder's full-resolution skip) no longer float32
    assert dtypes == {"ref": torch.float32, "fast": torch.bfloat16}
    assert b.lifted.dtype == torch.float32  # what losses read stays the splat's float32 volume
    scale = a.logits.float().abs().max()
    assert float((b.logits.float() - a.logits.float()).abs().max()) <= 0.05 * float(scale)  # bf16: 2^-8 a step
    assert float((b.logits.argmax(1) == a.logits.argmax(1)).float().mean()) > 0.97


def test_export_leaves_both_layouts_out_and_restores_them():
    from occkit.export.onnx import _no_channels_last

    net = build_occnet(tiny_cfg(channels_last=True, image_channels_last=True))
    with _no_channels_last(net):
        assert not net.channels_last and not net.image_channels_last and not net.view_transform.channels_last
    assert net.channels_last and net.image_channels_last and net.view_transform.channels_last


def test_fold_one_batchnorm_by_hand():
    from occkit.models.fold import fold_batchnorms

    conv, bn = torch.nn.Conv1d(1, 1, 1, bias=False), torch.nn.BatchNorm1d(1, eps=1.0)
    with torch.no_grad():
        conv.weight.fill_(2.0)
        bn.running_mean.fill_(1.0), bn.running_var.fill_(3.0), bn.weight.fill_(4.0), bn.bias.fill_(0.5)
    net = torch.nn.Sequential(conv, bn).eval()
    with pytest.raises(ValueError, match="training mode"):
        fold_batchnorms(torch.nn.Sequential(torch.nn.Conv1d(1, 1, 1), torch.nn.BatchNorm1d(1)))
    x = torch.tensor([[[0.0, 1.0, 3.0]]])
    ref = net(x)
    assert fold_batchnorms(net) == 1 and isinstance(net[1], torch.nn.Identity)
    # s = 4 / sqrt(3 + 1) = 2: weight 2 * 2 = 4, bias (0 - 1) * 2 + 0.5 = -1.5
    assert conv.weight.item() == 4.0 and conv.bias.item() == -1.5
    assert torch.equal(net(x), ref)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_fold_batchnorms_in_timm_backbones(name):
    from occkit.models.backbone import Backbone
    from occkit.models.fold import fold_batchnorms

    torch.manual_seed(0)
    bb = Backbone(name, 16).eval()
    _randomise_norms(bb)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ref = bb(x)
        n = fold_batchnorms(bb)
        out = bb(x)
    assert n > 0 and not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in bb.modules())
    for a, b in zip(out, ref):  # float32 rounding, relative to the activations' scale (they grow over 16 blocks)
        assert float((a - b).abs().max()) <= 1e-5 * float(b.abs().max()), name


@pytest.mark.parametrize("opts", [{}, {"encoder_fuse": "split", "channels_last": True, "image_channels_last": True}])
def test_fold_batchnorms_in_the_network(opts):
    """Every BatchNorm of the camera network follows a convolution: all are folded, the logits stay."""
    from occkit.models.fold import fold_batchnorms

    ref, fast = _same_weights({"lift_downsample": (2, 2, 1)}, **opts)
    norms = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fast.modules())
    images, K, T = tiny_inputs()
    with torch.no_grad():
        expect = ref(images, K, T).logits
        assert fold_batchnorms(fast) == norms > 0
        got = fast(images, K, T).logits
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fast.modules())
    torch.testing.assert_close(got, expect, rtol=1e-4, atol=1e-4)


def test_fold_leaves_frame_statistics_alone():
    from occkit.models.fold import fold_batchnorms

    net = build_occnet(tiny_cfg(image_norm_eval="frame")).eval()
    frame = [m for m in net.backbone.modules() if getattr(m, "frame_stats", False)]
    assert frame
    fold_batchnorms(net)
    assert all(any(m is f for m in net.modules()) for f in frame)  # still there, still normalising per frame
