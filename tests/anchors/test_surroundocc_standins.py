"""The stand-ins that let SurroundOcc's released label generator run unchanged on a CPU machine
(benchmarks/anchors/surroundocc/standins/): mmcv's ``points_in_boxes_cpu`` (the inside test of mmcv's
CPU kernel: bottom-centred boxes, yaw ``rz`` turning the box's x axis from the LiDAR x axis towards y,
strict in x/y and closed in z), the ``chamfer`` extension's nearest neighbours, the no-op
``Tensor.cuda``. The modules are loaded by path, so this runs in occkit's own environment."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

STANDINS = Path(__file__).resolve().parents[2] / "benchmarks" / "anchors" / "surroundocc" / "standins"


def _load(name: str, rel: str):
    spec = importlib.util.spec_from_file_location(name, STANDINS / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


pib = _load("surroundocc_standin_points_in_boxes", "mmcv/ops/points_in_boxes.py")
chamfer = _load("surroundocc_standin_chamfer", "chamfer.py")

# x, y, z of the bottom centre, x_size, y_size, z_size, rz
BOX = (1.0, 2.0, 0.5, 4.0, 2.0, 1.5, math.pi / 6)


def _inside(points, boxes) -> np.ndarray:
    res = pib.points_in_boxes_cpu(
        torch.tensor([points], dtype=torch.float32), torch.tensor([boxes], dtype=torch.float32)
    )
    assert isinstance(res, torch.Tensor) and res.dtype == torch.int32
    assert tuple(res.shape) == (1, len(points), len(boxes))
    return res[0].numpy()


def _along(box, lx, ly, z):
    """The LiDAR-frame point at ``(lx, ly)`` in the box's own axes and height ``z``."""
    c, s = math.cos(box[6]), math.sin(box[6])
    return [box[0] + lx * c - ly * s, box[1] + lx * s + ly * c, z]


def test_a_point_inside_a_rotated_box_and_just_outside_along_each_axis():
    mid = BOX[2] + BOX[5] / 2
    pts = [
        [BOX[0], BOX[1], mid],  # the centre
        _along(BOX, 1.9, 0.0, mid),  # 0.1 m inside the front face (x_size / 2 = 2)
        _along(BOX, 2.1, 0.0, mid),  # 0.1 m beyond it
        _along(BOX, 0.0, 0.9, mid),  # inside the left face (y_size / 2 = 1)
        _along(BOX, 0.0, -1.1, mid),  # beyond the right face
        _along(BOX, -1.9, 0.9, mid),  # near a corner, inside
    ]
    assert _inside(pts, [BOX])[:, 0].tolist() == [1, 1, 0, 1, 0, 1]


def test_the_yaw_turns_the_box_from_x_towards_y():
    mid = BOX[2] + BOX[5] / 2
    # 1.9 m along the box's x axis is inside; the same 1.9 m along the axis mirrored in yaw (-rz) is not
    mirrored = [BOX[0] + 1.9 * math.cos(-BOX[6]), BOX[1] + 1.9 * math.sin(-BOX[6]), mid]
    assert _inside([_along(BOX, 1.9, 0.0, mid), mirrored], [BOX])[:, 0].tolist() == [1, 0]
    quarter = (0.0, 0.0, 0.0, 4.0, 2.0, 1.0, math.pi / 2)  # its 4 m side along the LiDAR y axis
    assert _inside([[0.0, 1.9, 0.5], [1.9, 0.0, 0.5]], [quarter])[:, 0].tolist() == [1, 0]


def test_z_is_measured_from_the_bottom_face_and_the_faces_count_as_inside():
    bottom, top = BOX[2], BOX[2] + BOX[5]
    zs = [bottom, bottom - 0.01, top, top + 0.01, bottom - BOX[5] / 2]  # the last: inside were z the centre
    pts = [[BOX[0], BOX[1], z] for z in zs]
    assert _inside(pts, [BOX])[:, 0].tolist() == [1, 0, 1, 0, 0]


