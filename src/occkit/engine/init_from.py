"""Start a run from another run's weights (``train.init_from``), matched by name and shape.

The source is a run folder (its newest checkpoint), a checkpoint folder or a ``.safetensors``
weights file. Its files are checked as ``--resume`` checks them (SHA-256 against the
``checksums.json`` beside them, NaN and infinity refused), its ``config.json`` must describe a
network that can fit this run's (:func:`check_fits`: the same output grid and classes, and a
modality that shares an input path), and then every tensor of this method's ``state_dict`` whose
name and shape match one of the source's is copied in (:func:`load_matching`). The names are the
methods' own: every recipe holds its occupancy network at ``.model``, so ``model.*`` carries over
between recipes (a ``supervised`` run into ``render_sup``, ``radocc``, ``occscene`` ...), and what a
recipe adds (a generator, an adapter) is reported as new. A method may name state that must start
afresh whatever the source holds (``init_from_fresh``, e.g. occscene's stage counter).

Nothing here builds the source's method: its weights are read as a plain safetensors dict, so a
source whose recipe needs a teacher or a generator loads as cheaply as any other.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from occkit.config import ConfigError
from occkit.engine.checkpoint import (
    CHECKSUM_FILE,
    CONFIG_FILE,
    MODEL_FILE,
    file_sha256,
    load_config_dict,
    non_finite_tensors,
    resolve_checkpoint,
    verify_checksum,
    weights_file,
)
from occkit.fileio import read_json

KEY = "train.init_from"
"""The config key errors and reports name."""


@dataclass
class InitSource:
    """Where the weights come from, resolved and checked."""

    given: str
    """``train.init_from`` as given."""
    checkpoint: Path | None
    """The checkpoint folder (None for a weights file outside one)."""
    weights: Path
    """The safetensors file read."""
    sha256: str
    """Its SHA-256 (from the checkpoint's ``checksums.json`` when it has a record, else computed)."""
    verified: bool
    """Whether the file was checked against a ``checksums.json`` record."""
    config: dict[str, Any] | None
    """The source's ``config.json`` (None when the weights file has none beside it)."""


@dataclass
class InitReport:
    """What :func:`load_matching` did, by ``state_dict`` name."""

    loaded: list[str] = field(default_factory=list)
    """Copied from the source (name and shape match)."""
    new: list[str] = field(default_factory=list)
    """In this method, not in the source: keep their initial values."""
    skipped: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    """(name, the source's shape, this method's shape) of the names in both whose shapes differ."""
    unused: list[str] = field(default_factory=list)
    """In the source, not in this method."""
    fresh: list[str] = field(default_factory=list)
    """In both, left at their initial values because the method names them ``init_from_fresh``."""
    loaded_values: int = 0
    """Numbers copied (the sum of the loaded tensors' sizes)."""
    total_values: int = 0
    """Numbers in this method's ``state_dict``."""


def resolve_init_source(path: str | os.PathLike, ema: bool = True) -> InitSource:
    """The weights file (and config) a ``train.init_from`` value names, its checksum verified.

    Args:
        path: a run folder (newest checkpoint), a checkpoint folder, or a ``.safetensors`` file.
        ema: from a folder, take ``ema.safetensors`` when present (a file named directly is used as is).
    Raises:
        FileNotFoundError naming the path; ValueError naming the file whose bytes fail their checksum.
    """
    p = Path(path)
    if p.is_file():
        if p.suffix != ".safetensors":
            raise ValueError(f"{KEY}: {p}: expected a run folder, a checkpoint folder or a .safetensors weights file")
        folder, weights = p.parent, p
        checkpoint = folder if (folder / CONFIG_FILE).is_file() and (folder / MODEL_FILE).is_file() else None
    else:
        try:
            folder = resolve_checkpoint(p)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{KEY}: {e}") from e
        checkpoint = folder
        weights = weights_file(folder, ema)
    verified = verify_checksum(weights)  # raises naming the file when its bytes changed
    sha = str(read_json(weights.parent / CHECKSUM_FILE)[weights.name]) if verified else file_sha256(weights)
    config = load_config_dict(folder) if (folder / CONFIG_FILE).is_file() else None  # checksum-verified too
    if config is None and checkpoint is None:
        model = weights_record(weights).get("model")
        config = {"model": model} if isinstance(model, dict) else None
    return InitSource(str(path), checkpoint, weights, sha, verified, config)


def weights_record(weights: str | os.PathLike) -> dict[str, Any]:
    """The record of a standalone weights file, ``<name>.json`` beside it (occkit's shipped weights:
    ``tools/make_demo_weights.py``; how they were made and the run's ``model`` section); {} without
    one. Raises ValueError naming the record when it cannot be read."""
    side = Path(weights).with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        record = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{KEY}: {side}: cannot read the weights' record ({type(e).__name__}: {e})") from e
    return record if isinstance(record, dict) else {}


def check_fits(source_model: dict[str, Any], model: dict[str, Any], where: str | os.PathLike) -> None:
    """Refuse, in one line naming the keys, a source network that cannot fit this run's.

    Args:
        source_model, model: the ``model`` sections of the source's and this run's configs.
        where: the source (for the message).
    Raises:
        ConfigError when the output grids (``point_range``, ``voxel_size``), the number of classes
        or the modalities differ (camera and lidar cannot start each other; fusion holds both paths).
    """
    from occkit.models.occnet import OccNetConfig  # defaults of keys an older config lacks

    default = OccNetConfig()

    def get(d: dict[str, Any], key: str) -> Any:
        return d.get(key, getattr(default, key))

    problems = []
    src_range, range_ = (
        [float(v) for v in get(source_model, "point_range")],
        [float(v) for v in get(model, "point_range")],
    )
    src_vs, vs = float(get(source_model, "voxel_size")), float(get(model, "voxel_size"))
    if len(src_range) != len(range_) or not all(
        math.isclose(a, b, abs_tol=1e-6) for a, b in zip(src_range + [src_vs], range_ + [vs])
    ):
        problems.append(
            f"output grid {src_range} at {src_vs:g} m but this run's is {range_} at {vs:g} m (model.point_range, "
            "model.voxel_size)"
        )
    src_c, c = int(get(source_model, "num_classes")), int(get(model, "num_classes"))
    if src_c != c:
        problems.append(f"{src_c} classes but this run has {c} (model.num_classes)")
    src_m, m = str(get(source_model, "modality")), str(get(model, "modality"))
    if src_m != m and "fusion" not in (src_m, m):
        problems.append(f"modality {src_m!r} cannot start a {m!r} network: they share no input path (model.modality)")
    if problems:
        raise ConfigError(f"{KEY}: {where}: cannot start this run: " + "; ".join(problems))


def load_matching(method: nn.Module, weights: str | os.PathLike) -> InitReport:
    """Copy into ``method`` every tensor of the safetensors file ``weights`` whose name and shape
    match an entry of ``method.state_dict()``; the rest keep their values.

    Tensors that ``save_model`` de-duplicated (shared storage) are found under their other name.
    Names the method lists in its ``init_from_fresh`` attribute (a name or a prefix before a dot)
    are not loaded. The file's checksum is the caller's to verify (:func:`resolve_init_source`).
    Raises ValueError naming the file when it cannot be read or holds NaN / infinity.
    """
    path = Path(weights)
    try:
        source = load_file(str(path), device="cpu")
        with safe_open(str(path), framework="pt") as f:
            aliases = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path}: cannot read as safetensors ({type(e).__name__}: {e})") from e
    bad = non_finite_tensors(source)
    if bad:
        raise ValueError(
            f"{path}: weights hold NaN or infinity in {len(bad)} tensor(s), e.g. {', '.join(bad[:3])}: "
            "a diverged or corrupted run; use an earlier checkpoint"
        )
    for removed, kept in aliases.items():  # save_model's record of the shared names it dropped
        if isinstance(kept, str) and kept in source and removed not in source:
            source[removed] = source[kept]
    target = method.state_dict()
    fresh_prefixes = tuple(getattr(method, "init_from_fresh", ()))
    report = InitReport()
    take: dict[str, torch.Tensor] = {}
    for name, t in target.items():
        report.total_values += t.numel()
        if name not in source:
            report.new.append(name)
        elif any(name == f or name.startswith(f + ".") for f in fresh_prefixes):
            report.fresh.append(name)
        elif tuple(source[name].shape) != tuple(t.shape):
            report.skipped.append((name, tuple(source[name].shape), tuple(t.shape)))
        else:
            take[name] = source[name]
            report.loaded.append(name)
            report.loaded_values += t.numel()
    report.unused = [n for n in source if n not in target]
    result = method.load_state_dict(take, strict=False)  # through the modules' own load hooks
    if result.unexpected_keys:  # cannot happen: every name taken is one of the state_dict's
        raise RuntimeError(f"{path}: unexpected keys {result.unexpected_keys[:3]}")
    return report


