"""The class legend under the render and generation pictures (present classes bright, the others
dimmed)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from occkit.labels import OCC3D_PALETTE
from occkit.viz.figure import occ3d_legend


def _has_colour(img: np.ndarray, colour) -> bool:
    return bool((img == np.asarray(colour, np.uint8)).all(-1).any())


def test_occ3d_legend_brightens_present_classes():
    a = occ3d_legend(np.array([4, 17]), None, width=600)
    b = occ3d_legend(np.array([11]), width=600)
    assert a.shape[1] == 600 and a.shape == b.shape and not np.array_equal(a, b)
    assert all(_has_colour(a, OCC3D_PALETTE[c]) for c in range(17))  # every class has its swatch
    assert _has_colour(a, (255, 255, 255)) and _has_colour(a, (90, 90, 90))  # bright and dimmed outlines


def test_generation_figure_ends_with_the_layouts_legend():
    from occkit.generation.figure import generation_figure

    sem = np.full((200, 200, 16), 17, np.uint8)
    sem[120:140, 90:110, :3] = 4
    row = {
        "panels": [("generated", torch.rand(1, 3, 24, 64))],
        "semantics": torch.from_numpy(sem),
        "mask": None,
        "text": "a car",
    }
    with_layout = generation_figure([row])
    without = generation_figure([dict(row, semantics=None)])
    L = occ3d_legend(sem, width=with_layout.shape[1]).shape[0]
    assert all(_has_colour(with_layout[-L:], OCC3D_PALETTE[c]) for c in (4, 11, 16))
    assert with_layout.shape[0] > without.shape[0] + 20


def test_render_picture_has_a_legend(tmp_path):
    from occkit.commands.render import _picture

    images = torch.rand(2, 3, 24, 64)
    depth = np.random.default_rng(0).uniform(1, 30, (2, 12, 32))
    sem = np.full((2, 12, 32), 17, np.int64)
    sem[:, 6:, :] = 11
    _picture(tmp_path / "r.png", images, depth, sem, ["CAM_FRONT", "CAM_BACK"], "ground truth", "tok")
    img = np.asarray(Image.open(tmp_path / "r.png").convert("RGB"))
    L = occ3d_legend(sem, width=img.shape[1]).shape[0]
    assert all(_has_colour(img[-L:], OCC3D_PALETTE[c]) for c in (4, 11, 16))
