"""Volume rendering on fixed steps from the ray origin (RadOcc's released renderer, docs/methods.md §1).

:func:`~occkit.rendering.volrend.render_rays` samples the part of a ray inside the grid's box.
The released RadOcc code (zhanghm1995/OCC_Distill, ``NeRFDecoderHead``, ``render_type='density'``)
samples differently, and this module writes that reading out as a pure function:

- samples at ``t_k = step * k``, ``k = 0 .. S-1``, from the ray's origin (the camera centre), the
  same ``S`` for every ray, no jitter; the field is read at ``t_k``, the *left* edge of the
  interval ``[t_k, t_k + step)``; ``t`` is in units of ``|dirs|`` (camera rays whose camera-frame
  ``z`` is 1: z-depth, the released code's rays, not normalised);
- a sample outside the grid's box (any coordinate below ``range_min`` or above ``range_max``) has
  ``alpha = 0`` and values 0, and stays in the ray's ``S`` samples (its weight is 0, but a
  softmax over the samples still counts it);
- inside, the volumes are read by ``F.grid_sample`` at ``(p - range_min) / (range_max -
  range_min) * 2 - 1``; with ``align_corners=True`` (the released code's) that puts voxel ``i``'s
  value at ``range_min + i * (range_max - range_min) / (X - 1)``, up to half a voxel from its
  centre; ``align_corners=False`` (occkit's convention) puts it at the voxel centre;
- ``alpha_k = 1 - exp(-act(d(p_k)) * thickness)`` from the raw volume ``d`` read at the sample
  (interpolated *before* the activation ``act``); the released code: ``d = -l_free``, ``act =
  softplus``, ``thickness = 0.2``; a density per metre: ``act`` the identity and ``thickness`` the
  interval's length in metres;
- ``T_k = prod_{j<k} max(1 - alpha_j, 1e-10)``, ``w_k = T_k alpha_k``, values ``sum_k w_k v(p_k)``
  (the released clamp of ``1 - alpha`` kept).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

from occkit.geometry.grid import Grid
from occkit.rendering.sampling import RaySamples
from occkit.rendering.volrend import RenderOutput, check_volumes
from occkit.shapes import check_shape


def fixed_step_samples(
    num_rays: int,
    num_samples: int,
    step: float,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> RaySamples:
    """The samples of :func:`render_fixed_steps`: intervals ``[step k, step (k + 1))`` read at
    their left edge ``t = step k``, ``k = 0 .. S-1``, the same for every ray.

    Returns:
        :class:`~occkit.rendering.sampling.RaySamples` of ``(R, S)`` tensors (expanded views of one
        ``(S,)`` row: no memory per ray).
    """
    if num_samples <= 0:
        raise ValueError(f"num_samples: expected a positive count, got {num_samples}")
    if not step > 0:
        raise ValueError(f"step: expected a positive length, got {step}")
    t = torch.arange(num_samples, device=device, dtype=dtype) * step  # (S,)
    starts = t[None].expand(num_rays, -1)
    return RaySamples(starts, (t + step)[None].expand(num_rays, -1), starts)


def grid_read(
    volume: torch.Tensor,
    grid: Grid,
    points: torch.Tensor,
    mode: Literal["bilinear", "nearest"] = "bilinear",
    align_corners: bool = True,
) -> torch.Tensor:
    """Read ``volume (C, X, Y, Z)`` at ``points (P, 3)`` (ego frame, inside the box) with
    ``F.grid_sample`` on the box normalised to ``[-1, 1]``: ``(P, C)``. ``align_corners`` as in
    the module docstring (True: the released code; False: voxel centres at their places, border
    padding)."""
    X, Y, Z = grid.shape
    check_shape(volume, "C X Y Z", name="volume", dims={"X": X, "Y": Y, "Z": Z})
    check_shape(points, "P 3", name="points")
    lo = torch.tensor(grid.range_min, device=points.device, dtype=points.dtype)
    hi = torch.tensor(grid.range_max, device=points.device, dtype=points.dtype)
    g = ((points - lo) / (hi - lo) * 2 - 1).flip(-1).reshape(1, 1, 1, -1, 3)  # grid_sample wants (z, y, x)
    out = F.grid_sample(
        volume[None].to(points.dtype),
        g,
        mode=mode,
        padding_mode="zeros" if align_corners else "border",
        align_corners=align_corners,
    )  # (1, C, 1, 1, P)
    return out.reshape(volume.shape[0], -1).t()


def _march(
    density: torch.Tensor,
    values: torch.Tensor | None,
    grid: Grid,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    thickness: torch.Tensor,
    t: torch.Tensor,
    activation: str,
    mode: str,
    align_corners: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One chunk: ``weights (r, S)`` and rendered ``values (r, C)`` (or None)."""
    r, S = origins.shape[0], t.shape[0]
    pts = origins[:, None, :] + dirs[:, None, :] * t[None, :, None]  # (r, S, 3)
    lo = torch.tensor(grid.range_min, device=pts.device, dtype=pts.dtype)
    hi = torch.tensor(grid.range_max, device=pts.device, dtype=pts.dtype)
    inside = ((pts >= lo) & (pts <= hi)).all(-1)  # (r, S)
    ri, si = inside.nonzero(as_tuple=True)
    vol = density[None] if values is None else torch.cat([density[None], values.to(density.dtype)], 0)  # (1+C, X, Y, Z)
    read = grid_read(vol, grid, pts[ri, si], mode=mode, align_corners=align_corners)  # (P, 1+C)
    d = read[:, 0]
    if activation == "softplus":
        d = F.softplus(d)
    a_in = -torch.expm1(-d * thickness[ri])  # (P,) alpha inside the box
    alpha = torch.zeros(r, S, device=pts.device, dtype=a_in.dtype).index_put((ri, si), a_in)  # (r, S), 0 outside
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), (1 - alpha).clamp_min(1e-10)], -1), -1)[:, :-1]
    w = alpha * trans  # (r, S)
    rendered = None
    if values is not None:
        rendered = torch.zeros(r, values.shape[0], device=pts.device, dtype=w.dtype).index_add(
            0, ri, w[ri, si, None] * read[:, 1:]
        )
    return w, rendered


