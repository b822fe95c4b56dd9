"""`SynthConfig`: every option of the procedural driving world, one docstring per field."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from occkit.worlds.config import WorldConfig


@dataclass(frozen=True)
class SynthConfig(WorldConfig):
    """Options of :func:`occkit.worlds.driving.generate_dataset` (and ``occkit synth``).

    The same config (and seed) always gives byte-identical files, whatever ``workers`` is. The first
    options (``scenes``, ``frames``, ``seed``) are :class:`~occkit.worlds.config.WorldConfig`'s.
    """

    image_size: tuple[int, int] = (256, 704)
    """Camera image (height, width) in pixels. Intrinsics are nuScenes' scaled to cover this size,
    then cropped from the top (the BEVDet-style 1600x900 -> 704x396 -> 704x256 recipe)."""
    workers: int = 1
    """Worker processes generating scenes in parallel (each with one torch thread)."""
    val_fraction: float = 0.2
    """Fraction of scenes in the validation split (at least one whenever there are >= 2 scenes)."""
    frame_rate_hz: float = 2.0
    """Keyframe rate (nuScenes keyframes are 2 Hz)."""
    image_format: str = "jpg"
    """``"jpg"`` (quality ``jpeg_quality``) or ``"png"``."""
    jpeg_quality: int = 90
    """JPEG quality when ``image_format == "jpg"``."""
    lidar_beams: int = 32
    """LiDAR beams (uniform elevations from -30.67 to +10.67 degrees, like the HDL-32E)."""
    lidar_azimuth_steps: int = 1800
    """LiDAR firings per revolution (1800 = 0.2 degree steps)."""
    lidar_max_range: float = 70.0
    """LiDAR range in metres; farther surfaces give no return."""
    mask_ray_stride: int = 0
    """Pixel stride of the camera rays cast for ``mask_camera``. 0 = adaptive: neighbouring rays
    less than a voxel apart where they end (dense towards the horizon, sparse on near surfaces);
    see :func:`occkit.worlds.driving.occupancy.camera_mask_rays`."""
    occupancy_supersample: int = 2
    """Samples per voxel edge when voxelising the primitives (2 -> 8 samples per voxel)."""
    shadows: bool = True
    """Cast sun shadows in the images (an orthographic shadow map of 0.3 m cells over 112 m
    around the ego, seen from the sun; beyond it nothing is shadowed)."""
    max_render_distance: float = 120.0
    """Primitives farther than this from the ego vehicle are not rendered (fog hides the cut)."""
    classes: tuple[int, ...] | None = None
    """The class ids every label of the world is written in: for each of the world's own classes
    (Occ3D-nuScenes' 18, :data:`occkit.labels.OCC3D_CLASSES`, in order) the id it takes, in the 3D
    labels, the cameras' 2D semantics, the LiDAR point labels and the objects' ``class_id``. None:
    the world's own ids. ``occkit synth --format NAME`` sets it from the format's
    :attr:`~occkit.formats.Writers.synthetic_classes`, so that a format's writer remaps nothing."""

    def __post_init__(self) -> None:
        need = self._need
        self._check_counts(
            (
                "scenes",
                "frames",
                "workers",
                "lidar_beams",
                "lidar_azimuth_steps",
                "occupancy_supersample",
                "jpeg_quality",
            )
        )
        size = tuple(self.image_size)
        need(
            len(size) == 2 and all(isinstance(s, int) and s >= 8 for s in size),
            f"image_size must be (height, width) integers >= 8, got {self.image_size!r}",
        )
        object.__setattr__(self, "image_size", (int(size[0]), int(size[1])))
        need(0.0 <= self.val_fraction < 1.0, f"val_fraction must lie in [0, 1), got {self.val_fraction}")
        need(0.0 < self.frame_rate_hz <= 100.0, f"frame_rate_hz must lie in (0, 100], got {self.frame_rate_hz}")
        need(self.image_format in ("jpg", "png"), f"image_format must be 'jpg' or 'png', got {self.image_format!r}")
        need(1 <= self.jpeg_quality <= 100, f"jpeg_quality must lie in [1, 100], got {self.jpeg_quality}")
        need(self.lidar_beams >= 1, f"lidar_beams must be >= 1, got {self.lidar_beams}")
        need(self.lidar_azimuth_steps >= 8, f"lidar_azimuth_steps must be >= 8, got {self.lidar_azimuth_steps}")
        need(self.lidar_max_range > 1.0, f"lidar_max_range must be > 1 m, got {self.lidar_max_range}")
        need(
            isinstance(self.mask_ray_stride, int) and self.mask_ray_stride >= 0,
            f"mask_ray_stride must be an integer >= 0, got {self.mask_ray_stride!r}",
        )
        need(
            1 <= self.occupancy_supersample <= 4,
            f"occupancy_supersample must lie in [1, 4], got {self.occupancy_supersample}",
        )
        need(self.max_render_distance > 10.0, f"max_render_distance must be > 10 m, got {self.max_render_distance}")
        if self.classes is not None:
            from occkit.labels import OCC3D_NUM_CLASSES

            ids = tuple(self.classes)
            need(
                len(ids) == OCC3D_NUM_CLASSES
                and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 255 for v in ids),
                f"classes must be {OCC3D_NUM_CLASSES} class ids in [0, 255) (one per class of the world), got {ids!r}",
            )
            object.__setattr__(self, "classes", ids)


def scene_name(index: int) -> str:
    """Name of scene ``index``: ``"scene-0007"``."""
    return f"scene-{index:04d}"


def frame_token(seed: int, scene_index: int, frame_index: int) -> str:
    """Deterministic 32-hex-digit token of a frame (like nuScenes' sample tokens)."""
    return hashlib.sha1(f"occkit-synth/{seed}/{scene_index}/{frame_index}".encode()).hexdigest()[:32]


def scene_seed(seed: int, scene_index: int) -> list[int]:
    """Entropy for ``numpy.random.default_rng`` of one scene: depends on (seed, scene) only."""
    return [int(seed), int(scene_index), 0x5E17]
