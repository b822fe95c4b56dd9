"""The rig folder's three tables as schemas (docs/labels.md, "The rig folder"; :mod:`occkit.schema`):
``rig.json`` (:class:`RigMeta`), ``<scene>/sweeps.json`` (:class:`SweepsTable`) and ``<scene>/boxes.json``
(:class:`BoxesTable`), each field's JSON type, shape and bounds declared once. What the tables mean together
(a sweep's LiDAR is one of ``rig.json``'s, stamps in order, poses rigid, boxes of positive size whose tracks
keep their class) is :func:`occkit.data.scene_record.check_record`'s, for every reader alike."""

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from occkit.schema import Finite, Int, Number, Table, Text, numbers, problem

#: The largest ego box side and distance of its centre from the ego origin, metres: a vehicle's box
#: larger than this (``1e6``) would hold every return, and every label would be free.
EGO_LIMIT_M = 50.0
#: The largest camera image side, pixels: no camera has one larger (the mask's rays are made per pixel).
IMAGE_SIDE_LIMIT = 100_000
#: Timestamps are microseconds from 1970-01-01 (UTC) up to 2200-01-01: a larger one (``10**30``) is corrupt.
TIMESTAMP_LIMIT_US = 7_258_118_400_000_000
#: How far a pose's rotation quaternion may be from norm 1 (a quaternion is made a rotation whatever its norm).
QUATERNION_NORM_TOL = 1e-3


def _relative(name: str) -> str:
    """A file or folder name that stays under the rig folder: not absolute, no ``..``."""
    if name.startswith(("/", "\\")) or name[1:3] in (":/", ":\\") or ".." in name.split("/"):  # string ops: per row
        raise problem(f"file name {name!r} leaves the rig folder (absolute or '..')")
    return name


def _folder_name(token: str) -> str:
    """A sweep token names one folder (the label's ``gts/<scene>/<token>``)."""
    if "/" in token or "\\" in token or "\0" in token or token in (".", ".."):
        raise problem(f"{token!r} cannot name a folder (a '/', '\\', NUL byte, '.' or '..' in it)")
    return token


#: A file name relative to the folder its table is in, that does not leave the rig folder.
RelName = Annotated[Text, AfterValidator(_relative)]


def within(limit: float, places: str) -> AfterValidator:
    """The rule of a pose's translation, for every file that holds poses: at most ``limit`` metres from its
    origin, farther the entry is corrupt; ``places`` (what the pose places) is said in the message."""

    def near(t: list[float]) -> list[float]:
        if math.hypot(*t) > limit:  # NaN passes: a pose's finiteness is its reader's or check_record's
            raise problem(f"{t} lies more than {limit:g} m from its origin ({places}): corrupt")
        return t

    return AfterValidator(near)


#: A sensor's place on the vehicle: within a kilometre (:data:`occkit.geometry.transforms.POSE_LIMITS`).
ON_VEHICLE = within(1e3, "a sensor on the vehicle")
#: The vehicle's place on its map: a georeferenced map lies far from its origin, but not 1e8 m.
ON_MAP = within(1e8, "a vehicle on its map")


class Pose(Table):
    """A pose as nuScenes writes one: ``{"translation": [x, y, z], "rotation": [w, x, y, z]}``."""

    translation: Annotated[numbers(3), ON_VEHICLE] = Field(description="x, y, z in metres")
    rotation: numbers(4) = Field(description="a unit quaternion w, x, y, z")

    @field_validator("rotation")
    @classmethod
    def _unit(cls, q: list[float]) -> list[float]:
        norm = math.sqrt(sum(v * v for v in q))
        if abs(norm - 1.0) > QUATERNION_NORM_TOL:  # NaN passes: a pose's finiteness is check_record's
            raise problem(f"{q} is not rigid (the rotation quaternion has norm {norm:.4g}, not 1)")
        return q

    def matrix(self):
        """The ``(4, 4)`` float64 numpy transform (:func:`~occkit.geometry.transforms.transform_from_pose`: the
        arithmetic of every reader's file poses, so the same bits)."""
        from occkit.geometry.transforms import transform_from_pose

        return transform_from_pose(self.translation, self.rotation).numpy()


class EgoPose(Pose):
    """The vehicle's pose on its map (``T_global_from_ego``): a georeferenced map lies far from its origin."""

    translation: Annotated[numbers(3), ON_MAP] = Field(description="x, y, z in metres")


Side = Annotated[Finite, Field(gt=0, le=EGO_LIMIT_M)]
Offset = Annotated[Finite, Field(ge=-EGO_LIMIT_M, le=EGO_LIMIT_M)]


class Ego(Table):
    """``rig.json``'s ``ego``: the vehicle's box in the ego frame (nuScenes' car when not given)."""

    size: numbers(3, Side) = Field([4.1, 1.9, 1.8], description="the vehicle's box l, w, h in metres")
    center: numbers(3, Offset) = Field([0.9, 0.0, 0.9], description="the box's centre in the ego frame, metres")


