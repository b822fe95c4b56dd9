"""Generate scenes from a trained ``occscene`` run and write them as a dataset
(:func:`generate_scenes`, behind ``occkit generate``).

Three ways to condition, per sample:

- ``occupancy``: the ground-truth layout of a real frame (a token, or every frame of a split in
  turn) through MDA; the written labels are that layout (in the generated cameras' frusta);
- ``from_perception``: no layout: at each denoising step the run's perception model reads the
  current clean-image estimate and its occupancy returns through MDA; the labels written are the
  perception model's prediction on the final images;
- neither: text only (no MDA residuals); the labels are again the perception model's prediction;
- ``occupancy`` with ``use_layout=False``: text-only sampling, the frames' layouts written as
  labels all the same (the reference a text-only generator is scored against: it never saw them).

The real frames also give each sample its camera calibration, ego pose and (unless ``text`` is
given) the text: their scene's description.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from occkit.data.occ3d import SPLITS
from occkit.data.sample import collate
from occkit.generation.dataset import GeneratedFrame, write_generated_dataset
from occkit.generation.frustum import frustum_mask
from occkit.generation.losses import one_hot_occupancy
from occkit.generation.sampling import sample
from occkit.generation.schedule import sampling_scheduler


def conditioning_frames(make_dataset, data: str | os.PathLike, occupancy: str | None, split: str, n: int):
    """(dataset, indices of the frames each of the ``n`` samples takes its calibration, text and
    layout from): ``occupancy`` a token (every sample from it) or a split; else ``split``.
    ``make_dataset(root, split)`` gives a split's frames as the run sees them (the composition root
    passes ``occkit.experiment.build_dataset`` with the run's config, evaluation transform)."""
    from occkit.data.wrappers import base_dataset

    if occupancy is not None and occupancy not in SPLITS:
        ds = make_dataset(data, "all")
        base = base_dataset(ds)
        try:
            return ds, [base.index_of(occupancy)] * n
        except KeyError:
            raise KeyError(f"--occupancy {occupancy!r}: neither a split ({', '.join(SPLITS)}) nor a frame token of {data}") from None
    ds = make_dataset(data, occupancy or split)
    m = len(ds)
    if m == 0:
        raise ValueError(f"{data}: split '{occupancy or split}' has no frames")
    if n <= m:  # evenly spread over the split (every scene visited)
        return ds, [(i * m) // n for i in range(n)]
    return ds, [i % m for i in range(n)]


@torch.no_grad()
def generate_scenes(
    method, cfg, data: str | os.PathLike, out: str | os.PathLike, n: int, text: str | None = None,
    occupancy: str | None = None, from_perception: bool = False, split: str = "val", steps: int | None = None,
    guidance_scale: float = 1.0, seed: int = 0, batch_size: int = 4, progress: bool = True,
    record: dict[str, Any] | None = None, use_layout: bool = True, make_dataset=None,
) -> tuple[Path, list[dict]]:
    """Sample ``n`` frames and write them under ``out`` (:mod:`occkit.generation.dataset`).

    ``make_dataset(root, split)`` (required) gives the conditioning frames as the run sees them
    (the composition root passes ``occkit.experiment.build_dataset`` with the run's config).

    Returns (``out``, rows for :func:`occkit.generation.figure.generation_figure`, the first 4).
    """
    gen = getattr(method, "generator", None)
    if gen is None:
        raise ValueError("this run has no generator (occscene.train_generator was false)")
    if occupancy is not None and from_perception:
        raise ValueError("give --occupancy or --from-perception, not both")
    if occupancy is not None and use_layout and gen.mda is None:
        raise ValueError("--occupancy: this run's generator has no MDA (occscene.generator.mda.enabled was false)")
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be >= 1, got {n}, {batch_size}")
    method.eval()
    device = gen.latent_scale.device
    if make_dataset is None:
        raise ValueError("generate_scenes: make_dataset (root, split) -> dataset is required")
    ds, picks = conditioning_frames(make_dataset, data, occupancy, split, n)
    scheduler = sampling_scheduler(cfg.occscene.schedule)
    steps = steps or cfg.occscene.schedule.sample_steps
    H, W = cfg.data.image_aug.out_hw
    frames: list[GeneratedFrame] = []
    rows: list[dict] = []
    it = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="generate", unit="batch")
    for start in it:
        idx = picks[start : start + batch_size]
        batch = collate([ds[j] for j in idx]).to(device)
        texts = [text if text is not None else (d or "") for d in batch.descriptions]
        occ = one_hot_occupancy(batch.occupancy, method.model_cfg.num_classes) if occupancy is not None and use_layout else None
        res = sample(gen, scheduler, texts, batch.intrinsics, batch.T_ego_from_cam, (H, W), occupancy=occ,
                     perception=method.perceive, feedback=from_perception, steps=steps, guidance_scale=guidance_scale,
                     seed=seed + start)
        seen = frustum_mask(method.model.output_grid, batch.intrinsics, batch.T_ego_from_cam, (H, W))
        for b, j in enumerate(idx):
            i = start + b
            if occupancy is not None:
                sem, mask = batch.occupancy[b], seen[b] & batch.mask_camera[b].bool()
            else:
                sem, mask = res.perception_logits[b].argmax(0), seen[b]
            frames.append(GeneratedFrame(
                token=f"gen{seed:04d}_{i:06d}", scene=f"gen-{batch.scenes[b]}", text=texts[b], images=res.images[b].cpu(),
                intrinsics=batch.intrinsics[b].cpu(), T_ego_from_cam=batch.T_ego_from_cam[b].cpu(), semantics=sem.cpu(),
                mask=mask.cpu(), T_global_from_ego=batch.T_global_from_ego[b].cpu(), source=batch.tokens[b]))
            if len(rows) < 4:
                rows.append({"panels": [("generated", res.images[b].cpu()), ("real frame", batch.images[b].cpu())],
                             "semantics": sem.cpu(), "mask": mask.cpu(), "text": texts[b]})
    rec = {"n": n, "text": text, "occupancy": occupancy, "use_layout": use_layout, "from_perception": from_perception, "split": split, "steps": steps,
           "guidance_scale": guidance_scale, "seed": seed, "data": str(data), **(record or {})}
    root = write_generated_dataset(out, frames, tuple(cfg.data.cameras), rec)
    return root, rows
