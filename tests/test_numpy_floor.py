"""The NumPy range occkit claims is the one it is tested under: ``pyproject.toml``'s floor is the
NumPy that ``.ci/run`` lays over the environment for the metric and format tests, and the
confusion-matrix kernel counts correctly where NumPy 1's value-based casting once computed the key
``W * gt`` in uint8 (17 * 36 = 612 came out as 100, and every mIoU with it)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from occkit.metrics.confusion import confusion_matrix

ROOT = Path(__file__).resolve().parents[1]


def test_the_numpy_floor_is_the_numpy_ci_tests():
    deps = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    floor = re.search(r'"numpy>=([0-9.]+)"', deps)
    assert floor is not None, "pyproject.toml: no numpy>= floor"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    pinned = re.search(r"'numpy==([0-9.]+)'", ci)
    assert pinned is not None, ".ci/run installs no oldest numpy"
    want = tuple(int(x) for x in floor.group(1).split("."))
    got = tuple(int(x) for x in pinned.group(1).split("."))
    assert got[: len(want)] == want, f"CI tests numpy {pinned.group(1)}, pyproject.toml allows numpy>={floor.group(1)}"


def test_the_uint8_kernel_counts_high_class_ids_exactly():
    # Occ3D's 18 classes: gt ids up to 17, so W * gt reaches 17 * W > 255; the fast uint8 path counted
    # in uint8 under NumPy 1.x. The reference is torch's bincount over int64 keys.
    rng = np.random.default_rng(0)
    C = 18
    gt = rng.integers(0, C, size=(3, 40, 40, 8), dtype=np.uint8)
    pred = rng.integers(0, C, size=gt.shape, dtype=np.uint8)
    mask = rng.random(gt.shape) < 0.7
    g, p, m = torch.from_numpy(gt), torch.from_numpy(pred), torch.from_numpy(mask)
    for msk in (None, m):
        got = confusion_matrix(g, p, C, mask=msk, threads=1)
        keep = np.ones(gt.shape, bool) if msk is None else mask
        ref = np.bincount(gt[keep].astype(np.int64) * C + pred[keep], minlength=C * C).reshape(C, C)
        assert np.array_equal(got.numpy(), ref), f"mask={'yes' if msk is not None else 'no'}: counts differ"
    assert int(got[17].sum()) > 0  # the highest class was counted at all
