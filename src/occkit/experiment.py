"""The experiment: one config for a whole training run, and the builders that read it.

:class:`ExperimentConfig` gathers the method's name, the model, each method's own settings, the
data, the optimiser and the loop. A preset (``configs/<name>.yaml``, shipped inside the package)
overrides its defaults, ``--set a.b=c`` overrides the preset, and unknown keys are errors naming
the key. :func:`build_method` is the ONE place that turns the config into a method: adding a
method is one import and one ``elif`` there (plus its config field here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from occkit.config import ConfigError, from_dict, load_config
from occkit.data.occ3d import NUSCENES_CAMERAS, Occ3DDataset
from occkit.data.sample import Sample
from occkit.engine.config import OptimConfig, TrainConfig
from occkit.geometry.camera import scale_intrinsics
from occkit.models.occnet import OccNetConfig

#: Methods :func:`build_method` knows, for error messages and ``--help``.
METHODS: tuple[str, ...] = ("supervised",)


@dataclass
class DataConfig:
    """Which frames, at what size, in what batches."""

    train_split: str = "train"
    """Split trained on (``train``, ``val`` or ``all``)."""
    val_split: str = "val"
    """Split validated on."""
    cameras: tuple[str, ...] = NUSCENES_CAMERAS
    """Camera names, in this order."""
    image_size: tuple[int, int] = (256, 704)
    """(H, W) the images are resized to (intrinsics scaled alike); (0, 0) keeps the file's size."""
    batch_size: int = 1
    """Frames per step per process (the global batch is this times the number of processes)."""
    val_batch_size: int = 1
    """Frames per validation / prediction batch per process."""
    workers: int = 0
    """DataLoader worker processes per training process (0 = load in the main process)."""
    load_extras: bool = False
    """Load the synthetic extras (LiDAR points, per-camera depth/semantics) when present."""


@dataclass
class ExperimentConfig:
    """Everything a training run needs; ``configs/*.yaml`` presets override these defaults."""

    method: Literal["supervised"] = "supervised"
    """The recipe, built by :func:`build_method`."""
    model: OccNetConfig = field(default_factory=OccNetConfig)
    """The occupancy network."""
    supervised: dict[str, Any] = field(default_factory=dict)
    """Settings of the ``supervised`` method."""
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
    H, W = cfg.data.image_size
    if (H, W) != (0, 0) and (H <= 0 or W <= 0):
        raise ConfigError(f"data.image_size: expected positive (H, W) or (0, 0), got {(H, W)}")
    if cfg.data.batch_size < 1 or cfg.data.val_batch_size < 1:
        raise ConfigError("data.batch_size and data.val_batch_size must be >= 1")
    if cfg.data.workers < 0:
        raise ConfigError(f"data.workers must be >= 0, got {cfg.data.workers}")
    if not cfg.data.cameras:
        raise ConfigError("data.cameras: need at least one camera")
    if cfg.optim.max_steps < 1:
        raise ConfigError(f"optim.max_steps must be >= 1, got {cfg.optim.max_steps}")
    if cfg.optim.lr <= 0:
        raise ConfigError(f"optim.lr must be > 0, got {cfg.optim.lr}")


# ---------------------------------------------------------------------------------------- builders
def build_method(cfg: ExperimentConfig) -> nn.Module:
    """The method named by ``cfg.method``, built from its config. The one place methods are chosen."""
    if cfg.method == "supervised":
        from occkit.methods.supervised import SupervisedConfig, SupervisedMethod  # TODO(engine): top-level once landed

        return SupervisedMethod(cfg.model, from_dict(SupervisedConfig, cfg.supervised, prefix="supervised"))
    raise ConfigError(f"method: {cfg.method!r} is not one of {METHODS}")


class ResizedFrames(Dataset):
    """A dataset of :class:`Sample` resized to ``(H, W)``: images (bilinear, antialiased),
    intrinsics scaled alike, per-camera depth/semantics/instance maps (nearest).

    Args:
        dataset: yields samples with ``images (N, 3, H0, W0)``.
        size: ``(H, W)`` target size.
    """

    def __init__(self, dataset: Dataset, size: tuple[int, int]) -> None:
        self.dataset = dataset
        self.size = (int(size[0]), int(size[1]))

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Sample:
        s: Sample = self.dataset[i]
        H, W = self.size
        H0, W0 = s.images.shape[-2:]
        if (H0, W0) == (H, W) or H0 == 0:
            return s
        s.images = F.interpolate(s.images, size=(H, W), mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)
        s.intrinsics = scale_intrinsics(s.intrinsics, W / W0, H / H0)
        for name in ("depth", "semantics_2d", "instance_2d"):
            m = getattr(s, name)
            if m is not None:
                r = F.interpolate(m[:, None].float(), size=(H, W), mode="nearest")[:, 0]
                setattr(s, name, r.to(m.dtype))
        return s


def build_dataset(cfg: ExperimentConfig, root: str | os.PathLike, split: str, load_gt: bool = True) -> Dataset:
    """The frames of ``split`` under ``root`` as the method sees them (resized to ``data.image_size``)."""
    ds: Dataset = Occ3DDataset(root, split, cameras=tuple(cfg.data.cameras), load_gt=load_gt, load_extras=cfg.data.load_extras)
    if tuple(cfg.data.image_size) != (0, 0):
        ds = ResizedFrames(ds, tuple(cfg.data.image_size))  # type: ignore[arg-type]
    return ds


def base_dataset(ds: Dataset) -> Occ3DDataset:
    """The :class:`Occ3DDataset` under any wrappers (for tokens, scenes and poses)."""
    while not isinstance(ds, Occ3DDataset):
        inner = getattr(ds, "dataset", None)
        if inner is None:
            raise TypeError(f"{type(ds).__name__} does not wrap an Occ3DDataset")
        ds = inner
    return ds


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

