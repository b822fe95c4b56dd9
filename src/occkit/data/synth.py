"""Deprecated alias of :mod:`occkit.worlds.driving`, where the procedural driving world moved in 0.2.0:
``occkit.data.synth.generate_dataset`` is ``occkit.worlds.driving.generate_dataset``. Importing it warns
(``DeprecationWarning``) and gives the moved names, and the world's modules as attributes
(``occkit.data.synth.writer``); it is removed in 0.3.0: import from :mod:`occkit.worlds.driving`.

The names are looked up in the world when first used, by name, so that the readers' layer
(``occkit.data``) imports no world, which sits above it (docs/design.md §1)."""

from __future__ import annotations

import importlib
import warnings
from typing import Any

#: Where the names moved.
MOVED_TO = "occkit.worlds.driving"
#: The names the module gave before the move.
MOVED_NAMES = (
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
)

__all__ = list(MOVED_NAMES)

warnings.warn(
    f"{__name__} moved to {MOVED_TO} in occkit 0.2.0; the alias is removed in 0.3.0: import from {MOVED_TO}",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    """A moved name (``generate_dataset``), or a module of the world (``writer``)."""
    if name in MOVED_NAMES:
        return getattr(importlib.import_module(MOVED_TO), name)
    try:
        return importlib.import_module(f"{MOVED_TO}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(MOVED_NAMES)
