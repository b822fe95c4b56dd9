"""``occkit convert``: a dataset's ground truth from one layout to another (docs/DATASET.md,
"Converting between layouts").

Each frame goes through three steps, each the identity where the two layouts agree:

1. **Classes**: through a class map (``configs/classmaps``, :mod:`occkit.formats.classmap`) joining
   the two class tables, read in either direction: a source class goes to its common class, written
   as the first target class that common class lists; a dropped source class becomes the target's
   ignore value. Layouts of one class table need no map.
2. **Frame and grid**: each target voxel takes the label of the source voxel holding its centre
   (nearest voxel centre), the centre carried from the target's label frame into the source's
   through the frames' transforms the source gives (``lidar_sensor.extrinsic`` for LiDAR <-> ego);
   target voxels whose centre lies outside the source grid are the target's ignore value (unseen in
   its masks).
3. **Files**: the target's :class:`~occkit.formats.spec.LabelWriter` lays the frame out (its masks,
   its index, its images linked).

What the conversion loses is counted per frame and in total: classes dropped and merged (voxels per
class), labelled source voxels outside the target grid or between its voxel centres (resolution),
target voxels the source does not cover, and masks the target layout has no place for. The totals
are printed and written to ``convert_report.json`` in the output; ``lossless`` is true when nothing
of the source is lost (a conversion back then gives the source's labels again).

Resumable and atomic: every file is written beside its place and renamed; a frame is recorded as
done (``.occkit-convert/frames/``) after its files, and a rerun of the same command skips the frames
done; the index (``annotations.json``, ``splits.json``) and the report are written last.

The package, one module per role (it imports :mod:`occkit.formats`, which never imports it):

- :mod:`~occkit.convert.plan`: the target format and the class conversion, before any frame;
- :mod:`~occkit.convert.frame`: one frame through steps 1 and 2, with what it loses (the resampling of
  grids and frames is :mod:`occkit.resampling`, which scoring shares);
- :mod:`~occkit.convert.records`: the output folder's records, written and checked (resume, ``--overwrite``);
- :mod:`~occkit.convert.write`: the run, :func:`convert_dataset`;
- :mod:`~occkit.convert.report`: the report summed over frames and the lines printed.
"""

from __future__ import annotations

from occkit.convert.frame import convert_frame
from occkit.convert.plan import ClassConversion, class_conversion, find_class_map, target_format, writable_formats
from occkit.convert.records import STATE_DIR, frame_entry, frame_stub
from occkit.convert.report import add_report, describe_grid, summary_lines
from occkit.convert.write import REPORT_FILE, convert_dataset, scene_splits
from occkit.formats.spec import ConvertError, OutsideOutput, inside_out

__all__ = [
    "REPORT_FILE",
    "STATE_DIR",
    "ClassConversion",
    "ConvertError",
    "OutsideOutput",
    "add_report",
    "class_conversion",
    "convert_dataset",
    "convert_frame",
    "describe_grid",
    "find_class_map",
    "frame_entry",
    "frame_stub",
    "inside_out",
    "scene_splits",
    "summary_lines",
    "target_format",
    "writable_formats",
]
