"""Volume rendering: hand-computed weights, identities, gradcheck, chunking and early termination."""

from __future__ import annotations

import math

import pytest
import torch

from occkit.geometry.grid import Grid
from occkit.labels import OCC3D_FREE
from occkit.rendering.sampling import RaySamples
from occkit.rendering.volrend import (
    alpha_from_density,
    density_from_logits,
    grid_field,
    render_grid,
    render_rays,
    render_samples,
    semantic_probs_from_logits,
    transmittance_from_alpha,
    weights_from_alpha,
    weights_from_density,
)


def two_voxel_scene(dtype=torch.float64):
    grid = Grid((0, 0, 0), (2, 1, 1), (1, 1, 1))
    density = torch.tensor([1.0, 2.0], dtype=dtype).view(2, 1, 1)
    values = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=dtype).t().reshape(2, 2, 1, 1)  # (C=2, X=2, 1, 1)
    origins = torch.tensor([[-1.0, 0.5, 0.5]], dtype=dtype)
    dirs = torch.tensor([[1.0, 0.0, 0.0]], dtype=dtype)
    return grid, density, values, origins, dirs


def test_two_voxels_hand_computed():
    grid, density, values, o, d = two_voxel_scene()
    out = render_grid(density, grid, o, d, values, mode="nearest", num_samples=2, return_weights=True)
    a0 = 1 - math.exp(-1.0)  # sigma 1 over 1 m
    a1 = 1 - math.exp(-2.0)
    w = [a0, (1 - a0) * a1]
    assert out.weights[0].tolist() == pytest.approx(w, abs=1e-12)
    assert out.opacity.item() == pytest.approx(sum(w), abs=1e-12)
    # the ray enters at t = 1; samples at the midpoints 1.5 and 2.5
    assert out.depth.item() == pytest.approx(1.5 * w[0] + 2.5 * w[1], abs=1e-12)
    assert out.values[0].tolist() == pytest.approx(w, abs=1e-12)
    # transmittance 0.5 is reached inside voxel 0 at t = 1 + ln 2 (density 1)
    assert out.median_depth.item() == pytest.approx(1 + math.log(2), abs=1e-12)
    # finer samples of a piecewise-constant field give the same weights per voxel
    fine = render_grid(density, grid, o, d, values, mode="nearest", num_samples=16, return_weights=True)
    assert fine.weights[0, :8].sum().item() == pytest.approx(w[0], abs=1e-12)
    assert fine.weights[0, 8:].sum().item() == pytest.approx(w[1], abs=1e-12)
    assert fine.values[0].tolist() == pytest.approx(w, abs=1e-12)


def test_weight_formulas_agree():
    g = torch.Generator().manual_seed(0)
    sigma = torch.rand(5, 7, generator=g, dtype=torch.float64) * 3
    delta = torch.rand(5, 7, generator=g, dtype=torch.float64)
    alpha = alpha_from_density(sigma, delta)
    w_a = weights_from_alpha(alpha)
    w_d, log_end = weights_from_density(sigma, delta)
    torch.testing.assert_close(w_a, w_d)
    T = transmittance_from_alpha(alpha)
    assert torch.all(T[:, 0] == 1)
    torch.testing.assert_close(T[:, 3], torch.prod(1 - alpha[:, :3], -1))
    # opacity + final transmittance = 1
    torch.testing.assert_close(w_d.sum(-1) + torch.exp(log_end), torch.ones(5, dtype=torch.float64))
    # alpha = 1 stops the ray: nothing after it
    a = torch.tensor([[0.2, 1.0, 0.5]])
    assert weights_from_alpha(a)[0].tolist() == pytest.approx([0.2, 0.8, 0.0])


