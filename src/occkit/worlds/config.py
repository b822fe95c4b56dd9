"""`WorldConfig`: the options every procedural world starts with (how many scenes, frames per scene,
the seed) and the checks every world's config makes first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class WorldConfig:
    """The first options of every world's config (:class:`~occkit.worlds.driving.SynthConfig`,
    :class:`~occkit.worlds.indoor.IndoorConfig`), which also has ``workers``."""

    scenes: int = 2
    """Number of scenes: the driving world's towns and drives, the indoor world's rooms."""
    frames: int = 3
    """Frames per scene: a drive's keyframes, a room's views (RGB-D frames)."""
    seed: int = 0
    """Master seed; scene (room) ``i`` is built from ``(seed, i)`` alone."""

    def _need(self, cond: bool, msg: str) -> None:
        """Refuse the config (a ``ValueError`` that names its class) unless ``cond``."""
        if not cond:
            raise ValueError(f"{type(self).__name__}: {msg}")

    def _check_counts(self, integers: Iterable[str]) -> None:
        """The checks every world makes first: the fields ``integers`` are integers, there is at least
        one scene, frame and worker, and the seed is a non-negative integer."""
        for name in integers:
            v = getattr(self, name)
            self._need(isinstance(v, int) and not isinstance(v, bool), f"{name} must be an integer, got {v!r}")
        for name in ("scenes", "frames", "workers"):
            v = getattr(self, name)
            self._need(v >= 1, f"{name} must be >= 1, got {v}")
        seed = self.seed
        self._need(isinstance(seed, int) and seed >= 0, f"seed must be a non-negative integer, got {seed!r}")