def test_x_and_y_faces_are_outside():
    box = (0.0, 0.0, 0.0, 4.0, 2.0, 1.0, 0.0)
    pts = [[2.0, 0.0, 0.5], [1.999, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, -0.999, 0.5]]
    assert _inside(pts, [box])[:, 0].tolist() == [0, 1, 0, 1]


def test_many_boxes_agree_with_a_float64_rotation_and_the_all_and_part_variants():
    rng = np.random.default_rng(0)
    boxes = np.concatenate(
        [rng.uniform(-5, 5, (6, 3)), rng.uniform(0.5, 4, (6, 3)), rng.uniform(-np.pi, np.pi, (6, 1))], 1
    ).astype(np.float32)
    pts = rng.uniform(-7, 7, (4000, 3)).astype(np.float32)
    got = _inside(pts.tolist(), boxes.tolist())
    ref = np.zeros_like(got)
    margin = np.ones(got.shape, bool)  # away from every face by 1e-4 m: no float32 rounding question
    for m, (x, y, z, sx, sy, sz, rz) in enumerate(boxes.astype(np.float64)):
        d = pts.astype(np.float64) - [x, y, z + sz / 2]
        lx = d[:, 0] * math.cos(rz) + d[:, 1] * math.sin(rz)
        ly = -d[:, 0] * math.sin(rz) + d[:, 1] * math.cos(rz)
        gaps = np.stack([np.abs(lx) - sx / 2, np.abs(ly) - sy / 2, np.abs(d[:, 2]) - sz / 2])
        ref[:, m] = (gaps < 0).all(0)
        margin[:, m] = (np.abs(gaps) > 1e-4).all(0)
    assert ref.sum() > 20  # the boxes hold points
    assert np.array_equal(got[margin], ref[margin])
    pt, bx = torch.from_numpy(pts[None]), torch.from_numpy(boxes[None])
    assert torch.equal(pib.points_in_boxes_all(pt, bx), pib.points_in_boxes_cpu(pt, bx))
    part = pib.points_in_boxes_part(pt, bx)[0].numpy()
    assert part.dtype == np.int32 and part.shape == (len(pts),)
    first = np.where(got.any(1), got.argmax(1), -1)
    assert np.array_equal(part, first)


def test_no_boxes_gives_an_empty_last_axis():
    res = pib.points_in_boxes_cpu(torch.zeros(1, 5, 3), torch.zeros(1, 0, 7))
    assert tuple(res.shape) == (1, 5, 0)


def test_chamfer_forward_gives_each_points_nearest_neighbour_and_squared_distance():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(1, 300, 3, generator=g) * 10, torch.rand(1, 200, 3, generator=g) * 10
    d1, d2, idx1, idx2 = chamfer.forward(x, y)
    dist = torch.cdist(x[0].double(), y[0].double())
    assert idx1.dtype == torch.int32 and tuple(idx1.shape) == (1, 300) and tuple(idx2.shape) == (1, 200)
    assert torch.equal(idx1[0].long(), dist.argmin(1)) and torch.equal(idx2[0].long(), dist.argmin(0))
    torch.testing.assert_close(d1[0].double(), dist.min(1).values ** 2, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(d2[0].double(), dist.min(0).values ** 2, rtol=1e-5, atol=1e-5)


def test_the_generators_imports_resolve_to_the_standins_and_cuda_is_a_no_op():
    code = (
        "import torch, chamfer, mmcv\n"
        "from mmdet3d.core.bbox import box_np_ops\n"
        "from mmcv.ops.points_in_boxes import points_in_boxes_all, points_in_boxes_cpu, points_in_boxes_part\n"
        "t = torch.zeros(3)\n"
        "print(mmcv.__version__, torch.cuda.is_available(), t.cuda() is t)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(STANDINS)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    version, cuda, same = out.stdout.split()
    assert version.endswith("occkit-standin")
    assert same == ("False" if cuda == "True" else "True")  # a no-op only where there is no GPU
