"""The experiment: one config for a whole training run, and the builders that read it.

An :class:`ExperimentConfig` gathers the method's name, the model, the sections the method reads
(its own settings; :class:`~occkit.methods.registry.MethodSpec.sections`), the data, the optimiser
and the loop. A preset (``configs/<name>.yaml``, shipped inside the package, or one a method's
package ships) overrides its defaults, ``--set a.b=c`` overrides the preset, and unknown keys are
errors naming the key. This module is the composition root: it names no method, it asks the
registry (:mod:`occkit.methods.registry`) for the one ``method:`` names, builds it
(:func:`build_method`, loading the runs it needs), wraps its datasets (:func:`build_dataset`) and
resolves what its config leaves to the training frames (:func:`prepare_run`). docs/design.md
walks through the data flow from a preset to a loss.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import Dataset

from occkit.config import ConfigError, check_field_ranges, from_dict, load_yaml, merge, parse_overrides, to_dict
from occkit.data.augment import BEVAugConfig, ImageAugConfig, augment_bev, augment_images
from occkit.data.sample import NUSCENES_CAMERAS, Sample
from occkit.data.wrappers import base_dataset  # re-exported: callers import it from here
from occkit.engine.checkpoint import (
    CONFIG_FILE,
    load_config_dict,
    load_weights,
    resolve_checkpoint,
    weights_file,
)
from occkit.engine.config import OptimConfig, TrainConfig
from occkit.engine.distributed import resolve_device
from occkit.formats.spec import DatasetFormat
from occkit.methods.registry import (
    DEFAULT_METHOD,
    MethodSpec,
    RegistryError,
    all_sections,
    get_method,
    is_from_package,
    method_names,
    not_registered,
    preset_folders,
)
from occkit.models.occnet import OccNetConfig, lift_grid_of


@dataclass
class DataConfig:
    """Which frames, at what size, in what batches."""

    train_split: str = "train"
    """Split trained on (``train``, ``val`` or ``all``)."""
    val_split: str = "val"
    """Split validated on."""
    cameras: tuple[str, ...] = NUSCENES_CAMERAS
    """Camera names, in this order. Left unset (in the preset and ``--set``), a run takes the cameras
    of its data, in the data's order (:func:`fit_cameras`): nuScenes' six on Occ3D-nuScenes, a rig's
    own on the labels ``occkit label`` made of it. Each image is resized to ``image_aug.out_hw`` with
    its intrinsics scaled to match, whatever its camera's size."""
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
    """The folder ``occkit prepare nuscenes`` wrote, or a nuScenes-style info file (``.pkl``/``.json``:
    ``lidar_path``, ``lidar2ego_*``, ``sweeps``), giving each frame's LiDAR on real Occ3D-nuScenes
    (files under the nuScenes root prepare recorded, else under the dataset root's ``samples/`` and
    ``sweeps/``); None = the synthetic extras (``load_extras``). docs/formats/nuscenes.md."""
    format: str = "auto"
    """Dataset format, a registered one's name (:func:`occkit.formats.format_names`: 'occ3d' for
    ``annotations.json``, 'semantickitti' for ``sequences/`` with one camera ``image_2``, 20 classes
    with 0 = empty, validated with the SSC metrics, and those of installed packages), or 'auto': the
    first format whose detection knows the folder (:func:`occkit.formats.detect_format`). The
    format gives the frames, the free class of the BEV augmentation and the validation metrics."""
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


class ExperimentConfig:
    """Everything a training run needs; presets override these defaults.

    Each method has its own config class (:func:`experiment_class`): a dataclass whose fields are
    ``method``, ``model``, the sections the method reads, ``data``, ``optim`` and ``train``; this
    class is their common base. ``ExperimentConfig(method="radocc", supervised=..., radocc=...)``
    makes an instance of radocc's class (a section the method does not read is an error), so that
    a run's config (and its ``config.json``) holds the sections its method uses and no other.
    """

    method: str
    """The recipe, a registered method's name (:func:`occkit.methods.registry.method_names`)."""
    model: OccNetConfig
    """The occupancy network."""
    data: DataConfig
    """Frames, image size, batches."""
    optim: OptimConfig
    """Optimiser, schedule, precision, EMA."""
    train: TrainConfig
    """The loop: seed, device, logging, validation, checkpoints."""

    def __new__(cls, *args: Any, method: str = DEFAULT_METHOD, **kwargs: Any) -> ExperimentConfig:
        if cls is ExperimentConfig:
            if args:
                raise TypeError("ExperimentConfig: pass its fields by name (method=..., model=..., ...)")
            cls = experiment_class(method)
        return object.__new__(cls)


_CLASSES: dict[str, type] = {}


