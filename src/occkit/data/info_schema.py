"""The frames of a nuScenes-style info file (``occkit prepare nuscenes``'s ``infos.json``, or mmdet3d's
``.pkl`` / ``.json``) as schemas (:mod:`occkit.schema`; docs/formats/nuscenes.md): what
:func:`occkit.data.lidar_sweeps.load_lidar_infos` reads of a frame (:class:`LidarFrame`) and what
:func:`occkit.data.nusc_index.frame_entry` reads (:class:`IndexFrame`), each field declared once.

:class:`Occ3DFrame` is a frame of Occ3D's ``annotations.json`` as :class:`occkit.data.occ3d.Occ3DDataset` reads
its poses and cameras, the same types again.

An info file is another tool's: its frames hold keys occkit does not read (kept, unread: ``extra="ignore"``)
and, from a pickle, numpy arrays where JSON has lists (read as the lists they hold). The file itself, its
frames being mappings and their tokens text listed once, is :func:`occkit.fileio.read_info_file`'s."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, create_model, field_validator

from occkit.data.rig_schema import Intrinsic, within
from occkit.geometry.transforms import POSE_LIMITS
from occkit.schema import Finite, Int, Table, Text, numbers, problem

#: The cameras of a nuScenes frame, each of which the index of a LiDAR-frame layout needs.
CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")


def _listed(v: Any) -> Any:
    """A numpy array or tuple of a pickle as the list JSON would hold."""
    return v.tolist() if hasattr(v, "tolist") and hasattr(v, "shape") else list(v) if isinstance(v, tuple) else v


def _not_zero(q: list[float]) -> list[float]:
    if not any(q):
        raise problem(f"{q} is a zero quaternion (no rotation)")
    return q


def _rotation(R: list[list[float]]) -> list[list[float]]:
    """A 3 x 3 rotation: orthonormal (to 1e-3) and not a reflection (plain floats: some 340,000 a file)."""
    off = max(abs(sum(a * b for a, b in zip(R[i], R[j])) - (i == j)) for i in range(3) for j in range(i, 3))
    (a, b, c), (d, e, f), (g, h, i) = R
    if off > 1e-3 or a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g) < 0:
        raise problem(f"{R} is not a rotation (not orthonormal, or a reflection)")
    return R


_Numbers = BeforeValidator(_listed)
#: A rotation quaternion w, x, y, z (normalised where it is used; zero refused).
Rotation = Annotated[numbers(4, Finite), _Numbers, AfterValidator(_not_zero)]
#: A sensor's place on the vehicle, metres.
Extrinsic = Annotated[numbers(3, Finite), _Numbers, within(POSE_LIMITS["extrinsic"], "a sensor on the vehicle")]
#: The vehicle's place on its map, metres.
EgoPlace = Annotated[numbers(3, Finite), _Numbers, within(POSE_LIMITS["ego_pose"], "a vehicle on its map")]
#: A path with a ``samples/`` part (what a dataset folder holding nuScenes' ``samples/`` reads from there on).
UnderSamples = Annotated[Text, Field(pattern=r"samples[/\\]")]


class InfoTable(Table):
    """A mapping of an info file: keys occkit does not read ignored."""

    model_config = ConfigDict(extra="ignore")


class SweepInfo(InfoTable):
    """A LiDAR sweep before a keyframe, in the keyframe's LiDAR frame."""

    data_path: Text = Field(description="the sweep's .pcd.bin")
    sensor2lidar_rotation: Annotated[numbers(3, numbers(3, Finite)), _Numbers, AfterValidator(_rotation)] = Field(
        description="a 3x3 rotation"
    )
    sensor2lidar_translation: Annotated[numbers(3, Finite), _Numbers] = Field(description="x, y, z in metres")


class LidarFrame(InfoTable):
    """What the LiDAR sweeps of a frame read: its keyframe's file and pose, and its sweeps."""

    lidar_path: Text = Field(description="the keyframe's .pcd.bin")
    lidar2ego_translation: Extrinsic
    lidar2ego_rotation: Rotation
    sweeps: list[SweepInfo] = []


