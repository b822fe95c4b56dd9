"""Training of the ``world:RUN`` prior (:mod:`occkit.priors.world`): data, targets, losses, loop.

:func:`train_world_prior` reads the ``train`` split of a synthetic world (the driving world in the
Occ3D layout, or the indoor world in NYUv2's: every camera of every frame, the images and the
extras ``depth``, ``semantics``, ``instance`` and the objects' names) into memory once; the
semantic head answers in the world format's class table (:mod:`occkit.priors.classes`: Occ3D's
classes and sky outdoors, NYUv2's indoors). It embeds every fine name once into a ``(K, D)`` table and
runs a short explicit loop: draw a batch of images (random zoom-crop, flip and colour jitter), run the
network, :func:`world_losses`, one AdamW step. The run folder is described in
:mod:`occkit.priors.world`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from occkit.config import to_dict
from occkit.engine.optim import optimiser_step
from occkit.fileio import read_json, write_bytes_atomic, write_json_atomic
from occkit.priors.base import PRIOR_CLASSES
from occkit.priors.classes import DEFAULT_PRIORS, PriorClasses, driving_world_table
from occkit.priors.world import (
    BACKBONE_FILE,
    BACKBONE_FORMAT,
    CONFIG_FILE,
    MODEL_FILE,
    RUN_FORMAT,
    TABLE_FILE,
    WorldNet,
    WorldPriorConfig,
    build_net,
    effective_focal,
)
from occkit.worlds.driving.vocabulary import CLASS_WORDS, HELDOUT_NAMES, fine_names

#: What a stopped run continues from (``resume=True``): weights, optimiser, random generators, the
#: batch order and the loss history at its last save; written with each partial save, removed at the end.
RESUME_FILE = "resume.pt"

#: Name index of a pixel whose name is held out (masked in the VL loss, never relabelled).
HELDOUT = -2
#: Name index of a pixel with no known name (an instance missing from ``objects.json``).
UNNAMED = -1


@dataclass
class WorldImages:
    """Every training image of a world in memory (``M`` images of ``H x W``).

    Fields:
        images: ``(M, 3, H, W)`` uint8 RGB.
        depth: ``(M, H, W)`` float32 z-depth in metres, 0 = sky.
        semantics: ``(M, H, W)`` uint8 ids of ``classes`` (:data:`PRIOR_CLASSES` outdoors, 17 = sky).
        instance: ``(M, H, W)`` int32 instance ids, 0 = ground / sky.
        names: ``(M, H, W)`` int16 row of ``table_names``, :data:`UNNAMED` or :data:`HELDOUT`.
        intrinsics: ``(M, 3, 3)`` float32.
        table_names: the seen names, in table order.
        heldout_pixels: pixels masked because their name is held out, by name.
        unnamed_pixels: pixels with no name.
        frames: frames read (``M`` = frames x cameras).
        classes: the class table of ``semantics`` (the world format's).
    """

    images: torch.Tensor
    depth: torch.Tensor
    semantics: torch.Tensor
    instance: torch.Tensor
    names: torch.Tensor
    intrinsics: torch.Tensor
    table_names: list[str]
    heldout_pixels: dict[str, int]
    unnamed_pixels: int
    frames: int = 0
    classes: PriorClasses = DEFAULT_PRIORS

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[-2]), int(self.images.shape[-1])


def seen_names(extra: list[str] | tuple[str, ...] = (), classes: PriorClasses = DEFAULT_PRIORS) -> list[str]:
    """The names a VL head may train on: the vocabulary's seen fine names and the class words
    (the driving world's), then any ``extra`` name (found in a world but not in the vocabulary),
    held-out names excluded. Another class table: its words, then ``extra``."""
    if driving_world_table(classes):
        names = [*fine_names(heldout=False), *CLASS_WORDS.values()]
    else:
        names = list(classes.words)
    names += sorted(set(extra) - set(names))
    return [n for n in dict.fromkeys(names) if n not in HELDOUT_NAMES]


def name_map(
    instance: np.ndarray,
    semantics: np.ndarray,
    instance_names: dict[int, str],
    index: dict[str, int],
    words: dict[int, str] | None = None,
) -> np.ndarray:
    """Per-pixel name index of one image.

    Args:
        instance: ``(H, W)`` instance ids (0 = no object).
        semantics: ``(H, W)`` class ids (17 = sky).
        instance_names: ``{instance id: fine name}`` (``objects.json``).
        index: ``{seen name: table row}``.
        words: ``{class id: word}`` of the pixels without an object (default
            :data:`~occkit.worlds.driving.vocabulary.CLASS_WORDS`: the driving world's ground and sky).
    Returns:
        ``(H, W)`` int16: the table row of the object's name (instance > 0) or of the class
        word of the pixel's class (instance 0), :data:`HELDOUT` for held-out names,
        :data:`UNNAMED` when there is no name.
    """
    out = np.full(instance.shape, UNNAMED, np.int16)
    for cls, word in (CLASS_WORDS if words is None else words).items():
        out[(instance == 0) & (semantics == cls)] = index[word]
    for inst in np.unique(instance):
        if inst == 0 or int(inst) not in instance_names:
            continue
        name = instance_names[int(inst)]
        out[instance == inst] = HELDOUT if name in HELDOUT_NAMES else index[name]
    return out


def load_world_images(root: str | os.PathLike, split: str = "train", progress: bool = False) -> WorldImages:
    """Read every camera image of ``split`` with its extras (see :class:`WorldImages`).

    Raises naming the folder when the world has no synthetic extras or no frames.
    """
    from occkit.formats import detect_format
    from occkit.formats.spec import WORLD_PRIOR_TABLES
    from occkit.priors.classes import prior_classes_of

    fmt = detect_format(root, option=None)
    classes = prior_classes_of(fmt)
    ds = fmt.open_split(root, split, load_gt=False, load_extras=True)
    if fmt.name == WORLD_PRIOR_TABLES.get(fmt.world):  # the driving world in its table's layout: its own words
        words = None
    else:  # the indoor world (NYUv2's layout): objects named in indoor.json, the rest by its class word
        words = {c: w for c, w in enumerate(classes.words) if c != classes.nothing}
    if len(ds) == 0:
        raise ValueError(f"{root}: split {split!r} has no frames")
    all_names: dict[str, dict[int, str]] = {f.token: ds.instance_names(f.token) for f in ds.frames}
    found = {n for names in all_names.values() for n in names.values()}
    table_names = seen_names(sorted(found), classes)
    index = {n: i for i, n in enumerate(table_names)}
    images, depth, sem, inst, names, Ks = [], [], [], [], [], []
    heldout: dict[str, int] = {}
    unnamed = 0
    frames = range(len(ds))
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, desc="load world", unit="frame", file=sys.stderr, dynamic_ncols=True)
    for i in frames:
        s = ds[i]
        if s.depth is None or s.semantics_2d is None or s.instance_2d is None:
            where = ds.extras_dir(s.token) if hasattr(ds, "extras_dir") else ds.extras_path(s.token)
            raise ValueError(
                f"{where}: no per-camera extras (depth, semantics, instance): "
                "a world prior trains on a synthetic world (occkit synth)"
            )
        inst_names = all_names[s.token]
        images.append((s.images * 255).round().to(torch.uint8))
        depth.append(s.depth.float())
        sem.append(s.semantics_2d.to(torch.uint8))
        inst.append(s.instance_2d.to(torch.int32))
        Ks.append(s.intrinsics.float())
        for c in range(len(s.cam_names)):
            i2, s2 = s.instance_2d[c].numpy(), s.semantics_2d[c].numpy()
            nm = name_map(i2, s2, inst_names, index, words)
            names.append(torch.from_numpy(nm))
            unnamed += int((nm == UNNAMED).sum())
            for k in np.unique(i2[nm == HELDOUT]):
                heldout[inst_names[int(k)]] = heldout.get(inst_names[int(k)], 0) + int((i2 == k).sum())
    sizes = {tuple(x.shape[-2:]) for x in images}
    if len(sizes) != 1:
        raise ValueError(f"{root}: camera images differ in size {sorted(sizes)}")
    return WorldImages(
        images=torch.cat(images),
        depth=torch.cat(depth),
        semantics=torch.cat(sem),
        instance=torch.cat(inst),
        names=torch.stack(names),
        intrinsics=torch.cat(Ks),
        table_names=table_names,
        heldout_pixels=dict(sorted(heldout.items())),
        unnamed_pixels=unnamed,
        frames=len(ds),
        classes=classes,
    )


def text_table(encoder: Any, names: list[str], templates: bool = True) -> torch.Tensor:
    """``(K, D)`` L2-normalised embeddings of ``names`` (through the prompt templates when ``templates``)."""
    from occkit.priors.text import encode_prompts

    with torch.no_grad():
        if templates:
            return encode_prompts(encoder, names).float()
        return F.normalize(encoder.encode_text(names).float(), dim=-1)


def class_weights(
    semantics: torch.Tensor, balance: float, max_weight: float, num_classes: int = len(PRIOR_CLASSES)
) -> torch.Tensor:
    """``(C,)`` weights ``freq ** -balance``, normalised to mean 1 over the pixels, capped at ``max_weight``.

    ``semantics``: any shape, class ids in ``0..C-1``. Absent classes get weight 1.
    """
    counts = torch.bincount(semantics.reshape(-1).long(), minlength=num_classes)[:num_classes].double()
    freq = counts / counts.sum().clamp_min(1)
    w = torch.ones(num_classes, dtype=torch.float64)
    present = freq > 0
    w[present] = freq[present] ** -balance
    w = w / (freq * w).sum().clamp_min(1e-12)
    return w.clamp(max=max_weight).float()


@dataclass
class WorldBatch:
    """One training batch at the net's size ``(Hn, Wn)``.

    Fields:
        images: ``(B, 3, Hn, Wn)`` float in [0, 1].
        semantics: ``(B, Hn, Wn)`` long, 0..17.
        depth: ``(B, Hn, Wn)`` float metres, 0 = sky.
        boundary: ``(B, Hn, Wn)`` float 0/1: the pixel or a 4-neighbour has another (instance, class).
        names: ``(B, Hn, Wn)`` long table rows, :data:`UNNAMED`, :data:`HELDOUT`.
        focal: ``(B,)`` float, the effective focal length in pixels at ``(Hn, Wn)``.
    """

    images: torch.Tensor
    semantics: torch.Tensor
    depth: torch.Tensor
    boundary: torch.Tensor
    names: torch.Tensor
    focal: torch.Tensor


def boundary_map(instance: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
    """``(..., H, W)`` bool: pixels whose (instance, class) differs from a 4-neighbour's (2 px wide edges)."""
    key = instance.long() * 64 + semantics.long()
    b = torch.zeros(key.shape, dtype=torch.bool, device=key.device)
    dx = key[..., :, 1:] != key[..., :, :-1]
    dy = key[..., 1:, :] != key[..., :-1, :]
    b[..., :, 1:] |= dx
    b[..., :, :-1] |= dx
    b[..., 1:, :] |= dy
    b[..., :-1, :] |= dy
    return b


def color_jitter(image: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """Random gamma, brightness, contrast, saturation and per-channel gains (factors ``1 +- strength``).

    ``image: (3, H, W)`` in [0, 1] -> ``(3, H, W)`` in [0, 1].
    """

    def factor(n: int = 1, s: float = strength) -> torch.Tensor:
        return 1 + s * (2 * torch.rand(n, generator=gen) - 1)

    x = image.clamp(0, 1) ** factor()
    x = x * factor()
    mean = x.mean()
    x = (x - mean) * factor() + mean
    gray = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])[None]
    x = gray + (x - gray) * factor()
    x = x * factor(3, strength / 3).view(3, 1, 1)
    return x.clamp(0, 1)


def sample_batch(
    world: WorldImages, idx: list[int], cfg: WorldPriorConfig, gen: torch.Generator | None = None
) -> WorldBatch:
    """Images ``idx`` of ``world`` zoom-cropped, flipped, colour-jittered and resized to ``cfg.image_size``.

    With ``gen=None`` no augmentation is applied (the whole image, resized).
    """
    H, W = world.image_size
    Hn, Wn = cfg.image_size
    imgs, sems, deps, insts, names, focals = [], [], [], [], [], []
    for i in idx:
        z, top, left, flip = 1.0, 0, 0, False
        if gen is not None:
            z = 1.0 + (cfg.zoom_max - 1.0) * float(torch.rand((), generator=gen))
            flip = cfg.flip and bool(torch.rand((), generator=gen) < 0.5)
        ch, cw = max(1, round(H / z)), max(1, round(W / z))
        if gen is not None:
            top = int(torch.randint(0, H - ch + 1, (), generator=gen))
            left = int(torch.randint(0, W - cw + 1, (), generator=gen))
        crop = world.images[i, :, top : top + ch, left : left + cw].float().div(255)[None]  # (1, 3, ch, cw)
        img = F.interpolate(crop, size=(Hn, Wn), mode="bilinear", align_corners=False, antialias=(Hn < ch or Wn < cw))[
            0
        ]
        rows = top + ((torch.arange(Hn) + 0.5) * (ch / Hn)).long().clamp(max=ch - 1)
        cols = left + ((torch.arange(Wn) + 0.5) * (cw / Wn)).long().clamp(max=cw - 1)
        pick = lambda a: a[i][rows[:, None], cols[None, :]]  # noqa: E731  nearest sampling of a map
        maps = [img, pick(world.semantics).long(), pick(world.depth), pick(world.instance), pick(world.names).long()]
        if flip:
            maps = [m.flip(-1) for m in maps]
        if gen is not None and cfg.color_jitter > 0:
            maps[0] = color_jitter(maps[0], cfg.color_jitter, gen)
        for lst, m in zip((imgs, sems, deps, insts, names), maps):
            lst.append(m)
        focals.append(effective_focal(world.intrinsics[i], Hn / ch, Wn / cw))
    sem, inst = torch.stack(sems), torch.stack(insts)
    return WorldBatch(
        images=torch.stack(imgs).clamp(0, 1),
        semantics=sem,
        depth=torch.stack(deps),
        boundary=boundary_map(inst, sem).float(),
        names=torch.stack(names),
        focal=torch.stack(focals).float(),
    )


def vl_targets(
    names: torch.Tensor, grid: tuple[int, int], stride: int, num_names: int, min_purity: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each feature cell's name and whether it is trained.

    Args:
        names: ``(B, H, W)`` long table rows, :data:`UNNAMED`, :data:`HELDOUT`.
        grid: ``(h, w)`` of the features (cell ``(u, v)`` covers pixels ``[u s, (u+1) s) x [v s, (v+1) s)``).
        stride: ``s``.
        num_names: ``K``, rows of the table.
        min_purity: least fraction of the cell's ``s * s`` pixels its majority name must cover.
    Returns:
        ``target (B, h, w)`` long (majority seen name), ``valid (B, h, w)`` bool: no held-out
        pixel in the cell and a majority name pure enough.
    """
    B, H, W = names.shape
    h, w = grid
    padded = torch.full((B, h * stride, w * stride), UNNAMED, dtype=torch.long, device=names.device)
    hh, ww = min(H, h * stride), min(W, w * stride)
    padded[:, :hh, :ww] = names[:, :hh, :ww]
    cls = padded + 2  # 0 held out, 1 unnamed, 2.. table rows
    ys = torch.arange(h * stride, device=names.device) // stride
    xs = torch.arange(w * stride, device=names.device) // stride
    cell = (ys[:, None] * w + xs[None, :]).expand(B, -1, -1)  # (B, h s, w s)
    b = torch.arange(B, device=names.device).view(B, 1, 1)
    flat = ((b * (h * w) + cell) * (num_names + 2) + cls).reshape(-1)
    counts = torch.zeros(B * h * w * (num_names + 2), device=names.device).index_add_(
        0, flat, torch.ones(flat.shape, device=names.device)
    )
    counts = counts.view(B, h, w, num_names + 2)
    best, target = counts[..., 2:].max(-1)
    valid = (counts[..., 0] == 0) & (best > 0) & (best >= min_purity * stride * stride)
    return target, valid


def world_losses(
    out: dict[str, torch.Tensor],
    batch: WorldBatch,
    table: torch.Tensor,
    cfg: WorldPriorConfig,
    weights: torch.Tensor | None,
    depth_focal: float,
) -> dict[str, torch.Tensor]:
    """The named losses of a step (only the terms with a non-zero weight).

    Args:
        out: :class:`~occkit.priors.world.WorldNet` outputs for ``batch.images``.
        batch: the targets.
        table: ``(K, D)`` text embeddings of the seen names.
        weights: ``(C,)`` semantic class weights, or ``None``.
        depth_focal: the canonical focal ``f_ref`` (pixels).
    Returns:
        ``{"semantics", "depth", "boundary", "vl"}``: scalars, unweighted. ``vl`` is exactly 0
        (with zero gradient) when no feature cell is valid, e.g. every pixel held out.
    """
    size = batch.semantics.shape[-2:]
    losses: dict[str, torch.Tensor] = {}
    up = lambda x: F.interpolate(x, size=size, mode="bilinear", align_corners=False)  # noqa: E731
    if cfg.w_semantics > 0:
        losses["semantics"] = F.cross_entropy(up(out["semantics"]), batch.semantics, weight=weights)
    if cfg.w_depth > 0:
        valid = batch.depth > 0
        pred = up(out["log_depth"])[:, 0]  # (B, Hn, Wn)
        target = torch.log(batch.depth.clamp_min(1e-3) * depth_focal / batch.focal.view(-1, 1, 1))
        losses["depth"] = (pred - target).abs()[valid].mean() if bool(valid.any()) else pred.sum() * 0
    if cfg.w_boundary > 0:
        pw = torch.tensor(cfg.boundary_pos_weight, device=batch.boundary.device)
        losses["boundary"] = F.binary_cross_entropy_with_logits(
            up(out["boundary"])[:, 0], batch.boundary, pos_weight=pw
        )
    if cfg.w_vl > 0:
        feat = out["features"]  # (B, D, h, w)
        target, valid = vl_targets(
            batch.names, tuple(feat.shape[-2:]), cfg.feature_stride, len(table), cfg.vl_min_purity
        )
        f = feat.permute(0, 2, 3, 1)[valid]  # (M, D)
        if f.shape[0] == 0:
            losses["vl"] = feat.sum() * 0
        elif cfg.vl_loss == "contrastive":
            losses["vl"] = F.cross_entropy(f @ table.T / cfg.vl_temperature, target[valid])
        else:
            losses["vl"] = (1 - (f * table[target[valid]]).sum(-1)).mean()
    return losses


def total_loss(losses: dict[str, torch.Tensor], cfg: WorldPriorConfig) -> torch.Tensor:
    """``sum_k w_k * loss_k`` with the config's weights."""
    w = {"semantics": cfg.w_semantics, "depth": cfg.w_depth, "boundary": cfg.w_boundary, "vl": cfg.w_vl}
    return sum(w[k] * v for k, v in losses.items())  # type: ignore[return-value]


def _lr(cfg: WorldPriorConfig, step: int, frac: float) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak over the budget fraction ``frac``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def _save_run(out: Path, net: WorldNet, table: torch.Tensor, record: dict[str, Any]) -> None:
    """Weights, table, then ``config.json`` (each atomically; the JSON last marks the run usable)."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    write_bytes_atomic(out / MODEL_FILE, save(state))
    write_bytes_atomic(out / TABLE_FILE, save({"embeddings": table.detach().cpu().contiguous()}))
    body = {k: v.detach().cpu().contiguous() for k, v in net.body.state_dict().items()}
    meta = {
        "format": BACKBONE_FORMAT,
        "backbone": str(record["config"]["backbone"]),
        "status": str(record["status"]),
        "steps": str(record["train"].get("steps", 0)),
        "world_seed": str(record["train"].get("world_seed")),
    }
    write_bytes_atomic(out / BACKBONE_FILE, save(body, metadata=meta))
    write_json_atomic(out / CONFIG_FILE, record)


def train_world_prior(
    data: str | os.PathLike,
    out: str | os.PathLike,
    cfg: WorldPriorConfig | None = None,
    progress: bool = True,
    overwrite: bool = False,
    text_encoder: Any = None,
    device: str = "cpu",
    resume: bool = False,
) -> Path:
    """Train a world prior on the ``train`` split of the synthetic world ``data``; write the run ``out``.

    A partial run is written every ``cfg.save_every_minutes`` with :data:`RESUME_FILE`; with
    ``resume`` a stopped run continues from it, and a run of a step budget ends with the same
    weights as one never stopped (same data order, augmentation draws and schedule). Without the
    file (stopped before its first save) ``resume`` starts from scratch.

    Args:
        data: folder of a synthetic world (``occkit synth``; the driving world in the Occ3D layout,
            or the indoor world) with its extras.
        out: the run folder to write; must be absent or empty unless ``overwrite``.
        cfg: the config (default :class:`WorldPriorConfig()`).
        progress: tqdm bars on stderr.
        overwrite: write into a non-empty folder (the run's own files are replaced).
        resume: continue the stopped run in ``out`` (its settings and data must be these).
        text_encoder: an already loaded encoder whose ``spec`` is ``cfg.text_encoder``.
        device: where the network trains.
    Returns:
        ``out``.
    """
    cfg = cfg or WorldPriorConfig()
    cfg.check()
    data, out = Path(data), Path(out)
    index_file = _check_folders(data, out, overwrite, resume)
    state = _read_resume(out, cfg, data) if resume else None
    if state is None and (overwrite or resume):
        for name in (CONFIG_FILE, MODEL_FILE, TABLE_FILE, BACKBONE_FILE, RESUME_FILE):
            (out / name).unlink(missing_ok=True)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    t = _setup(cfg, data, out, torch.device(device), gen, text_encoder, progress)
    t.record = _run_record(t, index_file, started)
    t.bar = _progress_bar(cfg) if progress else None
    order = torch.randperm(len(t.world.images), generator=gen).tolist()
    loop = _Loop(order, t0=time.perf_counter(), cpu0=time.process_time())
    loop.last_save = loop.t0
    if state is not None:  # continue where the last save left off
        _continue_from(t, loop, state)
    else:
        from occkit.outputs import mark_output

        mark_output(out, "priors train")  # the folder is this command's from the start: a stop leaves it resumable
    while (frac := _budget_fraction(cfg, loop)) < 1.0:
        _train_step(t, loop, frac)
    _finish(t, loop)
    return out


@dataclass
class _Training:
    """What stays fixed through one call of :func:`train_world_prior`: the settings, the run folder,
    the data and its name table, the network and its optimiser, the run's record and the bar."""

    cfg: WorldPriorConfig
    data: Path
    out: Path
    dev: torch.device
    gen: torch.Generator
    world: WorldImages
    table: torch.Tensor
    """``(K, D)`` text embeddings of ``world.table_names``."""
    weights: torch.Tensor | None
    """The semantic loss's class weights (None without ``cfg.class_balance``)."""
    depth_focal: float
    load_s: float
    net: WorldNet
    opt: torch.optim.Optimizer
    record: dict[str, Any] = field(default_factory=dict)
    """What ``config.json`` holds (:func:`_run_record`)."""
    bar: Any = None
    """The progress bar (tqdm), or None."""


@dataclass
class _Loop:
    """What the training loop carries from step to step (and :data:`RESUME_FILE` restores)."""

    order: list[int]
    """The batch order of the current pass over the images."""
    pos: int = 0
    """The next image's place in ``order``."""
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    window: dict[str, list[float]] = field(default_factory=dict)
    """The losses since the last logged record, by name."""
    t0: float = 0.0
    """``time.perf_counter()`` at the run's start (less the wall time of the steps before a resume)."""
    cpu0: float = 0.0
    """``time.process_time()`` at the run's start (less the CPU time of the steps before a resume)."""
    last_save: float = 0.0


def _check_folders(data: Path, out: Path, overwrite: bool, resume: bool) -> Path:
    """The world's index file (``annotations.json`` or ``indoor.json``); refuse a folder ``out`` the
    run may not write into, else make it."""
    index_file = next((data / n for n in ("annotations.json", "indoor.json") if (data / n).is_file()), None)
    if index_file is None:
        raise FileNotFoundError(
            f"{data}: no annotations.json or indoor.json (expected a world written by occkit synth, the driving "
            "world in the Occ3D layout or the indoor world)"
        )
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (overwrite or resume):
        raise FileExistsError(f"{out}: folder is not empty (pass overwrite / --overwrite to write into it)")
    out.mkdir(parents=True, exist_ok=True)
    return index_file


def _setup(
    cfg: WorldPriorConfig,
    data: Path,
    out: Path,
    dev: torch.device,
    gen: torch.Generator,
    text_encoder: Any,
    progress: bool,
) -> _Training:
    """The text encoder (loaded unless given), the world's images, the name table, the depth focal,
    the class weights, then the network (in training mode) and its AdamW."""
    t_load = time.perf_counter()
    if text_encoder is None:
        from occkit.priors.text import load_text_encoder

        text_encoder = load_text_encoder(cfg.text_encoder)
    elif getattr(text_encoder, "spec", None) != cfg.text_encoder:
        raise ValueError(
            f"train_world_prior: text_encoder {getattr(text_encoder, 'spec', None)!r} does not match cfg.text_encoder "
            f"{cfg.text_encoder!r}"
        )
    world = load_world_images(data, "train", progress=progress)
    table = text_table(text_encoder, world.table_names, cfg.text_templates).to(dev)  # (K, D)
    H, W = world.image_size
    Hn, Wn = cfg.image_size
    depth_focal = float(effective_focal(world.intrinsics, Hn / H, Wn / W).median())
    weights = (
        class_weights(world.semantics, cfg.class_balance, cfg.max_class_weight, world.classes.num_classes).to(dev)
        if cfg.class_balance > 0
        else None
    )
    load_s = time.perf_counter() - t_load
    net = build_net(cfg, int(table.shape[1]), world.classes.num_classes).to(dev)
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return _Training(cfg, data, out, dev, gen, world, table, weights, depth_focal, load_s, net, opt)


def _run_record(t: _Training, index_file: Path, started: str) -> dict[str, Any]:
    """The run's record (``config.json``) at its start: the config, the network, the names and the data."""
    cfg, world, table, weights = t.cfg, t.world, t.table, t.weights
    H, W = world.image_size
    ann = read_json(index_file)
    return {
        "format": RUN_FORMAT,
        "status": "partial",
        "config": to_dict(cfg),
        "net": {
            "classes": list(world.classes.names),
            "class_table": world.classes.name,
            "text_dim": int(table.shape[1]),
            "depth_focal": t.depth_focal,
            "depth": "log-depth regression (L1) in a canonical camera of focal depth_focal px at image_size",
            "segments": "boundary head + connected components of equal predicted class",
            "parameters": sum(p.numel() for p in t.net.parameters()),
        },
        "names": world.table_names,
        "heldout_names": list(HELDOUT_NAMES),
        "train": {
            "data": str(t.data.resolve()),
            "split": "train",
            "world_seed": (ann.get("synth_config") or {}).get("seed"),
            "seed": cfg.seed,
            "frames": world.frames,
            "images": len(world.images),
            "image_size_data": [H, W],
            "heldout_pixels_masked": world.heldout_pixels,
            "unnamed_pixels": world.unnamed_pixels,
            "class_weights": None if weights is None else [round(float(w), 4) for w in weights],
            "device": str(t.dev),
            "torch_threads": torch.get_num_threads(),
            "started_utc": started,
            "load_s": round(t.load_s, 1),
        },
    }


def _progress_bar(cfg: WorldPriorConfig) -> Any:
    """The tqdm bar of the steps (of ``cfg.steps``, else open-ended) on stderr."""
    from tqdm import tqdm

    total_steps = cfg.steps if cfg.steps > 0 else None
    return tqdm(total=total_steps, desc="train world prior", unit="step", file=sys.stderr, dynamic_ncols=True)


def _continue_from(t: _Training, loop: _Loop, state: dict[str, Any]) -> None:
    """Bring back a stopped run's weights, optimiser, random generators, batch order, losses and
    times (:data:`RESUME_FILE`); record the step it resumes at."""
    t.net.load_state_dict(state["net"])
    t.opt.load_state_dict(state["optimizer"])
    t.gen.set_state(state["gen"])
    torch.set_rng_state(state["torch_rng"])
    loop.order, loop.pos, loop.step = [int(i) for i in state["order"]], int(state["pos"]), int(state["step"])
    loop.history, loop.window = state["history"], state["window"]
    t.record["train"]["started_utc"] = state["started_utc"]
    config = t.out / CONFIG_FILE
    earlier = read_json(config)["train"].get("resumed_at", []) if config.is_file() else []
    t.record["train"]["resumed_at"] = earlier + [loop.step]
    loop.t0 -= float(state["wall_s"])
    loop.cpu0 -= float(state["cpu_s"])
    if t.bar is not None:
        t.bar.update(loop.step)


def _budget_fraction(cfg: WorldPriorConfig, loop: _Loop) -> float:
    """The share of the budget spent: the largest of steps, wall time and CPU time (each when set)."""
    elapsed, cpu = time.perf_counter() - loop.t0, time.process_time() - loop.cpu0
    budget_s, cpu_budget_s = cfg.minutes * 60, cfg.cpu_minutes * 60
    return max(
        loop.step / cfg.steps if cfg.steps else 0.0,
        elapsed / budget_s if budget_s else 0.0,
        cpu / cpu_budget_s if cpu_budget_s else 0.0,
    )


def _train_step(t: _Training, loop: _Loop, frac: float) -> None:
    """One step at the schedule's learning rate (``frac``: the share of the budget spent): the next
    batch (a new order after each pass), its losses, the optimiser's step
    (:func:`occkit.engine.optim.optimiser_step`); then the loss log, the bar and a partial save when due."""
    cfg = t.cfg
    for g in t.opt.param_groups:
        g["lr"] = _lr(cfg, loop.step, frac)
    if loop.pos + cfg.batch_size > len(loop.order):
        loop.order, loop.pos = torch.randperm(len(t.world.images), generator=t.gen).tolist(), 0
    idx = loop.order[loop.pos : loop.pos + cfg.batch_size]
    loop.pos += cfg.batch_size
    batch = sample_batch(t.world, idx, cfg, t.gen)
    batch = WorldBatch(*(getattr(batch, f).to(t.dev) for f in WorldBatch.__dataclass_fields__))
    losses = world_losses(t.net(batch.images), batch, t.table, cfg, t.weights, t.depth_focal)
    loss = total_loss(losses, cfg)
    optimiser_step(loss, t.opt)
    loop.step += 1
    for k, v in {**losses, "total": loss}.items():
        loop.window.setdefault(k, []).append(float(v.detach()))
    if loop.step % cfg.log_every == 0:
        _log_window(loop)
    if t.bar is not None:
        t.bar.update(1)
        t.bar.set_postfix({k: f"{float(v.detach()):.3f}" for k, v in {**losses, "total": loss}.items()})
    if cfg.save_every_minutes > 0 and time.perf_counter() - loop.last_save > cfg.save_every_minutes * 60:
        _save_partial(t, loop)


def _log_window(loop: _Loop) -> None:
    """Append the mean losses since the last record to the history; start a new window."""
    loop.history.append(
        {
            "step": loop.step,
            "time_s": round(time.perf_counter() - loop.t0, 1),
            **{k: round(sum(v) / len(v), 4) for k, v in loop.window.items()},
        }
    )
    loop.window = {}


def _save_partial(t: _Training, loop: _Loop) -> None:
    """A partial run (weights, table, ``config.json``) and :data:`RESUME_FILE` at the step just taken."""
    t.record["train"].update(steps=loop.step, wall_s=round(time.perf_counter() - loop.t0, 1), history=loop.history)
    _save_run(t.out, t.net, t.table, t.record)
    _write_resume(
        t.out,
        t.cfg,
        t.data,
        t.net,
        t.opt,
        t.gen,
        loop.order,
        loop.pos,
        loop.step,
        loop.history,
        loop.window,
        t.record,
        time.perf_counter() - loop.t0,
        time.process_time() - loop.cpu0,
    )
    loop.last_save = time.perf_counter()


def _finish(t: _Training, loop: _Loop) -> None:
    """Close the bar, log the last losses, write the complete run (its final losses: the mean of the
    last records) and remove :data:`RESUME_FILE`."""
    if t.bar is not None:
        t.bar.close()
    if loop.window:
        _log_window(loop)
    history, step = loop.history, loop.step
    tail = [h for h in history if h["step"] > step - max(20, t.cfg.log_every)] or history[-1:]
    final = (
        {k: round(sum(h[k] for h in tail) / len(tail), 4) for k in tail[-1] if k not in ("step", "time_s")}
        if tail
        else {}
    )
    t.net.eval()
    t.record["status"] = "complete"
    t.record["train"].update(
        steps=step,
        wall_s=round(time.perf_counter() - loop.t0, 1),
        cpu_s=round(time.process_time() - loop.cpu0, 1),
        images_seen=step * t.cfg.batch_size,
        finished_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        final_losses=final,
        history=history,
    )
    _save_run(t.out, t.net, t.table, t.record)
    (t.out / RESUME_FILE).unlink(missing_ok=True)


def _write_resume(
    out: Path,
    cfg: WorldPriorConfig,
    data: Path,
    net: WorldNet,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    order: list[int],
    pos: int,
    step: int,
    history: list[dict[str, float]],
    window: dict[str, list[float]],
    record: dict[str, Any],
    wall_s: float,
    cpu_s: float,
) -> None:
    """:data:`RESUME_FILE`: everything the loop needs to go on as if never stopped, in one atomic file."""
    import io

    state = {
        "config": to_dict(cfg),
        "data": str(data.resolve()),
        "step": step,
        "pos": pos,
        "order": torch.tensor(order),
        "net": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "optimizer": opt.state_dict(),
        "gen": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": history,
        "window": window,
        "started_utc": record["train"]["started_utc"],
        "wall_s": wall_s,
        "cpu_s": cpu_s,
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes_atomic(out / RESUME_FILE, buf.getvalue())


def _read_resume(out: Path, cfg: WorldPriorConfig, data: Path) -> dict[str, Any] | None:
    """The saved state of a stopped run in ``out`` (None when it stopped before its first save);
    a run of other settings or data is refused in one line naming the first difference."""
    path = out / RESUME_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a torn or foreign file: name it, never unpickle anything else
        raise ValueError(
            f"{path}: cannot be read as a resume state ({type(e).__name__}); remove it to start again"
        ) from None
    saved, now = state.get("config", {}), to_dict(cfg)
    diff = next((k for k in now if saved.get(k) != now[k] and k not in ("save_every_minutes",)), None)
    if diff is not None:
        raise ValueError(
            f"{out}: the stopped run was trained with {diff}={saved.get(diff)!r}, now {now[diff]!r}; "
            "resume it with the same settings, or pass --overwrite to start again"
        )
    if state.get("data") != str(data.resolve()):
        raise ValueError(
            f"{out}: the stopped run trained on {state.get('data')}, not {data.resolve()}; "
            "resume it with the same --data, or pass --overwrite to start again"
        )
    return state
