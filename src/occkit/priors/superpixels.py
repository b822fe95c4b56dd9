"""``superpixels[:METHOD]``: weight-free segments from scikit-image (the baseline RadOcc compares
SAM's segments against).

- ``slic`` (default): SLIC superpixels, ``n_segments`` per image, compactness ``compactness``.
- ``felzenszwalb``: Felzenszwalb-Huttenlocher graph segmentation, ``scale`` and ``min_size``
  given for a 900 x 1600 image and scaled with the image area.

Only ``segments`` are provided; ids start at 1 (every pixel belongs to a segment).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from occkit.priors.base import PriorFrame, Priors, check_kinds

METHODS = ("slic", "felzenszwalb")


class SuperpixelPrior:
    """The ``superpixels[:METHOD]`` provider.

    Args:
        method: ``slic`` or ``felzenszwalb``.
        n_segments: SLIC's target number of superpixels per image.
        compactness: SLIC's colour/space trade-off (higher = more regular).
        scale, min_size: Felzenszwalb's parameters at 900 x 1600 (scaled with the image area).
    """

    def __init__(
        self,
        method: str = "slic",
        n_segments: int = 200,
        compactness: float = 10.0,
        scale: float = 200.0,
        min_size: int = 400,
        **_: Any,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"prior 'superpixels:{method}': unknown method (methods: {', '.join(METHODS)})")
        self.method, self.n_segments, self.compactness = method, int(n_segments), float(compactness)
        self.scale, self.min_size = float(scale), int(min_size)
        self.spec = f"superpixels:{method}"
        self.kinds = ("segments",)
        self.text_encoder = None

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"spec": self.spec, "provider": "superpixels", "method": self.method}
        if self.method == "slic":
            d.update(n_segments=self.n_segments, compactness=self.compactness)
        else:
            d.update(scale=self.scale, min_size=self.min_size)
        return d

    def segment(self, image: np.ndarray) -> np.ndarray:
        """``(H, W)`` int32 segment ids from 1 for an ``(H, W, 3)`` float image in [0, 1]."""
        from skimage.segmentation import felzenszwalb, slic

        H, W = image.shape[:2]
        if self.method == "slic":
            seg = slic(image, n_segments=self.n_segments, compactness=self.compactness, start_label=1, channel_axis=-1)
        else:
            a = H * W / (900 * 1600)
            seg = felzenszwalb(image, scale=self.scale * a**0.5, min_size=max(1, round(self.min_size * a))) + 1
        return seg.astype(np.int32)

    def __call__(self, frame: PriorFrame, kinds: Sequence[str]) -> Priors:
        check_kinds(kinds, self.kinds, self.spec)
        imgs = frame.images.permute(0, 2, 3, 1).double().numpy()
        segs = [torch.from_numpy(self.segment(im)) for im in imgs]
        return Priors(segments=torch.stack(segs))
