"""What a nuScenes table folder (``v1.0-*``) holds, in one place for the two modules that meet it:
the reader of raw nuScenes (:mod:`occkit.data.nuscenes_raw`, ``occkit prepare nuscenes``) and the
synthetic world's writer of that layout (:mod:`occkit.worlds.driving.nuscenes_export`)."""

from __future__ import annotations

#: Every table nuScenes-devkit's ``NuScenes`` loads, in its order (all of them must be there).
NUSCENES_TABLES: tuple[str, ...] = (
    "category",
    "attribute",
    "visibility",
    "instance",
    "sensor",
    "calibrated_sensor",
    "ego_pose",
    "log",
    "scene",
    "sample",
    "sample_data",
    "sample_annotation",
    "map",
)
#: The table files a folder must hold to be taken for a table folder (what detection and ``--version`` look at).
TABLE_MARKS: tuple[str, ...] = ("sample.json", "sample_data.json", "scene.json")
#: The optional tables of point labels nuScenes-devkit loads when their file is there (nuScenes-lidarseg,
#: nuScenes-panoptic), after :data:`NUSCENES_TABLES`.
POINT_LABEL_TABLES: tuple[str, ...] = ("lidarseg", "panoptic")
#: The fields of each table's records, as nuScenes' schema gives them (every record is a JSON object with a
#: string ``token``): what an error names when a record lacks one that nuscenes-devkit or occkit reads.
TABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "category": ("token", "name", "description", "index"),
    "attribute": ("token", "name", "description"),
    "visibility": ("token", "level", "description"),
    "instance": ("token", "category_token", "nbr_annotations", "first_annotation_token", "last_annotation_token"),
    "sensor": ("token", "channel", "modality"),
    "calibrated_sensor": ("token", "sensor_token", "translation", "rotation", "camera_intrinsic"),
    "ego_pose": ("token", "timestamp", "translation", "rotation"),
    "log": ("token", "logfile", "vehicle", "date_captured", "location"),
    "scene": ("token", "name", "description", "log_token", "nbr_samples", "first_sample_token", "last_sample_token"),
    "sample": ("token", "timestamp", "scene_token", "next", "prev"),
    "sample_data": (
        "token",
        "sample_token",
        "ego_pose_token",
        "calibrated_sensor_token",
        "timestamp",
        "fileformat",
        "is_key_frame",
        "height",
        "width",
        "filename",
        "next",
        "prev",
    ),
    "sample_annotation": (
        "token",
        "sample_token",
        "instance_token",
        "attribute_tokens",
        "visibility_token",
        "translation",
        "size",
        "rotation",
        "num_lidar_pts",
        "num_radar_pts",
        "next",
        "prev",
    ),
    "map": ("token", "log_tokens", "category", "filename"),
    "lidarseg": ("token", "sample_data_token", "filename"),
    "panoptic": ("token", "sample_data_token", "filename"),
}
#: nuScenes-lidarseg's categories by their ``index`` (``category.json``'s ``index``, the value stored per
#: point in ``lidarseg/<version>/<sample_data token>_lidarseg.bin``).
LIDARSEG_CATEGORIES: tuple[str, ...] = (
    "noise",
    "animal",
    "human.pedestrian.adult",
    "human.pedestrian.child",
    "human.pedestrian.construction_worker",
    "human.pedestrian.personal_mobility",
    "human.pedestrian.police_officer",
    "human.pedestrian.stroller",
    "human.pedestrian.wheelchair",
    "movable_object.barrier",
    "movable_object.debris",
    "movable_object.pushable_pullable",
    "movable_object.trafficcone",
    "static_object.bicycle_rack",
    "vehicle.bicycle",
    "vehicle.bus.bendy",
    "vehicle.bus.rigid",
    "vehicle.car",
    "vehicle.construction",
    "vehicle.emergency.ambulance",
    "vehicle.emergency.police",
    "vehicle.motorcycle",
    "vehicle.trailer",
    "vehicle.truck",
    "flat.driveable_surface",
    "flat.other",
    "flat.sidewalk",
    "flat.terrain",
    "static.manmade",
    "static.other",
    "static.vegetation",
    "vehicle.ego",
)
#: The optional LiDAR segmentation table (nuScenes-lidarseg): one row per keyframe LiDAR ``sample_data``.
LIDARSEG_TABLE = "lidarseg"
#: The channel of the LiDAR whose keyframes are the samples (``sample["data"]["LIDAR_TOP"]``).
LIDAR_CHANNEL = "LIDAR_TOP"
#: nuScenes' ego vehicle (a Renault Zoe, about 4.1 x 1.7 m with its mirrors folded): the box (length, width,
#: height) and its centre in the ego frame (origin at the rear axle, on the ground) whose returns are the car itself.
NUSCENES_EGO_SIZE: tuple[float, float, float] = (4.1, 1.8, 1.6)
NUSCENES_EGO_CENTER: tuple[float, float, float] = (1.3, 0.0, 0.8)
