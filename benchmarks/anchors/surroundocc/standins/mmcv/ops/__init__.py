"""Stand-in for ``mmcv.ops``: only :mod:`mmcv.ops.points_in_boxes`."""

from .points_in_boxes import points_in_boxes_all, points_in_boxes_cpu, points_in_boxes_part

__all__ = ["points_in_boxes_all", "points_in_boxes_cpu", "points_in_boxes_part"]
