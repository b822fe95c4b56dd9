"""Lift-Splat-Shoot view transform in pure PyTorch.

Each feature pixel of each camera predicts a categorical distribution over ``D`` depth bins and a
``C``-channel context vector. Their outer product is "splatted" at the ``D`` frustum points of the
pixel: the points are lifted to the camera frame with the inverse intrinsics and moved to the ego
frame with ``T_ego_from_cam``, then summed into the voxel (or BEV cell) that contains them with one
``index_add_``; points outside the grid are dropped. Image augmentation is handled by updating the
intrinsics (see :mod:`occkit.data.augment`), so no extra "post-augmentation" matrices are needed;
BEV augmentation by updating ``T_ego_from_cam``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from occkit.geometry.camera import pixel_centers, pixel_rays, unproject
from occkit.geometry.grid import Grid
from occkit.geometry.transforms import invert_transform
from occkit.shapes import check_shape


def depth_bin_centers(d_min: float, d_max: float, d_step: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """Centres of the depth bins ``[d_min + i * d_step, d_min + (i + 1) * d_step)``: ``(D,)`` metres.

    ``D = round((d_max - d_min) / d_step)``; the range must be a whole number of steps.
    """
    if d_step <= 0 or d_max <= d_min or d_min <= 0:
        raise ValueError(f"depth bins: need 0 < d_min < d_max and d_step > 0, got ({d_min}, {d_max}, {d_step})")
    n = (d_max - d_min) / d_step
    if abs(n - round(n)) > 1e-6:
        raise ValueError(f"depth bins: [{d_min}, {d_max}] is not a whole number of steps of {d_step}")
    return d_min + (torch.arange(int(round(n)), dtype=dtype, device=device) + 0.5) * d_step


def make_frustum(image_hw: tuple[int, int], stride: int, depths: torch.Tensor) -> torch.Tensor:
    """Frustum points of a feature map in image pixels and depth.

    Args:
        image_hw: (H, W) of the network input image; the feature map is ``(H/stride, W/stride)``.
        stride: feature stride; feature pixel (i, j) covers image pixels
            ``[j*stride, (j+1)*stride) x [i*stride, (i+1)*stride)``, its centre is used.
        depths: ``(D,)`` depth bin centres (metres, camera z).
    Returns:
        ``(D, h, w, 3)`` as (u, v, depth).
    """
    check_shape(depths, "D", name="depths")
    H, W = image_hw
    if H % stride or W % stride:
        raise ValueError(f"make_frustum: image size {(H, W)} is not a multiple of the stride {stride}")
    uv = pixel_centers(H, W, stride, dtype=depths.dtype, device=depths.device)  # (h, w, 2)
    D, (h, w) = depths.shape[0], uv.shape[:2]
    uv = uv[None].expand(D, h, w, 2)
    d = depths[:, None, None, None].expand(D, h, w, 1)
    return torch.cat([uv, d], -1)


def frustum_to_ego(frustum: torch.Tensor, intrinsics: torch.Tensor, T_ego_from_cam: torch.Tensor) -> torch.Tensor:
    """Frustum points in the ego frame.

    Args:
        frustum: ``(D, h, w, 3)`` (u, v, depth) from :func:`make_frustum`.
        intrinsics: ``(B, N, 3, 3)`` of the network input images.
        T_ego_from_cam: ``(B, N, 4, 4)``.
    Returns:
        ``(B, N, D, h, w, 3)`` ego-frame points.
    """
    check_shape(frustum, "D h w 3", name="frustum")
    dims = check_shape(intrinsics, "B N 3 3", name="intrinsics")
    check_shape(T_ego_from_cam, "B N 4 4", name="T_ego_from_cam", dims=dims)
    D, h, w, _ = frustum.shape
    B, N = intrinsics.shape[:2]
    dtype = frustum.dtype if frustum.dtype == torch.float64 else torch.float32
    # Geometry stays in float32 even under autocast: bf16 would misplace points by ~0.1 m at 40 m.
    with torch.autocast(device_type=frustum.device.type, enabled=False):
        K = intrinsics.to(dtype)
        T = T_ego_from_cam.to(dtype)
        uv = frustum[..., :2].to(dtype).reshape(1, 1, -1, 2)  # (1, 1, D*h*w, 2)
        depth = frustum[..., 2].to(dtype).reshape(1, 1, -1)  # (1, 1, D*h*w)
        cam = unproject(uv.expand(B, N, -1, 2), depth.expand(B, N, -1), K)  # (B, N, D*h*w, 3)
        ego = cam @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]  # (B, N, D*h*w, 3)
    return ego.view(B, N, D, h, w, 3)


def ray_geometry(
    image_hw: tuple[int, int],
    stride: int,
    intrinsics: torch.Tensor,
    T_ego_from_cam: torch.Tensor,
    ground_z: float = 0.0,
) -> torch.Tensor:
    """Per feature pixel: where its ray points, as 4 channels for a camera-aware depth net.

    Channels: the ego-frame direction of the ray through the pixel centre (unit vector, 3) and the
    inverse of the camera-z depth at which that ray meets the ground plane ``z = ground_z``
    (``1 / d``; 0 for rays at or above the horizon). For a flat road the second is the answer, and
    an object standing on it has the ground depth of its contact row: the depth net no longer has
    to infer each pixel's row, camera height and pitch from padding and image content. Computed
    from the (augmented) intrinsics, so it follows image resizing and cropping.

    Args:
        image_hw: (H, W) of the input images; stride: feature stride.
        intrinsics: ``(B, N, 3, 3)``; T_ego_from_cam: ``(B, N, 4, 4)``.
    Returns:
        ``(B, N, 4, H/stride, W/stride)`` float32.
    """
    dims = check_shape(intrinsics, "B N 3 3", name="intrinsics")
    check_shape(T_ego_from_cam, "B N 4 4", name="T_ego_from_cam", dims=dims)
    H, W = image_hw
    B, N = intrinsics.shape[:2]
    with torch.autocast(device_type=intrinsics.device.type, enabled=False):
        uv = pixel_centers(H, W, stride, dtype=torch.float32, device=intrinsics.device)  # (h, w, 2)
        h, w = uv.shape[:2]
        K = intrinsics.float()
        T = T_ego_from_cam.float()
        cam = pixel_rays(uv.reshape(1, 1, -1, 2).expand(B, N, -1, 2), K)  # camera frame, z = 1
        ray = cam @ T[..., :3, :3].transpose(-1, -2)  # (B, N, h*w, 3) ego-frame, camera-z depth 1
        height = (T[..., 2, 3] - ground_z)[..., None]  # (B, N, 1) camera above the ground
        inv_depth = (-ray[..., 2] / height.clamp_min(1e-3)).clamp_min(0.0)  # (B, N, h*w)
        out = torch.cat([F.normalize(ray, dim=-1), inv_depth[..., None]], -1)  # (B, N, h*w, 4)
    return out.view(B, N, h, w, 4).permute(0, 1, 4, 2, 3).contiguous()


def _cell_index(
    points_ego: torch.Tensor, grid: Grid, collapse_z: bool, consts: tuple[torch.Tensor, ...] | None = None
) -> tuple[torch.Tensor, int]:
    """Flat cell index of every point (``B * cells`` = the "trash" row for points outside) and
    ``cells`` per batch element; ``consts``: the grid's constants as buffers (``Grid.point_to_index``)."""
    B = points_ego.shape[0]
    X, Y, Z = grid.shape
    idx, valid = grid.point_to_index(points_ego, consts)  # (B, ..., 3), (B, ...)
    cells = X * Y if collapse_z else X * Y * Z
    flat = idx[..., 0] * Y + idx[..., 1]
    if not collapse_z:
        flat = flat * Z + idx[..., 2]
    batch = torch.arange(B, device=flat.device).view(B, *([1] * (flat.dim() - 1)))
    flat = flat + batch * cells
    # Dropped points go to one extra "trash" row, avoiding a data-dependent boolean gather.
    return torch.where(valid, flat, torch.full_like(flat, B * cells)), cells


