import pytest
import torch

from occkit.geometry.grid import Grid, occ3d_grid
from occkit.geometry.raycast import first_hit, mark_visible, traverse


def brute_force_voxels(o, d, g, t_max, n=20000):
    """Voxels a ray passes, by dense sampling (misses only corner-grazing voxels)."""
    t = torch.linspace(0, t_max, n, dtype=torch.float64)
    pts = o[None] + t[:, None] * d[None]
    idx, valid = g.point_to_index(pts)
    seen = []
    for i in idx[valid].tolist():
        if not seen or seen[-1] != i:
            seen.append(i)
    return seen


def test_traversal_matches_dense_sampling():
    g = Grid((-2, -2, -1), (2, 2, 1), (0.5, 0.5, 0.25))
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        o = (torch.rand(3, generator=gen, dtype=torch.float64) - 0.5) * torch.tensor(
            [10.0, 10.0, 4.0], dtype=torch.float64
        )
        d = torch.randn(3, generator=gen, dtype=torch.float64)
        d = d / d.norm()
        steps = list(traverse(o[None], d[None], g))
        walked = [s.index[0].tolist() for s in steps]
        ref = brute_force_voxels(o, d, g, 20.0)
        assert walked == ref
        # consecutive voxels share a face and the intervals chain
        for a, b in zip(steps, steps[1:]):
            assert torch.allclose(a.t_out, b.t_in)
            assert sum(abs(x - y) for x, y in zip(a.index[0].tolist(), b.index[0].tolist())) == 1


def test_first_hit_depth_and_miss():
    g = occ3d_grid()
    occ = torch.zeros(g.shape, dtype=torch.bool)
    occ[150, 100, 5] = True  # x in [20, 20.4), z in [1.0, 1.4)
    o = torch.tensor([[0.0, 0.2, 1.2], [0.0, 0.2, 1.2], [-50.0, 0.2, 1.2]])
    d = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    h = first_hit(occ, o, d, g)
    assert h.hit.tolist() == [True, False, True]
    assert h.index[0].tolist() == [150, 100, 5]
    assert torch.allclose(h.t_in[[0, 2]], torch.tensor([20.0, 70.0])) and torch.allclose(
        h.t_out[[0, 2]], torch.tensor([20.4, 70.4])
    )
    assert h.t_in[1] == float("inf") and h.index[1].tolist() == [-1, -1, -1]


def test_mark_visible_stops_at_wall_and_t_max():
    g = Grid((0, 0, 0), (10, 1, 1), (1, 1, 1))
    occ = torch.zeros(g.shape, dtype=torch.bool)
    occ[5, 0, 0] = True
    o = torch.tensor([[0.5, 0.5, 0.5]])
    d = torch.tensor([[1.0, 0.0, 0.0]])
    vis = mark_visible(o, d, g, occ)
    assert vis[:, 0, 0].tolist() == [True] * 6 + [False] * 4  # the wall voxel is seen, not behind it
    vis = mark_visible(o, d, g, None, t_max=2.0)
    assert vis[:, 0, 0].tolist() == [True] * 3 + [False] * 7


def test_axis_parallel_rays_on_voxel_boundaries():
    g = Grid((0, 0, 0), (4, 4, 4), (1, 1, 1))
    o = torch.tensor([[0.0, 1.0, 2.0]])  # exactly on planes
    d = torch.tensor([[1.0, 0.0, 0.0]])
    walked = [s.index[0].tolist() for s in traverse(o, d, g)]
    assert walked == [[0, 1, 2], [1, 1, 2], [2, 1, 2], [3, 1, 2]]


def test_bad_input():
    g = occ3d_grid()
    with pytest.raises(ValueError, match="dirs"):
        next(traverse(torch.zeros(3, 3), torch.zeros(2, 3), g))
    with pytest.raises(TypeError):
        next(traverse(torch.zeros(3, 3, dtype=torch.long), torch.ones(3, 3, dtype=torch.long), g))


