"""Scoring generated scenes without pretrained Inception or CLIP weights.

The *judge* is an occkit run trained on real synthetic frames (an ``occscene`` run with
``train_generator: false``, or a ``supervised`` run) with its occupancy network at ``.model``:

- image quality: FID and KID between the real split's and the generated images in the feature
  space of the judge's image backbone (timm ResNet trained by occkit on the synthetic images;
  the deepest kept level, global average pooled, averaged over cameras);
- layout consistency: the judge predicts occupancy from the generated images; its mIoU against
  the occupancy written with them (the conditioning layout), inside their mask; the judge's mIoU
  on the real split (inside the cameras' frusta and the camera mask) is the ceiling to read it by.
  The mIoU is the data format's own (its first metric: Occ3D's in camera-mask mode, NYUv2's SSC mIoU).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from occkit.data.sample import Batch
from occkit.generation.metrics import frechet_distance, kernel_distance
from occkit.geometry.frustum import frustum_mask


def judge_network(method):
    net = getattr(method, "model", None)
    if net is None or not hasattr(net, "backbone"):
        raise ValueError(f"the judge ({type(method).__name__}) has no occupancy network at .model")
    return net


def judge_num_classes(net) -> int:
    """The classes the judge's network predicts: its model config's (``net.mcfg`` where the network
    keeps its own method's config as ``cfg``, as CIGOcc's indoor and outdoor networks do; else
    ``net.cfg``)."""
    for cfg in (getattr(net, "mcfg", None), getattr(net, "cfg", None)):
        n = getattr(cfg, "num_classes", None)
        if isinstance(n, int):
            return n
    raise ValueError(f"the judge ({type(net).__name__}) does not say how many classes it predicts")


@torch.no_grad()
def image_features(net, images: torch.Tensor) -> torch.Tensor:
    """``(B, N, 3, H, W)`` in [0, 1] -> ``(B, D)``: the backbone's deepest level, pooled, camera mean."""
    B, N = images.shape[:2]
    x = (images.flatten(0, 1) - net.mean) / net.std  # (B*N, 3, H, W)
    f = net.backbone(x)[-1].float().mean((2, 3))  # (B*N, D)
    return f.view(B, N, -1).mean(1)