def test_density_from_logits_matches_free_probability():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 18, 3, 4, 5, generator=g, dtype=torch.float64)
    sigma = density_from_logits(logits, voxel_size=0.4, free=OCC3D_FREE)
    assert sigma.shape == (2, 3, 4, 5)
    assert bool((sigma >= 0).all())
    p_free = torch.softmax(logits, 1)[:, 17]
    torch.testing.assert_close(alpha_from_density(sigma, torch.tensor(0.4, dtype=torch.float64)), 1 - p_free)
    # softplus form
    occ_logit = torch.logsumexp(logits[:, :17], 1) - logits[:, 17]
    torch.testing.assert_close(sigma, torch.nn.functional.softplus(occ_logit) / 0.4)
    probs = semantic_probs_from_logits(logits, free=OCC3D_FREE)
    assert probs.shape == (2, 17, 3, 4, 5)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 3, 4, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="free"):
        density_from_logits(logits, free=18)
    with pytest.raises(TypeError):
        density_from_logits(torch.zeros(18, 2, 2, 2, dtype=torch.long), free=OCC3D_FREE)


def _tiny_grid_rays(dtype=torch.float64):
    grid = Grid((-1, -1, -1), (1, 1, 1), (0.5, 0.5, 1.0))  # (4, 4, 2)
    g = torch.Generator().manual_seed(2)
    origins = torch.tensor([[-1.5, -0.2, 0.1], [0.1, 0.0, -1.6], [-1.3, -1.2, -0.4]], dtype=dtype)
    target = torch.rand(3, 3, generator=g, dtype=dtype) * 0.8 - 0.4
    dirs = target - origins
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    return grid, origins, dirs


@pytest.mark.parametrize("mode", ["nearest", "trilinear"])
def test_gradcheck_float64(mode):
    grid, o, d = _tiny_grid_rays()
    g = torch.Generator().manual_seed(3)
    density = (torch.rand(grid.shape, generator=g, dtype=torch.float64) * 2).requires_grad_()
    values = torch.randn(2, *grid.shape, generator=g, dtype=torch.float64).requires_grad_()

    def fn(dens, vals):
        out = render_grid(dens, grid, o, d, vals, mode=mode, num_samples=6, return_weights=True, chunk=2, block=4)
        return out.depth, out.opacity, out.values, out.weights

    assert torch.autograd.gradcheck(fn, (density, values), eps=1e-6, atol=1e-6)


def test_gradcheck_through_logits():
    grid, o, d = _tiny_grid_rays()
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, *grid.shape, generator=g, dtype=torch.float64).requires_grad_()

    def fn(lg):
        sigma = density_from_logits(lg, free=2, voxel_size=0.5)
        probs = semantic_probs_from_logits(lg, free=2)
        out = render_grid(sigma, grid, o[:2], d[:2], probs, mode="trilinear", num_samples=4)
        return out.depth, out.values

    assert torch.autograd.gradcheck(fn, (logits,), eps=1e-6, atol=1e-6)


def test_chunks_blocks_checkpoint_and_early_stop_agree():
    grid, o, d = _tiny_grid_rays()
    g = torch.Generator().manual_seed(5)
    o = o.repeat(5, 1)
    d = d.repeat(5, 1)
    density = (torch.rand(grid.shape, generator=g, dtype=torch.float64) * 4).requires_grad_()
    values = torch.randn(3, *grid.shape, generator=g, dtype=torch.float64)
    ref = render_grid(density, grid, o, d, values, num_samples=32, return_weights=True)
    (gref,) = torch.autograd.grad(ref.depth.sum() + ref.values.sum(), density)
    for kw in ({"chunk": 4}, {"block": 5}, {"chunk": 4, "block": 7, "checkpoint": True}):
        out = render_grid(density, grid, o, d, values, num_samples=32, return_weights=True, **kw)
        torch.testing.assert_close(out.depth, ref.depth)
        torch.testing.assert_close(out.values, ref.values)
        torch.testing.assert_close(out.weights, ref.weights)
        torch.testing.assert_close(out.median_depth, ref.median_depth)
        (gk,) = torch.autograd.grad(out.depth.sum() + out.values.sum(), density)
        torch.testing.assert_close(gk, gref)
    # early termination: the error in opacity is at most the stop threshold
    dense = torch.full(grid.shape, 30.0, dtype=torch.float64)
    full = render_grid(dense, grid, o, d, values, num_samples=64)
    early = render_grid(dense, grid, o, d, values, num_samples=64, block=4, stop_transmittance=1e-3)
    assert torch.all((full.opacity - early.opacity).abs() <= 1e-3)
    torch.testing.assert_close(early.depth, full.depth, atol=0.01, rtol=0)


