"""Pictures of scenes, predictions and datasets: pure numpy / PIL / torch, no plotting library.

- :func:`bev_image`: bird's-eye view of a semantic grid (top-most voxel per column, by height).
- :func:`perspective_image`: a 3D view of the voxels from a virtual camera (software ray caster).
- :func:`overlay_lidar`: LiDAR points drawn onto a camera image (by depth or by class).
- :func:`camera_mosaic`: the surround cameras in the nuScenes arrangement.
- :func:`compose_frame_figure`: all of the above for one frame (and a prediction beside it).
- :func:`occkit.viz.curves.curves_image`: a figure against the step, arms by colour and seeds by marker.
"""

from occkit.viz.bev import bev_image, top_voxels
from occkit.viz.cameras import NUSCENES_MOSAIC, camera_mosaic, overlay_lidar
from occkit.viz.draw import colormap, legend, save_png
from occkit.viz.figure import compose_frame_figure, occupancy_panels
from occkit.viz.perspective import ViewCamera, look_at, perspective_image

__all__ = [
    "NUSCENES_MOSAIC",
    "ViewCamera",
    "bev_image",
    "camera_mosaic",
    "colormap",
    "compose_frame_figure",
    "legend",
    "look_at",
    "occupancy_panels",
    "overlay_lidar",
    "perspective_image",
    "save_png",
    "top_voxels",
]