def init_from(
    method: nn.Module, path: str | os.PathLike, model: dict[str, Any], ema: bool = True, allow_empty: bool = False
) -> tuple[InitSource, InitReport]:
    """Resolve and check ``path`` (:func:`resolve_init_source`, :func:`check_fits` against this
    run's ``model`` config section) and load the matching tensors into ``method``
    (:func:`load_matching`). A weights file with no ``config.json`` beside it is loaded unchecked
    (by shape only). A source of which no tensor loads is refused unless ``allow_empty``.
    Returns what was read and what was done."""
    source = resolve_init_source(path, ema)
    if source.config is not None:
        src_model = source.config.get("model")
        if not isinstance(src_model, dict):
            raise ConfigError(f"{KEY}: {source.weights.parent / CONFIG_FILE}: no 'model' section")
        check_fits(src_model, model, source.checkpoint or source.weights)
    report = load_matching(method, source.weights)
    if not report.loaded and not allow_empty:
        raise ConfigError(
            f"{KEY}: {source.checkpoint or source.weights}: no tensor of it fits this run (none has a name and "
            f"shape in common with {type(method).__name__}'s); give a run of the same method and network, or "
            "set train.init_from_empty=true to start from the initial weights anyway"
        )
    return source, report


def group_names(names: list[str], depth: int = 2) -> list[tuple[str, list[str]]]:
    """Dotted names grouped by their first ``depth`` components (at most all but the last:
    ``adapter.weight`` -> ``adapter``, ``model.lidar.stem.0.weight`` -> ``model.lidar``), in order of
    first appearance: (prefix, the names)."""
    groups: dict[str, list[str]] = {}
    for n in names:
        parts = n.split(".")
        groups.setdefault(".".join(parts[: max(1, min(depth, len(parts) - 1))]), []).append(n)
    return list(groups.items())


