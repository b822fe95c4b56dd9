"""RayIoU: SparseOcc's rays, the traversal, the count formula against a reference written here,
origins from poses, and the accumulator's properties (GT vs itself = 100, shifts)."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from occkit.fileio import save_npz_atomic, write_json_atomic
from occkit.geometry.grid import Grid
from occkit.geometry.raycast import first_hit
from occkit.geometry.transforms import pose_from_transform, rotation_z
from occkit.labels import OCC3D_FREE
from occkit.metrics.rayiou import (
    RayIoUMetric,
    cast_rays,
    cast_rays_reference,
    lidar_origins_in_ego,
    lidar_ray_directions,
    load_nuscenes_infos,
    rayiou_counts,
    rayiou_origins,
    rayiou_origins_from_infos,
    rayiou_scores,
    scene_frames_from_infos,
    sparseocc_pitch_angles,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SMALL = Grid((-8.0, -8.0, -1.0), (8.0, 8.0, 5.4), (0.4, 0.4, 0.4))  # 40 x 40 x 16


def small_scene(seed: int = 0) -> torch.Tensor:
    """(40, 40, 16) labels: ground (11), a wall (15), some cars (4), the rest free (17)."""
    g = torch.Generator().manual_seed(seed)
    s = torch.full(SMALL.shape, 17, dtype=torch.long)
    s[:, :, :2] = 11
    s[35:, :, :10] = 15
    cars = torch.rand(SMALL.shape, generator=g) < 0.01
    cars[:, :, 8:] = False
    s[cars] = 4
    return s


def test_pitch_angles_and_directions():
    p = sparseocc_pitch_angles()
    assert p.shape == (39,)
    assert p[0] == pytest.approx(-math.pi / 4)
    assert p[1] == pytest.approx(-(math.pi / 2 - math.atan(2)))
    assert p[-2] < 0.21 <= p[-1]
    d = np.diff(p.numpy())
    assert np.allclose(d[9:], d[8])  # constant spacing after the 10 atan angles
    dirs = lidar_ray_directions()
    assert dirs.shape == (39 * 360, 3)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(39 * 360, dtype=torch.float64))
    assert torch.allclose(dirs[0], torch.tensor([math.cos(p[0]), 0.0, math.sin(p[0])], dtype=torch.float64))


def test_cast_rays_hand_computed():
    grid = Grid((0.0, 0.0, 0.0), (4.0, 2.0, 2.0), (1.0, 1.0, 1.0))  # 4 x 2 x 2
    vol = torch.full((4, 2, 2), 3, dtype=torch.long)  # 3 = free
    vol[2, 0, 0] = 1
    o = torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [3.5, 0.5, 0.5]], dtype=torch.float64)
    d = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]], dtype=torch.float64)
    lab, dep = cast_rays(vol[None, None], torch.zeros(3, dtype=torch.long), o, d, grid, free=3)
    # ray 0 enters voxel x=2 at 1.5 and leaves it at 2.5; ray 1 leaves the grid at y=2 (1.5)
    assert lab[0].tolist() == [1, 3, 1]
    assert dep[0].tolist() == pytest.approx([2.5, 1.5, 1.5])
    # the origin's own voxel counts
    vol[0, 0, 0] = 2
    lab, dep = cast_rays(vol[None, None], torch.zeros(3, dtype=torch.long), o, d, grid, free=3)
    assert lab[0].tolist() == [2, 2, 1] and dep[0, :2].tolist() == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError, match="outside the grid"):
        cast_rays(vol[None, None], torch.zeros(1, dtype=torch.long), o[:1] + 10, d[:1], grid, free=3)


def test_cast_rays_matches_generic_first_hit():
    s = small_scene(1)
    dirs = lidar_ray_directions()
    o = torch.tensor([0.3, -0.2, 1.84], dtype=torch.float64).expand_as(dirs)
    lab, dep = cast_rays(s[None, None], torch.zeros(len(dirs), dtype=torch.long), o, dirs, SMALL, free=OCC3D_FREE)
    h = first_hit(s < 17, o, dirs, SMALL)
    ix = h.index.clamp(min=0)
    ref = torch.where(h.hit, s[ix[:, 0], ix[:, 1], ix[:, 2]], 17)
    same = ref == lab[0]
    assert same.float().mean() > 0.999  # edge/corner ties may differ on a handful of rays
    assert torch.allclose(dep[0][same & h.hit], h.t_out[same & h.hit], atol=1e-6)


def _rays_with_ties(grid: Grid, n_random: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseOcc's directions from origins on voxel faces, edges and corners (exact ties in the
    walk), plus random origins with random and axis-aligned directions (zero components)."""
    g = torch.Generator().manual_seed(seed)
    lo = torch.tensor(grid.range_min, dtype=torch.float64)
    vs = torch.tensor(grid.voxel_size, dtype=torch.float64)
    corners = lo + vs * torch.tensor([[10.0, 12.0, 7.0], [10.5, 12.0, 7.0], [10.0, 12.5, 7.5], [20.25, 20.25, 6.25]])
    dirs = lidar_ray_directions()
    o = [corners.repeat_interleave(len(dirs), 0)]
    d = [dirs.repeat(len(corners), 1)]
    hi = torch.tensor(grid.range_max, dtype=torch.float64)
    o.append(lo + (hi - lo) * torch.rand(n_random, 3, generator=g, dtype=torch.float64))
    rd = torch.randn(n_random, 3, generator=g, dtype=torch.float64)
    rd[: n_random // 4, :2] = 0.0  # straight up or down
    rd[n_random // 4 : n_random // 2, 1] = 0.0
    rd[n_random // 2 : 3 * n_random // 4] = torch.tensor(
        [[1.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 1.0]], dtype=torch.float64
    ).repeat(n_random, 1)[: n_random // 4]
    d.append(rd / rd.norm(dim=-1, keepdim=True))
    return torch.cat(o), torch.cat(d)


@pytest.mark.parametrize(
    "walk,threads,dtype",
    [
        ("numba", 1, torch.float64),
        ("numba", 2, torch.float64),
        ("numba", 1, torch.float32),
        ("numpy", 1, torch.float64),
        ("numpy", 2, torch.float64),
        ("torch", 1, torch.float64),
        ("numpy", 1, torch.float32),
    ],
)
def test_cast_rays_equals_reference_bit_for_bit(walk, threads, dtype):
    vols = torch.stack(
        [
            torch.stack([small_scene(10), small_scene(11)]),
            torch.stack([small_scene(12), small_scene(10)]),
            torch.randint(0, 18, (2, *SMALL.shape), generator=torch.Generator().manual_seed(0)),
        ]
    )  # (3, 2, X, Y, Z)
    o, d = _rays_with_ties(SMALL, 3000, seed=1)
    frame = torch.arange(len(o)) % 2
    for V in (1, 2, 3):
        ref = cast_rays_reference(vols[:V], frame, o, d, SMALL, dtype=dtype, free=OCC3D_FREE)
        new = cast_rays(vols[:V], frame, o, d, SMALL, dtype=dtype, threads=threads, walk=walk, free=OCC3D_FREE)
        assert torch.equal(ref[0], new[0]) and torch.equal(ref[1], new[1])
    with pytest.raises(ValueError, match="walk"):
        cast_rays(vols[:1], frame, o, d, SMALL, walk="gpu", free=OCC3D_FREE)
    if walk == "numba":  # and equals the numpy walk, three volumes at once
        ref = cast_rays(vols, frame, o, d, SMALL, dtype=dtype, walk="numpy", threads=1, free=OCC3D_FREE)
        assert torch.equal(ref[0], new[0]) and torch.equal(ref[1], new[1])


def test_cast_rays_jumps_across_free_squares_bit_for_bit(monkeypatch):
    """The numpy walk's jumps (free squares around a ray's voxel) do happen on open scenes, and the
    labels and depths still equal the reference's bit for bit, with ties (origins on faces, edges
    and corners), 1-3 volumes and float32; without jumps the same."""
    from occkit.metrics import rayiou

    moved = []
    real = rayiou._jump

    def spy(code, shift, want, cur, *rest):
        before = cur.copy()
        real(code, shift, want, cur, *rest)
        moved.append(int((cur != before).sum()))

    monkeypatch.setattr(rayiou, "_jump", spy)
    open_scene = torch.full(SMALL.shape, 17, dtype=torch.long)
    open_scene[:, :, :2] = 11
    open_scene[30:33, 5:9, 2:6] = 4
    vols = torch.stack(
        [
            torch.stack([open_scene, small_scene(11)]),
            torch.stack([torch.roll(open_scene, 1, 0), open_scene]),
            torch.stack([small_scene(12), open_scene]),
        ]
    )  # (3, 2, X, Y, Z)
    o, d = _rays_with_ties(SMALL, 2000, seed=4)
    frame = torch.arange(len(o)) % 2
    for V, dtype in ((1, torch.float64), (2, torch.float64), (3, torch.float64), (2, torch.float32)):
        moved.clear()
        ref = cast_rays_reference(vols[:V], frame, o, d, SMALL, dtype=dtype, free=OCC3D_FREE)
        new = cast_rays(vols[:V], frame, o, d, SMALL, dtype=dtype, walk="numpy", threads=1, free=OCC3D_FREE)
        assert sum(moved) > len(o) // 10, (V, dtype)  # many rays jumped
        assert torch.equal(ref[0], new[0]) and torch.equal(ref[1], new[1]), (V, dtype)
    monkeypatch.setattr(rayiou, "_MIN_JUMP", 10**6)  # no square is that large: steps only
    moved.clear()
    new = cast_rays(vols[:2], frame, o, d, SMALL, walk="numpy", threads=1, free=OCC3D_FREE)
    ref = cast_rays_reference(vols[:2], frame, o, d, SMALL, free=OCC3D_FREE)
    assert sum(moved) == 0 and torch.equal(ref[0], new[0]) and torch.equal(ref[1], new[1])


def test_numba_walk_jumps_across_the_same_free_squares_bit_for_bit(monkeypatch):
    """The numba walk's free squares equal the numpy walk's (:func:`_add_free_squares`), cover much of
    an open scene, and its jumps across them leave the labels and depths equal to the reference's
    bit for bit (ties, 1-3 volumes, float32), and to its own steps without jumps."""
    from occkit.metrics import rayiou

    if rayiou._numba_walk() is None:
        pytest.skip("numba cannot be imported")
    _, squares = rayiou._numba_walk()
    open_scene = torch.full(SMALL.shape, 17, dtype=torch.long)
    open_scene[:, :, :2] = 11
    open_scene[30:33, 5:9, 2:6] = 4
    vols = torch.stack(
        [
            torch.stack([open_scene, small_scene(11)]),
            torch.stack([torch.roll(open_scene, 1, 0), open_scene]),
            torch.stack([small_scene(12), open_scene]),
        ]
    )  # (3, 2, X, Y, Z)
    for V in (1, 2, 3):
        code = np.full((2, 42, 42, 18), 0x80, np.uint8)
        inner = np.zeros((2, 40, 40, 16), np.uint8)
        for v in range(V):
            inner |= (vols[v] < OCC3D_FREE).numpy().astype(np.uint8) << v
        code[:, 1:-1, 1:-1, 1:-1] = inner
        mine, theirs = code.copy(), code.copy()
        cap = min(rayiou._MAX_SQUARE, (1 << (7 - V)) - 1)
        squares(mine, V, cap)
        assert rayiou._add_free_squares(theirs, V)
        assert np.array_equal(mine, theirs), V
        assert ((mine >> V) & 0x7F >= rayiou._MIN_JUMP).mean() > 0.2  # much of the open scene is jumped over
    o, d = _rays_with_ties(SMALL, 2000, seed=4)
    frame = torch.arange(len(o)) % 2
    for V, dtype in ((1, torch.float64), (2, torch.float64), (3, torch.float64), (2, torch.float32)):
        ref = cast_rays_reference(vols[:V], frame, o, d, SMALL, dtype=dtype, free=OCC3D_FREE)
        new = cast_rays(vols[:V], frame, o, d, SMALL, dtype=dtype, walk="numba", threads=1, free=OCC3D_FREE)
        assert torch.equal(ref[0], new[0]) and torch.equal(ref[1], new[1]), (V, dtype)
    monkeypatch.setattr(rayiou, "_MIN_JUMP", 10**6)  # no square is that large: steps only
    steps = cast_rays(vols[:2], frame, o, d, SMALL, walk="numba", threads=1, free=OCC3D_FREE)
    ref = cast_rays_reference(vols[:2], frame, o, d, SMALL, free=OCC3D_FREE)
    assert torch.equal(ref[0], steps[0]) and torch.equal(ref[1], steps[1])


def test_counts_thresholds_in_any_order():
    """rayiou_counts' one-histogram count equals the direct count per threshold, whatever the
    thresholds' order (repeats included); rays whose ground truth is free are dropped."""
    g = torch.Generator().manual_seed(2)
    R = 5000
    lg, lp = torch.randint(0, 18, (R,), generator=g), torch.randint(0, 18, (R,), generator=g)
    lp[:2000] = lg[:2000]
    dg = torch.rand(R, dtype=torch.float64, generator=g) * 40
    dp = dg + torch.randn(R, dtype=torch.float64, generator=g) * 3
    for th in ((1.0, 2.0, 4.0), (4.0, 0.5, 2.0), (2.0, 2.0), (3.0,)):
        gc, pc, tp = rayiou_counts(lp, dp, lg, dg, 18, th)
        keep = lg != 17
        assert torch.equal(gc, torch.bincount(lg[keep], minlength=18))
        assert torch.equal(pc, torch.bincount(lp[keep], minlength=18))
        err = (dp - dg).abs()
        for j, t in enumerate(th):
            assert torch.equal(tp[j], torch.bincount(lg[keep & (lg == lp) & (err < t)], minlength=18)), th


def test_cast_rays_no_rays_and_many_volumes():
    vols = small_scene(3)[None, None].expand(8, 1, *SMALL.shape)  # 8 volumes: past one byte's bits
    o = torch.tensor([[0.3, -0.2, 1.84]], dtype=torch.float64).expand(14040, 3)
    ref = cast_rays_reference(
        vols, torch.zeros(14040, dtype=torch.long), o, lidar_ray_directions(), SMALL, free=OCC3D_FREE
    )
    new = cast_rays(vols, torch.zeros(14040, dtype=torch.long), o, lidar_ray_directions(), SMALL, free=OCC3D_FREE)
    assert torch.equal(ref[0], new[0]) and torch.equal(ref[1], new[1])
    lab, dep = cast_rays(vols[:2], torch.zeros(0, dtype=torch.long), o[:0], o[:0], SMALL, free=OCC3D_FREE)
    assert lab.shape == (2, 0) and dep.shape == (2, 0)


def reference_rayiou(preds, gts, C=18, thresholds=(1, 2, 4)):
    """SparseOcc's calc_rayiou written straightforwardly: lists of (label, depth) arrays per frame."""
    gt_cnt, pred_cnt, tp_cnt = np.zeros(C), np.zeros(C), np.zeros((len(thresholds), C))
    for (lp, dp), (lg, dg) in zip(preds, gts):
        keep = lg != C - 1
        lp, dp, lg, dg = lp[keep], dp[keep], lg[keep], dg[keep]
        for j, th in enumerate(thresholds):
            ok = np.abs(dp - dg) < th
            for c in range(C):
                if j == 0:
                    gt_cnt[c] += (lg == c).sum()
                    pred_cnt[c] += (lp == c).sum()
                tp_cnt[j, c] += ((lg == c) & (lp == c) & ok).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = [(tp_cnt[j] / (gt_cnt + pred_cnt - tp_cnt[j]))[:-1] for j in range(len(thresholds))]
    return np.nanmean(iou), [np.nanmean(i) for i in iou]


def test_counts_against_reference():
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(3):
        n = 500
        lg = rng.integers(0, 18, n)
        lg[lg == 3] = 17  # class 3 absent from gt
        lp = np.where(rng.random(n) < 0.6, lg, rng.integers(0, 18, n))
        lp[lp == 5] = 6  # class 5 absent from pred
        dg = rng.uniform(0, 40, n)
        dp = dg + rng.normal(0, 2, n)
        frames.append(((lp, dp), (lg, dg)))
    ref, ref_t = reference_rayiou([f[0] for f in frames], [f[1] for f in frames])
    tot = None
    for (lp, dp), (lg, dg) in frames:
        c = rayiou_counts(torch.from_numpy(lp), torch.from_numpy(dp), torch.from_numpy(lg), torch.from_numpy(dg))
        tot = c if tot is None else tuple(a + b for a, b in zip(tot, c))
    s = rayiou_scores(*tot)
    assert s["rayiou"] == pytest.approx(100 * ref)
    for t, r in zip((1, 2, 4), ref_t):
        assert s[f"rayiou@{t}"] == pytest.approx(100 * r)
    assert s["rayiou_iou"]["others"][0] == pytest.approx(s["rayiou_iou"]["others"][0])


def test_absent_class_nan_in_scores():
    C = 18
    g = torch.zeros(C, dtype=torch.long)
    p = torch.zeros(C, dtype=torch.long)
    tp = torch.zeros(3, C, dtype=torch.long)
    g[4], p[4], tp[:, 4] = 10, 10, torch.tensor([5, 10, 10])
    s = rayiou_scores(g, p, tp)
    assert math.isnan(s["rayiou_iou"]["bus"][0])
    assert s["rayiou@1"] == pytest.approx(100 * 5 / 15)
    assert s["rayiou@4"] == pytest.approx(100.0)
    assert s["rayiou"] == pytest.approx(100 * (5 / 15 + 1 + 1) / 3)


def test_gt_against_itself_is_100_and_shift_hurts_tight_threshold_most():
    s = small_scene(2)[None]
    origins = [torch.tensor([[0.0, 0.0, 1.84], [2.0, 1.0, 1.84]])]
    m = RayIoUMetric(grid=SMALL, free=OCC3D_FREE)
    m.update(s, s, origins)
    r = m.compute()
    assert r["rayiou"] == pytest.approx(100.0) and r["rayiou@1"] == pytest.approx(100.0)
    assert r["frames"] == 1
    shifted = torch.full_like(s, 17)
    shifted[..., 1:] = s[..., :-1]  # everything one voxel (0.4 m) up
    m2 = RayIoUMetric(grid=SMALL, free=OCC3D_FREE)
    m2.update(shifted, s, origins)
    r2 = m2.compute()
    assert r2["rayiou@1"] < r2["rayiou@2"] <= r2["rayiou@4"] <= 100.0
    assert 100.0 - r2["rayiou@1"] > 100.0 - r2["rayiou@4"]


def test_merge_batches_and_logits():
    s1, s2 = small_scene(3), small_scene(4)
    gt = torch.stack([s1, s2])
    pred = torch.stack([s2, s1])
    o = torch.tensor([[[0.0, 0.0, 1.8]], [[1.0, -1.0, 1.8]]])
    whole = RayIoUMetric(grid=SMALL, free=OCC3D_FREE)
    whole.update(torch.nn.functional.one_hot(pred, 18).permute(0, 4, 1, 2, 3).float(), gt, o)
    a, b = RayIoUMetric(grid=SMALL, free=OCC3D_FREE), RayIoUMetric(grid=SMALL, free=OCC3D_FREE)
    a.update(pred[:1], gt[:1].to(torch.uint8), o[:1])  # mixed integer dtypes are fine
    b.update(pred[1:], gt[1:], [o[1]])
    a.merge(b)
    a.all_reduce()
    assert torch.equal(a.state, whole.state) and a.frames == 2
    with pytest.raises(ValueError, match="origins"):
        a.update(pred, gt, o[:1])
    with pytest.raises(ValueError, match="class ids"):
        a.update(pred[:1] + 18, gt[:1], o[:1])
    with pytest.raises(ValueError, match="no LiDAR origin"):
        a.update(pred[:1], gt[:1], [torch.zeros(0, 3)])
    a.reset()
    assert a.frames == 0


def test_lidar_origins_in_ego_hand_made():
    # 20 frames driving along +x at 5 m per frame, LiDAR 1 m ahead and 1.8 m up.
    N = 20
    Tg = torch.eye(4, dtype=torch.float64).repeat(N, 1, 1)
    Tg[:, 0, 3] = torch.arange(N, dtype=torch.float64) * 5.0 + 100.0
    Tl = torch.eye(4, dtype=torch.float64)
    Tl[0, 3], Tl[2, 3] = 1.0, 1.8
    o = lidar_origins_in_ego(Tg, Tl, ref_index=10)
    # candidates: frame k at x = 5 (k - 10) + 1, kept when |x| < 39: k = 3 .. 17 (15 of them)
    xs = [5.0 * (k - 10) + 1.0 for k in range(3, 18)]
    pick = np.round(np.linspace(0, 14, 8)).astype(int)
    assert o.shape == (8, 3)
    assert o[:, 0].tolist() == pytest.approx([xs[i] for i in pick])
    assert o[:, 2].tolist() == pytest.approx([1.8] * 8)
    # a rotated reference frame: yaw 90 degrees, so global +x is ego -y
    Tg2 = Tg.clone()
    Tg2[:, :3, :3] = rotation_z(math.pi / 2)[:3, :3]
    o2 = lidar_origins_in_ego(Tg2[:3], Tl, ref_index=0)
    assert o2[0].tolist() == pytest.approx([1.0, 0.0, 1.8])
    # frame 1: lidar at global (105, 0) + R (1, 0) = (105, 1); ref ego at (100, 0) yawed 90
    assert o2[1].tolist() == pytest.approx([1.0, -5.0, 1.8], abs=1e-9)


def _tiny_occ3d(root, with_lidar=True):
    infos = {"scene-0": {}}
    for i in range(3):
        tok = f"tok{i}"
        T = torch.eye(4, dtype=torch.float64)
        T[0, 3] = 4.0 * i
        entry = {
            "timestamp": i,
            "ego_pose": pose_from_transform(T),
            "camera_sensor": {},
            "gt_path": f"gts/scene-0/{tok}/labels.npz",
        }
        if with_lidar:
            entry["lidar_sensor"] = {"extrinsic": {"translation": [0.9, 0.0, 1.8], "rotation": [1.0, 0.0, 0.0, 0.0]}}
        infos["scene-0"][tok] = entry
        z = np.zeros((200, 200, 16), np.uint8)
        save_npz_atomic(root / f"gts/scene-0/{tok}/labels.npz", semantics=z + 17, mask_lidar=z, mask_camera=z)
    write_json_atomic(root / "annotations.json", {"train_split": [], "val_split": ["scene-0"], "scene_infos": infos})


def test_rayiou_origins_from_dataset(tmp_path):
    from occkit.data.occ3d import Occ3DDataset

    _tiny_occ3d(tmp_path)
    ds = Occ3DDataset(tmp_path, "val", load_images=False, load_extras=False)
    o = rayiou_origins(ds, "tok1")
    assert np.allclose(o.numpy(), [[-3.1, 0, 1.8], [0.9, 0, 1.8], [4.9, 0, 1.8]])
    cache: dict = {}  # the scene's poses built once, the same origins for every frame
    for t in ("tok1", "tok0", "tok1", "tok2"):
        assert torch.equal(rayiou_origins(ds, t, cache), rayiou_origins(ds, t))
    assert len(cache) == 1
    _tiny_occ3d(tmp_path / "b", with_lidar=False)
    ds2 = Occ3DDataset(tmp_path / "b", "val", load_images=False, load_extras=False)
    with pytest.raises(ValueError, match="lidar_sensor"):
        rayiou_origins(ds2, "tok1")


def test_nuscenes_infos_json_and_pkl(tmp_path):
    frames = [
        {
            "token": f"t{i}",
            "scene_name": "s",
            "timestamp": 10 - i,
            "lidar2ego_translation": [0.9, 0.0, 1.8],
            "lidar2ego_rotation": [1, 0, 0, 0],
            "ego2global_translation": np.array([10.0 - i, 0.0, 0.0]),
            "ego2global_rotation": [1, 0, 0, 0],
        }
        for i in range(3)
    ]
    with open(tmp_path / "infos.pkl", "wb") as f:
        pickle.dump({"infos": frames, "metadata": {"version": "v1.0-trainval"}}, f)
    js = [dict(f, ego2global_translation=list(map(float, f["ego2global_translation"]))) for f in frames]
    write_json_atomic(tmp_path / "infos.json", js)
    for name in ("infos.pkl", "infos.json"):
        infos = load_nuscenes_infos(tmp_path / name)
        sf = scene_frames_from_infos(infos)
        assert sf == {"s": ["t2", "t1", "t0"]}  # by timestamp
        o = rayiou_origins_from_infos(infos, "t1", sf)
        assert np.allclose(o.numpy(), [[-0.1, 0, 1.8], [0.9, 0, 1.8], [1.9, 0, 1.8]])
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"infos": [torch.nn.Identity()]}, f)
    with pytest.raises(ValueError, match="pickles an object of class torch.nn.modules.linear.Identity"):
        load_nuscenes_infos(tmp_path / "evil.pkl")
    write_json_atomic(tmp_path / "bad.json", [{"token": "x"}])
    with pytest.raises(KeyError, match="lacks"):
        load_nuscenes_infos(tmp_path / "bad.json")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    s1, s2 = small_scene(5), small_scene(6)
    o = torch.tensor([[[0.0, 0.0, 1.8], [1.0, 2.0, 1.8]]])
    a, b = RayIoUMetric(grid=SMALL, free=OCC3D_FREE), RayIoUMetric(grid=SMALL, free=OCC3D_FREE)
    a.update(s1[None], s2[None], o)
    b.update(s1[None].cuda(), s2[None].cuda(), o.cuda())
    assert torch.equal(a.state, b.state.cpu())


def test_synthetic_world_against_itself(synth_root):
    """The training path: Occ3DDataset -> collate -> accumulators, on the procedural world."""
    from occkit.data.occ3d import Occ3DDataset
    from occkit.data.sample import collate
    from occkit.metrics.occ3d import Occ3DMetric

    ds = Occ3DDataset(synth_root, "all", load_images=False, load_extras=False)
    batch = collate([ds[i] for i in range(len(ds))])
    origins = [rayiou_origins(ds, t) for t in batch.tokens]
    assert all(o.shape[1] == 3 and 1 <= o.shape[0] <= 8 for o in origins)
    occ = Occ3DMetric(mask="both", free=OCC3D_FREE)
    occ.update(batch.occupancy, batch.occupancy, batch.mask_camera, batch.mask_lidar)
    ray = RayIoUMetric(free=OCC3D_FREE)
    ray.update(batch.occupancy, batch.occupancy, origins)
    assert occ.compute()["miou"] == pytest.approx(100.0)
    r = ray.compute()
    assert r["rayiou"] == pytest.approx(100.0) and r["frames"] == len(ds)
    # the walk against the reference on the world, with a prediction one voxel off
    pred = torch.roll(batch.occupancy, 1, dims=1)
    dirs = lidar_ray_directions()
    o = torch.cat([ob.repeat_interleave(len(dirs), 0) for ob in origins])
    d = torch.cat([dirs.repeat(len(ob), 1) for ob in origins])
    f = torch.cat([torch.full((len(ob) * len(dirs),), b) for b, ob in enumerate(origins)])
    vols = torch.stack([batch.occupancy, pred]).to(torch.uint8)
    ref, new = (
        cast_rays_reference(vols, f, o, d, ray.grid, free=OCC3D_FREE),
        cast_rays(vols, f, o, d, ray.grid, free=OCC3D_FREE),
    )
    assert torch.equal(ref[0], new[0]) and torch.equal(ref[1], new[1])
    # a prediction of nothing but free space scores 0 on every class the ground truth has
    empty = torch.full_like(batch.occupancy, 17)
    ray.reset()
    ray.update(empty, batch.occupancy, origins)
    assert ray.compute()["rayiou"] == 0.0


def test_rayiou_refuses_a_free_class_that_is_not_the_last():
    """RayIoU counts the classes below the free id as occupied: free must be the table's last."""
    assert RayIoUMetric(num_classes=4, free=3).free == 3
    with pytest.raises(ValueError, match="free class must be the table's last"):
        RayIoUMetric(num_classes=4, free=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("thresholds", [(1.0, 2.0, 4.0), (0.3, 4.0, 0.1)])
def test_update_counts_on_cpu_equal_cast_rays_then_counts(monkeypatch, dtype, thresholds):
    """update's counting on the CPU (one numba walk over each origin's directions, then a count in
    numba) gives the counts of cast_rays then rayiou_counts, the general path, integer for integer."""
    from occkit.metrics import rayiou

    if rayiou._numba_count() is None:
        pytest.skip("numba cannot be imported")
    gt = torch.stack([small_scene(s) for s in (5, 6, 7)])
    pred = torch.roll(gt, 1, dims=1).to(torch.uint8)
    pred[1, 10:20] = torch.randint(0, 18, (10, 40, 16), generator=torch.Generator().manual_seed(0))
    origins = [
        torch.tensor([[0.0, 0.0, 1.84]]),
        torch.tensor([[0.1, 0.2, 1.8], [-3.0, 2.5, 1.7], [5.9, -7.9, 0.3]]),
        torch.tensor([[1.0, -1.0, 1.84], [2.0, 2.0, 2.0]]),
    ]

    def counted() -> torch.Tensor:
        m = RayIoUMetric(grid=SMALL, free=OCC3D_FREE, dtype=dtype, thresholds=thresholds)
        m.update(pred, gt, origins)
        m.update(gt[:1], pred[:1], origins[:1])
        with pytest.raises(ValueError, match="ray 28080 starts at") as err:
            m.update(pred[:1], gt[:1], [torch.tensor([[0.0, 0.0, 1.8], [0.0, 0.0, 1.8], [9.0, 0.0, 1.8]])])
        return m.state, str(err.value)

    fast = counted()
    monkeypatch.setattr(rayiou, "_numba_count", lambda: None)  # the general path: cast_rays, then rayiou_counts
    general = counted()
    assert torch.equal(fast[0], general[0]) and fast[0][-1] == 4 and fast[1] == general[1]
