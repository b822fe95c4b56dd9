"""The README picture of OccScene: for a few val frames, the layout (BEV) and the images one
occscene run generates from the scene's text with that layout through MDA, from the text alone,
and with perception feedback (no layout), beside the real frame.

  python benchmarks/occscene_figure.py --ckpt runs/occscene_fix2000/gen_mda_s0/run --data runs/abl_world \
      --out docs/images/occscene_generation.png
  python benchmarks/occscene_figure.py --ckpt runs/abl/occscene-nyu/runs/gen_mda_s0 --data INDOOR_WORLD \
      --out docs/images/occscene_indoor_generation.png     (indoors: NYUv2's palette, the room's floor plan)
"""

from __future__ import annotations

import argparse
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=3, help="frames (rows)")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from occkit.data.sample import collate
    from occkit.experiment import build_dataset, dataset_format, load_checkpoint_method
    from occkit.generation.figure import generation_figure
    from occkit.generation.frustum import frustum_mask
    from occkit.generation.generate import conditioning_frames
    from occkit.generation.losses import one_hot_occupancy
    from occkit.generation.sampling import sample
    from occkit.generation.schedule import sampling_scheduler
    from occkit.viz.draw import save_png

    method, cfg, folder, _ = load_checkpoint_method(args.ckpt, "cpu")
    fmt = dataset_format(cfg, args.data)  # the layouts' palette and grid (Occ3D's outdoors, NYUv2's indoors)
    ds, picks = conditioning_frames(
        lambda root, split: build_dataset(cfg, root, split, train=False), args.data, "val", "val", args.n
    )
    batch = collate([ds[j] for j in picks])
    hw = tuple(cfg.data.image_aug.out_hw)
    sched = sampling_scheduler(cfg.occscene.schedule)
    texts = [d or "" for d in batch.descriptions]
    occ = one_hot_occupancy(batch.occupancy, method.model_cfg.num_classes)
    common = dict(steps=args.steps, seed=args.seed)
    gen = method.generator
    with_layout = sample(gen, sched, texts, batch.intrinsics, batch.T_ego_from_cam, hw, occupancy=occ, **common)
    text_only = sample(gen, sched, texts, batch.intrinsics, batch.T_ego_from_cam, hw, **common)
    feedback = sample(
        gen,
        sched,
        texts,
        batch.intrinsics,
        batch.T_ego_from_cam,
        hw,
        perception=method.perceive,
        feedback=True,
        **common,
    )
    mask = frustum_mask(method.model.output_grid, batch.intrinsics, batch.T_ego_from_cam, hw)
    if batch.mask_camera is not None:
        mask = mask & batch.mask_camera.bool()
    rows = [
        {
            "panels": [
                ("layout via MDA", with_layout.images[b]),
                ("text only", text_only.images[b]),
                ("perception feedback", feedback.images[b]),
                ("real frame", batch.images[b]),
            ],
            "semantics": batch.occupancy[b],
            "mask": mask[b],
            "text": texts[b],
        }
        for b in range(len(picks))
    ]
    step = folder.name
    save_png(
        args.out,
        generation_figure(
            rows, title=f"OccScene ({cfg.data.cameras[0]}, {hw[0]}x{hw[1]}, {step}, same noise per row)", fmt=fmt
        ),
    )
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
