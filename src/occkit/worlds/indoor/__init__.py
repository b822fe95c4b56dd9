"""occkit.worlds.indoor: the procedural indoor world, written in MonoScene's NYUv2 layout.

Public API::

    IndoorConfig                                   every option (config.py)
    generate_indoor(out_dir, config) -> Path       write a whole dataset (writer.py)
    build_room(config, room_index) -> Room         walls, openings, furniture, objects, views (room.py)
    render_view(room, K, T_room_from_cam, H, W)    -> {rgb, depth, semantics, instance} (render.py)
    room_occupancy(room, T_room_from_world, origin) -> NYU classes on the 240 x 240 x 144 grid
    frame_data(room, view) -> every ground truth of a view, in memory

The rooms reuse the driving world's analytic primitives and tracer
(:mod:`occkit.worlds.driving.primitives`, :mod:`occkit.worlds.driving.tracer`). The layout is
:mod:`occkit.data.nyu`'s.
"""

from occkit.worlds.indoor.config import IndoorConfig, frame_name
from occkit.worlds.indoor.occupancy import room_occupancy
from occkit.worlds.indoor.render import render_view
from occkit.worlds.indoor.room import Room, build_room
from occkit.worlds.indoor.writer import frame_data, frame_world, generate_indoor, generate_room

__all__ = [
    "IndoorConfig",
    "Room",
    "build_room",
    "render_view",
    "room_occupancy",
    "frame_data",
    "frame_world",
    "generate_indoor",
    "generate_room",
    "frame_name",
]
