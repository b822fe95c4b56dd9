"""The experiment: one config for a whole training run, and the builders that read it.

:class:`ExperimentConfig` gathers the method's name, the model, each method's own settings, the
data, the optimiser and the loop. A preset (``configs/<name>.yaml``, shipped inside the package)
overrides its defaults, ``--set a.b=c`` overrides the preset, and unknown keys are errors naming
the key. :func:`build_method` is the ONE place that turns the config into a method: adding a
method is one import and one ``elif`` there (plus its config field here).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import Dataset

from occkit.config import ConfigError, from_dict, load_config
from occkit.data.augment import BEVAugConfig, ImageAugConfig, augment_bev, augment_images
from occkit.data.occ3d import NUSCENES_CAMERAS, Occ3DDataset
from occkit.data.sample import Sample
from occkit.data.stats import LabelCounts
from occkit.data.wrappers import base_dataset  # re-exported: callers import it from here
from occkit.labels import OCC3D_NUM_CLASSES
from occkit.engine.checkpoint import CONFIG_FILE, EMA_FILE, MODEL_FILE, load_config_dict, load_weights, resolve_checkpoint
from occkit.engine.config import OptimConfig, TrainConfig
from occkit.engine.distributed import resolve_device
from occkit.methods.langocc import LangOccConfig, LangOccMethod
from occkit.methods.occscene import OccSceneConfig, OccSceneMethod
from occkit.methods.radocc import RadOccConfig, RadOccMethod
from occkit.methods.easyocc import EasyOccConfig, EasyOccMethod
from occkit.methods.cigocc import CIGOccConfig, CIGOccMethod
from occkit.methods.render_sup import RenderSupConfig, RenderSupMethod
from occkit.methods.supervised import SupervisedConfig, SupervisedMethod
from occkit.models.occnet import OccNet, OccNetConfig, lift_grid_of

#: Methods :func:`build_method` knows, for error messages and ``--help``.
METHODS: tuple[str, ...] = ("supervised", "render_sup", "occscene", "radocc", "langocc", "easyocc", "cigocc")


@dataclass
class DataConfig:
    """Which frames, at what size, in what batches."""

    train_split: str = "train"
    """Split trained on (``train``, ``val`` or ``all``)."""
    val_split: str = "val"
    """Split validated on."""
    cameras: tuple[str, ...] = NUSCENES_CAMERAS
    """Camera names, in this order."""
    image_aug: ImageAugConfig = field(default_factory=ImageAugConfig)
    """Training image resize/crop/flip; ``image_aug.out_hw`` is the network input (H, W) for
    training and evaluation (evaluation uses the deterministic default transform at that size)."""
    bev_aug: BEVAugConfig = field(default_factory=BEVAugConfig)
    """Training BEV flips/rotations (none by default)."""
    batch_size: int = 1
    """Frames per step per process (the global batch is this times the number of processes)."""
    val_batch_size: int = 1
    """Frames per validation / prediction batch per process."""
    workers: int = 0
    """DataLoader worker processes per training process (0 = load in the main process)."""
    load_extras: bool = False
    """Load the synthetic extras (LiDAR points, per-camera depth/semantics) when present."""
    priors: str | None = None
    """A prior cache (``occkit priors run --out PRIORS``) whose 2D priors are attached to every
    frame (``Sample.prior_*`` fields); it must have been made for these frames and image size."""
    prior_kinds: tuple[str, ...] = ()
    """Which kinds of the cache to attach (``semantics``, ``segments``, ``depth``, ``features``);
    empty = all it has."""
    lidar_sweeps: int = 1
    """LiDAR sweeps per frame in ``Sample.lidar`` (the LiDAR teachers' input): the frame's and up
    to ``lidar_sweeps - 1`` earlier ones brought into its ego frame
    (:class:`occkit.data.lidar_sweeps.WithLidarSweeps`); 1 = the frame's own LiDAR."""
    lidar_infos: str | None = None
    """A nuScenes-style info file (``.pkl``/``.json``: ``lidar_path``, ``lidar2ego_*``, ``sweeps``)
    giving each frame's LiDAR on real Occ3D-nuScenes (files under the dataset root's ``samples/``
    and ``sweeps/``); None = the synthetic extras (``load_extras``)."""
    format: Literal["auto", "occ3d", "semantickitti"] = "auto"
    """Dataset layout: 'occ3d' (``annotations.json``), 'semantickitti' (``sequences/``; one camera
    ``image_2``, 20 classes with 0 = empty, validated with the SSC metrics) or 'auto' (semantickitti
    when the root holds ``sequences/`` and no ``annotations.json``, else occ3d)."""
    cache_mb: float = 0.0
    """Keep each split's decoded files (images, labels, extras) in memory up to this many MiB
    (0 = read them from disk at every visit): spares the decoding when a small dataset is read
    many times with ``workers: 0``. Each worker process would hold its own copy."""
    train_scene_fraction: float = 1.0
    """Train on the first fraction of ``train_split``'s scenes (in the split's order, at least one
    scene): a smaller real training set, the regime in which extra frames (``extra_train``) can
    show what they add. 1 = every scene."""
    extra_train: tuple[str, ...] = ()
    """More datasets (roots in the Occ3D layout, e.g. ``occkit generate``'s output) whose every frame
    joins the training frames, read with the same cameras, transforms and grid; validation stays on
    ``--data`` alone. OccScene's claim that generated frames help perception trains on these."""
    extra_images: Literal["as_is", "mean_colour"] = "as_is"
    """The ``extra_train`` frames' camera images as they are, or each replaced by its own mean
    colour: the control that keeps the extra frames' labels (layouts) and drops their appearance."""


@dataclass
class ExperimentConfig:
    """Everything a training run needs; ``configs/*.yaml`` presets override these defaults."""

    method: Literal["supervised", "render_sup", "occscene", "radocc", "langocc", "easyocc", "cigocc"] = "supervised"
    """The recipe, built by :func:`build_method`."""
    model: OccNetConfig = field(default_factory=OccNetConfig)
    """The occupancy network."""
    supervised: SupervisedConfig = field(default_factory=SupervisedConfig)
    """Settings of the ``supervised`` method."""
    render_sup: RenderSupConfig = field(default_factory=RenderSupConfig)
    """Settings of the ``render_sup`` method (2D depth/semantic maps only, volume rendering)."""
    occscene: OccSceneConfig = field(default_factory=OccSceneConfig)
    """Settings of the ``occscene`` method (occupancy-guided text-to-image diffusion trained jointly
    with the perception model)."""
    radocc: RadOccConfig = field(default_factory=RadOccConfig)
    """Settings of the ``radocc`` method (frozen LiDAR teacher distilled through rendered views;
    the student's own losses are ``supervised``'s)."""
    langocc: LangOccConfig = field(default_factory=LangOccConfig)
    """Settings of the ``langocc`` method (rendered vision-language features, zero-shot classes)."""
    easyocc: EasyOccConfig = field(default_factory=EasyOccConfig)
    """Settings of the ``easyocc`` method (3D pseudo-labels from 2D priors, ``occkit pseudolabel``)."""
    cigocc: CIGOccConfig = field(default_factory=CIGOccConfig)
    """Settings of the ``cigocc`` method (monocular SSC on SemanticKITTI; the ``kitti-mono``
    baseline is it with appearance features only)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Frames, image size, batches."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimiser, schedule, precision, EMA."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The loop: seed, device, logging, validation, checkpoints."""


# ---------------------------------------------------------------------------------------- presets
def preset_names() -> list[str]:
    """Names of the presets shipped with occkit (``configs/*.yaml`` inside the package)."""
    folder = resources.files("occkit") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def find_preset(name_or_path: str | os.PathLike) -> Path:
    """A YAML path from a path or a preset name (``synth-cpu``); errors list the presets."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.suffix not in (".yaml", ".yml") and os.sep not in str(name_or_path):
        cand = resources.files("occkit") / "configs" / f"{name_or_path}.yaml"
        if cand.is_file():
            return Path(str(cand))
    raise FileNotFoundError(f"{name_or_path}: no such config file or preset (presets: {', '.join(preset_names())})")


def load_experiment(name_or_path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Defaults, then the preset (by name or path), then ``key=value`` overrides."""
    path = find_preset(name_or_path) if name_or_path is not None else None
    cfg = load_config(ExperimentConfig, path, overrides)
    check_experiment(cfg)
    return cfg


def experiment_from_dict(data: dict[str, Any], where: str = "config") -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a plain dict (e.g. a checkpoint's ``config.json``)."""
    try:
        cfg = from_dict(ExperimentConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e
    check_experiment(cfg)
    return cfg


def check_experiment(cfg: ExperimentConfig) -> None:
    """Value checks the types alone do not catch; errors name the key."""
    if cfg.method not in METHODS:
        raise ConfigError(f"method: {cfg.method!r} is not one of {METHODS}")
    H, W = cfg.data.image_aug.out_hw
    if H <= 0 or W <= 0:
        raise ConfigError(f"data.image_aug.out_hw: expected positive (H, W), got {(H, W)}")
    if cfg.data.batch_size < 1 or cfg.data.val_batch_size < 1:
        raise ConfigError("data.batch_size and data.val_batch_size must be >= 1")
    if cfg.data.workers < 0:
        raise ConfigError(f"data.workers must be >= 0, got {cfg.data.workers}")
    if not cfg.data.cameras:
        raise ConfigError("data.cameras: need at least one camera")
    from occkit.priors.base import KINDS

    bad = [k for k in cfg.data.prior_kinds if k not in KINDS]
    if bad:
        raise ConfigError(f"data.prior_kinds: {bad} are not prior kinds ({', '.join(KINDS)})")
    if cfg.data.prior_kinds and not cfg.data.priors:
        raise ConfigError("data.prior_kinds is set but data.priors (the prior cache) is not")
    if not 0.0 < cfg.data.train_scene_fraction <= 1.0:
        raise ConfigError(f"data.train_scene_fraction must be in (0, 1], got {cfg.data.train_scene_fraction}")
    if cfg.data.extra_images != "as_is" and not cfg.data.extra_train:
        raise ConfigError(f"data.extra_images: {cfg.data.extra_images} applies to data.extra_train, which is empty")
    if cfg.optim.max_steps < 1:
        raise ConfigError(f"optim.max_steps must be >= 1, got {cfg.optim.max_steps}")
    if cfg.optim.lr <= 0:
        raise ConfigError(f"optim.lr must be > 0, got {cfg.optim.lr}")


# ---------------------------------------------------------------------------------------- builders
def build_method(cfg: ExperimentConfig) -> nn.Module:
    """The method named by ``cfg.method``, built from its config. The one place methods are chosen.

    The trained models a recipe starts from or distills from are loaded here and handed to it
    (the recipes never load runs themselves): ``radocc.teacher`` (:func:`load_teacher`) and
    ``occscene.perception_ckpt`` (:func:`load_perception`). Loading them leaves the global RNG as
    it was, so the recipe's own initial weights do not depend on them.
    """
    if cfg.method == "supervised":
        return SupervisedMethod(cfg.model, cfg.supervised)
    if cfg.method == "render_sup":
        return RenderSupMethod(cfg.model, cfg.render_sup)
    if cfg.method == "occscene":
        perception = load_perception(cfg.occscene.perception_ckpt) if cfg.occscene.perception_ckpt else None
        return OccSceneMethod(cfg.model, cfg.occscene, perception=perception)
    if cfg.method == "radocc":
        teacher = load_teacher(cfg.radocc.teacher, cfg.radocc.teacher_ema) if cfg.radocc.teacher else None
        return RadOccMethod(cfg.model, cfg.supervised, cfg.radocc, teacher=teacher)
    if cfg.method == "langocc":
        return LangOccMethod(cfg.model, cfg.langocc)
    if cfg.method == "easyocc":
        return EasyOccMethod(cfg.model, cfg.easyocc)
    if cfg.method == "cigocc":
        return CIGOccMethod(cfg.model, cfg.cigocc)
    raise ConfigError(f"method: {cfg.method!r} is not one of {METHODS}")


class AugmentedFrames(Dataset):
    """Frames with the image transform (and, for training, the BEV transform) applied.

    Random draws use the global torch RNG, which the engine seeds per item
    (:class:`occkit.engine.data.SeededItems`), so augmentation is reproducible and resumable.

    Args:
        dataset: yields :class:`Sample`.
        image_aug: resize/crop/flip to the network input size.
        bev_aug: ego-frame flips/rotations, or None.
        free_class: the class that voxels rotated in from outside the grid get.
    """

    def __init__(self, dataset: Dataset, image_aug: ImageAugConfig, bev_aug: BEVAugConfig | None = None, free_class: int = 17) -> None:
        self.dataset, self.image_aug, self.bev_aug, self.free_class = dataset, image_aug, bev_aug, free_class

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Sample:
        s: Sample = self.dataset[i]
        if s.images.shape[-1] > 0:  # images loaded
            s = augment_images(s, self.image_aug)
        if self.bev_aug is not None and s.occupancy is not None:
            s = augment_bev(s, self.bev_aug, free_class=self.free_class)
        return s


def build_dataset(cfg: ExperimentConfig, root: str | os.PathLike, split: str, train: bool = False, load_gt: bool = True) -> Dataset:
    """The frames of ``split`` under ``root`` as the method sees them.

    Training frames get ``data.image_aug`` and ``data.bev_aug``; evaluation frames the
    deterministic resize/crop in the middle of the training ranges
    (:meth:`ImageAugConfig.evaluation`) and no BEV transform. The model's
    output grid must be the dataset's (checked here, naming both).
    """
    kitti = data_format(cfg, root) == "semantickitti"
    if kitti:
        from occkit.data.semantickitti import SemanticKITTIDataset

        # a named split is the dataset's own (splits.json, the synthetic world's) before the official one
        ds: Dataset = SemanticKITTIDataset(root, split, load_gt=load_gt, load_extras=cfg.data.load_extras)
    else:
        ds = Occ3DDataset(root, split, cameras=tuple(cfg.data.cameras), load_gt=load_gt, load_extras=cfg.data.load_extras,
                          cache_mb=cfg.data.cache_mb)
    if cfg.data.priors:
        from occkit.priors.cache import PriorCache, WithPriors

        cache = PriorCache(cfg.data.priors, kinds=cfg.data.prior_kinds or None)
        if cfg.method == "langocc" and "features" in cache.kinds and cache.feature_dim and cache.feature_dim != cfg.langocc.feature_dim:
            raise ConfigError(f"data.priors {cfg.data.priors}: its features are {cache.feature_dim}-d (its prior.json, text "
                              f"encoder {cache.record.get('text_encoder')}) but langocc.feature_dim is {cfg.langocc.feature_dim}; "
                              "set langocc.feature_dim to the cache's width")
        ds = WithPriors(ds, cache)
    if train and cfg.method == "langocc" and cfg.langocc.temporal_offsets:  # LangOcc's temporal rays: neighbours' 2D features
        if not cfg.data.priors:
            raise ConfigError("langocc.temporal_offsets: the neighbours' 2D features come from the prior cache; set data.priors")
        from occkit.data.temporal import WithTemporalPriors
        from occkit.priors.cache import PriorCache

        ds = WithTemporalPriors(ds, PriorCache(cfg.data.priors, kinds=("features",)), cfg.langocc.temporal_offsets)
    if cfg.data.lidar_sweeps > 1 or cfg.data.lidar_infos:
        from occkit.data.lidar_sweeps import WithLidarSweeps

        ds = WithLidarSweeps(ds, cfg.data.lidar_sweeps, cfg.data.lidar_infos)
    output_grid, _ = lift_grid_of(cfg.model)
    if output_grid.shape != base_dataset(ds).grid.shape:
        raise ConfigError(f"model.point_range/voxel_size give a grid {output_grid.shape} but {root} is {base_dataset(ds).grid.shape}")
    if train:
        return AugmentedFrames(ds, cfg.data.image_aug, cfg.data.bev_aug, free_class=0 if kitti else cfg.model.num_classes - 1)
    return AugmentedFrames(ds, cfg.data.image_aug.evaluation(), None)


def build_train_set(cfg: ExperimentConfig, root: str | os.PathLike) -> Dataset:
    """The training frames: ``data.train_split`` of ``root`` (its first ``data.train_scene_fraction``
    of scenes), then every frame of each ``data.extra_train`` dataset (their images replaced by their
    mean colour with ``data.extra_images: mean_colour``), all with the training transforms.
    :func:`base_dataset` of the result is ``root``'s frame dataset (its tokens, scenes, grid)."""
    from torch.utils.data import Subset

    from occkit.data.wrappers import ConcatFrames, MeanColourImages

    d = cfg.data
    train = build_dataset(cfg, root, d.train_split, train=True)
    if d.train_scene_fraction < 1.0:
        base = base_dataset(train)
        keep = set(base.scenes[: max(1, round(len(base.scenes) * d.train_scene_fraction))])
        train = Subset(train, [i for i, f in enumerate(base.frames) if f.scene in keep])
    if not d.extra_train:
        return train
    extras = []
    for extra in d.extra_train:
        if not Path(extra).is_dir():
            raise ConfigError(f"data.extra_train: {extra} is not a folder (a dataset in the Occ3D layout, e.g. occkit generate's --out)")
        ds = build_dataset(cfg, extra, "all", train=True)
        if len(ds) == 0:
            raise ConfigError(f"data.extra_train: {extra} has no frames")
        if d.extra_images == "mean_colour":
            ds.dataset = MeanColourImages(ds.dataset)  # under the augmentation: a flat image stays flat
        extras.append(ds)
    return ConcatFrames(train, extras)


def load_checkpoint_method(
    ckpt: str | os.PathLike, device: str = "auto", ema: bool = True, overrides: list[str] | None = None,
) -> tuple[nn.Module, ExperimentConfig, Path, torch.device]:
    """A trained method from a checkpoint (folder, run folder or weights file), in eval mode.

    Reads ``config.json`` and the safetensors weights (``ema.safetensors`` when present and
    ``ema``), no pickle. ``overrides`` (``key=value``, as ``--set``) change the saved config
    first: inference settings (a threshold, a sampler); one that changes the network's shapes
    fails when the weights load. Returns (method on ``device``, its config, the checkpoint
    folder, the device). Errors name the missing or corrupt file.
    """
    from occkit.config import merge, parse_overrides

    folder = resolve_checkpoint(ckpt)
    data = load_config_dict(folder)
    where = str(folder / CONFIG_FILE)
    if overrides:
        data = merge(data, parse_overrides(list(overrides)))
        where += " with --set " + " ".join(overrides)
    cfg = experiment_from_dict(data, where=where)
    method = build_method(cfg)
    weights = folder / EMA_FILE if ema and (folder / EMA_FILE).is_file() else folder / MODEL_FILE
    try:
        load_weights(method, weights)
    except ValueError as e:
        if overrides and "does not fit the model" in str(e):  # name the --set that changed a shape, not the weights
            raise ValueError(f"--set {' '.join(overrides)}: changes the network of {folder} (its weights no longer fit: "
                             f"{' '.join(str(e).split())[:300]}); --set at inference takes settings such as thresholds, "
                             "not shapes") from e
        raise
    dev = resolve_device(device)
    return method.to(dev).eval(), cfg, folder, dev


def load_teacher(path: str | os.PathLike, ema: bool = True) -> nn.Module:
    """radocc's teacher: a trained method from its run (own config), frozen: eval mode,
    ``requires_grad`` False, on the CPU; the global RNG is left as it was.

    The method must return an :class:`~occkit.models.occnet.OccNetOutput` from ``forward(batch)``
    (``supervised``, ``render_sup``, ``radocc``). Errors start with ``radocc.teacher:``.
    """
    try:
        with torch.random.fork_rng(devices=[]):  # building it draws initial weights: not from the caller's stream
            teacher, _, _, _ = load_checkpoint_method(path, device="cpu", ema=ema)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise FileNotFoundError(f"radocc.teacher: {e}") from e
    if not hasattr(teacher, "model") or not callable(getattr(teacher, "forward", None)):
        raise ValueError(f"radocc.teacher: {path} holds a {type(teacher).__name__}, not an occupancy method")
    modality = getattr(getattr(teacher.model, "cfg", None), "modality", None)
    if modality == "camera":  # allowed (a camera teacher is an experiment too), but never silently
        import warnings

        warnings.warn(f"radocc.teacher: {path} is a camera-only run (model.modality camera), not the LiDAR or fusion "
                      "teacher RadOcc distils from", stacklevel=2)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


def load_perception(path: str | os.PathLike) -> OccNet:
    """occscene's starting perception network: the ``OccNet`` at ``.model`` of the method a run
    (or checkpoint) holds (a ``supervised`` or ``occscene`` run), on the CPU, its EMA weights when
    it has them; the global RNG is left as it was. Errors start with ``occscene.perception_ckpt:``.
    """
    try:
        with torch.random.fork_rng(devices=[]):  # building it draws initial weights: not from the caller's stream
            other, _, folder, _ = load_checkpoint_method(path, device="cpu")
    except (FileNotFoundError, NotADirectoryError) as e:
        raise FileNotFoundError(f"occscene.perception_ckpt: {e}") from e
    net = getattr(other, "model", None)
    if not isinstance(net, OccNet):
        raise ValueError(f"occscene.perception_ckpt: {folder} holds a {type(other).__name__} without an OccNet at .model")
    return net


def resolve_auto_class_counts(cfg: ExperimentConfig, train_set: Dataset, max_frames: int = 2000, progress: bool = False) -> ExperimentConfig:
    """Replace ``supervised.class_counts: auto`` by the label counts of the training frames.

    Counts every class over the frames of the dataset under ``train_set`` (at most ``max_frames``
    of them, evenly spaced), inside the camera mask when ``supervised.use_camera_mask``. Returns
    ``cfg`` unchanged when nothing is 'auto', else a copy with the counts filled in, so that the
    run's config.json records the weights it trained with. For ``cigocc`` it is
    :func:`resolve_cigocc_class_counts` (``cigocc.class_balance: dataset``).
    """
    if cfg.method == "cigocc":
        return resolve_cigocc_class_counts(cfg, train_set, max_frames, progress)
    sup = cfg.supervised
    if cfg.method not in ("supervised", "radocc") or sup.class_counts != "auto":
        return cfg
    ds = base_dataset(train_set)
    frames = ds.frames
    if not frames:
        raise ValueError(f"supervised.class_counts='auto': the training split of {ds.root} has no frames to count")
    if len(frames) > max_frames:
        frames = [frames[round(i * (len(frames) - 1) / (max_frames - 1))] for i in range(max_frames)]
    if cfg.model.num_classes != OCC3D_NUM_CLASSES:
        raise ValueError(f"supervised.class_counts='auto' counts Occ3D's {OCC3D_NUM_CLASSES} classes; the model has {cfg.model.num_classes}")
    labels = LabelCounts()  # the counting of `occkit stats`
    it = frames
    if progress:
        from tqdm import tqdm

        it = tqdm(frames, desc="class counts", unit="frame", leave=False)
    for f in it:
        gt = ds.read_labels(f.token)
        try:
            labels.add(gt["semantics"], gt["mask_camera"], gt["mask_lidar"])
        except ValueError as e:
            raise ValueError(f"{ds.gt_path(f.token)}: {e}") from e
    counts = labels.counts_camera if sup.use_camera_mask else labels.counts
    if sum(counts) == 0:
        raise ValueError(f"supervised.class_counts='auto': no labelled voxels in the training split of {ds.root}")
    out = copy.deepcopy(cfg)
    out.supervised.class_counts = tuple(float(c) for c in counts)
    return out


def resolve_cigocc_class_counts(cfg: ExperimentConfig, train_set: Dataset, max_frames: int = 2000, progress: bool = False) -> ExperimentConfig:
    """``cigocc.class_balance: dataset`` without ``class_counts``: the voxel counts of the training
    frames' labels (at most ``max_frames``, evenly spaced) written into a copy of ``cfg``, as
    :func:`resolve_auto_class_counts` does for ``supervised.class_counts: auto``. SemanticKITTI:
    every label but 255 outside ``.invalid`` (what cigocc trains on); Occ3D: inside the camera
    mask. ``cfg`` unchanged otherwise.
    """
    c = cfg.cigocc
    if cfg.method != "cigocc" or c.class_balance != "dataset" or c.class_counts is not None:
        return cfg
    import numpy as np

    from occkit.data.semantickitti import SemanticKITTIDataset

    ds = base_dataset(train_set)
    C = cfg.model.num_classes
    n = len(ds.frames)
    if n == 0:
        raise ValueError(f"cigocc.class_balance='dataset': the training split of {ds.root} has no frames to count")
    picks = range(n) if n <= max_frames else [round(i * (n - 1) / (max_frames - 1)) for i in range(max_frames)]
    if progress:
        from tqdm import tqdm

        picks = tqdm(picks, desc="class counts", unit="frame", leave=False)
    counts = np.zeros(C, dtype=np.float64)
    for i in picks:
        if isinstance(ds, SemanticKITTIDataset):
            labels, invalid = ds.load_gt_arrays(i)
            known = labels[~invalid & (labels != 255)]
            where = ds.voxel_path(i, "label")
        else:
            gt = ds.read_labels(ds.frames[i].token)
            known = gt["semantics"][gt["mask_camera"].astype(bool)]
            where = ds.gt_path(ds.frames[i].token)
        if known.size and int(known.max()) >= C:
            raise ValueError(f"{where}: label {int(known.max())} is not a class of model.num_classes={C}")
        counts += np.bincount(known.astype(np.int64), minlength=C)
    if counts.sum() == 0:
        raise ValueError(f"cigocc.class_balance='dataset': no labelled voxels in the training split of {ds.root}")
    out = copy.deepcopy(cfg)
    out.cigocc.class_counts = tuple(float(v) for v in counts)
    return out


def data_format(cfg: ExperimentConfig, root: str | os.PathLike) -> str:
    """'occ3d' or 'semantickitti': ``data.format``, or with 'auto' by the folder (``sequences/``
    and no ``annotations.json``: semantickitti)."""
    r = Path(root)
    found = "semantickitti" if (r / "sequences").is_dir() and not (r / "annotations.json").is_file() else "occ3d"
    if cfg.data.format != "auto":
        if cfg.data.format != found and ((r / "sequences").is_dir() or (r / "annotations.json").is_file()):
            names = {"occ3d": "an Occ3D-nuScenes", "semantickitti": "a SemanticKITTI"}
            raise ValueError(f"{root}: {names[found]} dataset, but the run is of {names[cfg.data.format]} dataset "
                             f"(data.format {cfg.data.format}): the run and the data differ; give data of the run's format, "
                             "or a run trained on data like this")
        return cfg.data.format
    return found


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

