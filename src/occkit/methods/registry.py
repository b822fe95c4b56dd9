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
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from occkit.deprecation import load_failure
from occkit.registries import in_tree

if TYPE_CHECKING:  # annotations only: ``occkit train --help`` reads this module without importing torch
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
    ``free_bias`` to the ``free`` logit when given, and labels each voxel by the argmax, or
    with ``threshold`` > 0 as free where ``p(occupied) < threshold``.
    """

    net: nn.Module
    output_index: int | None = None
    free_bias: nn.Parameter | None = None
    free: int = 0
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
        from_format: ``{config key: what of the format}``: the settings it takes from the data's
            format (:meth:`occkit.formats.spec.DatasetFormat.config_values`: ``num_classes``,
            ``free``, ``ignore``, ``names``, ``point_range``, ``voxel_size``, ``ground_z``) when
            the preset and ``--set`` leave them unset; a value given that differs from the
            format's is refused naming the key and the format
            (:func:`occkit.experiment.fit_to_format`). :data:`MODEL_FROM_FORMAT` holds the
            network's (class count, grid, ground height).
        unfed_losses: ``(cfg, sample) -> [line, ...]``: the loss terms its config turns on that a training frame
            (``sample``, the first, as the method sees it) cannot feed, one line each (a depth loss and frames with
            neither depth maps nor LiDAR); said when training starts (:func:`occkit.experiment.prepare_run`), so
            that no term is 0 at every step unsaid. None: nothing to check.
        needs_priors: for a method that cannot train without a prior cache (``data.priors``), what it reads
            from one (a phrase: "it trains on ..."), or None. ``occkit train`` refuses a config without
            ``data.priors`` at its start (:func:`needs_priors_of`: occkit's own methods' read from their source,
            without torch), before any data or network is built.
        validation_figures: ``cfg -> bool``: whether a run of ``cfg`` logs figures of its own at
            validation (the method's ``validation_figures``; their keys show only in a run, so
            ``occkit ablate`` checks a spec's metric against the format's keys only when it does not);
            None: whether a class defined in the module of ``build`` has ``validation_figures``
            (:func:`logs_validation_figures`).
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
    from_format: dict[str, str] = field(default_factory=dict)
    validation_figures: Callable[[Any], bool] | None = None
    needs_priors: str | None = None
    unfed_losses: Callable[[Any, Any], list[str]] | None = None
    source: str = field(default="", compare=False)


#: The settings of the network (``model``) a method's :attr:`MethodSpec.from_format` usually lists:
#: its class count, its output grid and the height of the road in the grid's frame.
MODEL_FROM_FORMAT: dict[str, str] = {
    "model.num_classes": "num_classes",
    "model.point_range": "point_range",
    "model.voxel_size": "voxel_size",
    "model.ground_z": "ground_z",
}


def format_free(value: int | None, key: str) -> int:
    """The free class id of a method's config (``key``, e.g. ``supervised.free``), which the data's format
    decides (:attr:`MethodSpec.from_format` ``free``: :func:`occkit.experiment.fit_to_format` fills it in
    from the data, :func:`occkit.experiment.build_method` from the format the config names); a recipe
    built by hand while it is unset is refused in one line."""
    if value is None:
        raise ValueError(
            f"{key}: not set; the free class is the data format's (occkit fills it in from the data's format): "
            "name it when building the recipe by hand"
        )
    return int(value)


class RegistryError(ValueError):
    """A method spec is wrong or two methods clash; the message names where they come from."""


class PluginWarning(UserWarning):
    """A package's method (or its presets) could not be registered; the line names the package, its
    entry point and the cause. Every other method works."""


_REGISTRY: dict[str, MethodSpec] | None = None
_BROKEN: dict[str, str] = {}
"""Entry point name -> why its package's method is not registered (the warning's line)."""

#: ``module`` or ``module:attribute`` (as importlib.metadata reads an entry point's value)
_EP_VALUE = re.compile(r"[\w.]+\s*(:\s*[\w.]+\s*)?(\[.*\]\s*)?$")


def _in_tree() -> list[tuple[MethodSpec, str]]:
    import occkit.methods as pkg

    return in_tree(pkg, "METHOD", frozenset({"registry"}))


def _entry_points() -> list[Any]:
    """The installed entry points of :data:`ENTRY_POINT_GROUP`, by name."""
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)


def _where(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return f"package {dist.name if dist is not None else '(unknown)'}, entry point {ep.name} = {ep.value}"


def is_from_package(spec: MethodSpec) -> bool:
    """Whether ``spec`` came from another package (an entry point), not from occkit itself."""
    return spec.source.startswith("package ")


def _load(ep: Any, where: str) -> Any:
    """The object an entry point names; a :class:`RegistryError` with the cause when it cannot be
    loaded (a malformed value, an import or syntax error, a ``sys.exit`` at import)."""
    if not _EP_VALUE.match(ep.value):
        raise RegistryError(
            f"{where}: malformed value {ep.value!r} (expected module:ATTRIBUTE, e.g. my_pkg.method:METHOD)"
        )
    try:
        return ep.load()
    except SyntaxError as e:
        raise RegistryError(f"{where}: syntax error in {e.filename}, line {e.lineno}: {e.msg}") from e
    except SystemExit as e:  # a module that exits when imported must not end occkit
        raise RegistryError(f"{where}: calls sys.exit({e.code!r}) when imported") from e
    except Exception as e:  # a broken package must say which, not take occkit down with a traceback
        raise RegistryError(f"{where}: {load_failure(e)}") from e


def _check(spec: Any, where: str, sections: dict[str, tuple[type, str]]) -> None:
    if not isinstance(spec, MethodSpec):
        raise RegistryError(f"{where}: is a {type(spec).__name__}, not an occkit.methods.registry.MethodSpec")
    if not isinstance(spec.name, str) or not spec.name.isidentifier():
        raise RegistryError(f"{where}: method name {spec.name!r} is not an identifier (a string such as my_method)")
    if not isinstance(spec.summary, str):
        raise RegistryError(f"{where}: summary {spec.summary!r} is not a string")
    if not isinstance(spec.sections, dict) or not all(isinstance(k, str) for k in spec.sections):
        raise RegistryError(f"{where}: sections is not a mapping of section names to dataclasses")
    for what in ("build", "wrap_dataset", "resolve", "validation_figures"):
        fn = getattr(spec, what)
        if not callable(fn) and not (fn is None and what != "build"):
            raise RegistryError(f"{where}: {what} is a {type(fn).__name__}, not a function")
    if spec.export is not None and not isinstance(spec.export, ExportSupport):
        raise RegistryError(f"{where}: export is a {type(spec.export).__name__}, not an ExportSupport")
    if spec.presets is not None and not isinstance(spec.presets, (str, Path)):
        raise RegistryError(f"{where}: presets is a {type(spec.presets).__name__}, not a folder's path")
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


def _warn(message: str) -> None:
    warnings.warn(message, PluginWarning, stacklevel=3)


def _builtin_presets() -> set[str]:
    from importlib import resources

    return {p.name[:-5] for p in (resources.files("occkit") / "configs").iterdir() if p.name.endswith(".yaml")}


def _check_presets(spec: MethodSpec, taken: dict[str, str]) -> None:
    """A package's presets folder must exist (else the method is registered without presets, and
    the warning names the folder); a preset of the name of occkit's own or of an earlier
    package's is not used, and named."""
    if spec.presets is None:
        return
    folder = Path(spec.presets)
    if not folder.is_dir():
        _warn(
            f"{spec.source}: its presets folder {folder} does not exist; method {spec.name} is registered "
            "without presets"
        )
        spec.presets = None
        return
    for p in sorted(folder.glob("*.yaml")):
        if p.stem in taken:
            _warn(
                f"{spec.source}: its preset {p.stem} ({p}) has the name of {taken[p.stem]}, which it does not "
                "replace: rename it"
            )
        else:
            taken[p.stem] = f"the preset of {spec.source}"


