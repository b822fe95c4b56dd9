"""The camera occupancy network and its parts.

- :mod:`occkit.models.occnet`: :class:`OccNetConfig`, :func:`build_occnet` (assembles everything),
  :class:`OccNet` (``forward(images, intrinsics, T_ego_from_cam) -> OccNetOutput``).
- :mod:`occkit.models.backbone`: timm ``features_only`` backbone (+ local safetensors weights).
- :mod:`occkit.models.neck`: FPN-style neck.
- :mod:`occkit.models.lift`: LSS view transform (depth bins, frustum, splat) in pure PyTorch.
- :mod:`occkit.models.encoder3d`: residual U-Net encoder, 3D (voxels) or 2D (BEV).
- :mod:`occkit.models.heads`: per-voxel head and FlashOcc channel-to-height BEV head.
"""
