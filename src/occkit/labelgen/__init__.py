"""occkit.labelgen: occupancy labels from LiDAR sweeps, poses and boxes (``occkit label``).

A pipeline of pure steps over arrays (docs/labels.md): the scene's sweeps are split into the
static scene and each boxed object's track, accumulated, their unlabelled points given a class by
a nearest-neighbour vote, optionally densified, voxelised by vote on the target grid; free space
and ``mask_lidar`` come from casting every return from its sweep's origin, ``mask_camera`` from
casting camera rays to the first occupied voxel. The input is one
:class:`~occkit.data.scene_record.SceneRecord` per scene, from any reader (:mod:`occkit.data.rig`).
"""
