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

Resuming: with a work folder (``work``; ``occkit generate`` uses :func:`partial_folder`, a hidden
folder beside ``--out``), each sampled batch is saved there at once (``batch_NNNNNN/``: the frames
as they will be written, images as the uint8 of the PNGs; a size + SHA-256 record, atomically),
beside a record of the settings that decide the output (:data:`SETTINGS_FILE`). Batch ``start`` is
seeded with ``seed + start``, so a run started again with the same settings samples only the
batches that are missing or no longer intact and writes a dataset byte-identical to an
uninterrupted run's. A work folder of other settings is refused (never mixed, never deleted).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from occkit.data.sample import collate
from occkit.fileio import FILE_SUMS, files_intact, record_files, save_npz_atomic, write_json_atomic
from occkit.generation.dataset import GeneratedFrame, write_generated_dataset
from occkit.generation.losses import one_hot_occupancy
from occkit.generation.sampling import sample
from occkit.generation.schedule import sampling_scheduler
from occkit.geometry.frustum import frustum_mask
from occkit.viz.cameras import images_uint8


def conditioning_frames(
    make_dataset,
    data: str | os.PathLike,
    occupancy: str | None,
    split: str,
    n: int,
    splits: tuple[str, ...] = ("train", "val"),
):
    """(dataset, indices of the frames each of the ``n`` samples takes its calibration, text and
    layout from): ``occupancy`` a token (every sample from it) or a split (one of ``splits``, the
    data format's); else ``split``. ``make_dataset(root, split)`` gives a split's frames as the run
    sees them (the composition root passes ``occkit.experiment.build_dataset`` with the run's
    config, evaluation transform)."""
    from occkit.data.wrappers import base_dataset

    if occupancy is not None and occupancy not in splits:
        ds = make_dataset(data, "all")
        base = base_dataset(ds)
        try:
            return ds, [base.index_of(occupancy)] * n
        except KeyError:
            raise KeyError(
                f"--occupancy {occupancy!r}: neither a split ({', '.join(splits)}) nor a frame token of {data}"
            ) from None
    ds = make_dataset(data, occupancy or split)
    m = len(ds)
    if m == 0:
        raise ValueError(f"{data}: split '{occupancy or split}' has no frames")
    if n <= m:  # evenly spread over the split (every scene visited)
        return ds, [(i * m) // n for i in range(n)]
    return ds, [i % m for i in range(n)]


SETTINGS_FILE = "settings.json"
"""In the work folder: the settings that decide the output (what a rerun must match to continue)."""

#: How many frames the preview picture shows (the first ones).
PREVIEW_ROWS = 4


def partial_folder(out: str | os.PathLike) -> Path:
    """The work folder of a generation into ``out``: ``.NAME.generate-partial`` beside it (a
    fixed name, found again by the same command; not ``.NAME.*.tmp``, which
    :func:`occkit.outputs.staged_folder` removes)."""
    o = Path(os.path.abspath(out))
    return o.parent / f".{o.name}.generate-partial"


def _batch_folder(work: Path, start: int) -> Path:
    return work / f"batch_{start:06d}"


def _batch_files(folder: Path) -> list[Path]:
    return [folder / "frames.npz", folder / "frames.json"]


def saved_frames(work: str | os.PathLike) -> int:
    """Frames of the batches saved in ``work`` (those with their record; not re-hashed)."""
    count = 0
    for folder in Path(work).glob("batch_*"):
        try:
            if (folder / FILE_SUMS).is_file():
                count += len(json.loads((folder / "frames.json").read_text(encoding="utf-8"))["tokens"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return count


def open_work_folder(work: str | os.PathLike, settings: dict[str, Any]) -> None:
    """Create ``work`` with its settings record, or check that an existing one was made with the
    same ``settings``; one of other settings (or without a readable record) raises
    ``FileExistsError`` naming it and the keys that differ; it is left as it is."""
    work = Path(work)
    settings = json.loads(json.dumps(settings))  # as read back: lists, not tuples
    if work.exists():
        try:
            have = json.loads((work / SETTINGS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            have = None
        if isinstance(have, dict):
            missing = object()
            differ = sorted(k for k in set(have) | set(settings) if have.get(k, missing) != settings.get(k, missing))
            if not differ:
                return
            raise FileExistsError(
                f"{work}: holds the saved batches of an unfinished occkit generate with other settings "
                f"({', '.join(differ)} differ); rerun that command to finish it, or delete that folder "
                "to start over"
            )
        if work.is_dir() and any(work.iterdir()):
            raise FileExistsError(
                f"{work}: holds no readable {SETTINGS_FILE} (the settings of the batches saved there); "
                "delete that folder to start over"
            )
    work.mkdir(parents=True, exist_ok=True)
    write_json_atomic(work / SETTINGS_FILE, settings)


def _as_uint8(images: torch.Tensor) -> np.ndarray:
    """Float [0, 1] images -> uint8, exactly as they are written to PNG (and drawn in the preview)."""
    return images_uint8(images, channels_last=False)


def _frames_of(
    arrays: dict[str, np.ndarray], meta: dict[str, list], start: int
) -> tuple[list[GeneratedFrame], list[dict]]:
    """A batch's frames (and preview rows) from what is saved of it."""
    frames, rows = [], []
    for b, token in enumerate(meta["tokens"]):
        t = {
            k: torch.from_numpy(np.ascontiguousarray(arrays[k][b]))
            for k in ("images", "intrinsics", "T_ego_from_cam", "semantics", "mask", "T_global_from_ego")
        }
        frames.append(
            GeneratedFrame(token=token, scene=meta["scenes"][b], text=meta["texts"][b], source=meta["sources"][b], **t)
        )
        if start + b < PREVIEW_ROWS:
            real = torch.from_numpy(np.ascontiguousarray(arrays["real"][b]))
            rows.append(
                {
                    "panels": [("generated", t["images"].float() / 255), ("real frame", real.float() / 255)],
                    "semantics": t["semantics"],
                    "mask": t["mask"],
                    "text": meta["texts"][b],
                }
            )
    return frames, rows


def _load_batch(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, list]]:
    from occkit.fileio import load_npz, read_json

    return load_npz(folder / "frames.npz"), read_json(folder / "frames.json")


def _save_batch(folder: Path, arrays: dict[str, np.ndarray], meta: dict[str, list]) -> None:
    """Save a batch atomically, then its record (a kill before the record: the batch is redone)."""
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete earlier try's leftovers
    npz, js = _batch_files(folder)
    save_npz_atomic(npz, **arrays)
    write_json_atomic(js, meta)
    record_files([npz, js])


@torch.no_grad()
def generate_scenes(
    method,
    cfg,
    data: str | os.PathLike,
    out: str | os.PathLike,
    n: int,
    text: str | None = None,
    occupancy: str | None = None,
    from_perception: bool = False,
    split: str = "val",
    steps: int | None = None,
    guidance_scale: float = 1.0,
    seed: int = 0,
    batch_size: int = 4,
    progress: bool = True,
    record: dict[str, Any] | None = None,
    use_layout: bool = True,
    make_dataset=None,
    work: str | os.PathLike | None = None,
    fmt=None,
) -> tuple[Path, list[dict]]:
    """Sample ``n`` frames and write them under ``out`` (:mod:`occkit.generation.dataset`).

    ``make_dataset(root, split)`` (required) gives the conditioning frames as the run sees them
    (the composition root passes ``occkit.experiment.build_dataset`` with the run's config).
    ``record``: what else identifies the output (the checkpoint and its checksums), written into
    ``generation.json`` and the work folder's settings.
    ``work``: the work folder where each batch is saved as it is sampled, and from which an
    earlier interrupted run with the same settings is continued (see the module docstring); the
    caller removes it once the dataset is in place. None: nothing is saved before the end.
    ``fmt``: the :class:`occkit.formats.DatasetFormat` of ``data`` (the composition root's
    ``occkit.experiment.dataset_format``): its splits name ``occupancy``'s splits, and the frames are
    written in its layout (:attr:`~occkit.formats.Writers.write_generated`); None: Occ3D-nuScenes.

    Returns (``out``, rows for :func:`occkit.generation.figure.generation_figure`, the first 4).
    """
    gen = _checked_generator(method, occupancy, from_perception, use_layout, n, batch_size)
    method.eval()
    device = gen.latent_scale.device
    if make_dataset is None:
        raise ValueError("generate_scenes: make_dataset (root, split) -> dataset is required")
    steps = steps or cfg.occscene.schedule.sample_steps
    H, W = cfg.data.image_aug.out_hw
    rec = {
        "n": n,
        "text": text,
        "occupancy": occupancy,
        "use_layout": use_layout,
        "from_perception": from_perception,
        "split": split,
        "steps": steps,
        "guidance_scale": guidance_scale,
        "seed": seed,
        "batch_size": batch_size,
        "data": str(data),
        **(record or {}),
    }
    if fmt is None:
        from occkit.formats import default_format

        fmt = default_format()
    if fmt.writers.write_generated is None:
        raise ValueError(f"{data}: the {fmt.display_name} format cannot hold generated frames")
    ds, picks = conditioning_frames(make_dataset, data, occupancy, split, n, fmt.splits)
    starts = list(range(0, n, batch_size))
    kept: dict[int, tuple[dict[str, np.ndarray], dict[str, list]]] = {}
    if work is not None:
        work = Path(work)
        open_work_folder(work, {**rec, "image_hw": [H, W], "cameras": list(cfg.data.cameras), "device": device.type})
        kept = _kept_batches(work, starts, n)
    scheduler = sampling_scheduler(cfg.occscene.schedule)
    todo = [s for s in starts if s not in kept]
    draw_batch = functools.partial(
        _sample_batch,
        method,
        gen,
        scheduler,
        ds,
        text=text,
        occupancy=occupancy,
        use_layout=use_layout,
        from_perception=from_perception,
        steps=steps,
        guidance_scale=guidance_scale,
        seed=seed,
        hw=(H, W),
        device=device,
    )
    _sample_batches(draw_batch, picks, todo, batch_size, kept, work, progress)
    frames: list[GeneratedFrame] = []
    rows: list[dict] = []
    for start in starts:
        f, r = _frames_of(*kept.pop(start), start)
        frames += f
        rows += r
    root = write_generated_dataset(out, frames, tuple(cfg.data.cameras), rec, fmt)
    return root, rows


def _checked_generator(method, occupancy: str | None, from_perception: bool, use_layout: bool, n: int, batch_size: int):
    """The run's generator, once the request is checked against it (:func:`generate_scenes`)."""
    gen = getattr(method, "generator", None)
    if gen is None:
        raise ValueError("this run has no generator (occscene.train_generator was false)")
    if occupancy is not None and from_perception:
        raise ValueError("give --occupancy or --from-perception, not both")
    if occupancy is not None and use_layout and gen.mda is None:
        raise ValueError("--occupancy: this run's generator has no MDA (occscene.generator.mda.enabled was false)")
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be >= 1, got {n}, {batch_size}")
    return gen


def _kept_batches(work: Path, starts: list[int], n: int) -> dict[int, tuple[dict[str, np.ndarray], dict[str, list]]]:
    """The batches (by first frame) that an earlier run saved intact in the work folder, said when there are any."""
    kept: dict[int, tuple[dict[str, np.ndarray], dict[str, list]]] = {}
    for start in starts:
        folder = _batch_folder(work, start)
        if files_intact(_batch_files(folder)):
            kept[start] = _load_batch(folder)
    if kept:
        k = sum(len(m["tokens"]) for _, m in kept.values())
        print(
            f"resuming from {work}: {k} of {n} frames kept ({len(kept)} of {len(starts)} batches), "
            f"sampling the other {n - k}",
            flush=True,
        )
    return kept


def _sample_batches(
    draw_batch,
    picks: Sequence[int],
    todo: list[int],
    batch_size: int,
    kept: dict[int, tuple[dict[str, np.ndarray], dict[str, list]]],
    work: Path | None,
    progress: bool,
) -> None:
    """Sample the batches starting at ``todo`` into ``kept`` (``draw_batch(idx, start)``), each saved in
    the work folder (when there is one) as it is done, with a progress bar."""
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="generate", unit="batch")
    try:
        for start in todo:
            kept[start] = draw_batch(picks[start : start + batch_size], start)
            if work is not None:
                _save_batch(_batch_folder(work, start), *kept[start])
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def _sample_batch(
    method,
    gen,
    scheduler,
    ds,
    idx: list[int],
    start: int,
    *,
    text,
    occupancy,
    use_layout,
    from_perception,
    steps,
    guidance_scale,
    seed,
    hw,
    device,
) -> tuple[dict[str, np.ndarray], dict[str, list]]:
    """Sample the batch of frames ``start ...`` (conditioned on the frames ``idx`` of ``ds``,
    seeded with ``seed + start``): (arrays, strings), as saved in the work folder."""
    batch = collate([ds[j] for j in idx]).to(device)
    texts = [text if text is not None else (d or "") for d in batch.descriptions]
    occ = (
        one_hot_occupancy(batch.occupancy, method.model_cfg.num_classes)
        if occupancy is not None and use_layout
        else None
    )
    res = sample(
        gen,
        scheduler,
        texts,
        batch.intrinsics,
        batch.T_ego_from_cam,
        hw,
        occupancy=occ,
        perception=method.perceive,
        feedback=from_perception,
        steps=steps,
        guidance_scale=guidance_scale,
        seed=seed + start,
    )
    seen = frustum_mask(method.model.output_grid, batch.intrinsics, batch.T_ego_from_cam, hw)
    B = len(idx)
    if occupancy is not None:
        sem, mask = batch.occupancy, seen & batch.mask_camera.bool()
    else:
        sem, mask = res.perception_logits.argmax(1), seen
    arrays = {
        "images": _as_uint8(res.images[:B]),
        "intrinsics": batch.intrinsics.cpu().numpy(),
        "T_ego_from_cam": batch.T_ego_from_cam.cpu().numpy(),
        "semantics": sem[:B].cpu().numpy(),
        "mask": mask[:B].bool().cpu().numpy(),
        "T_global_from_ego": batch.T_global_from_ego.cpu().numpy(),
        "real": _as_uint8(batch.images[: max(0, min(B, PREVIEW_ROWS - start))]),  # the preview's real frames
    }
    meta = {
        "tokens": [f"gen{seed:04d}_{start + b:06d}" for b in range(B)],
        "scenes": [f"gen-{s}" for s in batch.scenes],
        "texts": texts,
        "sources": list(batch.tokens),
    }
    return arrays, meta
