"""LangOcc's released sampler (occkit.rendering.resampling): proposal edges jittered, importance
samples drawn from the proposal's transmittance (what is left at the far end goes to the last
interval) replacing the proposal samples; placements computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from occkit.rendering.resampling import jittered_uniform_samples, resample_from_transmittance, transmittance_cdf


def test_transmittance_cdf_gives_the_remainder_to_the_last_interval():
    T = torch.tensor([[1.0, 1.0, 0.5, 0.5]])
    assert transmittance_cdf(T).tolist() == [[0.0, 0.0, 0.5, 0.5, 1.0]]


def test_importance_samples_replace_the_proposal():
    # proposal: 4 intervals of 1 m on [0, 4]; the second absorbs half the ray (sigma = ln 2 / m),
    # the other half is left at 4 m and goes to the last interval [3, 4]:
    # cdf at the edges 0, 1, 2, 3, 4 = [0, 0, 0.5, 0.5, 1]
    proposal = jittered_uniform_samples(torch.zeros(2), torch.full((2,), 4.0), 4)
    assert (
        proposal.t_starts.tolist() == [[0.0, 1.0, 2.0, 3.0]] * 2 and proposal.t.tolist() == [[0.5, 1.5, 2.5, 3.5]] * 2
    )
    sigma = torch.tensor([[0.0, math.log(2.0), 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])  # ray 1: stops nowhere
    out = resample_from_transmittance(proposal, sigma, 4)
    # u = 0.125, 0.375 fall in [1, 2] (cdf 0 -> 0.5): t = 1 + u / 0.5; u = 0.625, 0.875 in [3, 4] (0.5 -> 1)
    assert torch.allclose(out.t[0], torch.tensor([1.25, 1.75, 3.25, 3.75]))
    # cells: half-way between the points, the ends extended by half a spacing, clipped to [0, 4]
    assert torch.allclose(out.t_starts[0], torch.tensor([1.0, 1.5, 2.5, 3.5]))
    assert torch.allclose(out.t_ends[0], torch.tensor([1.5, 2.5, 3.5, 4.0]))
    # a ray that stops nowhere draws every sample in the last interval (u = 0.125 .. 0.875 of [3, 4])
    assert torch.allclose(out.t[1], torch.tensor([3.125, 3.375, 3.625, 3.875]))
    assert torch.allclose(out.t_starts[1], torch.tensor([3.0, 3.25, 3.5, 3.75]))
    assert torch.allclose(out.t_ends[1], torch.tensor([3.25, 3.5, 3.75, 4.0]))
    assert out.t.shape == (2, 4)  # the proposal's samples are gone, not merged


def test_stratified_draw_moves_all_samples_of_a_ray_by_one_offset():
    proposal = jittered_uniform_samples(torch.zeros(1), torch.full((1,), 4.0), 4)
    sigma = torch.zeros(1, 4)  # all mass in [3, 4]: t = 3 + (k + b) / 4
    out = resample_from_transmittance(proposal, sigma, 4, jitter=True, generator=torch.Generator().manual_seed(0))
    b = torch.rand(1, 1, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out.t[0], 3 + (torch.arange(4.0) + b[0]) / 4)


def test_jittered_proposal_edges_stay_in_their_half_bins():
    g = torch.Generator().manual_seed(3)
    s = jittered_uniform_samples(torch.full((64,), 0.05), torch.full((64,), 40.0), 50, jitter=True, generator=g)
    delta = (40.0 - 0.05) / 50
    edges = torch.cat([s.t_starts, s.t_ends[:, -1:]], 1)  # (64, 51)
    nominal = 0.05 + delta * torch.arange(51.0)
    assert torch.all(edges[:, 0] == 0.05) and torch.allclose(edges[:, -1], torch.full((64,), 40.0))
    off = edges[:, 1:-1] - nominal[1:-1]
    assert float(off.abs().max()) <= delta / 2 + 1e-5 and float(off.std()) > delta / 8  # jittered, within half a bin
    assert torch.allclose(s.t, 0.5 * (s.t_starts + s.t_ends))  # evaluated at the midpoints
    assert torch.all(s.deltas > 0)


def test_checks():
    s = jittered_uniform_samples(torch.zeros(1), torch.ones(1), 2)
    with pytest.raises(ValueError, match="sigma"):
        resample_from_transmittance(s, torch.zeros(1, 3), 4)
    with pytest.raises(ValueError, match="num_samples"):
        resample_from_transmittance(s, torch.zeros(1, 2), 0)
