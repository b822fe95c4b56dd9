"""The model code a GPU runs, ready for CUDA graphs and half precision (issue 72), checked on the CPU:
occ3d-r50's forward builds no tensor from Python values (a copy from the host per call, which CUDA
graph capture refuses; the grid's constants are buffers), is captured whole by
``torch.compile(fullgraph=True)`` (dynamo, eager backend) with the eager result, and runs with
``.half()`` weights on float32 or float16 inputs."""

import sys
from pathlib import Path

import pytest
import torch

from occkit.geometry.grid import Grid

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def occ3d():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    cfg, pred = gpu_check._occ3d(torch.device("cpu"), gpu_check.inference_sets(True))  # the smoke size
    frame = gpu_check._frames(1, tuple(cfg.data.image_aug.out_hw), 1)[0]
    return pred, (frame.images, frame.intrinsics, frame.T_ego_from_cam)


def test_grid_constants_as_buffers_give_the_same_index():
    grid = Grid((-2.0, -1.0, 0.0), (2.0, 1.0, 1.0), (0.5, 0.5, 0.25))  # 8 x 4 x 4
    pts = torch.tensor([[-2.0, -1.0, 0.0], [1.99, 0.99, 0.99], [0.1, -0.6, 0.3], [2.0, 0.0, 0.5]])
    c = grid.constants()
    idx, ok = grid.point_to_index(pts, (c["range_min"], c["voxel_size"], c["shape"]))
    assert idx[:3].tolist() == [[0, 0, 0], [7, 3, 3], [4, 0, 1]]  # floor((p - lo) / size), by hand
    assert ok.tolist() == [True, True, True, False]  # x = 2.0 lies on the open upper bound
    idx2, ok2 = grid.point_to_index(pts)
    assert torch.equal(idx, idx2) and torch.equal(ok, ok2)


def test_forward_builds_no_tensor_from_python_values(occ3d, monkeypatch):
    pred, inputs = occ3d
    calls = []
    real = torch.tensor

    def spy(*a, **k):
        calls.append(a[0] if a else k)
        return real(*a, **k)

    monkeypatch.setattr(torch, "tensor", spy)
    with torch.inference_mode():
        pred(*inputs)
    assert calls == []


def test_forward_is_one_graph_with_the_eager_result(occ3d):
    pred, inputs = occ3d
    torch._dynamo.reset()
    compiled = torch.compile(pred, fullgraph=True, backend="eager")  # a graph break raises
    with torch.inference_mode():
        logits, labels = pred(*inputs)
        c_logits, c_labels = compiled(*inputs)
    torch._dynamo.reset()
    assert torch.allclose(logits, c_logits, atol=1e-5) and torch.equal(labels, c_labels)


def test_half_weights_run_on_float32_and_float16_inputs(occ3d):
    import copy

    pred, inputs = occ3d
    with torch.inference_mode():
        ref_logits, ref_labels = pred(*inputs)
        half = copy.deepcopy(pred).half()
        for x in (inputs, tuple(t.half() for t in inputs)):
            logits, labels = half(*x)
            assert logits.dtype == torch.float16 and torch.isfinite(logits).all()
            assert (labels == ref_labels).float().mean() > 0.9  # the same network, rounded


def test_speed_options_are_graph_safe_too(monkeypatch):
    """Every speed option the GPU check measures (``gpu_check.PART_VARIANTS``: the layouts, the lifted
    volume in the autocast dtype, the split fusion, the BatchNorms folded) keeps the forward one graph that
    builds no tensor from Python values, under bf16 autocast too."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    from occkit.models.fold import fold_batchnorms

    sets = gpu_check.inference_sets(True) + [s for s in gpu_check.PART_VARIANTS["all_bn_folded"] if s != gpu_check.FOLD]
    cfg, pred = gpu_check._occ3d(torch.device("cpu"), sets)
    assert fold_batchnorms(pred) > 0
    frame = gpu_check._frames(1, tuple(cfg.data.image_aug.out_hw), 1)[0]
    inputs = (frame.images, frame.intrinsics, frame.T_ego_from_cam)
    calls = []
    real = torch.tensor
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: calls.append(a) or real(*a, **k))
    with torch.inference_mode():
        pred(*inputs)
    monkeypatch.undo()
    assert calls == []
    torch._dynamo.reset()
    compiled = torch.compile(pred, fullgraph=True, backend="eager")  # a graph break raises
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits, labels = pred(*inputs)
        c_logits, c_labels = compiled(*inputs)
    torch._dynamo.reset()
    assert torch.allclose(logits.float(), c_logits.float(), atol=1e-2) and (labels == c_labels).float().mean() > 0.999
