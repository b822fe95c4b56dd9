"""The README picture of cigocc / kitti-mono: for validation frames of a SemanticKITTI-layout
dataset, the camera image, the ground truth and the completed scene in bird's-eye view (top-most
non-empty voxel per column, shaded by height; invalid voxels greyed in the ground truth), with the
frame's SSC completion IoU and mIoU.

    python benchmarks/cigocc_figure.py --ckpt runs/cigocc_abl/full_sam_s0 --data runs/abl_kitti \\
        --out docs/images/cigocc_completion.png --frames 0 4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="run or checkpoint folder")
    ap.add_argument("--data", required=True, help="SemanticKITTI-layout root")
    ap.add_argument("--split", default="val")
    ap.add_argument("--frames", type=int, nargs="+", default=[0], help="indices into the split")
    ap.add_argument("--out", required=True, help="PNG path")
    args = ap.parse_args()
    import torch

    from occkit.data.sample import collate
    from occkit.engine.evaluate import predict_labels
    from occkit.experiment import build_dataset, load_checkpoint_method
    from occkit.fileio import write_bytes_atomic
    from occkit.labels import SEMANTICKITTI_CLASSES, SEMANTICKITTI_PALETTE
    from occkit.metrics.ssc import SSCMetric
    from occkit.viz.bev import bev_image
    from occkit.viz.draw import fit_width, hstack, legend, titled, vstack

    torch.set_num_threads(1)
    method, cfg, folder, dev = load_checkpoint_method(args.ckpt, "cpu")
    cfg.data.priors, cfg.data.prior_kinds = None, ()
    ds = build_dataset(cfg, args.data, args.split)
    rows = []
    for i in args.frames:
        s = ds[i]
        b = collate([s])
        pred = predict_labels(method, b, dev)[0]
        gt, valid = s.occupancy, s.mask_camera.bool()
        m = SSCMetric()
        m.update(pred[None], gt[None], ~valid[None])
        sc = m.compute()
        gt_draw = torch.where(gt == 255, torch.zeros_like(gt), gt).numpy().astype(np.uint8)
        kw = dict(palette=SEMANTICKITTI_PALETTE, free=0, scale=1)
        bev_gt = bev_image(gt_draw, valid.numpy(), mask_mode="grey", **kw)
        bev_pred = bev_image(pred.numpy().astype(np.uint8), None, **kw)
        img = (s.images[0].permute(1, 2, 0).numpy() * 255).clip(0, 255).astype(np.uint8)
        img = fit_width(img, 2 * bev_gt.shape[1])
        rows.append(
            vstack(
                [
                    titled(img, f"{s.token}: image_2 (input)"),
                    hstack(
                        [
                            titled(bev_gt, "ground truth (BEV)"),
                            titled(bev_pred, f"{cfg.method}: IoU {sc['completion_iou']:.1f} mIoU {sc['ssc_miou']:.1f}"),
                        ],
                        gap=4,
                    ),
                ],
                gap=2,
            )
        )
    w = max(r.shape[1] for r in rows)
    fig = vstack(rows + [legend(SEMANTICKITTI_CLASSES, SEMANTICKITTI_PALETTE, w)], gap=8)
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(fig).save(buf, format="PNG")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(args.out, buf.getvalue())
    print(f"wrote {args.out} ({fig.shape[1]}x{fig.shape[0]}) from {folder}")


if __name__ == "__main__":
    main()