class CameraInfo(InfoTable):
    """A camera of a frame: its image, intrinsic and poses."""

    data_path: UnderSamples = Field(description="the image, under samples/")
    cam_intrinsic: Annotated[Intrinsic, _Numbers]
    sensor2ego_translation: Extrinsic
    sensor2ego_rotation: Rotation
    ego2global_translation: EgoPlace
    ego2global_rotation: Rotation


#: The six cameras of a frame of a LiDAR-frame layout, each one needed (others ignored).
SixCameras = create_model(
    "SixCameras", __base__=InfoTable, **{c: (CameraInfo, Field(description="one of the layout's six")) for c in CAMERAS}
)


class IndexFrame(InfoTable):
    """What the index of a LiDAR-frame layout (SurroundOcc, OpenOccupancy) reads of a frame."""

    scene_token: Text
    lidar_path: UnderSamples = Field(description="the keyframe's .pcd.bin, under samples/")
    lidar_token: Text | None = None
    lidar2ego_translation: Extrinsic
    lidar2ego_rotation: Rotation
    ego2global_translation: EgoPlace
    ego2global_rotation: Rotation
    prev: str | None = None
    next: str | None = None
    cams: SixCameras = Field(description=f"the cameras {', '.join(CAMERAS)}")


# ---------------------------------------------------------------------------------------------------------
# A frame of Occ3D's annotations.json (``scene_infos[scene][token]``): what Occ3DDataset reads of its poses.


class FramePose(InfoTable):
    """A sensor's pose on the vehicle: ``{"translation": [x, y, z], "rotation": [w, x, y, z]}``."""

    translation: Extrinsic
    rotation: Rotation

    def matrix(self) -> Any:
        """The ``(4, 4)`` float64 torch transform (:func:`~occkit.geometry.transforms.transform_from_pose`)."""
        from occkit.geometry.transforms import transform_from_pose

        return transform_from_pose(self.translation, self.rotation)


class EgoFramePose(FramePose):
    """The vehicle's pose on its map."""

    translation: EgoPlace


class CameraSensor(InfoTable):
    """A camera of a frame: its intrinsic, its pose on the vehicle, the vehicle's pose at its time (nuScenes'
    cameras fire apart from the frame), the image size recorded beside ``img_path``."""

    intrinsic: Annotated[Intrinsic, _Numbers]
    extrinsic: FramePose
    ego_pose: EgoFramePose | None = None
    height: Annotated[Int, Field(ge=1)] | None = None
    width: Annotated[Int, Field(ge=1)] | None = None


class LidarSensor(InfoTable):
    """The frame's LiDAR (the synthetic world and the LiDAR-frame layouts record one)."""

    extrinsic: FramePose


class Occ3DFrame(InfoTable):
    """A frame of ``annotations.json``'s ``scene_infos``: its poses and sensors."""

    ego_pose: EgoFramePose
    camera_sensor: dict[str, CameraSensor] = {}
    lidar_sensor: LidarSensor | None = None

    @field_validator("lidar_sensor", mode="before")
    @classmethod
    def _none_when_empty(cls, v: Any) -> Any:
        return None if v == {} else v  # ``{}``: no LiDAR recorded


class GridRecord(Table):
    """``annotations.json``'s ``grid`` (``occkit label --grid``): the grid's box and voxel size in the ego frame."""

    range_min: numbers(3, Finite) = Field(description="x, y, z in metres")
    range_max: numbers(3, Finite) = Field(description="x, y, z in metres")
    voxel_size: numbers(3, Annotated[Finite, Field(gt=0)]) = Field(description="x, y, z in metres")


class Occ3DIndex(InfoTable):
    """Occ3D's ``annotations.json``: the frames by scene and token (each an :class:`Occ3DFrame`, checked when
    read), the scenes of each split, the grid where it is not Occ3D's; other keys are the writers' own."""

    scene_infos: dict[str, dict[str, dict[str, Any]]] = Field(description="{scene: {token: frame}}")
    train_split: list[str] | None = None
    val_split: list[str] | None = None
    test_split: list[str] | None = None
    grid: GridRecord | None = None
