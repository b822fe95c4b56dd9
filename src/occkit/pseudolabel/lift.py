"""Lift 2D prior semantics with prior metric depth to labelled 3D points.

A pixel ``(u, v)`` (centre at ``+0.5``) with z-depth ``D`` and class ``S`` becomes the point
``p = T_global_from_cam [D K^-1 (u, v, 1)^T; 1]`` with label ``S`` (EasyOcc, docs/methods.md §2). Pixels
without a usable class (the free class, which the priors give the sky: Occ3D's 17; unknown 255; any id
outside the class table) or depth (0 = unknown, beyond ``max_depth``) give no point; sky pixels are
returned apart as rays (they see free space up to the grid's edge).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from occkit.geometry.camera import pixel_centers, pixel_rays
from occkit.shapes import check_shape


@dataclass
class LiftedPoints:
    """Labelled points of one frame's cameras, in the frame the transforms map to.

    Attributes:
        points: ``(P, 3)`` float64 points.
        labels: ``(P,)`` long class ids.
        weights: ``(P,)`` float32 vote weights (the prior confidence, or 1).
        origins: ``(P, 3)`` float64 camera centre each point was seen from.
        sky_origins / sky_dirs: ``(S, 3)`` float64 rays of sky pixels (unit directions).
    """

    points: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor
    origins: torch.Tensor
    sky_origins: torch.Tensor
    sky_dirs: torch.Tensor

    def transformed(self, T: torch.Tensor) -> LiftedPoints:
        """The same points and rays under the rigid transform ``T (4, 4)``."""
        R, t = T[:3, :3].to(self.points), T[:3, 3].to(self.points)
        return LiftedPoints(
            self.points @ R.T + t,
            self.labels,
            self.weights,
            self.origins @ R.T + t,
            self.sky_origins @ R.T + t,
            self.sky_dirs @ R.T,
        )

    def select(self, keep: torch.Tensor) -> LiftedPoints:
        """Only the points where ``keep (P,)`` is true (sky rays unchanged)."""
        return LiftedPoints(
            self.points[keep],
            self.labels[keep],
            self.weights[keep],
            self.origins[keep],
            self.sky_origins,
            self.sky_dirs,
        )


def cat_points(parts: list[LiftedPoints]) -> LiftedPoints:
    """Concatenate several :class:`LiftedPoints` (at least one)."""
    if not parts:
        raise ValueError("cat_points: nothing to concatenate")
    return LiftedPoints(
        *(
            torch.cat([getattr(p, f) for p in parts])
            for f in ("points", "labels", "weights", "origins", "sky_origins", "sky_dirs")
        )
    )


def lift_pixels(
    semantics: torch.Tensor,
    depth: torch.Tensor,
    intrinsics: torch.Tensor,
    T_out_from_cam: torch.Tensor,
    confidence: torch.Tensor | None = None,
    *,
    free: int,
    num_classes: int,
    max_depth: float = 60.0,
    stride: int = 1,
    sky_stride: int = 4,
) -> LiftedPoints:
    """Labelled 3D points from per-camera semantic and depth maps.

    Args:
        semantics: ``(N, H, W)`` integer class per pixel of the class table (``free``: the sky; the
            other ids below ``num_classes`` kept; others such as 255 unknown dropped).
        depth: ``(N, H, W)`` camera z-depth in metres (0 = unknown).
        intrinsics: ``(N, 3, 3)`` of these maps.
        T_out_from_cam: ``(N, 4, 4)`` camera (OpenCV) -> output frame (global or ego).
        confidence: optional ``(N, H, W)`` in [0, 1]: each point's vote weight (default 1).
        free: the class table's free id, which the priors give the sky (Occ3D's 17): its pixels are rays.
        num_classes: the class table's size (Occ3D's 18); the ids below it but ``free`` make points.
        max_depth: depths beyond this (metres) give no point (monocular depth degrades with range).
        stride: use every ``stride``-th pixel in each direction (pixel centres of the full map).
        sky_stride: the same for the sky rays (free-space carving needs fewer rays).
    Returns:
        :class:`LiftedPoints` in float64.
    """
    dims = check_shape(semantics, "N H W", name="semantics")
    check_shape(depth, "N H W", name="depth", dims=dims)
    check_shape(intrinsics, "N 3 3", name="intrinsics", dims={"N": dims["N"]})
    check_shape(T_out_from_cam, "N 4 4", name="T_out_from_cam", dims={"N": dims["N"]})
    if confidence is not None:
        check_shape(confidence, "N H W", name="confidence", dims=dims)
    if stride < 1 or sky_stride < 1:
        raise ValueError(f"lift_pixels: stride and sky_stride must be >= 1, got {stride}, {sky_stride}")
    N, H, W = semantics.shape
    K = intrinsics.double()
    T = T_out_from_cam.double()
    origins_cam = T[:, :3, 3]  # (N, 3) camera centres

    def rays(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        uv = pixel_centers(H, W, step, dtype=torch.float64, device=semantics.device)  # (h, w, 2)
        h, w = uv.shape[:2]
        cam = pixel_rays(uv.reshape(1, -1, 2).expand(N, -1, 2), K)  # (N, h*w, 3), z = 1
        return cam, torch.stack(
            torch.meshgrid(torch.arange(h) * step, torch.arange(w) * step, indexing="ij"), -1
        ).reshape(-1, 2)

    cam, rc = rays(stride)
    sem = semantics[:, rc[:, 0], rc[:, 1]].long()  # (N, h*w)
    d = depth[:, rc[:, 0], rc[:, 1]].double()
    keep = (sem >= 0) & (sem < num_classes) & (sem != free) & (d > 0) & (d <= max_depth)
    pts = cam * d[..., None] @ T[:, :3, :3].transpose(-1, -2) + T[:, None, :3, 3]  # (N, h*w, 3)
    conf = (
        confidence[:, rc[:, 0], rc[:, 1]].float() if confidence is not None else torch.ones_like(d, dtype=torch.float32)
    )
    cam_of = torch.arange(N, device=semantics.device)[:, None].expand_as(sem)
    points, labels, weights = pts[keep], sem[keep], conf[keep]
    origins = origins_cam[cam_of[keep]]

    scam, src = rays(sky_stride)
    ssem = semantics[:, src[:, 0], src[:, 1]].long()
    sky = ssem == free
    sdirs = torch.nn.functional.normalize(scam @ T[:, :3, :3].transpose(-1, -2), dim=-1)  # (N, h'*w', 3)
    scam_of = torch.arange(N, device=semantics.device)[:, None].expand_as(ssem)
    return LiftedPoints(points, labels, weights, origins, origins_cam[scam_of[sky]], sdirs[sky])
