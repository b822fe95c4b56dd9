"""The method registry: what the composition root needs from each method, declared by the method.

A method module ends with one ``METHOD = MethodSpec(...)``: its name, the config sections it reads
(each a dataclass; the run's ``config.json`` holds these and no other method's), how to build it
(the trained runs it distils from or starts from are loaded by the composition root and handed in
through a :class:`RunLoader`), and optionally a dataset wrapper, a resolution of its config from
the training frames (class counts) and how it exports to ONNX. Nothing above this module names a
method: ``occkit.experiment`` builds any registered one, the presets' help lists them, export asks
the spec.

Where methods come from:

- occkit's own: every module of :mod:`occkit.methods` with a module-level ``METHOD``;
- other packages: entry points of the group ``occkit.methods`` (``pyproject.toml``:
  ``[project.entry-points."occkit.methods"] bev = "occkit_bev.method:METHOD"``), each a
  :class:`MethodSpec`. A package's presets are YAML files in the folder ``spec.presets`` names.

docs/design.md walks through adding one.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from torch import nn

ENTRY_POINT_GROUP = "occkit.methods"
"""The entry point group through which other packages add methods."""
DEFAULT_METHOD = "supervised"
"""The method of a config that names none."""


class RunLoader(Protocol):
    """Loads a trained run (a run folder, a checkpoint folder or a weights file) as the method it
    holds, on the CPU, in eval mode, leaving the global RNG as it was; ``what`` (a config key,
    e.g. ``radocc.teacher``) starts its errors. The composition root provides it."""

    def __call__(self, path: str, what: str, ema: bool = True) -> nn.Module: ...


@dataclass
class ExportHead:
    """How a method's prediction is its camera network's output, for ONNX export.

    The exported graph runs ``net(images, intrinsics, T_ego_from_cam)``, takes the logits of its
    output (``output_index`` of a tuple output, else the output's ``.logits``), adds
    ``free_bias`` to the ``free_index`` logit when given, and labels each voxel by the argmax, or
    with ``threshold`` > 0 as free where ``p(occupied) < threshold``.
    """

    net: nn.Module
    output_index: int | None = None
    free_bias: nn.Parameter | None = None
    free_index: int = 0
    threshold: float = 0.0


@dataclass
class ExportSupport:
    """Whether and how a method's runs export (``occkit export``).

    Attributes:
        head: the method (loaded, eval mode) -> its :class:`ExportHead`.
        check: the run's config -> why it cannot be exported (one sentence), or None.
        load: (config, weights file) -> the method to export, for a method whose exported network
            is built without what it trained with (radocc: its student, without the teacher run);
            None = the composition root loads the run as usual.
    """

    head: Callable[[Any], ExportHead] = lambda method: ExportHead(method.model)
    check: Callable[[Any], str | None] = lambda cfg: None
    load: Callable[[Any, Path], nn.Module] | None = None


@dataclass
class MethodSpec:
    """What the composition root needs from a method.

    Attributes:
        name: the value of ``method:`` in a preset.
        summary: one line for ``--help`` and error messages.
        sections: ``{config key: dataclass}`` of the settings it reads besides ``model``, ``data``,
            ``optim`` and ``train`` (in the order a config lists them); a section name means the
            same dataclass in every method that reads it.
        build: ``(cfg, load_run) -> nn.Module``: the method from the experiment config; the runs it
            needs are loaded through ``load_run`` (:class:`RunLoader`), never by the method itself.
        wrap_dataset: ``(cfg, dataset, train) -> dataset``: what it adds to every frame (after the
            prior cache, before LiDAR sweeps and the augmentation), or None.
        resolve: ``(cfg, train_set, max_frames, progress) -> cfg``: fills in what its config
            leaves to the training frames (class counts), returning a copy, before it is built;
            or None.
        export: how it exports, or None when its runs are not exported.
        export_refused: why not (one sentence), when ``export`` is None.
        presets: a folder of preset YAML files it ships (a package's own presets), or None.
        source: where it was found (the module, or the entry point's distribution); set by the registry.
    """

    name: str
    summary: str
    sections: dict[str, type]
    build: Callable[[Any, RunLoader], nn.Module]
    wrap_dataset: Callable[[Any, Any, bool], Any] | None = None
    resolve: Callable[[Any, Any, int, bool], Any] | None = None
    export: ExportSupport | None = None
    export_refused: str | None = None
    presets: Path | None = None
    source: str = field(default="", compare=False)


class RegistryError(ValueError):
    """A method spec is wrong or two methods clash; the message names where they come from."""


_REGISTRY: dict[str, MethodSpec] | None = None


def _in_tree() -> list[tuple[MethodSpec, str]]:
    import occkit.methods as pkg

    found = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name == "registry":
            continue
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        spec = getattr(module, "METHOD", None)
        if spec is not None:
            found.append((spec, module.__name__))
    return found


def _from_entry_points() -> list[tuple[MethodSpec, str]]:
    found = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        where = f"entry point {ep.name} = {ep.value}" + (f" of {ep.dist.name}" if ep.dist is not None else "")
        try:
            spec = ep.load()
        except Exception as e:  # a broken package must say which, not take occkit down with a traceback
            raise RegistryError(f"{where}: cannot be loaded ({type(e).__name__}: {e})") from e
        found.append((spec, where))
    return found


def _check(spec: Any, where: str, sections: dict[str, tuple[type, str]]) -> None:
    if not isinstance(spec, MethodSpec):
        raise RegistryError(f"{where}: is a {type(spec).__name__}, not an occkit.methods.registry.MethodSpec")
    if not spec.name.isidentifier():
        raise RegistryError(f"{where}: method name {spec.name!r} is not an identifier")
    reserved = {"method", "model", "data", "optim", "train"}
    for key, cls in spec.sections.items():
        if key in reserved:
            raise RegistryError(
                f"{where}: section {key!r} is one of the experiment's own ({', '.join(sorted(reserved))})"
            )
        if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
            raise RegistryError(f"{where}: section {key!r} is not a dataclass")
        if key in sections and sections[key][0] is not cls:
            raise RegistryError(
                f"{where}: section {key!r} is {cls.__qualname__}, but {sections[key][1]} declares it as "
                f"{sections[key][0].__qualname__}"
            )
        sections.setdefault(key, (cls, where))
    if spec.export is None and not spec.export_refused:
        raise RegistryError(f"{where}: say why its runs are not exported (export_refused), or how they are (export)")


def registry() -> dict[str, MethodSpec]:
    """Every method, by name: occkit's own, then those of installed packages (found once)."""
    global _REGISTRY
    if _REGISTRY is None:
        out: dict[str, MethodSpec] = {}
        sections: dict[str, tuple[type, str]] = {}
        for spec, where in _in_tree() + _from_entry_points():
            _check(spec, where, sections)
            if spec.name in out:
                raise RegistryError(f"{where}: method {spec.name!r} is already registered by {out[spec.name].source}")
            spec.source = where
            out[spec.name] = spec
        _REGISTRY = out
    return _REGISTRY


def method_names() -> tuple[str, ...]:
    """The registered methods' names, in registry order."""
    return tuple(registry())


def get_method(name: str) -> MethodSpec:
    """The spec of method ``name``; a :class:`RegistryError` lists the registered ones."""
    reg = registry()
    if name not in reg:
        raise RegistryError(
            f"method: {name!r} is not one of {', '.join(reg)} (a package adds methods through the "
            f"entry point group {ENTRY_POINT_GROUP!r})"
        )
    return reg[name]


def all_sections() -> dict[str, type]:
    """Every section any registered method reads, by name."""
    out: dict[str, type] = {}
    for spec in registry().values():
        out.update(spec.sections)
    return out


def preset_folders() -> list[Path]:
    """The preset folders registered methods ship (occkit's own ``configs/`` not included)."""
    return [spec.presets for spec in registry().values() if spec.presets is not None]
