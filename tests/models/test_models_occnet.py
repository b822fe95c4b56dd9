"""OccNet assembly: shapes of every part, both heads, gradients, weights loading, bad input."""

import math

import pytest
import torch

from occkit.geometry.transforms import make_transform, rotation_z
from occkit.models.backbone import Backbone
from occkit.models.encoder3d import UNetEncoder
from occkit.models.heads import BEVHead, VoxelHead
from occkit.models.neck import FPNNeck
from occkit.models.occnet import OccNetConfig, OccNetOutput, build_occnet, lift_grid_of


def tiny_cfg(**kw) -> OccNetConfig:
    base = dict(
        backbone="test_resnet",
        neck_channels=16,
        context_channels=8,
        depth_min=1.0,
        depth_max=9.0,
        depth_step=1.0,
        point_range=(-4.0, -4.0, -1.0, 4.0, 4.0, 1.4),
        voxel_size=0.4,
        lift_downsample=(2, 2, 2),
        encoder_widths=(8, 16),
        head="voxel",
    )
    base.update(kw)
    return OccNetConfig(**base)


def tiny_inputs(B: int = 1, N: int = 2, H: int = 32, W: int = 96):
    R0 = torch.tensor([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    R = rotation_z(torch.arange(N) * (2 * math.pi / N)).float() @ R0
    T = make_transform(R, torch.tensor([0.0, 0.0, 1.0]).expand(N, 3)).expand(B, N, 4, 4)
    K = torch.tensor([[30.0, 0, W / 2], [0, 30.0, H / 2], [0, 0, 1]]).expand(B, N, 3, 3)
    return torch.rand(B, N, 3, H, W), K, T


def test_parts_shapes():
    bb = Backbone("resnet18", 16)
    assert bb.channels == [256, 512] and bb.strides == [16, 32]
    feats = bb(torch.rand(2, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [(2, 256, 4, 6), (2, 512, 2, 3)]
    neck = FPNNeck(bb.channels, 16)
    assert neck(feats).shape == (2, 16, 4, 6)
    enc3 = UNetEncoder(3, 4, (6, 8, 10))
    assert enc3(torch.rand(1, 4, 10, 10, 4)).shape == (1, 6, 10, 10, 4)
    enc2 = UNetEncoder(2, 4, (6,))
    assert enc2(torch.rand(1, 4, 5, 7)).shape == (1, 6, 5, 7)
    assert VoxelHead(6, 18)(torch.rand(1, 6, 3, 4, 5)).shape == (1, 18, 3, 4, 5)
    head = BEVHead(6, 18, 5)
    y = head(torch.rand(1, 6, 3, 4))
    assert y.shape == (1, 90, 3, 4)
    vox = head.to_voxels(y)
    assert vox.shape == (1, 18, 3, 4, 5)
    assert torch.equal(vox[0, 2, 1, 3, 4], y[0, 2 * 5 + 4, 1, 3])  # channel = class * Z + z
    with pytest.raises(ValueError, match="stride 12"):
        Backbone("resnet18", 12)
    with pytest.raises(ValueError, match="unknown timm model"):
        Backbone("no_such_net", 16)


@pytest.mark.parametrize("head", ["voxel", "bev"])
def test_occnet_forward_backward(head):
    torch.manual_seed(0)
    cfg = tiny_cfg(head=head)
    model = build_occnet(cfg)
    assert model.output_grid.shape == (20, 20, 6)
    images, K, T = tiny_inputs()
    out = model(images, K, T)
    assert isinstance(out, OccNetOutput)
    assert out.logits.shape == (1, 18, 20, 20, 6)
    assert out.depth_prob.shape == (1, 2, 8, 2, 6) and out.context.shape == (1, 2, 8, 2, 6)
    if head == "voxel":
        assert model.lift_grid.shape == (10, 10, 3)
        assert out.lifted.shape == (1, 8, 10, 10, 3) and out.features.shape == (1, 8, 10, 10, 3)
    else:
        assert out.lifted.shape == (1, 8, 10, 10) and out.features.shape == (1, 8, 10, 10)
    assert out.lifted.abs().sum() > 0  # the cameras see into the grid
    out.logits.square().mean().backward()
    first_backbone_param = next(model.backbone.parameters())
    for name, p in (
        ("backbone", first_backbone_param),
        ("neck", model.neck.out[0].weight),
        ("depth net", model.view_transform.depth_net.body[3].weight),
    ):
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_normalisation_inside_model():
    model = build_occnet(tiny_cfg()).eval()
    images, K, T = tiny_inputs()
    assert torch.allclose(model.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    with pytest.raises(ValueError, match="float"):
        model((images * 255).to(torch.uint8), K, T)


def test_bad_inputs_and_configs():
    model = build_occnet(tiny_cfg())
    images, K, T = tiny_inputs()
    with pytest.raises(ValueError, match="images"):
        model(images[0], K, T)
    with pytest.raises(ValueError, match="intrinsics"):
        model(images, K[:, :1], T)
    with pytest.raises(ValueError, match="T_ego_from_cam"):
        model(images, K, T[..., :3, :])
    with pytest.raises(ValueError, match="multiples"):
        model(images[..., :48], K, T)
    with pytest.raises(ValueError, match="lift_downsample"):
        lift_grid_of(tiny_cfg(lift_downsample=(3, 2, 2)))
    with pytest.raises(ValueError, match="head"):
        build_occnet(tiny_cfg(head="mlp"))
    # the BEV head ignores the z factor
    assert lift_grid_of(tiny_cfg(head="bev", lift_downsample=(2, 2, 4)))[1].shape == (10, 10, 1)


def test_backbone_weights_round_trip(tmp_path):
    from safetensors.torch import save_file

    src = Backbone("resnet18", 16)
    path = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in src.body.state_dict().items()}, str(path))
    dst = Backbone("resnet18", 16, weights=str(path))
    for k, v in src.body.state_dict().items():
        assert torch.equal(v, dst.body.state_dict()[k])
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        Backbone("resnet18", 16, weights=str(tmp_path / "missing.safetensors"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="bad.safetensors"):
        Backbone("resnet18", 16, weights=str(bad))
    partial = tmp_path / "partial.safetensors"
    save_file({"conv1.weight": src.body.state_dict()["conv1.weight"].contiguous()}, str(partial))
    with pytest.raises(ValueError, match="missing"):
        Backbone("resnet18", 16, weights=str(partial))


def test_backbone_weights_say_what_they_loaded(tmp_path, capsys, monkeypatch):
    """model.backbone_weights prints one line naming the file, the tensors loaded of the backbone's
    (none missing) and the file's tensors it left unused (a classifier head), so a user sees it took."""
    from safetensors.torch import save_file

    monkeypatch.delenv("RANK", raising=False)
    src = Backbone("resnet18", 16)
    state = {k: v.contiguous() for k, v in src.body.state_dict().items()}
    path = tmp_path / "r18.safetensors"
    save_file({**state, "fc.weight": torch.zeros(2, 512), "fc.bias": torch.zeros(2)}, str(path))
    Backbone("resnet18", 16, weights=str(path))
    lines = capsys.readouterr().err.strip().splitlines()
    n = len(state)
    assert lines == [
        f"model.backbone_weights: loaded {n} of the resnet18 backbone's {n} tensors from {path} (0 missing; "
        "2 of the file's tensors unused: fc.bias, fc.weight)"
    ]
    monkeypatch.setenv("RANK", "1")  # another process of a multi-process run: rank 0 alone says it
    Backbone("resnet18", 16, weights=str(path))
    assert capsys.readouterr().err == ""


def test_deeper_depth_net_keeps_shapes_and_widens_the_view():
    from occkit.models.lift import DepthNet

    torch.manual_seed(0)
    plain, deep = DepthNet(16, 8, 4), DepthNet(16, 8, 4, blocks=3)
    x = torch.randn(2, 16, 6, 16, requires_grad=True)
    for net in (plain, deep):
        d, c = net(x)
        assert d.shape == (2, 8, 6, 16) and c.shape == (2, 4, 6, 16)

    # receptive field: a change at one pixel reaches 1 pixel away through the plain 3x3 conv,
    # and further (dilations 1, 2, 4) through the residual blocks
    def reach(net):
        net.eval()
        x0 = torch.zeros(1, 16, 6, 16)
        x1 = x0.clone()
        x1[0, :, 3, 0] = 1.0
        diff = (net(x1)[0] - net(x0)[0]).abs().sum((0, 1, 2))  # per column
        return int((diff > 1e-6).nonzero().max())

    assert reach(plain) == 1 and reach(deep) >= 8
    model = build_occnet(tiny_cfg(depth_blocks=2))
    images, K, T = tiny_inputs()
    assert model(images, K, T).logits.shape == build_occnet(tiny_cfg())(images, K, T).logits.shape
    with pytest.raises(ValueError, match="blocks"):
        DepthNet(16, 8, 4, blocks=-1)
    assert sum(p.numel() for p in model.parameters()) > sum(p.numel() for p in build_occnet(tiny_cfg()).parameters())


def test_subvoxel_head_places_each_child():
    head = VoxelHead(4, 3, subvoxels=(2, 2, 2))
    x = torch.rand(1, 4, 3, 4, 5)
    y = head(x)
    assert y.shape == (1, 3, 6, 8, 10)
    # Child (i, j, k) of coarse voxel (a, b, c) is fine voxel (2a+i, 2b+j, 2c+k) and depends on that
    # coarse voxel only: channel ((cls * 2 + i) * 2 + j) * 2 + k of the flat prediction.
    flat = head.body(x)
    for cls, i, j, k, a, b, c in [(0, 0, 0, 0, 0, 0, 0), (2, 1, 0, 1, 2, 3, 4), (1, 0, 1, 1, 1, 2, 0)]:
        assert torch.equal(
            y[0, cls, 2 * a + i, 2 * b + j, 2 * c + k], flat[0, ((cls * 2 + i) * 2 + j) * 2 + k, a, b, c]
        )
    # the logits come out channels-last (what the SSC losses gather voxels from), with the gradients of the conv's
    assert y.is_contiguous(memory_format=torch.channels_last_3d)
    g = torch.rand_like(y)
    (head(x) * g).sum().backward()
    grads = [p.grad.clone() for p in head.parameters()]
    head.zero_grad()
    ref = flat.view(1, 3, 2, 2, 2, 3, 4, 5).permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(1, 3, 6, 8, 10)
    (ref * g).sum().backward()
    for a, b in zip(grads, [p.grad for p in head.parameters()]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="subvoxels"):
        VoxelHead(4, 3, subvoxels=(2, 0, 1))
    model = build_occnet(tiny_cfg(voxel_upsample="subvoxel"))
    images, K, T = tiny_inputs()
    assert model(images, K, T).logits.shape == (1, 18, 20, 20, 6)
    with pytest.raises(ValueError, match="voxel_upsample"):
        build_occnet(tiny_cfg(voxel_upsample="nearest"))


def test_3d_encoder_runs_channels_last_with_unchanged_results():
    """The voxel path keeps its 3D convolutions in NDHWC (faster oneDNN/cuDNN kernels); a pure
    layout choice: the logits match a copy run in the default layout, and state dicts round-trip."""
    torch.manual_seed(0)
    m = build_occnet(tiny_cfg(head="voxel", channels_last=True)).eval()
    assert build_occnet(tiny_cfg(head="voxel")).encoder.stages[0][0].conv1.weight.is_contiguous()  # off by default
    w = m.encoder.stages[0][0].conv1.weight
    assert w.is_contiguous(memory_format=torch.channels_last_3d) and not w.is_contiguous()
    images, K, T = tiny_inputs()
    with torch.no_grad():
        out = m(images, K, T)  # (tiny volumes may fall back to a contiguous-layout kernel)
        ref = build_occnet(tiny_cfg(head="voxel")).eval()
        ref.load_state_dict({k: v.contiguous() for k, v in m.state_dict().items()})
        ref.encoder.to(memory_format=torch.contiguous_format)
        ref.head.to(memory_format=torch.contiguous_format)
        ref.encoder.forward = _contiguous_input(ref.encoder.forward)
        expect = ref(images, K, T)
    assert torch.allclose(out.logits, expect.logits, atol=1e-5)


def _contiguous_input(f):
    return lambda x: f(x.contiguous())


def test_frozen_backbone_gets_no_update_and_keeps_its_statistics():
    torch.manual_seed(0)
    net = build_occnet(tiny_cfg(backbone="resnet18", freeze_backbone=True))
    before = {k: v.clone() for k, v in net.backbone.state_dict().items()}
    net.train()
    assert not net.backbone.training and net.neck.training  # the frozen part stays in eval mode
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    images, K, T = tiny_inputs()
    out = net(images, K, T)
    out.logits.mean().backward()
    assert all(p.grad is None for p in net.backbone.parameters())
    assert any(p.grad is not None for p in net.neck.parameters())
    opt.step()
    for k, v in net.backbone.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and BatchNorm running statistics
    # the same weights unfrozen: the backbone does get gradients
    net2 = build_occnet(tiny_cfg(backbone="resnet18"))
    net2(images, K, T).logits.mean().backward()
    assert any(p.grad is not None for p in net2.backbone.parameters())


def test_a_checkpoint_loads_without_the_backbone_file_its_run_started_from(tmp_path, capsys):
    """The checkpoint holds every weight: predict, eval and export of a run started from
    model.backbone_weights must not read that file again (it failed once the file had moved)."""
    import json
    import shutil
    from pathlib import Path

    from occkit.experiment import load_checkpoint_method

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "run_2026-11-26"
    run = tmp_path / "run"
    shutil.copytree(fixture, run)
    import hashlib

    ckpt = run / "checkpoints" / "step_000002"
    for cfg in (run / "config.json", ckpt / "config.json"):
        data = json.loads(cfg.read_text())
        data["model"]["backbone_weights"] = str(tmp_path / "moved_away.safetensors")  # no longer there
        cfg.write_text(json.dumps(data))
    sums = json.loads((ckpt / "checksums.json").read_text())  # the edit recorded as the trainer records it
    sums["config.json"] = hashlib.sha256((ckpt / "config.json").read_bytes()).hexdigest()
    (ckpt / "checksums.json").write_text(json.dumps(sums))
    method, cfg, _, _ = load_checkpoint_method(run, "cpu")
    assert cfg.model.backbone_weights.endswith("moved_away.safetensors")  # the run's record, kept as saved
    assert "model.backbone_weights: loaded" not in capsys.readouterr().err
