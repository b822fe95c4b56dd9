"""``occkit eval --class-map``: an adapter around the one scoring loop, not a branch in it. The format
is scored with the map's source format's prediction files and one metric of the protocol,
:class:`CommonClasses`, which resamples each frame onto the ground truth's grid and frame
(:class:`occkit.resampling.PredictionResampler`) and maps both sides onto the map's common classes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from occkit.formats.classmap import DROPPED
from occkit.formats.registry import get_format
from occkit.metrics.base import Targets

#: The ``source`` of a format as ``--class-map`` scores it (:func:`on_common_classes`).
CLASS_MAP_SOURCE = "occkit eval --class-map"


def class_map_source(fmt: Any, gt_root: Any, class_map: Any) -> Any:
    """The format whose prediction files ``class_map`` scores on ``fmt``; its grid and ``fmt``'s
    joined by a frame transform or the same, else an error naming the map."""
    target = get_format(class_map.target)
    if class_map.target != fmt.name and target.classes.names != fmt.classes.names:
        raise ValueError(
            f"--class-map {class_map.path}: maps onto {class_map.target}, but --gt {gt_root} is a {fmt.name} dataset"
        )
    source = get_format(class_map.source)
    g, h = source.grid, fmt.grid
    same = (g.shape, tuple(g.range_min), tuple(g.voxel_size)) == (h.shape, tuple(h.range_min), tuple(h.voxel_size))
    families = [None if f.writers.label_writer is None else f.writers.label_writer.family for f in (source, fmt)]
    if not same and (None in families or families[0] != families[1]):
        raise ValueError(
            f"--class-map {class_map.path}: {source.name}'s grid {g.shape} from {tuple(g.range_min)} at "
            f"{tuple(g.voxel_size)} m is not {fmt.name}'s {h.shape} from {tuple(h.range_min)} at "
            f"{tuple(h.voxel_size)} m, and no frame transform joins the two layouts (other sensor rigs); "
            "occkit eval --class-map resamples between the grids of one family (occkit convert lists them)"
        )
    return source


def on_common_classes(fmt: Any, gt_root: Any, class_map: Any, device: Any) -> Any:
    """``fmt`` as ``--class-map`` scores it: the prediction files of the map's source format, and one
    metric, :class:`CommonClasses` (the loop reads, matches and counts as for any format)."""
    source = class_map_source(fmt, gt_root, class_map)
    return replace(
        fmt,
        predictions=source.predictions,
        scoring=replace(
            fmt.scoring, metrics=lambda options: [CommonClasses(class_map, source, fmt, device)], evaluate_folder=None
        ),
        source=CLASS_MAP_SOURCE,  # its metric is occkit's, whichever package the format is from
    )


class CommonClasses:
    """``--class-map``'s metric: an Occ3D-style mIoU (free class last) on the map's common classes,
    inside the voxels the ground truth's format scores. ``bind`` readies the resampling of the
    predictions onto the ground truth's grid and frame (:class:`occkit.resampling.PredictionResampler`:
    each ground-truth voxel takes the predicted voxel holding its centre; for one grid and frame the
    predictions are kept as they are); ``update`` resamples each frame, maps both sides onto the common
    classes through the map's lookup tables and leaves out the voxels of a dropped class on either side
    and those the predictions' grid does not cover."""

    def __init__(self, class_map: Any, source: Any, fmt: Any, device: Any) -> None:
        from occkit.metrics.occ3d import Occ3DMetric

        self.map, self.source, self.fmt = class_map, source, fmt
        names = class_map.names
        self.inner = Occ3DMetric(
            mask="camera", num_classes=len(names), class_names=names, device=device, free=self.map.free
        )
        self.name = self.inner.name
        self._resample: Any = None
        self._luts: dict[Any, tuple[torch.Tensor, torch.Tensor]] = {}  # the map's lookup tables, per device

    def bind(self, dataset: Any, tokens: list[str]) -> None:
        from occkit.resampling import PredictionResampler

        self._resample = PredictionResampler(self.source, self.fmt, dataset)

    def __getstate__(self) -> dict[str, Any]:  # what bind holds is not pickled (the Metric protocol)
        return {**self.__dict__, "_resample": None, "_luts": {}}

    def update(self, pred: torch.Tensor, target: Targets) -> None:
        dev, covered = pred.device, None
        if self._resample is not None:
            frames = [self._resample(t, p) for t, p in zip(target.tokens, pred.cpu().numpy(), strict=True)]
            pred = torch.from_numpy(np.stack([p for p, _ in frames])).to(dev)
            if all(c is not None for _, c in frames):
                covered = torch.from_numpy(np.stack([c for _, c in frames])).to(dev)
        if dev not in self._luts:
            luts = (self.map.source_lut, self.map.target_lut)
            self._luts[dev] = tuple(torch.from_numpy(lut.astype(np.int64)).to(dev) for lut in luts)
        src_lut, dst_lut = self._luts[dev]
        p, t = src_lut[pred.long()], dst_lut[target.occupancy.long().clamp(0, 255)]
        keep = (p != DROPPED) & (t != DROPPED)
        if covered is not None:
            keep &= covered
        free = self.map.free
        mask_camera = target.mask_camera if target.mask_camera is not None else torch.ones_like(keep)
        common = replace(target, occupancy=torch.where(keep, t, free), mask_camera=mask_camera)
        common.extra = {**target.extra, "region": keep}
        self.inner.update(torch.where(keep, p, free), common)

    def merge(self, other: Any) -> Any:
        self.inner.merge(other.inner)
        return self

    def all_reduce(self) -> None:
        self.inner.all_reduce()

    def compute(self) -> dict[str, Any]:
        return self.inner.compute()