def _scatter_sum(
    values: torch.Tensor, flat: torch.Tensor, cells: int, grid: Grid, collapse_z: bool, channels_last: bool = False
) -> torch.Tensor:
    """Sum ``values (B, ..., K)`` into the cells ``flat (B, ...)``: ``(B, K, X, Y[, Z])``; with
    ``channels_last`` in the layout the sums are made in (``channels_last[_3d]``: no copy)."""
    B, K = values.shape[0], values.shape[-1]
    X, Y, Z = grid.shape
    out = values.new_zeros(B * cells + 1, K)
    index, rows = flat.reshape(-1), values.reshape(-1, K)
    if torch.jit.is_tracing():
        # The TorchScript-based ONNX exporter writes index_add as a scatter that keeps one of the
        # rows sent to a cell (duplicate indices: a wrong model); scatter_add it writes as a summing
        # scatter. Same sums; eager and torch.export (whose index_add sums) keep index_add.
        out = out.scatter_add(0, index[:, None].expand(-1, K), rows)[:-1]
    else:
        out = out.index_add_(0, index, rows)[:-1]  # in place: the zeros are not copied first
    out = out.view(B, X, Y, K).permute(0, 3, 1, 2) if collapse_z else out.view(B, X, Y, Z, K).permute(0, 4, 1, 2, 3)
    return out if channels_last else out.contiguous()