def experiment_class(method: str) -> type:
    """The config class of ``method``: method, model, its sections, data, optim, train."""
    if method not in _CLASSES:
        try:
            spec = get_method(method)
        except RegistryError as e:
            raise ConfigError(str(e)) from e
        name = f"ExperimentConfig_{method}"
        fields = [("method", str, field(default=method)), ("model", OccNetConfig, field(default_factory=OccNetConfig))]
        fields += [(key, sec, field(default_factory=sec)) for key, sec in spec.sections.items()]
        fields += [
            ("data", DataConfig, field(default_factory=DataConfig)),
            ("optim", OptimConfig, field(default_factory=OptimConfig)),
            ("train", TrainConfig, field(default_factory=TrainConfig)),
        ]
        cls = dataclasses.make_dataclass(name, fields, bases=(ExperimentConfig,), namespace={"__module__": __name__})
        cls.__doc__ = f"The experiment config of a {method} run ({spec.summary})."
        globals()[name] = cls  # found by name, so that configs pickle (DataLoader workers, spawn)
        _CLASSES[method] = cls
    return _CLASSES[method]


def __getattr__(name: str) -> Any:  # a pickled config's class in a fresh process
    if name.startswith("ExperimentConfig_"):
        return experiment_class(name[len("ExperimentConfig_") :])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def experiment_from_dict(data: dict[str, Any], where: str = "config") -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a plain dict (e.g. a checkpoint's ``config.json``).

    The sections of other registered methods are dropped: a ``config.json`` written before
    methods registered themselves holds every method's section.
    """
    method = data.get("method", DEFAULT_METHOD)
    if not isinstance(method, str):
        raise ConfigError(f"{where}: method: expected a string, got {method!r}")
    try:
        cls = experiment_class(method)
        cfg = from_dict(cls, _own_sections(upgrade_config_dict(data), method))
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e
    check_experiment(cfg)
    return cfg


def upgrade_config_dict(data: dict[str, Any]) -> dict[str, Any]:
    """A config written by an older occkit in today's keys (both before 0.2.0): ``train.val_rayiou``
    is ``train.val_metrics`` (``[miou, rayiou]`` where it was true), and a method section's
    ``free_index`` (``supervised.free_index``, ``radocc.free_index`` ...) is its ``free``."""
    data = _renamed_free_keys(data)
    train = data.get("train")
    if not isinstance(train, dict) or "val_rayiou" not in train:
        return data
    train = dict(train)
    if train.pop("val_rayiou") and "val_metrics" not in train:
        train["val_metrics"] = ["miou", "rayiou"]
    return {**data, "train": train}


def _renamed_free_keys(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with each method section's ``free_index`` (the free class's key before 0.2.0) as ``free``,
    where the section's settings name it ``free`` (a package's method that still names it ``free_index``
    keeps its key)."""
    import dataclasses

    sections = all_sections()

    def renamed(section: type) -> bool:
        names = {f.name for f in dataclasses.fields(section)} if dataclasses.is_dataclass(section) else set()
        return "free" in names and "free_index" not in names

    old = [
        k
        for k, v in data.items()
        if k in sections and isinstance(v, dict) and "free_index" in v and renamed(sections[k])
    ]
    if not old:
        return data
    out = dict(data)
    for key in old:
        section = dict(out[key])
        value = section.pop("free_index")
        section.setdefault("free", value)
        out[key] = section
    return out


def _own_sections(data: dict[str, Any], method: str) -> dict[str, Any]:
    """``data`` without the sections that only other methods read."""
    own = get_method(method).sections
    return {k: v for k, v in data.items() if k in own or k not in all_sections()}


def check_read_sections(over: dict[str, Any], method: str, where: str = "--set") -> None:
    """Refuse an override of a section ``method`` does not read (another method's, e.g.
    ``radocc.depth_tau`` on a supervised run): it would be dropped without a word, as a typo'd
    key is not. One line naming the key, the method and the sections it reads."""
    own = get_method(method).sections
    for key, value in over.items():
        if key in all_sections() and key not in own:
            dotted = key
            while isinstance(value, dict) and value:
                sub, value = next(iter(value.items()))
                dotted += f".{sub}"
            reads = ", ".join(["model", *own, "data", "optim", "train"])
            raise ConfigError(
                f"{where} {dotted}: section {key} is not read by method {method}, which reads {reads} "
                "(its sections are another method's)"
            )


# ---------------------------------------------------------------------------------------- presets
def _preset_files() -> dict[str, Path]:
    """Preset name -> file: occkit's ``configs/*.yaml``, then those of methods from other packages."""
    out: dict[str, Path] = {}
    folder = resources.files("occkit") / "configs"
    for p in folder.iterdir():
        if p.name.endswith(".yaml"):
            out[p.name[:-5]] = Path(str(p))
    for extra in preset_folders():
        for p in sorted(Path(extra).glob("*.yaml")):
            out.setdefault(p.stem, p)
    return out


def preset_names() -> list[str]:
    """Names of the presets shipped with occkit (``configs/*.yaml`` inside the package) and with
    the methods of other packages."""
    return sorted(_preset_files())


def find_preset(name_or_path: str | os.PathLike) -> Path:
    """A YAML path from a path or a preset name (``synth-cpu``); errors list the presets."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.suffix not in (".yaml", ".yml") and os.sep not in str(name_or_path):
        found = _preset_files().get(str(name_or_path))
        if found is not None and found.is_file():
            return found
    raise FileNotFoundError(f"{name_or_path}: no such config file or preset (presets: {', '.join(preset_names())})")


def load_experiment(
    name_or_path: str | os.PathLike | None = None, overrides: list[str] | None = None
) -> ExperimentConfig:
    """Defaults, then the preset (by name or path; a run's ``config.json`` written by an older occkit
    in today's keys, :func:`upgrade_config_dict`), then ``key=value`` overrides."""
    path = find_preset(name_or_path) if name_or_path is not None else None
    data = upgrade_config_dict(load_yaml(path)) if path is not None else {}
    over = parse_overrides(list(overrides)) if overrides else {}
    method = over.get("method", data.get("method", DEFAULT_METHOD))
    if not isinstance(method, str) or method not in method_names():
        where = "--set method" if "method" in over else f"{path}: method" if path is not None else "method"
        raise ConfigError(f"{where}: {not_registered(method) if isinstance(method, str) else repr(method)}")
    cls = experiment_class(method)
    merged = to_dict(cls())
    if path is not None:
        merged = merge(merged, _own_sections(data, method))  # its errors name the file
        try:
            from_dict(cls, merged)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from e
    if over:
        check_read_sections(over, method)
        merged = merge(merged, _own_sections(over, method))
    cfg = from_dict(cls, merged)
    check_experiment(cfg)
    given = _dotted_keys(_own_sections(data, method)) | _dotted_keys(_own_sections(over, method))
    object.__setattr__(cfg, GIVEN_KEYS, frozenset(given))
    return cfg


#: The attribute of a config from :func:`load_experiment` holding the dotted keys its preset and
#: ``--set`` gave (not a field: config.json does not hold it); :func:`fit_to_format` fills the others.
GIVEN_KEYS = "_given_keys"


def _dotted_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    """The dotted paths of ``data``'s leaves (``{"model": {"num_classes": 17}}`` -> ``model.num_classes``)."""
    out: set[str] = set()
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out |= _dotted_keys(v, key)
        else:
            out.add(key)
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, abs_tol=1e-6)
    return a == b


def fit_to_format(cfg: ExperimentConfig, root: str | os.PathLike, fmt: DatasetFormat | None = None) -> ExperimentConfig:
    """The config of a run on the data at ``root``, with the settings the method takes from the
    data's format (:attr:`MethodSpec.from_format`: class count, free and ignore ids, class names,
    grid, ground height) filled in where the preset and ``--set`` left them unset.

    The rule: a key given explicitly wins, and must agree with the format's table: one that
    differs is a one-line error naming the key, its value and the format's. A config not from
    :func:`load_experiment` (a run's config.json) counts every key as given and is only checked.
    ``fmt``: the data's format when the caller knows it before the data exists (``occkit demo``
    checks its preset against the world it will write); else the format of ``root``, whose cameras
    then fill ``data.cameras`` where it is unset (:func:`fit_cameras`).
    Returns a copy when anything is filled in (:func:`_with_settings`), else ``cfg``.
    """
    wanted = method_spec(cfg).from_format
    if not wanted:
        return fit_cameras(cfg, root) if fmt is None else cfg  # a given fmt: the data may not exist yet
    data_exist = fmt is None
    if fmt is None:
        fmt = dataset_format(cfg, root)
    elif cfg.data.format not in ("auto", fmt.name):
        raise ConfigError(
            f"data.format: {cfg.data.format!r} but the data {root} is {fmt.display_name} (format {fmt.name})"
        )
    values = fmt.config_values()
    given = getattr(cfg, GIVEN_KEYS, None)
    changes: dict[str, dict[str, Any]] = {}  # section -> {setting: the format's value}
    for key, what in wanted.items():
        if what not in values:
            raise RegistryError(
                f"method {cfg.method}: from_format[{key!r}] asks the format for {what!r}, which is not one of "
                f"{', '.join(values)}"
            )
        value = values[what]
        if value is None:
            continue  # the format has none: the config's stands
        section, name = _setting(cfg, key)
        current = getattr(getattr(cfg, section), name)
        if current is not None and (given is None or key in given):  # None: unset, the format's
            if not _same(current, value):
                raise ConfigError(
                    f"{key}: {_show(current)} but the data {root} is {fmt.display_name} (format {fmt.name}), whose "
                    f"{what.replace('_', ' ')} is {_show(value)}; leave {key} unset to take the format's"
                )
            continue
        if not _same(current, value):
            changes.setdefault(section, {})[name] = value
    out = _with_settings(cfg, changes)
    _check_depth_reach(out, fmt, root)
    return fit_cameras(out, root, fmt) if data_exist else out


def fit_cameras(cfg: ExperimentConfig, root: str | os.PathLike, fmt: DatasetFormat | None = None) -> ExperimentConfig:
    """The config of a run on the data at ``root`` with ``data.cameras`` set to the data's own
    cameras when neither the preset nor ``--set`` names them: a rig's labels (``occkit label``) carry
    the recording's cameras, any number, names and sizes, not nuScenes' six. The cameras are those
    every frame records, in the data's order (the reader's default cameras: nuScenes' order for its
    six); a camera only some frames record is left out, said in one line on stderr, as is the switch
    from the default. Cameras that are named (a monocular preset's one camera, a list in a preset or
    ``--set data.cameras=[...]``) stay, and the reader refuses any the data lack in one line naming
    the cameras it has. A format of fixed cameras, a config not from :func:`load_experiment` (a run's
    config.json) and data without cameras are left as they are. Returns a copy when it changes."""
    given = getattr(cfg, GIVEN_KEYS, None)
    if given is None or "data.cameras" in given or not Path(root).is_dir():
        return cfg
    if fmt is None:
        fmt = dataset_format(cfg, root)
    if fmt.cameras is not None:
        return cfg
    try:
        ds = fmt.open_split(root, "all", cameras=None, load_images=False, load_gt=False, load_extras=False)
    except Exception:  # noqa: BLE001 - the run's own reading of the data names what is wrong with it
        return cfg
    base = base_dataset(ds)
    cams = tuple(getattr(base, "cameras", None) or ())
    if not cams:
        return cfg  # data without cameras: the reader reads none
    common = getattr(base, "common_cameras", None)
    partial = common()[1] if callable(common) else {}
    if set(cams) == set(cfg.data.cameras) and not partial:
        return cfg
    import sys

    line = f"occkit: data.cameras: training on the cameras of {root}, in its order: {', '.join(cams)}"
    if partial:
        left = ", ".join(f"{c} (missing from {n} frames)" for c, n in sorted(partial.items()))
        line += f"; left out, as some frames lack them: {left}"
    if os.environ.get("RANK", "0") == "0":
        print(line, file=sys.stderr, flush=True)
    return _with_settings(cfg, {"data": {"cameras": cams}})


def _setting(cfg: ExperimentConfig, key: str) -> tuple[str, str]:
    """``(section, name)`` of a method's :attr:`MethodSpec.from_format` key ``section.name``; a key
    that is not a field of its section's dataclass is refused in one line naming the method."""
    section, _, name = key.partition(".")
    part = getattr(cfg, section, None) if section in {f.name for f in dataclasses.fields(cfg)} else None
    if part is None or not dataclasses.is_dataclass(part) or name not in {f.name for f in dataclasses.fields(part)}:
        raise RegistryError(
            f"method {cfg.method}: from_format names {key!r}, which is not a setting of its config "
            f"(a section's field, as model.num_classes)"
        )
    return section, name


def _with_settings(cfg: ExperimentConfig, changes: dict[str, dict[str, Any]]) -> ExperimentConfig:
    """A copy of ``cfg`` with new values of some settings (``{section: {name: value}}``), each section
    rebuilt by :func:`dataclasses.replace` (its own fields by name, not attributes set by string);
    ``cfg`` itself when there is nothing to change. The copy keeps which keys were given."""
    if not changes:
        return cfg
    import copy

    base = copy.deepcopy(cfg)
    out = dataclasses.replace(base, **{s: dataclasses.replace(getattr(base, s), **v) for s, v in changes.items()})
    given = getattr(cfg, GIVEN_KEYS, None)
    if given is not None:
        object.__setattr__(out, GIVEN_KEYS, given)
    return out


#: How far past the data's grid (its corner-to-corner length) a camera lift's depth bins may reach.
DEPTH_REACH = 4.0


def _check_depth_reach(cfg: ExperimentConfig, fmt: DatasetFormat, root: str | os.PathLike) -> None:
    """Refuse a camera lift (``model.lift: lss``) whose depth bins reach far past the data's grid:
    a recipe of driving scenes (1-45 m) on rooms 5 m across would train with most of its bins
    beyond every wall, silently (``synth-cpu`` on the indoor world)."""
    m = getattr(cfg, "model", None)
    if m is None or getattr(m, "lift", None) != "lss" or getattr(m, "modality", "camera") == "lidar":
        return
    span = math.dist(fmt.grid.point_range[:3], fmt.grid.point_range[3:])
    if m.depth_max > DEPTH_REACH * span:
        kinds = sorted({f.world for f in _formats_of_world_other_than(fmt)})
        raise ConfigError(
            f"model.depth_max: {m.depth_max:g} m, but the data {root} is {fmt.display_name} (format {fmt.name}), "
            f"whose grid is {span:.1f} m corner to corner: the depth bins ({m.depth_min:g}-{m.depth_max:g} m) reach "
            f"{m.depth_max / span:.0f}x past it"
            + (f" (a recipe of {' or '.join(kinds)} scenes on {fmt.world} data?)" if kinds else "")
            + "; give model.depth_min/depth_max for this data, or a preset of its format"
        )


def _formats_of_world_other_than(fmt: DatasetFormat) -> list[DatasetFormat]:
    from occkit.formats import formats

    return [f for f in formats().values() if f.world != fmt.world]


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"[{', '.join(map(str, value[:4]))}, ... ({len(value)} values)]"
    return repr(list(value)) if isinstance(value, tuple) else repr(value)


def check_experiment(cfg: ExperimentConfig) -> None:
    """Value checks the types alone do not catch; errors name the key."""
    if cfg.method not in method_names():
        raise ConfigError(f"method: {cfg.method!r} is not one of {', '.join(method_names())}")
    H, W = cfg.data.image_aug.out_hw
    if H <= 0 or W <= 0:
        raise ConfigError(f"data.image_aug.out_hw: expected positive (H, W), got {(H, W)}")
    if cfg.data.batch_size < 1 or cfg.data.val_batch_size < 1:
        raise ConfigError("data.batch_size and data.val_batch_size must be >= 1")
    if cfg.data.workers < 0:
        raise ConfigError(f"data.workers must be >= 0, got {cfg.data.workers}")
    if not cfg.data.cameras:
        raise ConfigError("data.cameras: need at least one camera")
    from occkit.formats import format_names

    if cfg.data.format != "auto" and cfg.data.format not in format_names():
        raise ConfigError(f"data.format: {cfg.data.format!r} is not 'auto' or one of {', '.join(format_names())}")
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
    if not (0 < cfg.optim.lr < math.inf):  # NaN too
        raise ConfigError(f"optim.lr must be a finite number > 0, got {cfg.optim.lr}")
    check_field_ranges(cfg)  # every section: loss weights >= 0, channel counts >= 1 (by the field's name)
    for key, value in {
        "optim.grad_clip": cfg.optim.grad_clip,
        "optim.warmup_steps": cfg.optim.warmup_steps,
        "optim.weight_decay": cfg.optim.weight_decay,
        "train.seed": cfg.train.seed,
        "train.max_minutes": cfg.train.max_minutes,
        "train.val_every_minutes": cfg.train.val_every_minutes,
        "train.threads": cfg.train.threads,
        "train.val_every": cfg.train.val_every,
        "train.val_max_frames": cfg.train.val_max_frames,
        "train.keep_checkpoints": cfg.train.keep_checkpoints,
    }.items():
        if not (value >= 0 and math.isfinite(value)):  # NaN fails too
            raise ConfigError(f"{key} must be >= 0 (and finite), got {value}")


# ---------------------------------------------------------------------------------------- builders
def method_spec(cfg: ExperimentConfig) -> MethodSpec:
    """The registry's entry for ``cfg.method``."""
    try:
        return get_method(cfg.method)
    except RegistryError as e:
        raise ConfigError(str(e)) from e


def load_run(path: str | os.PathLike, what: str, ema: bool = True) -> nn.Module:
    """A trained method from its run, for a recipe that distils from or starts from it (the
    :class:`~occkit.methods.registry.RunLoader` handed to every method's build): on the CPU, in
    eval mode, its EMA weights when it has them and ``ema``; the global RNG is left as it was, so
    that the recipe's own initial weights do not depend on it. Errors start with ``what``."""
    try:
        with torch.random.fork_rng(devices=[]):  # building it draws initial weights: not from the caller's stream
            method, _, _, _ = load_checkpoint_method(path, device="cpu", ema=ema)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise FileNotFoundError(f"{what}: {e}") from e
    return method


def build_method(cfg: ExperimentConfig) -> nn.Module:
    """The method named by ``cfg.method``, built from its config by its registered builder.

    The trained models a recipe starts from or distills from (``radocc.teacher``,
    ``occscene.perception_ckpt``) are loaded here (:func:`load_run`) and handed to it: the
    recipes never load runs themselves.
    """
    spec = method_spec(cfg)
    cfg = _fill_unset_from_named_format(cfg, spec.from_format)
    try:
        method = spec.build(cfg, load_run)
    except (ValueError, OSError, KeyError, MemoryError):  # bad input, named by the method: as it is
        raise
    except Exception as e:
        if not is_from_package(spec):
            raise  # a bug in occkit: its traceback
        from occkit.deprecation import another_version

        why = another_version() if isinstance(e, TypeError) else "an error of that package"
        raise RegistryError(
            f"method {spec.name} ({spec.source}): its build() failed: {type(e).__name__}: {e} ({why}; --debug "
            "shows the traceback)"
        ) from e
    if not isinstance(method, nn.Module):
        raise RegistryError(
            f"method {spec.name} ({spec.source}): its build() returned {type(method).__name__}, not a torch.nn.Module"
        )
    return method


def _fill_unset_from_named_format(cfg: ExperimentConfig, wanted: dict[str, str]) -> ExperimentConfig:
    """``cfg`` with the settings its method takes from the data's format (``wanted``,
    :attr:`MethodSpec.from_format`) that are still unset (None: a preset built without data, in a
    benchmark or a test) taken from the format ``data.format`` names, else the default format
    (Occ3D-nuScenes, the synthetic world's); ``cfg`` itself when none is unset. A run on data has
    them from :func:`fit_to_format` already."""
    unset = []
    for key, what in wanted.items():
        section, name = _setting(cfg, key)
        if getattr(getattr(cfg, section), name) is None:
            unset.append((section, name, what))
    if not unset:
        return cfg
    from occkit.formats import default_format, get_format

    fmt = default_format() if cfg.data.format == "auto" else get_format(cfg.data.format)
    values = fmt.config_values()
    changes: dict[str, dict[str, Any]] = {}
    for section, name, what in unset:
        if values.get(what) is not None:
            changes.setdefault(section, {})[name] = values[what]
    return _with_settings(cfg, changes)


def resolve_auto_class_counts(
    cfg: ExperimentConfig, train_set: Dataset, max_frames: int = 2000, progress: bool = False
) -> ExperimentConfig:
    """What the method's config leaves to the training frames, filled in from them
    (``supervised.class_counts: auto``, ``cigocc.class_balance: dataset``): a copy of ``cfg``, so
    that the run's config.json records what it trained with; ``cfg`` itself when nothing is left."""
    resolve = method_spec(cfg).resolve
    if resolve is None:
        return cfg
    from occkit.formats import format_of
    from occkit.labels import ClassIdsOutside

    try:
        return resolve(cfg, train_set, max_frames, progress)
    except ClassIdsOutside as e:  # counted against model.num_classes: the format the labels are of named too
        try:
            fmt = format_of(train_set)
        except (TypeError, KeyError, ValueError):
            raise e from None
        where = f" ({fmt.source})" if fmt.from_package else ""
        raise ClassIdsOutside(f"{e}; labels of the {fmt.name} format{where}", e.ids, e.voxels) from None


def prepare_run(cfg: ExperimentConfig, train_set: Dataset, progress: bool = True) -> tuple[ExperimentConfig, nn.Module]:
    """The resolved config and the built method of a run, as the engine takes them.

    Seeds every RNG with ``train.seed`` first (the same initial weights on every process),
    resolves the config from the training frames (:func:`resolve_auto_class_counts`; a progress
    bar on rank 0 only), then builds the method (:func:`build_method`).
    """
    from occkit.engine.data import seed_everything

    seed_everything(cfg.train.seed)
    main = os.environ.get("RANK", "0") == "0"
    cfg = resolve_auto_class_counts(cfg, train_set, progress=progress and main)
    method = build_method(cfg)
    if main:
        for line in unfed_losses(cfg, train_set):
            print(f"occkit train: warning: {line}", file=sys.stderr, flush=True)
    return cfg, method


def unfed_losses(cfg: ExperimentConfig, train_set: Dataset) -> list[str]:
    """The method's loss terms that the training frames cannot feed, one line each
    (:attr:`MethodSpec.unfed_losses` of the first training frame, read with every random generator left as it
    was: the run trains as it would have without the look)."""
    check = method_spec(cfg).unfed_losses
    if check is None or len(train_set) == 0:  # type: ignore[arg-type]
        return []
    import random

    import numpy as np

    state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            sample = train_set[0]
        finally:
            random.setstate(state[0])
            np.random.set_state(state[1])
    return list(check(cfg, sample))


class AugmentedFrames(Dataset):
    """Frames with the image transform (and, for training, the BEV transform) applied.

    Random draws use the global torch RNG, which the engine seeds per item
    (:class:`occkit.engine.data.SeededItems`), so augmentation is reproducible and resumable.

    Args:
        dataset: yields :class:`Sample`.
        image_aug: resize/crop/flip to the network input size.
        bev_aug: ego-frame flips/rotations, or None.
        free: the class that voxels rotated in from outside the grid get (the data's format's:
            :func:`free`); needed with ``bev_aug``.
        grid: the grid of the frames' labels (default: Occ3D's), which the BEV transform maps.
        fmt: the frames' dataset format: each frame's labels are checked against its class table as
            loaded (:func:`check_frame_ids`), so that a class id beyond it is one line naming the format,
            the file and the id, not an index error in a loss or a silent run.
    """

    def __init__(
        self,
        dataset: Dataset,
        image_aug: ImageAugConfig,
        bev_aug: BEVAugConfig | None = None,
        free: int | None = None,
        grid: Any = None,
        fmt: DatasetFormat | None = None,
    ) -> None:
        if bev_aug is not None and free is None:
            raise ValueError("AugmentedFrames: the BEV transform needs the data's free class (free)")
        self.dataset, self.image_aug, self.bev_aug, self.free = dataset, image_aug, bev_aug, free
        self.grid, self.fmt = grid, fmt

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> Sample:
        s: Sample = self.dataset[i]
        if self.fmt is not None and s.occupancy is not None:
            check_frame_ids(self.fmt, s.occupancy, self.dataset, s.token)
        if s.images.shape[-1] > 0:  # images loaded
            s = augment_images(s, self.image_aug)
        if self.bev_aug is not None and s.occupancy is not None:
            s = augment_bev(s, self.bev_aug, grid=self.grid, free=self.free)
        return s


def _label_file(ds: Dataset, token: str) -> str:
    """Where frame ``token``'s labels are read from (the reader's ``frame_labels`` file), for an error;
    the frame alone where the reader does not say."""
    base: Any = None
    try:
        base = base_dataset(ds)
        return f"{base.frame_labels(base.index_of(token))[2]}: frame {token}"
    except Exception:  # noqa: BLE001 - a reader without frame_labels, or one refusing the ids itself: the frame
        return f"{getattr(base, 'root', None) or 'the dataset'}: frame {token}"


def _whose(fmt: DatasetFormat) -> str:
    """The class table of ``fmt`` as the ids check names it: the format, and the package it comes from."""
    where = f" ({fmt.source})" if fmt.from_package else ""
    return f"the {fmt.name} format's class table{where}, ids"


def check_frame_ids(fmt: DatasetFormat, labels: Any, ds: Dataset, token: str) -> None:
    """Refuse a frame whose ``labels`` hold a class id outside ``fmt``'s class table (its ignore id
    excepted) in one line naming the file, the frame, the id and the format (its package): a table shorter
    than the labels would end in an index error in a loss (a device-side assert on a GPU) or train on
    wrong classes. Built-in readers refuse such ids as they read; this holds every format to it."""
    from occkit.labels import refuse_ids_outside

    table = fmt.classes
    refuse_ids_outside(labels, table.num_classes, table.ignore, lambda: _label_file(ds, token), whose=_whose(fmt))


def build_dataset(
    cfg: ExperimentConfig, root: str | os.PathLike, split: str, train: bool = False, load_gt: bool = True
) -> Dataset:
    """The frames of ``split`` under ``root`` as the method sees them.

    Training frames get ``data.image_aug`` and ``data.bev_aug``; evaluation frames the
    deterministic resize/crop in the middle of the training ranges
    (:meth:`ImageAugConfig.evaluation`) and no BEV transform. The model's
    output grid must be the dataset's (checked here, naming both).
    """
    fmt = dataset_format(cfg, root)
    ds: Dataset = fmt.open_split(
        root,
        split,
        cameras=None if fmt.cameras is not None else tuple(cfg.data.cameras),
        load_gt=load_gt,
        load_extras=cfg.data.load_extras,
        cache_mb=cfg.data.cache_mb,
    )
    if cfg.data.priors:
        from occkit.priors.cache import PriorCache, WithPriors

        ds = WithPriors(ds, PriorCache(cfg.data.priors, kinds=cfg.data.prior_kinds or None))
    wrap = method_spec(cfg).wrap_dataset
    if wrap is not None:  # what the method adds to every frame (LangOcc: its neighbours' 2D features)
        ds = wrap(cfg, ds, train)
    if cfg.data.lidar_sweeps > 1 or cfg.data.lidar_infos:
        from occkit.data.lidar_sweeps import WithLidarSweeps

        ds = WithLidarSweeps(ds, cfg.data.lidar_sweeps, cfg.data.lidar_infos)
    output_grid, _ = lift_grid_of(cfg.model)
    if output_grid.shape != base_dataset(ds).grid.shape:
        raise ConfigError(
            f"model.point_range/voxel_size give a grid {output_grid.shape} but {root} is {base_dataset(ds).grid.shape}"
            + _world_hint(fmt, output_grid.shape, root)
        )
    if train:
        return AugmentedFrames(
            ds, cfg.data.image_aug, cfg.data.bev_aug, free=free(fmt, cfg), grid=base_dataset(ds).grid, fmt=fmt
        )
    return AugmentedFrames(ds, cfg.data.image_aug.evaluation(), None, fmt=fmt)


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
            raise ConfigError(
                f"data.extra_train: {extra} is not a folder (a dataset in the Occ3D layout, e.g. occkit generate's "
                "--out)"
            )
        ds = build_dataset(cfg, extra, "all", train=True)
        if len(ds) == 0:
            raise ConfigError(f"data.extra_train: {extra} has no frames")
        if d.extra_images == "mean_colour":
            ds.dataset = MeanColourImages(ds.dataset)  # under the augmentation: a flat image stays flat
        extras.append(ds)
    return ConcatFrames(train, extras)


def load_checkpoint_method(
    ckpt: str | os.PathLike,
    device: str = "auto",
    ema: bool = True,
    overrides: list[str] | None = None,
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
        over = parse_overrides(list(overrides))
        method = over.get("method", data.get("method", DEFAULT_METHOD))
        if isinstance(method, str) and method in method_names():  # else experiment_from_dict names it
            check_read_sections(over, method, where=f"{where}: --set")
        data = merge(data, over)
        where += " with --set " + " ".join(overrides)
    cfg = experiment_from_dict(data, where=where)
    # the checkpoint holds every weight: the backbone file the run started from is not read again (it
    # may have moved since; reading it printed a load line for weights the checkpoint then replaced)
    build_cfg = cfg
    if getattr(cfg.model, "backbone_weights", None):
        build_cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, backbone_weights=None))
    method = build_method(build_cfg)
    weights = weights_file(folder, ema)
    try:
        load_weights(method, weights)
    except ValueError as e:
        if overrides and "does not fit the model" in str(e):  # name the --set that changed a shape, not the weights
            raise ValueError(
                f"--set {' '.join(overrides)}: changes the network of {folder} (its weights no longer fit: "
                f"{' '.join(str(e).split())[:300]}); --set at inference takes settings such as thresholds, "
                "not shapes"
            ) from e
        raise
    dev = resolve_device(device)
    return method.to(dev).eval(), cfg, folder, dev