def render_fixed_steps(
    density: torch.Tensor,
    grid: Grid,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    values: torch.Tensor | None = None,
    *,
    num_samples: int = 287,
    step: float = 0.2,
    thickness: float | torch.Tensor = 0.2,
    activation: Literal["identity", "softplus"] = "identity",
    mode: Literal["bilinear", "nearest"] = "bilinear",
    align_corners: bool = True,
    chunk: int = 4096,
    checkpoint: bool = False,
) -> RenderOutput:
    """Render ``R`` rays on ``num_samples`` fixed steps from their origins (module docstring).

    Memory: rays go ``chunk`` at a time; with ``checkpoint`` (and gradients on) each chunk keeps
    only its outputs and is recomputed in the backward pass, so training on every LiDAR pixel of
    six cameras x 287 samples needs ``O(chunk * S * C)`` activations, not ``O(R * S * C)``.

    Args:
        density: ``(X, Y, Z)`` the raw volume ``d`` that ``alpha = 1 - exp(-act(d) * thickness)``
            is made from (the released code: ``-l_free``; or a density per metre).
        grid: the box (``grid.shape == (X, Y, Z)``).
        origins: ``(R, 3)`` ray origins (camera centres), ego frame.
        dirs: ``(R, 3)`` directions, any length: ``t`` counts in units of ``|dirs|``.
        values: optional ``(C, X, Y, Z)`` values rendered as ``sum_k w_k v(p_k)``.
        num_samples, step: ``S`` samples at ``t_k = step * k``.
        thickness: a number or ``(R,)`` per ray (e.g. metres per interval, ``step * |dirs|``).
        activation: applied to ``d`` after the lookup.
        mode: ``grid_sample`` interpolation; align_corners: module docstring.
        chunk: rays per pass; checkpoint: recompute each chunk in backward.
    Returns:
        :class:`~occkit.rendering.volrend.RenderOutput` with ``weights (R, S)``, ``samples``
        (:func:`fixed_step_samples`), ``values (R, C)`` or None, ``opacity (R,)``, ``depth (R,)``
        ``= sum_k w_k t_k`` (units of ``|dirs|``, not normalised by the opacity) and
        ``median_depth (R,)`` (detached): the ``t_k`` of the first sample where the cumulative
        weight reaches 0.5, ``inf`` where it never does.
    """
    check_volumes(density, values, grid)
    dims = check_shape(origins, "R 3", name="origins")
    check_shape(dirs, "R 3", name="dirs", dims=dims)
    if not (torch.isfinite(origins).all() and torch.isfinite(dirs).all()):
        raise ValueError("origins, dirs: expected finite values (found NaN or inf)")
    if activation not in ("identity", "softplus"):
        raise ValueError(f"activation: expected 'identity' or 'softplus', got {activation!r}")
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode: expected 'bilinear' or 'nearest', got {mode!r}")
    if chunk <= 0:
        raise ValueError(f"chunk: expected a positive count, got {chunk}")
    R = dims["R"]
    samples = fixed_step_samples(R, num_samples, step, device=origins.device, dtype=density.dtype)
    t = (
        samples.t_starts[0] if R else torch.arange(num_samples, device=origins.device, dtype=density.dtype) * step
    )  # (S,)
    th = torch.as_tensor(thickness, device=origins.device, dtype=density.dtype)
    if th.dim() == 0:
        th = th.expand(R)
    check_shape(th, "R", name="thickness", dims=dims)
    o, d = origins.to(density.dtype), dirs.to(density.dtype)
    ws, vs = [], []
    for c0 in range(0, R, chunk):
        sl = slice(c0, min(R, c0 + chunk))

        def run(o_: torch.Tensor, d_: torch.Tensor, th_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            return _march(density, values, grid, o_, d_, th_, t, activation, mode, align_corners)

        if checkpoint and torch.is_grad_enabled():
            w, v = torch.utils.checkpoint.checkpoint(run, o[sl], d[sl], th[sl], use_reentrant=False)
        else:
            w, v = run(o[sl], d[sl], th[sl])
        ws.append(w)
        vs.append(v)
    if R:
        weights = torch.cat(ws, 0)
        rendered = None if values is None else torch.cat(vs, 0)
    else:
        weights = density.new_zeros(0, num_samples)
        rendered = None if values is None else density.new_zeros(0, values.shape[0])
    with torch.no_grad():
        cum = weights.detach().cumsum(-1)
        reached = cum >= 0.5
        first = reached.int().argmax(-1)
        median = torch.where(reached.any(-1), t[first], torch.full_like(first, float("inf"), dtype=t.dtype))
    return RenderOutput(
        depth=(weights * t).sum(-1),
        median_depth=median,
        opacity=weights.sum(-1),
        values=rendered,
        weights=weights,
        samples=samples,
    )
