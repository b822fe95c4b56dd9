"""occkit.worlds.driving: the procedural driving world, written in the Occ3D-nuScenes layout.

Public API::

    SynthConfig                                     every option (config.py)
    generate_dataset(out_dir, config) -> Path       write a whole dataset (writer.py)
    build_scene(config, scene_index) -> Scene       town, objects with trajectories, ego drive (scene.py)
    scene_state_at(scene, frame_index) -> SceneState   the scene posed at a frame
    render_camera(state, K, T_global_from_cam, H, W) -> {rgb, depth, semantics, instance}
    simulate_lidar(state, T_global_from_lidar) -> (points, labels, instance)
    semantic_occupancy(state, grid, T_global_from_grid) -> (X, Y, Z) uint8, 17 = free
    semantic_instance_occupancy(state, grid, T_global_from_grid) -> (semantics, instance int32)
    frame_data(scene, frame_index) -> every ground truth of a frame, in memory
    object_records(state, seen) -> objects.json entries (near the ego, and every instance seen)

The fine-name vocabulary (every object name with its class, ground and sky words, held-out names)
is :mod:`occkit.worlds.driving.vocabulary` (FINE_NAMES, CLASS_WORDS, HELDOUT_NAMES, describe()).

See docs/DATASET.md for the on-disk layout.
"""

from occkit.worlds.driving.config import SynthConfig, frame_token, scene_name
from occkit.worlds.driving.lidar import simulate_lidar
from occkit.worlds.driving.occupancy import (
    camera_visibility,
    lidar_visibility,
    semantic_instance_occupancy,
    semantic_occupancy,
)
from occkit.worlds.driving.render import render_camera
from occkit.worlds.driving.scene import Scene, SceneState, build_scene, scene_state_at
from occkit.worlds.driving.sensors import T_ego_from_camera, T_ego_from_lidar, camera_intrinsics
from occkit.worlds.driving.writer import frame_data, generate_dataset, generate_scene, object_records, split_scenes

__all__ = [
    "SynthConfig",
    "Scene",
    "SceneState",
    "build_scene",
    "scene_state_at",
    "render_camera",
    "simulate_lidar",
    "semantic_occupancy",
    "semantic_instance_occupancy",
    "object_records",
    "camera_visibility",
    "lidar_visibility",
    "frame_data",
    "generate_dataset",
    "generate_scene",
    "split_scenes",
    "camera_intrinsics",
    "T_ego_from_camera",
    "T_ego_from_lidar",
    "frame_token",
    "scene_name",
]