def dataset_format(cfg: ExperimentConfig, root: str | os.PathLike) -> DatasetFormat:
    """The format of the run's data at ``root``: ``data.format`` (refused when the folder is of
    another format), or with 'auto' the folder's (:func:`occkit.formats.detect_format`; a folder of
    no known format is a one-line error listing those tried)."""
    from occkit.formats import FormatRegistryError, detect_format, get_format

    if cfg.data.format == "auto":
        return detect_format(root, option="--set data.format={}")  # train, demo, priors train: --set
    fmt = get_format(cfg.data.format)
    try:
        found = detect_format(root)
    except (FormatRegistryError, OSError):
        return fmt  # a folder no format knows: the named format's reader says what it lacks
    if found.name != fmt.name:
        raise ValueError(
            f"{root}: {_article(_kind(found, fmt))} dataset, but the run is of {_article(_kind(fmt, found))} dataset "
            f"(data.format {fmt.name}): the run and the data differ; give data of the run's format, or a run "
            "trained on data like this"
        )
    return fmt


def _world_hint(fmt: DatasetFormat, shape: tuple[int, ...], root: str | os.PathLike) -> str:
    """A grid mismatch's cause when it is the world (a driving run pointed at indoor data, or the
    reverse): every format of the model's grid holds scenes of another kind than ``fmt``'s."""
    from occkit.formats import formats

    others = [f for f in formats().values() if tuple(f.grid.shape) == tuple(shape)]
    if not others or any(f.world == fmt.world for f in others):
        return ""
    return (
        f": {root} is {_article(_kind(fmt, others[0]))} dataset, but the run's grid is of {others[0].world} datasets: "
        "the run and the data differ; give data of the run's kind, or a run trained on data like this"
    )


def _kind(fmt: DatasetFormat, other: DatasetFormat) -> str:
    """The format's name in a sentence, with its world (``driving``, ``indoor``) when ``other``'s
    scenes are of another kind."""
    return fmt.display_name if fmt.world == other.world else f"{fmt.display_name} ({fmt.world})"


def _article(title: str) -> str:
    return ("an " if title[:1].lower() in "aeiou" else "a ") + title


def data_format(cfg: ExperimentConfig, root: str | os.PathLike) -> str:
    """The name of :func:`dataset_format`."""
    return dataset_format(cfg, root).name


def free(fmt: DatasetFormat, cfg: ExperimentConfig) -> int:
    """The class that voxels rotated in from outside the grid get (the BEV augmentation): the
    format's free class; where that is the table's last class (Occ3D's 17), the model's last class,
    so that a model of fewer classes keeps free last as its metric does."""
    free = fmt.classes.free
    if free is None or free == fmt.classes.num_classes - 1:
        return cfg.model.num_classes - 1
    return free


def num_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