def registry() -> dict[str, MethodSpec]:
    """Every method, by name: occkit's own, then those of installed packages (found once).

    A package whose method cannot be registered (it fails to import, is no valid
    :class:`MethodSpec`, clashes with a registered one) is left out with one
    :class:`PluginWarning` naming the package, its entry point and the cause; every other method
    works, and asking for that one (:func:`get_method`) says why it is missing.
    """
    global _REGISTRY
    if _REGISTRY is None:
        out: dict[str, MethodSpec] = {}
        sections: dict[str, tuple[type, str]] = {}
        for spec, where in _in_tree():  # occkit's own: an error is a bug in occkit, raised
            _check(spec, where, sections)
            if spec.name in out:
                raise RegistryError(f"{where}: method {spec.name!r} is already registered by {out[spec.name].source}")
            spec.source = where
            out[spec.name] = spec
        broken: dict[str, str] = {}
        presets = {name: "occkit's own preset" for name in _builtin_presets()}
        for ep in _entry_points():
            where = _where(ep)
            try:
                spec = _load(ep, where)
                mine = dict(sections)
                _check(spec, where, mine)
                if spec.name in out:
                    raise RegistryError(
                        f"{where}: method {spec.name!r} is already registered by {out[spec.name].source}"
                    )
            except RegistryError as e:
                broken[ep.name] = str(e)
                _warn(f"{e}; this method is not registered (every other method works)")
                continue
            sections = mine
            spec.source = where
            out[spec.name] = spec
            _check_presets(spec, presets)
        _BROKEN.clear()
        _BROKEN.update(broken)
        _REGISTRY = out
    return _REGISTRY


def _method_keywords(tree: Any) -> Iterator[dict[str | None, Any]]:
    """The keywords (name -> expression node) of each ``METHOD = MethodSpec(...)`` call at the top of a
    parsed module (an :class:`ast.Module`)."""
    import ast

    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "METHOD" for t in node.targets)
            and isinstance(node.value, ast.Call)
        ):
            yield {k.arg: k.value for k in node.value.keywords}