@torch.no_grad()
def score_frames(
    method, batches, device: torch.device, frustum: bool = True, fmt=None
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Features ``(F, D)`` of every frame and the judge's mIoU over ``batches``, counted by the scoring
    core (:class:`occkit.scoring.core.Scoring`): the first metric of ``fmt`` (the frames'
    :class:`occkit.formats.DatasetFormat`; None: Occ3D-nuScenes), in its
    camera-mask mode where it has one (Occ3D's), counting only the voxels of the frames' camera mask,
    inside the cameras' frusta when ``frustum``: for a format scored without a mask option (NYUv2's,
    every known voxel) the voxels outside are given its ignore label instead."""
    from occkit.formats import Targets, default_format
    from occkit.scoring.core import Scoring

    net = judge_network(method)
    fmt = default_format() if fmt is None else fmt
    scoring = Scoring(fmt, mask="camera", num_classes=judge_num_classes(net), device=device)  # the one core
    # a format scored under a mask option (Occ3D's camera mask) counts the mask; one that scores every known voxel
    # (NYUv2's: no mask option) is given its ignore label outside the mask
    ignore = None if "mask" in fmt.scoring.folder_options else fmt.classes.ignore
    feats, frames = [], 0
    for batch in batches:
        batch: Batch = batch.to(device)
        feats.append(image_features(net, batch.images).cpu())
        logits = method.predict(batch)
        mask = (
            batch.mask_camera.bool()
            if batch.mask_camera is not None
            else torch.ones_like(batch.occupancy, dtype=torch.bool)
        )
        if frustum:
            mask = mask & frustum_mask(
                net.output_grid, batch.intrinsics, batch.T_ego_from_cam, tuple(batch.images.shape[-2:])
            )
        occ = batch.occupancy if ignore is None else batch.occupancy.masked_fill(~mask, ignore)
        scoring.update(logits.argmax(1), Targets(occupancy=occ, tokens=list(batch.tokens), mask_camera=mask))
        frames += len(batch.tokens)
    scores = scoring.compute()  # the first metric's miou
    return torch.cat(feats), {"miou": scores["miou"], "frames": frames}


def evaluate_generation(
    judge,
    make_dataset,
    gen_root: str | os.PathLike,
    real_root: str | os.PathLike,
    real_split: str = "val",
    device: torch.device | str = "cpu",
    batch_size: int = 4,
    kid_subset: int = 100,
) -> dict[str, Any]:
    """FID, KID (judge features, real split vs generated) and layout mIoU; see the module docstring.

    ``make_dataset(root, split)`` gives the frames of a split as the judge sees them (the composition
    root passes ``occkit.experiment.build_dataset`` with the judge's config, evaluation transform)."""
    from occkit.engine.data import eval_batches

    device = torch.device(device)
    judge.to(device).eval()
    from occkit.formats import format_of

    real = make_dataset(real_root, real_split)
    gen = make_dataset(gen_root, "all")
    fmt = format_of(real)
    if len(real) < 2 or len(gen) < 2:
        raise ValueError(
            f"evaluate_generation: need at least 2 frames each, got {len(real)} real ({real_root}, {real_split}) "
            f"and {len(gen)} generated ({gen_root})"
        )
    f_real, s_real = score_frames(judge, eval_batches(real, batch_size), device, fmt=fmt)
    f_gen, s_gen = score_frames(
        judge, eval_batches(gen, batch_size), device, frustum=False, fmt=format_of(gen)
    )  # their masks are the frusta
    floor = real_floor(judge, make_dataset, real_root, real_split, fmt, int(f_gen.shape[0]), f_real, device, batch_size)
    if floor is not None:
        floor["kid"] = kernel_distance(f_real, floor.pop("features"), subset_size=kid_subset)
    return {
        "fid": frechet_distance(f_real, f_gen),
        "kid": kernel_distance(f_real, f_gen, subset_size=kid_subset),
        "floor": floor,
        "layout_miou": s_gen["miou"],
        "judge_real_miou": s_real["miou"],
        "n_real": int(f_real.shape[0]),
        "n_gen": int(f_gen.shape[0]),
        "feature_dim": int(f_real.shape[1]),
        "features": "judge image backbone, deepest level, global average pool",
    }


def real_floor(
    judge,
    make_dataset,
    real_root: str | os.PathLike,
    real_split: str,
    fmt: Any,
    n: int,
    f_real: torch.Tensor,
    device: torch.device,
    batch_size: int,
) -> dict[str, Any] | None:
    """The floor a generated set's FID and KID are read against: ``n`` real frames of another split of
    the same data (taken evenly over it) against the real split, in the same judge's features. With
    few frames in many feature dimensions FID is dominated by its estimation error (32 frames, 512
    dimensions: the covariances are of rank 31), so a generated set's FID near this figure says
    nothing; KID is unbiased. None (and nothing measured) when the real split is ``all`` or the data
    has no other split with at least ``n`` frames. Returns ``fid``, ``features`` (the caller takes KID
    and drops them), ``n`` and ``split``."""
    from torch.utils.data import Subset

    from occkit.engine.data import eval_batches

    if real_split == "all":  # every other split is part of the real frames: no independent set
        return None
    for split in (s for s in fmt.splits if s != real_split):
        try:
            other = make_dataset(real_root, split)
        except (OSError, ValueError):
            continue
        if len(other) < n or n < 2:
            continue
        picks = [round(i * (len(other) - 1) / max(1, n - 1)) for i in range(n)]
        f_other, _ = score_frames(judge, eval_batches(Subset(other, picks), batch_size), device, fmt=fmt)
        return {"fid": frechet_distance(f_real, f_other), "features": f_other, "n": n, "split": split}
    return None