def splat(
    depth_prob: torch.Tensor,
    context: torch.Tensor,
    points_ego: torch.Tensor,
    grid: Grid,
    collapse_z: bool = False,
    index: tuple[torch.Tensor, int] | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """Sum ``depth_prob x context`` of every frustum point into the grid cell that holds it.

    Args:
        depth_prob: ``(B, N, D, h, w)`` depth distribution per feature pixel.
        context: ``(B, N, C, h, w)`` context features.
        points_ego: ``(B, N, D, h, w, 3)`` frustum points in the grid's (ego) frame.
        grid: the lift grid; points outside ``[range_min, range_max)`` are dropped.
        collapse_z: sum over height too, giving a BEV map.
        index: ``_cell_index(points_ego, grid, collapse_z)`` when the caller already has it.
        channels_last: return the volume in the channels-last layout the sums are made in (the
            3D encoder's ``channels_last_3d``) rather than copying it to the contiguous one.
    Returns:
        ``(B, C, X, Y, Z)``, or ``(B, C, X, Y)`` when ``collapse_z``.
    """
    dims = check_shape(depth_prob, "B N D h w", name="depth_prob")
    check_shape(context, "B N C h w", name="context", dims={k: dims[k] for k in ("B", "N", "h", "w")})
    check_shape(points_ego, "B N D h w 3", name="points_ego", dims=dims)
    flat, cells = index if index is not None else _cell_index(points_ego, grid, collapse_z)
    # Accumulate in float32 (at least) even under autocast: many points add into one cell.
    acc = torch.promote_types(torch.promote_types(depth_prob.dtype, context.dtype), torch.float32)
    # Contiguous channels-last context: the broadcast product (and its backward) then runs over
    # dense rows, twice as fast as over the strided permuted view.
    ctx = context.to(acc).permute(0, 1, 3, 4, 2).contiguous()  # (B, N, h, w, C)
    vals = depth_prob.to(acc).unsqueeze(-1) * ctx.unsqueeze(2)  # (B, N, D, h, w, C)
    return _scatter_sum(vals, flat, cells, grid, collapse_z, channels_last)


VISIBILITY_CHANNELS = 3


def splat_visibility(
    depth_prob: torch.Tensor,
    points_ego: torch.Tensor,
    grid: Grid,
    collapse_z: bool = False,
    index: tuple[torch.Tensor, int] | None = None,
) -> torch.Tensor:
    """What the cameras' rays say about each cell, from the depth distributions alone.

    Per cell, over the frustum points that fall in it: the mean probability that the ray reaches
    the point (transmittance ``P(depth >= d)``: near 1 in front of the surface, near 0 behind it),
    the mean probability that it ends there (``p(d)``), and whether any ray passes (0/1). Free
    space in front of a surface and the unseen space behind it look alike in the lifted context
    (small ``p(d) x context`` in both); these channels tell them apart.

    Args:
        depth_prob: ``(B, N, D, h, w)``; points_ego: ``(B, N, D, h, w, 3)``; grid, collapse_z,
            index: as :func:`splat`.
    Returns:
        ``(B, 3, X, Y, Z)`` (or ``(B, 3, X, Y)``): transmittance, termination, seen.
    """
    dims = check_shape(depth_prob, "B N D h w", name="depth_prob")
    check_shape(points_ego, "B N D h w 3", name="points_ego", dims=dims)
    flat, cells = index if index is not None else _cell_index(points_ego, grid, collapse_z)
    p = depth_prob.float()
    reach = 1.0 - p.cumsum(2) + p  # P(depth >= bin d)
    vals = torch.stack([reach.clamp(0.0, 1.0), p, torch.ones_like(p)], -1)  # (B, N, D, h, w, 3)
    s = _scatter_sum(vals, flat, cells, grid, collapse_z)
    count = s[:, 2:3]
    mean = s[:, :2] / count.clamp_min(1.0)
    return torch.cat([mean, (count > 0).to(mean.dtype)], 1)


class _DilatedBlock(nn.Module):
    """Residual block of two 3x3 convs, the second dilated (wider context for depth)."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class DepthNet(nn.Module):
    """Per feature pixel: ``D`` depth logits and ``C`` context channels (3x3 conv, BN, ReLU,
    ``blocks`` residual blocks with dilations 1, 2, 4, ... for a wider view, 1x1)."""

    def __init__(self, in_channels: int, num_bins: int, context_channels: int, blocks: int = 0) -> None:
        super().__init__()
        self.num_bins = num_bins
        self.context_channels = context_channels
        if blocks < 0:
            raise ValueError(f"DepthNet: blocks must be >= 0, got {blocks}")
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            *[_DilatedBlock(in_channels, 2**i) for i in range(blocks)],
            nn.Conv2d(in_channels, num_bins + context_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x: (M, C_in, h, w)`` -> depth logits ``(M, D, h, w)``, context ``(M, C, h, w)``."""
        y = self.body(x)
        return y[:, : self.num_bins], y[:, self.num_bins :]


class LSSViewTransform(nn.Module):
    """Depth net + frustum lifting + splatting into the lift grid.

    Args:
        in_channels: channels of the image feature map.
        depth_range: (d_min, d_max, d_step) metres.
        context_channels: C, channels of the lifted features.
        stride: image-to-feature stride.
        grid: lift grid (ego frame).
        collapse_z: splat into a BEV map instead of voxels.
        depth_blocks: residual dilated blocks in the depth net (0 = one 3x3 conv).
        geometry_input: append :func:`ray_geometry` (4 channels) to the depth net's input.
        ground_z: ego-frame height of the ground plane for ``geometry_input``.
        visibility: append :func:`splat_visibility` (3 channels) to the lifted volume.

    Attributes:
        out_channels: channels of the lifted volume (``context_channels`` [+ 3]).
    """

    def __init__(
        self,
        in_channels: int,
        depth_range: tuple[float, float, float],
        context_channels: int,
        stride: int,
        grid: Grid,
        collapse_z: bool = False,
        depth_blocks: int = 0,
        geometry_input: bool = False,
        ground_z: float = 0.0,
        visibility: bool = False,
    ) -> None:
        super().__init__()
        bins = depth_bin_centers(*depth_range)
        self.register_buffer("depth_bins", bins, persistent=False)
        self.depth_range = tuple(depth_range)
        self.stride = stride
        self.grid = grid
        self.collapse_z = collapse_z
        self.geometry_input = geometry_input
        self.visibility = visibility
        self.out_channels = context_channels + (VISIBILITY_CHANNELS if visibility else 0)
        self.ground_z = ground_z
        self.channels_last = False
        """Return the volume channels-last (set by :class:`occkit.models.occnet.OccNet` when its 3D
        encoder runs in ``channels_last_3d``; the same values)."""
        extra = 4 if geometry_input else 0
        self.depth_net = DepthNet(in_channels + extra, bins.shape[0], context_channels, depth_blocks)
        for k, v in grid.constants().items():  # a forward builds no tensor from Python values (CUDA graphs)
            self.register_buffer(f"grid_{k}", v, persistent=False)

    def forward(
        self,
        feats: torch.Tensor,
        intrinsics: torch.Tensor,
        T_ego_from_cam: torch.Tensor,
        image_hw: tuple[int, int],
        depth_bins: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Lift image features into the grid.

        Args:
            feats: ``(B, N, C_in, h, w)`` image features at ``stride``.
            intrinsics: ``(B, N, 3, 3)`` of the input images of size ``image_hw``.
            T_ego_from_cam: ``(B, N, 4, 4)``.
            depth_bins: optional ``(B, N, h, w)`` integer bin per feature pixel from a depth sensor
                (-1 = unknown): where known the lift uses that bin (one-hot) instead of the predicted
                distribution (a LiDAR-camera model; the returned ``depth_prob`` stays the prediction).
        Returns:
            volume ``(B, C, X, Y, Z)`` (or ``(B, C, X, Y)`` when collapsing z),
            depth_prob ``(B, N, D, h, w)``, context ``(B, N, C, h, w)``.
        """
        check_shape(feats, "B N C h w", name="feats")
        B, N, Cin, h, w = feats.shape
        H, W = image_hw
        if (h * self.stride, w * self.stride) != (H, W):
            raise ValueError(f"LSSViewTransform: features {(h, w)} x stride {self.stride} != image {(H, W)}")
        x = feats.flatten(0, 1)
        if self.geometry_input:
            geo = ray_geometry(image_hw, self.stride, intrinsics, T_ego_from_cam, self.ground_z)
            x = torch.cat([x, geo.flatten(0, 1).to(x.dtype)], 1)
        logits, context = self.depth_net(x)  # (B*N, D, h, w), (B*N, C, h, w)
        depth_prob = logits.softmax(1).view(B, N, -1, h, w)
        context = context.view(B, N, -1, h, w)
        frustum = make_frustum(image_hw, self.stride, self.depth_bins)  # (D, h, w, 3)
        points = frustum_to_ego(frustum, intrinsics, T_ego_from_cam)  # (B, N, D, h, w, 3)
        consts = (self.grid_range_min, self.grid_voxel_size, self.grid_shape)
        index = _cell_index(points, self.grid, self.collapse_z, consts)  # shared by both splats
        lift_prob = depth_prob
        if depth_bins is not None:
            check_shape(depth_bins, "B N h w", name="depth_bins", dims={"B": B, "N": N, "h": h, "w": w})
            D = depth_prob.shape[2]
            onehot = F.one_hot(depth_bins.long().clamp(0, D - 1), D).permute(0, 1, 4, 2, 3).to(depth_prob.dtype)
            lift_prob = torch.where((depth_bins >= 0)[:, :, None], onehot, depth_prob)
        volume = splat(
            lift_prob,
            context,
            points,
            self.grid,
            collapse_z=self.collapse_z,
            index=index,
            channels_last=self.channels_last,
        )
        if self.visibility:
            vis = splat_visibility(lift_prob, points, self.grid, collapse_z=self.collapse_z, index=index)
            volume = torch.cat([volume, vis.to(volume.dtype)], 1)
        return volume, depth_prob, context


# ---------------------------------------------------------------------------------------- sampling lift
def invert_poses(T: torch.Tensor) -> torch.Tensor:
    """``torch.linalg.inv`` of rigid ``(..., 4, 4)`` camera poses; while exporting to ONNX, which has
    no matrix-inverse operator, the rigid inverse :func:`occkit.geometry.transforms.invert_transform`
    (R^T, elementwise: the same matrices up to float rounding), so the exported graph takes the poses
    as inputs."""
    if torch.onnx.is_in_onnx_export():
        return invert_transform(T)
    return torch.linalg.inv(T)


def project_points(
    points_ego: torch.Tensor,
    intrinsics: torch.Tensor,
    T_ego_from_cam: torch.Tensor,
    image_hw: tuple[int, int],
    eps: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where ego-frame points land in each camera, in ``grid_sample`` coordinates.

    Args:
        points_ego: ``(P, 3)`` points (e.g. voxel centres).
        intrinsics: ``(B, N, 3, 3)`` of images of size ``image_hw``; T_ego_from_cam: ``(B, N, 4, 4)``.
        eps: points nearer than this camera z (metres) count as behind the camera.
    Returns:
        xy: ``(B, N, P, 2)`` in [-1, 1] across the image (``align_corners=False``: -1 and 1 are the
        outer edges of the border pixels, pixel centres at ``u + 0.5``); valid: ``(B, N, P)`` bool,
        in front of the camera and inside the image.
    """
    check_shape(points_ego, "P 3", name="points_ego")
    dims = check_shape(intrinsics, "B N 3 3", name="intrinsics")
    check_shape(T_ego_from_cam, "B N 4 4", name="T_ego_from_cam", dims=dims)
    H, W = image_hw
    with torch.autocast(device_type=points_ego.device.type, enabled=False):
        T = invert_poses(T_ego_from_cam.float())  # (B, N, 4, 4) cam <- ego
        cam = points_ego.float() @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]  # (B, N, P, 3)
        z = cam[..., 2]
        uv = cam @ intrinsics.float().transpose(-1, -2)  # (B, N, P, 3)
        uv = uv[..., :2] / z.clamp(min=eps)[..., None]
        xy = torch.stack([uv[..., 0] / W * 2 - 1, uv[..., 1] / H * 2 - 1], -1)
        valid = (z > eps) & (xy.abs() <= 1).all(-1)
    return xy, valid


def sample_volume(
    feats: list[torch.Tensor], xy: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear samples of image features at projected points, summed over the feature levels
    (MonoScene's FLoSP) and averaged over the cameras that see each point.

    Args:
        feats: per level ``(B, N, C, h_l, w_l)`` (the same ``C``; any strides: ``xy`` is relative
            to the image).
        xy: ``(B, N, P, 2)``; valid: ``(B, N, P)`` from :func:`project_points`.
    Returns:
        ``(B, C, P)`` mean features (0 where no camera sees a point) and ``(B, P)`` the number of
        cameras that see it.
    """
    B, N, P = valid.shape
    C = feats[0].shape[2]
    acc = torch.promote_types(feats[0].dtype, torch.float32)
    out = feats[0].new_zeros(B, C, P, dtype=acc)
    for n in range(N):  # one camera at a time: (B, C, 1, P) per level, not (B*N, C, 1, P)
        g = xy[:, n, None].to(acc)  # (B, 1, P, 2)
        m = valid[:, n, None].to(acc)  # (B, 1, P)
        for f in feats:
            s = F.grid_sample(
                f[:, n].to(acc), g, mode="bilinear", padding_mode="zeros", align_corners=False
            )  # (B, C, 1, P)
            out = out + s[:, :, 0] * m
    count = valid.sum(1)  # (B, P)
    return out / count.clamp(min=1)[:, None].to(acc), count


class SampleViewTransform(nn.Module):
    """The voxel-centre sampling lift (EasyOcc, MonoScene's FLoSP): no depth distribution.

    Every lift-grid voxel centre is projected into every camera; each feature level (after a 1x1
    conv to ``out_channels``) is sampled bilinearly there; levels are summed, cameras that see the
    voxel averaged. Along a camera ray all voxels get the same features: the 3D network behind
    decides where the surface is, helped by the extra channels (the fraction of cameras that see
    the voxel, and with ``coords`` its normalised ego position).

    Args:
        in_channels: channels of each feature level (one level: one camera setup's neck output).
        out_channels: C, channels sampled from each level.
        grid: lift grid (ego frame).
        collapse_z: average the volume over z into a BEV map (the BEV head).
        coords: append the voxel centre's ego coordinates scaled to [-1, 1] by the grid (3 channels).

    Attributes:
        out_channels: channels of the lifted volume (``C + 1 [+ 3]``).
    """

    def __init__(
        self, in_channels: list[int], out_channels: int, grid: Grid, collapse_z: bool = False, coords: bool = False
    ) -> None:
        super().__init__()
        if not in_channels:
            raise ValueError("SampleViewTransform: in_channels is empty (no feature level to sample)")
        self.proj = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.grid = grid
        self.collapse_z = collapse_z
        self.coords = coords
        self.out_channels = out_channels + 1 + (3 if coords else 0)
        centres = grid.centers().reshape(-1, 3)  # (X*Y*Z, 3)
        self.register_buffer("centres", centres, persistent=False)
        lo, hi = torch.tensor(grid.range_min), torch.tensor(grid.range_max)
        self.register_buffer(
            "coords_norm", ((centres - lo) / (hi - lo) * 2 - 1).T.contiguous(), persistent=False
        )  # (3, P)

    def forward(
        self,
        feats: list[torch.Tensor],
        intrinsics: torch.Tensor,
        T_ego_from_cam: torch.Tensor,
        image_hw: tuple[int, int],
    ) -> torch.Tensor:
        """Lift image features into the grid.

        Args:
            feats: per level ``(B, N, C_l, h_l, w_l)``, as many levels as ``in_channels``.
            intrinsics: ``(B, N, 3, 3)`` of the input images of size ``image_hw``.
            T_ego_from_cam: ``(B, N, 4, 4)``.
        Returns:
            volume ``(B, out_channels, X, Y, Z)`` (or ``(B, out_channels, X, Y)`` with ``collapse_z``).
        """
        if len(feats) != len(self.proj):
            raise ValueError(f"SampleViewTransform: expected {len(self.proj)} feature levels, got {len(feats)}")
        B, N = feats[0].shape[:2]
        levels = []
        for f, proj in zip(feats, self.proj):
            check_shape(f, "B N C h w", name="feats", dims={"B": B, "N": N})
            y = proj(f.flatten(0, 1))  # (B*N, C, h, w)
            levels.append(y.view(B, N, *y.shape[1:]))
        xy, valid = project_points(self.centres, intrinsics, T_ego_from_cam, image_hw)
        vol, count = sample_volume(levels, xy, valid)  # (B, C, P), (B, P)
        parts = [vol, (count.to(vol.dtype) / N)[:, None]]
        if self.coords:
            parts.append(self.coords_norm.to(vol.dtype)[None].expand(B, -1, -1))
        X, Y, Z = self.grid.shape
        volume = torch.cat(parts, 1).view(B, -1, X, Y, Z)
        return volume.mean(-1) if self.collapse_z else volume
