"""``occkit geometry``: how well a run's p(occupied) ranks occupied above free voxels, before any threshold.

For a run whose ``predict`` cuts p(occupied) at a threshold (``langocc``'s density, ``render_sup``
with ``occupied_threshold``), its geometry IoU measures the threshold as much as the field. This
scores the field over a split's frames and a mask (:mod:`occkit.metrics.geometry_rank`):
geometry AP, the IoU at the run's own threshold (what ``predict`` uses), and the best IoU with the
threshold that reaches it (chosen by reading the truth: an upper bound of any calibration, and the
threshold to set as ``occupied_threshold`` if the validation labels may choose it).

p(occupied) is the method's own (``langocc``: from its density) or, for a model with class logits,
1 - p(free class). The truth is the data's, its free class its format's (Occ3D's: class 17). The figures are exact,
so every scored voxel's p is kept (5 bytes: about 1.4 MB per frame of the synthetic world's camera
mask; ``--max-frames`` bounds it on a large split). Prints the figures and writes them to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse

from occkit.commands.checks import nonneg_int
from occkit.commands.options import add_ckpt, add_data, add_device, add_mask, add_out, add_split


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_ckpt(p)
    add_data(p, "dataset root with ground truth")
    add_split(p, "split")
    add_mask(p, "voxels scored", default="camera", choices=("camera", "lidar", "none"))
    p.add_argument(
        "--max-frames",
        type=nonneg_int,
        default=0,
        help="at most this many frames, evenly spaced (0 = all; each keeps its scored voxels in memory)",
    )
    add_out(p, "write the result JSON here", required=False)
    add_device(p)


def p_occupied(method, logits):
    """``(X, Y, Z)`` p(occupied) of one frame's logits ``(C, X, Y, Z)``: the method's own
    ``p_occupied`` where it has one, else 1 - softmax's free class (``cfg.free``, or the last)."""
    import torch

    if hasattr(method, "p_occupied"):
        return method.p_occupied(logits)
    free = getattr(getattr(method, "cfg", None), "free", logits.shape[0] - 1)
    return -torch.expm1(torch.log_softmax(logits.float(), 0)[free])


def run(args: argparse.Namespace) -> int:
    import torch

    from occkit.commands.summary import figure, frames_to_score, write_result
    from occkit.data.sample import collate
    from occkit.experiment import build_dataset, load_checkpoint_method
    from occkit.formats import format_of
    from occkit.metrics.geometry_rank import GeometryRanking
    from occkit.outputs import check_output_file

    if args.out is not None:
        check_output_file(args.out, {"--data": args.data}, command="geometry")
    method, cfg, folder, device = load_checkpoint_method(args.ckpt, args.device)
    cfg.data.priors, cfg.data.prior_kinds, cfg.data.load_extras = None, (), False
    ds = build_dataset(cfg, args.data, args.split, load_gt=True)
    idx = frames_to_score(ds, args.data, args.split, args.max_frames)
    fmt = format_of(ds)
    free = fmt.classes.free
    if free is None:
        raise ValueError(f"{args.data}: {fmt.display_name} (format {fmt.name}) has no free class to score against")
    threshold = float(method.threshold()) if hasattr(method, "threshold") else None
    rank = GeometryRanking()
    method.eval()
    with torch.no_grad():
        for i in idx:
            s = ds[i]
            if s.occupancy is None:
                raise ValueError(f"{args.data}: frame {s.token} has no ground truth")
            mask = None if args.mask == "none" else getattr(s, f"mask_{args.mask}")
            if args.mask != "none" and mask is None:
                raise ValueError(f"{args.data}: frame {s.token} has no {args.mask} mask (use --mask none)")
            logits = method.forward(collate([s]).to(device)).logits[0]
            rank.add(p_occupied(method, logits).float().cpu(), s.occupancy.long() != free, mask)
    result = rank.compute(threshold)
    result.update(
        {
            "checkpoint": str(folder),
            "method": cfg.method,
            "threshold": threshold,
            "frames": len(idx),
            "split": args.split,
            "mask": args.mask,
            "data": str(args.data),
        }
    )
    own = (
        ""
        if threshold is None
        else f"; at its threshold {threshold:.3g}: IoU {figure(result['geometry_iou_at_threshold'])}"
    )
    print(
        f"occkit geometry: {cfg.method} {folder}, {len(idx)} frames, mask {args.mask} ({result['voxels']} voxels, "
        f"{figure(result['occupied_fraction'])} % occupied)"
    )
    print(
        f"  geometry AP {figure(result['geometry_ap'])}; best IoU {figure(result['geometry_iou_best'])} at p >= "
        f"{figure(result['best_threshold'])} (chosen by the truth){own}; mean p(occupied) at occupied / free voxels "
        f"{figure(result['p_at_occupied_mean'])} / {figure(result['p_at_free_mean'])}"
    )
    return write_result(args.out, result, "geometry")