def test_importance_pass_concentrates_samples():
    # one occupied voxel far along the ray: fine samples gather around it
    grid = Grid((0, 0, 0), (8, 1, 1), (1, 1, 1))
    density = torch.zeros(grid.shape, dtype=torch.float64)
    density[5] = 50.0
    o = torch.tensor([[-0.5, 0.5, 0.5]], dtype=torch.float64)
    d = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    out = render_grid(density, grid, o, d, None, mode="nearest", num_samples=8, num_importance=32, return_weights=True)
    s = out.samples
    assert s.t.shape == (1, 8 + 32)
    inside = ((s.t >= 5.5) & (s.t <= 6.5)).sum().item()  # voxel 5 spans t in [5.5, 6.5]
    assert inside >= 20
    assert torch.all(s.t_ends[:, :-1] == s.t_starts[:, 1:])  # intervals tile the ray
    assert out.median_depth.item() == pytest.approx(5.5 + math.log(2) / 50, abs=1e-9)


def test_field_errors_and_step_sampling():
    grid, o, d = _tiny_grid_rays()
    with pytest.raises(ValueError, match="density"):
        grid_field(torch.zeros(3, 3, 3, dtype=torch.float64), grid)
    with pytest.raises(ValueError, match="values"):
        grid_field(torch.zeros(grid.shape), grid, torch.zeros(2, 3, 3, 3))
    with pytest.raises(ValueError, match="mode"):
        grid_field(torch.zeros(grid.shape), grid, mode="cubic")
    f = grid_field(torch.ones(grid.shape, dtype=torch.float64), grid)
    with pytest.raises(ValueError, match="exactly one"):
        render_rays(f, o, d, grid)
    with pytest.raises(ValueError, match="finite"):
        render_rays(f, o, d * float("nan"), grid, num_samples=4)
    # step sampling: constant density 1 => opacity 1 - exp(-length inside the box)
    out = render_rays(f, o, d, grid, step=0.01, chunk=2)
    from occkit.rendering.sampling import ray_box

    near, far = ray_box(o, d, grid)
    torch.testing.assert_close(out.opacity, 1 - torch.exp(-(far - near)))


def test_render_samples_zero_length_intervals_weigh_nothing():
    f = grid_field(torch.full((2, 1, 1), 5.0), Grid((0, 0, 0), (2, 1, 1), (1, 1, 1)))
    s = RaySamples(torch.ones(1, 3), torch.ones(1, 3), torch.ones(1, 3))
    out = render_samples(f, torch.zeros(1, 3), torch.tensor([[1.0, 0, 0]]), s)
    assert out.opacity.item() == 0.0
    assert math.isinf(out.median_depth.item())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    grid, o, d = _tiny_grid_rays(torch.float32)
    density = torch.rand(grid.shape) * 3
    values = torch.randn(2, *grid.shape)
    cpu = render_grid(density, grid, o, d, values, num_samples=16, block=4, stop_transmittance=1e-6)
    gpu = render_grid(
        density.cuda(), grid, o.cuda(), d.cuda(), values.cuda(), num_samples=16, block=4, stop_transmittance=1e-6
    )
    torch.testing.assert_close(gpu.depth.cpu(), cpu.depth, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gpu.values.cpu(), cpu.values, atol=1e-5, rtol=1e-5)


def test_composite_values_hand_computed():
    from occkit.rendering.volrend import composite_unit_values, composite_values

    w = torch.tensor([[0.5, 0.25]])
    v = torch.tensor([[[2.0, 0.0], [0.0, 4.0]]])  # (R=1, S=2, C=2)
    assert torch.allclose(composite_values(w, v), torch.tensor([[1.0, 1.0]]))  # 0.5*(2,0) + 0.25*(0,4)
    assert torch.allclose(composite_unit_values(w, v), torch.tensor([[0.5, 0.25]]))  # unit vectors (1,0), (0,1)
    zero = torch.zeros(1, 2, 2)
    assert torch.equal(composite_unit_values(w, zero), torch.zeros(1, 2))  # zero vectors stay zero


