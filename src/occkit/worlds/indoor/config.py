"""`IndoorConfig`: every option of the procedural indoor world, one docstring per field."""

from __future__ import annotations

from dataclasses import dataclass

from occkit.worlds.config import WorldConfig


@dataclass(frozen=True)
class IndoorConfig(WorldConfig):
    """Options of :func:`occkit.worlds.indoor.generate_indoor` (and ``occkit synth --world indoor``).

    Its first options (``scenes``: rooms, ``frames``: views per room, ``seed``) are
    :class:`~occkit.worlds.config.WorldConfig`'s; the same config always gives byte-identical files,
    whatever ``workers`` is.
    """

    workers: int = 1
    """Worker processes generating rooms in parallel (each with one torch thread)."""
    val_fraction: float = 0.2
    """Fraction of rooms in the test split (``NYUtest``; at least one whenever there are >= 2 rooms)."""
    jpeg_quality: int = 92
    """Quality of the colour JPEGs."""
    render_scale: int = 1
    """Render the colour image at ``1 / render_scale`` of 640 x 480 and upsample it (a faster,
    softer picture); depth, semantic and instance maps are always traced at 640 x 480."""

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of every view: NYUv2's 480 x 640 (what the shared scene runner reports)."""
        return (480, 640)

    def __post_init__(self) -> None:
        need = self._need
        self._check_counts(("scenes", "frames", "workers", "jpeg_quality", "render_scale"))
        need(0.0 <= self.val_fraction < 1.0, f"val_fraction must lie in [0, 1), got {self.val_fraction}")
        need(1 <= self.jpeg_quality <= 100, f"jpeg_quality must lie in [1, 100], got {self.jpeg_quality}")
        need(self.render_scale in (1, 2, 4), f"render_scale must be 1, 2 or 4, got {self.render_scale}")


def room_seed(seed: int, room_index: int) -> list[int]:
    """Entropy for ``numpy.random.default_rng`` of one room: depends on (seed, room) only."""
    return [int(seed), int(room_index), 0x1D00]


def frame_name(room_index: int, view: int) -> str:
    """A frame's file stem: ``NYU<room>_<view>`` (``NYU0007_0002``), as the NYU layout names them."""
    return f"NYU{room_index:04d}_{view:04d}"
