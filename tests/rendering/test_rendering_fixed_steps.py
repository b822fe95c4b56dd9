"""render_fixed_steps (RadOcc's released renderer) on hand-computed rays."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from occkit.geometry.grid import Grid
from occkit.rendering.fixed_steps import fixed_step_samples, grid_read, render_fixed_steps

LINE = Grid.from_range((0.0, 0.0, 0.0, 2.0, 0.4, 0.4), 0.4)  # 5 x 1 x 1 voxels along x


def test_samples_from_the_origin_read_at_the_left_edge():
    s = fixed_step_samples(3, 5, 0.2)
    assert s.t.shape == (3, 5)
    assert torch.allclose(s.t[1], torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8]))
    assert torch.equal(s.t, s.t_starts)  # read at the left edge
    assert torch.allclose(s.deltas, torch.full((3, 5), 0.2))


def test_weights_by_hand_zero_outside_the_box():
    """A ray along x from x = -0.3: samples at x = -0.3 + 0.2 k; k = 0, 1 and k >= 12 lie outside
    [0, 2] and weigh 0 whatever the volume holds; voxel 3 (x in [1.2, 1.6)) holds density 5 /m,
    read by nearest lookup at k = 8, 9 (x = 1.3, 1.5): alpha = 1 - exp(-5 * 0.2) each."""
    dens = torch.zeros(5, 1, 1)
    dens[3] = 5.0
    vals = torch.arange(5.0).view(1, 5, 1, 1) + 1  # value i + 1 in voxel i
    out = render_fixed_steps(
        dens,
        LINE,
        torch.tensor([[-0.3, 0.2, 0.2]]),
        torch.tensor([[1.0, 0.0, 0.0]]),
        vals,
        num_samples=15,
        step=0.2,
        thickness=0.2,
        mode="nearest",
        align_corners=False,
    )
    a = 1 - math.exp(-1.0)
    expected = torch.zeros(1, 15)
    expected[0, 8], expected[0, 9] = a, (1 - a) * a
    assert torch.allclose(out.weights, expected, atol=1e-6)
    assert float(out.values[0, 0]) == pytest.approx(4 * (a + (1 - a) * a), rel=1e-5)
    assert float(out.depth[0]) == pytest.approx(1.6 * a + 1.8 * (1 - a) * a, rel=1e-5)
    assert float(out.median_depth[0]) == pytest.approx(1.6)
    # density outside the box's samples is never read: a huge value in voxel 0 stops the ray at k = 2
    dens[0] = 1e6
    out = render_fixed_steps(
        dens,
        LINE,
        torch.tensor([[-0.3, 0.2, 0.2]]),
        torch.tensor([[1.0, 0.0, 0.0]]),
        num_samples=15,
        step=0.2,
        thickness=0.2,
        mode="nearest",
        align_corners=False,
    )
    assert float(out.weights[0, 2]) == pytest.approx(1.0) and float(out.weights[0, :2].sum()) == 0.0


def test_free_logit_alpha_softplus_closed_form():
    """The released density: alpha = 1 - exp(-softplus(-l_free) * 0.2) per sample, so a constant
    free logit l gives w_k = a (1 - a)^k from the first sample on (origin inside the box)."""
    grid = Grid.from_range((0.0, 0.0, 0.0, 8.0, 0.4, 0.4), 0.4)  # 20 x 1 x 1
    l_free = 0.7
    out = render_fixed_steps(
        torch.full(grid.shape, -l_free),
        grid,
        torch.tensor([[0.05, 0.2, 0.2]]),
        torch.tensor([[1.0, 0.0, 0.0]]),
        num_samples=30,
        step=0.2,
        thickness=0.2,
        activation="softplus",
    )
    a = 1 - math.exp(-math.log1p(math.exp(-l_free)) * 0.2)
    k = torch.arange(30, dtype=torch.float64)
    expected = a * (1 - a) ** k
    expected[k * 0.2 + 0.05 > 8.0] = 0.0  # samples 40.. would leave the box (none of the 30 here)
    assert torch.allclose(out.weights[0].double(), expected, rtol=1e-5)


def test_direction_length_sets_the_units():
    """t counts in units of |dirs|: a camera ray with z = 1 in the camera frame (the released rays,
    z-depth units) reaches the same points as the unit ray at t / |d|."""
    dens = torch.zeros(5, 1, 1)
    dens[2] = 3.0
    d = torch.tensor([[2.0, 0.0, 0.0]])
    out = render_fixed_steps(
        dens,
        LINE,
        torch.tensor([[0.05, 0.2, 0.2]]),
        d,
        num_samples=10,
        step=0.1,
        thickness=0.2,
        mode="nearest",
        align_corners=False,
    )
    hit = out.weights[0].nonzero()[:, 0].tolist()
    assert hit == [4, 5]  # x = 0.05 + 0.2 k in [0.8, 1.2): k = 4, 5


def test_align_corners_true_places_voxels_as_the_released_code():
    """A ramp v_i = i on 5 voxels of [0, 2] m: align_corners=True reads 4 p / 2 = 2 p (voxel i at
    i * 0.5 m); False reads p / 0.4 - 0.5 (voxel centres), clamped at the border."""
    ramp = torch.arange(5.0).view(1, 5, 1, 1)
    pts = torch.tensor([[0.1, 0.2, 0.2], [1.5, 0.2, 0.2], [1.0, 0.2, 0.2]])
    released = grid_read(ramp, LINE, pts, align_corners=True)[:, 0]
    centres = grid_read(ramp, LINE, pts, align_corners=False)[:, 0]
    assert torch.allclose(released, torch.tensor([0.2, 3.0, 2.0]), atol=1e-5)
    assert torch.allclose(centres, torch.tensor([0.0, 3.25, 2.0]), atol=1e-5)


def test_chunks_and_checkpoint_change_nothing_and_gradcheck():
    torch.manual_seed(0)
    grid = Grid.from_range((0.0, 0.0, 0.0, 1.6, 1.6, 0.8), 0.4)  # 4 x 4 x 2
    o = torch.rand(7, 3) * torch.tensor([1.6, 1.6, 0.8]) - torch.tensor([0.5, 0.0, 0.0])
    d = torch.nn.functional.normalize(torch.randn(7, 3), dim=-1) * 1.3
    dens0, vals0 = torch.randn(*grid.shape, dtype=torch.float64), torch.randn(3, *grid.shape, dtype=torch.float64)
    results = []
    for chunk, ckpt in ((64, False), (2, True)):
        dens, vals = dens0.clone().requires_grad_(True), vals0.clone().requires_grad_(True)
        out = render_fixed_steps(
            dens,
            grid,
            o.double(),
            d.double(),
            vals,
            num_samples=12,
            step=0.2,
            thickness=0.2,
            activation="softplus",
            chunk=chunk,
            checkpoint=ckpt,
        )
        (out.weights.square().sum() + out.values.sum()).backward()
        results.append((out.weights.detach(), out.values.detach(), dens.grad, vals.grad))
    for a, b in zip(*results):
        assert torch.allclose(a, b)

    def fn(dens: torch.Tensor, vals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = render_fixed_steps(
            dens,
            grid,
            o.double(),
            d.double(),
            vals,
            num_samples=12,
            step=0.2,
            thickness=0.2,
            activation="softplus",
            chunk=3,
        )
        return out.weights, out.values

    dens = torch.randn(*grid.shape, dtype=torch.float64, requires_grad=True)
    vals = torch.randn(2, *grid.shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (dens, vals), eps=1e-6, atol=1e-5)


def test_no_rays_and_bad_input():
    out = render_fixed_steps(
        torch.zeros(5, 1, 1), LINE, torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(2, 5, 1, 1), num_samples=4
    )
    assert out.weights.shape == (0, 4) and out.values.shape == (0, 2)
    with pytest.raises(ValueError, match="density"):
        render_fixed_steps(torch.zeros(4, 1, 1), LINE, torch.zeros(1, 3), torch.ones(1, 3))
    with pytest.raises(ValueError, match="activation"):
        render_fixed_steps(torch.zeros(5, 1, 1), LINE, torch.zeros(1, 3), torch.ones(1, 3), activation="relu")
    with pytest.raises(ValueError, match="num_samples"):
        render_fixed_steps(torch.zeros(5, 1, 1), LINE, torch.zeros(1, 3), torch.ones(1, 3), num_samples=0)
    assert F.softplus(torch.tensor(0.0)) == pytest.approx(math.log(2))