def test_composite_values_equal_the_elementwise_sum_with_gradients():
    from occkit.losses.language import normalize_features
    from occkit.rendering.volrend import composite_unit_values, composite_values

    g = torch.Generator().manual_seed(0)
    w = torch.rand(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(7, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    up = torch.randn(7, 3, generator=g, dtype=torch.float64)
    for fast, slow in (
        (composite_values(w, v), (w[..., None] * v).sum(1)),
        (composite_unit_values(w, v), (w[..., None] * normalize_features(v)).sum(1)),
    ):
        assert fast.dtype == torch.float64
        gf = torch.autograd.grad((fast * up).sum(), (w, v))
        gs = torch.autograd.grad((slow * up).sum(), (w, v))
        assert torch.allclose(fast, slow, atol=1e-12)
        assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(gf, gs))
    # float32 out of bfloat16 values under autocast (the training path), not a bfloat16 product
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = composite_values(w.detach().float(), v.detach().bfloat16())
    assert out.dtype == torch.float32
    with pytest.raises(ValueError, match="values"):
        composite_values(w, v[:, :4])


def test_composite_unit_values_gradcheck_and_dtypes():
    from occkit.rendering.volrend import composite_unit_values

    g = torch.Generator().manual_seed(1)
    w = torch.rand(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: composite_unit_values(a, b), (w, v.clone().requires_grad_()))
    # a zero vector: the norm is clamped, so its gradient is w / eps times the upstream gradient, no projection
    v0 = v.clone()
    v0[1, 2] = 0
    v0.requires_grad_()
    up = torch.randn(3, 5, generator=g, dtype=torch.float64)
    (gv,) = torch.autograd.grad((composite_unit_values(w, v0, eps=1e-3) * up).sum(), v0)
    assert torch.allclose(gv[1, 2], w[1, 2].detach() / 1e-3 * up[1])
    # bfloat16 values (the autocast MLP's output): a float32 composite, a bfloat16 gradient
    vb = v.bfloat16().requires_grad_()
    out = composite_unit_values(w.detach().float(), vb)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert vb.grad is not None and vb.grad.dtype == torch.bfloat16


def test_composite_unit_affine_equals_the_composite_of_the_made_values():
    """The last Linear taken after the sum, the norms from the Gram matrix: the same composite (and
    gradients) as making ``W h + b``, normalising and compositing (float64); by hand; shapes named."""
    from occkit.rendering.volrend import composite_unit_affine, composite_unit_values

    torch.manual_seed(1)
    R, S, K, C = 5, 9, 6, 10
    w = torch.rand(R, S, dtype=torch.float64, requires_grad=True)
    h = torch.randn(R, S, K, dtype=torch.float64, requires_grad=True)
    W = torch.randn(C, K, dtype=torch.float64, requires_grad=True)
    b = torch.randn(C, dtype=torch.float64, requires_grad=True)
    ref = composite_unit_values(w, h @ W.T + b)
    new = composite_unit_affine(w, h, W, b)
    assert new.dtype == torch.float64
    torch.testing.assert_close(new, ref, rtol=1e-9, atol=1e-12)
    g = torch.randn(R, C, dtype=torch.float64)
    ga = torch.autograd.grad((ref * g).sum(), (w, h, W, b))
    gb = torch.autograd.grad((new * g).sum(), (w, h, W, b))
    for a, c in zip(ga, gb):
        torch.testing.assert_close(c, a, rtol=1e-8, atol=1e-10)
    # without a bias, and by hand for one ray of one sample: w v / ||v||
    one = composite_unit_affine(
        torch.tensor([[0.5]]), torch.tensor([[[3.0, 0.0]]]), torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    )
    torch.testing.assert_close(one, torch.tensor([[0.5, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="weight"):
        composite_unit_affine(w, h, W[:, :3], b)