def _in_tree_summaries() -> list[tuple[str, str]] | None:
    """(name, summary) of occkit's own methods read from their source (each module's
    ``METHOD = MethodSpec(name=..., summary=...)``), without importing them (and torch); None when
    one is not written so (then :func:`help_catalogue` asks the registry)."""
    import ast

    import occkit.methods as pkg

    out = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name == "registry":
            continue
        path = Path(pkg.__path__[0]) / f"{info.name}.py"
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            return None
        for kw in _method_keywords(tree):
            try:
                name, summary = ast.literal_eval(kw["name"]), ast.literal_eval(kw["summary"])
            except (KeyError, ValueError):
                return None
            out.append((str(name), str(summary)))
    return out


def needs_priors_of(name: str) -> str | None:
    """What method ``name`` reads from a prior cache when it cannot train without one
    (:attr:`MethodSpec.needs_priors`), or None. occkit's own methods are read from their source (the
    ``needs_priors=`` of their ``METHOD = MethodSpec(...)``), without importing them and torch; a package's
    method only when the registry is loaded already (else None: its run checks later)."""
    import ast

    if _REGISTRY is not None:
        spec = _REGISTRY.get(name)
        return spec.needs_priors if spec is not None else None
    import occkit.methods as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name == "registry":
            continue
        try:
            tree = ast.parse((Path(pkg.__path__[0]) / f"{info.name}.py").read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            continue
        for kw in _method_keywords(tree):
            try:
                if ast.literal_eval(kw["name"]) != name:
                    continue
                return ast.literal_eval(kw["needs_priors"]) if "needs_priors" in kw else None
            except (KeyError, ValueError):
                continue
    return None


def help_catalogue() -> tuple[list[tuple[str, str]], list[Path]]:
    """What ``occkit train --help`` lists, without importing torch for occkit's own methods:
    (name, summary) of every method (occkit's own read from their source, installed packages'
    loaded through their entry points, a broken one warned about as :func:`registry` does), and the
    preset folders of the packages' methods. A package's method imports what it imports."""
    own = None if _REGISTRY is not None else _in_tree_summaries()
    if own is None:
        return [(n, s.summary) for n, s in registry().items()], preset_folders()
    out, folders = list(own), []
    names = {n for n, _ in own}
    presets = {name: "occkit's own preset" for name in _builtin_presets()}
    for ep in _entry_points():
        where = _where(ep)
        try:
            spec = _load(ep, where)
            _check(spec, where, {})
            if spec.name in names:
                raise RegistryError(f"{where}: method {spec.name!r} is already registered")
        except RegistryError as e:
            _warn(f"{e}; this method is not registered (every other method works)")
            continue
        spec.source = where
        names.add(spec.name)
        out.append((spec.name, spec.summary))
        _check_presets(spec, presets)
        if spec.presets is not None:
            folders.append(Path(spec.presets))
    return out, folders


def not_registered(name: str) -> str:
    """Why ``name`` is no registered method: one line listing the registered ones, and, when a
    package's entry point of that name failed, its cause."""
    reg = registry()
    msg = f"{name!r} is not one of {', '.join(reg)}"
    if name in _BROKEN:
        return f"{msg}: {_BROKEN[name]}"
    return f"{msg} (a package adds methods through the entry point group {ENTRY_POINT_GROUP!r})"


def method_names() -> tuple[str, ...]:
    """The registered methods' names, in registry order."""
    return tuple(registry())


def get_method(name: str) -> MethodSpec:
    """The spec of method ``name``; a :class:`RegistryError` lists the registered ones."""
    reg = registry()
    if name not in reg:
        raise RegistryError(f"method: {not_registered(name)}")
    return reg[name]


def logs_validation_figures(cfg: Any) -> bool:
    """Whether a training run of ``cfg`` logs validation figures of its own besides its format's
    metrics: the answer of its method's ``validation_figures`` (:class:`MethodSpec`); for a spec
    that does not say, whether a class defined in the module of its ``build`` has a
    ``validation_figures`` method. An unknown method is :func:`get_method`'s error."""
    spec = get_method(cfg.method)
    if spec.validation_figures is not None:
        return bool(spec.validation_figures(cfg))
    module = importlib.import_module(spec.build.__module__)
    return any(
        callable(getattr(obj, "validation_figures", None))
        for obj in vars(module).values()
        if isinstance(obj, type) and obj.__module__ == module.__name__
    )


def all_sections() -> dict[str, type]:
    """Every section any registered method reads, by name."""
    out: dict[str, type] = {}
    for spec in registry().values():
        out.update(spec.sections)
    return out


def preset_folders() -> list[Path]:
    """The preset folders registered methods ship (occkit's own ``configs/`` not included)."""
    return [spec.presets for spec in registry().values() if spec.presets is not None]