def _camera_matrix(K: list[list[float]]) -> list[list[float]]:
    """The rule of a camera matrix, for every file that holds one: ``fx s cx / 0 fy cy / 0 0 1``, focal lengths
    above 0, invertible (a pixel ray is made of each pixel)."""
    from occkit.geometry.transforms import singular_intrinsic

    if singular_intrinsic(K) or K[0][0] <= 0 or K[1][1] <= 0 or K[1][0] != 0 or K[2] != [0.0, 0.0, 1.0]:
        raise problem(f"{K} is not a camera matrix (fx s cx / 0 fy cy / 0 0 1, fx and fy > 0, invertible)")
    return K


#: A camera matrix K: 3 x 3 finite numbers, ``fx s cx / 0 fy cy / 0 0 1`` and invertible.
Intrinsic = Annotated[
    numbers(3, numbers(3, Finite)), AfterValidator(_camera_matrix), Field(description="the 3x3 camera matrix K")
]


class CameraEntry(Pose):
    """A camera of ``rig.json``: its pose ``T_ego_from_cam`` (OpenCV axes), intrinsic and image size."""

    intrinsic: Intrinsic
    image_size: numbers(2, Annotated[Int, Field(ge=1, le=IMAGE_SIDE_LIMIT)]) = Field(description="H, W in pixels")


class Splits(Table):
    """``rig.json``'s optional ``splits``: the scenes of each split."""

    train: list[str] | None = None
    val: list[str] | None = None


class RigMeta(Table):
    """``rig.json``."""

    format: Literal["occkit-rig"] = Field(description="the format of a rig folder's rig.json")
    version: Literal[1] = Field(description="the version of the layout this occkit reads")
    classes: list[str] = Field([], description="the names of the class ids of point labels and boxes")
    ego: Ego | None = None
    lidars: dict[str, Pose] = Field(min_length=1, description="at least one LiDAR with its pose T_ego_from_lidar")
    cameras: dict[str, CameraEntry] | None = None
    scenes: list[RelName] = Field(description="the scenes' folder names")
    splits: Splits | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _not_true(cls, v: object) -> object:
        if isinstance(v, bool):  # JSON's true is not the number 1
            raise problem(f"{v!r} is not 1 (the version of the layout this occkit reads)")
        return v

    @field_validator("scenes")
    @classmethod
    def _once(cls, scenes: list[str]) -> list[str]:
        twice = sorted({s for s in scenes if scenes.count(s) > 1})
        if twice:
            raise problem(f"{twice} listed more than once (each scene would be labelled twice)")
        return scenes

    @model_validator(mode="after")
    def _splits_of_scenes(self) -> "RigMeta":
        if self.splits is None:
            return self
        for name in ("train", "val"):
            bad = [s for s in getattr(self.splits, name) or [] if s not in self.scenes]
            if bad:
                raise problem(f"splits.{name}: {bad[:3]} are not scenes of the rig (its scenes: {self.scenes[:5]} ...)")
        both = [s for s in self.splits.train or [] if s in (self.splits.val or [])]
        if both:
            raise problem(f"splits: {both[:3]} are in both train and val (a scene is in one split)")
        return self


class SweepRow(Table):
    """A row of ``sweeps.json``: one LiDAR sweep."""

    token: Annotated[Text, AfterValidator(_folder_name)] = Field(description="the sweep's id, its label's name")
    timestamp: Int = Field(ge=0, le=TIMESTAMP_LIMIT_US, description="microseconds between 1970 and 2200")
    sensor: str = Field(description="a LiDAR of rig.json's lidars")
    ego_pose: EgoPose
    keyframe: bool = False
    points: RelName = Field(description="the sweep's .npz file, under the scene's folder")
    images: dict[str, RelName] | None = Field(None, description="{camera: image file under the scene's folder}")


class SweepsTable(Table):
    """``<scene>/sweeps.json``."""

    sweeps: list[SweepRow]


class BoxRow(Table):
    """A row of ``boxes.json``: an object's box at one sweep, in the world frame."""

    sweep: str = Field(description="a sweep token of sweeps.json")
    track: Int = Field(ge=-(2**63), le=2**63 - 1, description="the object's id, kept across sweeps")
    cls: Int = Field(alias="class", ge=0, le=2**63 - 1, description="a class id of rig.json's classes")
    center: numbers(3) = Field(description="x, y, z in the world, metres")
    size: numbers(3) = Field(description="length, width, height in metres")
    yaw: Number = Field(description="radians about +z, world frame")


class BoxesTable(Table):
    """``<scene>/boxes.json``."""

    boxes: list[BoxRow]


class StampedBoxRow(BoxRow):
    """A row of a ROS bag's ``--boxes`` file: a ``boxes.json`` row that names its cloud by ``stamp``."""

    sweep: str | None = Field(None, description="not read: the row's cloud is its stamp's")
    stamp: Int = Field(ge=0, description="the cloud's header stamp in nanoseconds")


class StampedBoxesTable(Table):
    """A ROS bag's ``--boxes`` file."""

    boxes: list[StampedBoxRow]