def _groups_text(names: list[str], limit: int = 12) -> str:
    """``model.lidar.* (6), adapter.* (2), step``: a group of one shows its name."""
    groups = group_names(names)
    text = ", ".join(
        members[0] if len(members) == 1 else f"{key}.* ({len(members)})" for key, members in groups[:limit]
    )
    return text + (
        f", ... {len(groups) - limit} more groups (init_from.json lists them)" if len(groups) > limit else ""
    )


def origin_text(source: InitSource) -> str:
    """Where the weights come from, for the first report line: a checkpoint verified against its
    ``checksums.json``; a checkpoint without one (:func:`occkit.engine.checkpoint.verify_checksum`
    warned); a standalone weights file by its record (occkit's shipped weights: the preset, steps,
    world and validation mIoU they were made with); a file with neither."""
    if source.verified:
        return "verified against checksums.json"
    if source.checkpoint is not None:
        return f"checkpoint {source.checkpoint.name} without a checksums.json entry: not verified"
    record = weights_record(source.weights)
    if not record:
        return "a weights file outside a run, with no record beside it"
    shipped = Path(__file__).resolve().parents[1] / "weights"
    who = "occkit's shipped weights" if source.weights.resolve().parent == shipped else "a weights file"
    made = [str(record["preset"])] if record.get("preset") else []
    if record.get("steps") is not None:
        made.append(f"{record['steps']} steps")
    if record.get("world_seed") is not None:
        made.append(f"on a synthetic world of seed {record['world_seed']}")
    if record.get("val_miou") is not None:
        made.append(f"val mIoU {record['val_miou']}")
    how = f": {' '.join(made[:1])}{', ' if len(made) > 1 else ''}{', '.join(made[1:])}" if made else ""
    return f"{who}{how} (as {source.weights.with_suffix('.json').name} records)"


def report_lines(source: InitSource, report: InitReport, limit: int = 8) -> list[str]:
    """The few lines printed to stderr: where from, how much loaded, and by group what is new, what
    did not fit (each name with both shapes, at most ``limit``) and what of the source went unused."""
    lines = [
        f"{KEY}: {source.weights} (sha256 {source.sha256[:16]}..., {origin_text(source)})",
        f"{KEY}: loaded {len(report.loaded)} of this method's "
        f"{len(report.loaded) + len(report.new) + len(report.skipped) + len(report.fresh)} "
        f"tensors ({report.loaded_values:,} of {report.total_values:,} values)",
    ]
    if source.config is None:
        lines.append(
            f"{KEY}: no config.json (or record with a model section) beside the weights: grid, classes and "
            "modality not checked"
        )
    if report.new:
        lines.append(f"{KEY}: new here (not in the source, left as built): {_groups_text(report.new)}")
    if report.skipped:
        shown = "; ".join(f"{n} {list(a)} -> {list(b)}" for n, a, b in report.skipped[:limit])
        more = (
            f"; ... {len(report.skipped) - limit} more (init_from.json lists them)"
            if len(report.skipped) > limit
            else ""
        )
        lines.append(f"{KEY}: skipped, shape differs (source -> here): {shown}{more}")
    if report.fresh:
        lines.append(f"{KEY}: kept fresh (the method's own counters): {', '.join(report.fresh)}")
    if report.unused:
        lines.append(f"{KEY}: unused from the source: {_groups_text(report.unused)}")
    return lines


def init_record(source: InitSource, report: InitReport) -> dict[str, Any]:
    """The content of ``RUN/init_from.json`` (plain JSON)."""
    step = None
    if source.checkpoint is not None and source.checkpoint.name.startswith("step_"):
        try:
            step = int(source.checkpoint.name[len("step_") :])
        except ValueError:
            step = None
    return {
        "init_from": source.given,
        "checkpoint": str(source.checkpoint.resolve()) if source.checkpoint is not None else None,
        "weights": str(source.weights.resolve()),
        "sha256": source.sha256,
        "checksum_verified": source.verified,
        "source_method": source.config.get("method") if source.config is not None else None,
        "source_step": step,
        "loaded_values": report.loaded_values,
        "total_values": report.total_values,
        "loaded": report.loaded,
        "new": report.new,
        "skipped": [{"name": n, "source_shape": list(a), "shape": list(b)} for n, a, b in report.skipped],
        "unused": report.unused,
        "fresh": report.fresh,
    }