def _reference_walk(occ, o, d, g, t_max=None):
    """first_hit / mark_visible written directly on the generic `traverse` generator."""
    R = o.shape[0]
    X, Y, Z = g.shape
    marked = torch.zeros(g.shape, dtype=torch.bool)
    hit = torch.zeros(R, dtype=torch.bool)
    index = torch.full((R, 3), -1)
    t_in = torch.full((R,), float("inf"), dtype=o.dtype)
    t_out = torch.full((R,), float("inf"), dtype=o.dtype)
    for s in traverse(o, d, g, t_max):
        live = ~hit[s.ray]
        ix = s.index[live]
        marked[ix[:, 0], ix[:, 1], ix[:, 2]] = True
        h = live & occ[s.index[:, 0], s.index[:, 1], s.index[:, 2]]
        r = s.ray[h]
        hit[r] = True
        index[r] = s.index[h]
        t_in[r] = s.t_in[h]
        t_out[r] = s.t_out[h]
    return marked, hit, index, t_in, t_out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_walk_equals_generic_traversal(dtype):
    g = Grid((-4, -4, -1), (4, 4, 1.4), (0.4, 0.4, 0.4))
    gen = torch.Generator().manual_seed(3)
    occ = torch.rand(g.shape, generator=gen) < 0.03
    o = ((torch.rand(500, 3, generator=gen) - 0.5) * torch.tensor([12.0, 12.0, 3.0])).to(dtype)
    d = torch.randn(500, 3, generator=gen).to(dtype)
    d[:20, 1:] = 0  # axis-parallel rays
    t_max = (torch.rand(500, generator=gen) * 10).to(dtype)
    marked, hit, index, t_in, t_out = _reference_walk(occ, o, d, g, t_max)
    h = first_hit(occ, o, d, g, t_max)
    assert torch.equal(h.hit, hit) and torch.equal(h.index, index)
    assert torch.equal(h.t_in, t_in) and torch.equal(h.t_out, t_out)
    assert torch.equal(mark_visible(o, d, g, occ, t_max), marked)
    acc = torch.zeros(g.shape, dtype=torch.bool)
    mark_visible(o[:250], d[:250], g, occ, t_max[:250], out=acc)
    mark_visible(o[250:], d[250:], g, occ, t_max[250:], out=acc)
    assert torch.equal(acc, marked)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("walls", [False, True])
def test_numba_marking_equals_the_torch_loop_bit_for_bit(dtype, walls):
    """mark_visible on the CPU walks in numba (_mark_rays); the torch loop (compiled=False) is its
    reference: the same voxels for random rays, axis-parallel ones and diagonals through voxel
    corners (equal crossings: the first axis wins, as torch.min picks), with and without an
    occupied grid and end distances."""
    from occkit.geometry.raycast import _numba_mark, _padded_walk

    if _numba_mark() is None:
        pytest.skip("numba is not importable: the torch loop marks")
    g = Grid((-4, -4, -1), (4, 4, 1.4), (0.4, 0.4, 0.4))
    gen = torch.Generator().manual_seed(5)
    occ = (torch.rand(g.shape, generator=gen) < 0.05) if walls else None
    n = 4000
    o = ((torch.rand(n, 3, generator=gen) - 0.5) * torch.tensor([12.0, 12.0, 3.0])).to(dtype)
    d = torch.randn(n, 3, generator=gen).to(dtype)
    d[:200, 1:] = 0  # along x
    d[200:400] = torch.tensor([1.0, 1.0, 0.0], dtype=dtype)  # diagonals: equal crossings ...
    o[200:400] = torch.tensor([0.2, 0.2, 0.2], dtype=dtype) + 0.4 * torch.randint(-8, 8, (200, 3), generator=gen).to(
        dtype
    )  # ... from voxel centres
    d[400:500] = torch.tensor([-1.0, 1.0, 1.0], dtype=dtype)
    for t_max in (None, (torch.rand(n, generator=gen) * 10).to(dtype)):
        fast, _ = _padded_walk(o, d, g, occ, t_max, mark=True)
        slow, _ = _padded_walk(o, d, g, occ, t_max, mark=True, compiled=False)
        assert torch.equal(fast, slow)
        assert fast.sum() > 0
