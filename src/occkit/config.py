"""Dataclass configs: YAML presets and ``key=value`` overrides, unknown keys are errors.

A config is a (possibly nested) dataclass whose fields each carry a docstring-like comment in
the class that owns them. ``from_dict`` builds one from a mapping and names any unknown key with
its full dotted path; ``apply_overrides`` takes ``["model.depth_bins=64", ...]`` with values
parsed as YAML scalars.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key or value is wrong; the message names the key (and the file when known)."""


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(value: Any, tp: Any, where: str) -> Any:
    """``value`` converted to the type ``tp``; ``where`` is its dotted key, named in errors."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _convert_dataclass(value, tp, where)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(value, tp, args, where)
    if origin in (tuple, list):
        return _convert_sequence(value, origin, args, where)
    if origin is dict:
        return _convert_mapping(value, args, where)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {args}")
        return value
    return _convert_scalar(value, tp, where)


def _convert_dataclass(value: Any, tp: type, where: str) -> Any:
    """The nested dataclass ``tp`` built from the mapping ``value``."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
    return from_dict(tp, value, prefix=where)


def _convert_union(value: Any, tp: Any, args: tuple[Any, ...], where: str) -> Any:
    """``value`` as the first member of the union ``tp`` it fits, tried in order."""
    if value is None and type(None) in args:
        return None
    errors = []
    for a in args:
        if a is type(None):
            continue
        try:
            return _convert(value, a, where)
        except ConfigError as e:
            errors.append(str(e))
    raise ConfigError(f"{where}: {value!r} fits none of {tp}")


def _convert_sequence(value: Any, origin: Any, args: tuple[Any, ...], where: str) -> Any:
    """``value`` as a list or tuple, each item converted to its type."""
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    inner = args[0] if args else Any
    seq = [_convert(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(seq) if origin is tuple else seq


def _convert_mapping(value: Any, args: tuple[Any, ...], where: str) -> dict[Any, Any]:
    """``value`` as a dict, each key and value converted to its type."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    kt, vt = args if len(args) == 2 else (Any, Any)
    return {_convert(k, kt, f"{where} key"): _convert(v, vt, f"{where}.{k}") for k, v in value.items()}


def _convert_scalar(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against a plain type (a number, integer, bool or string); others pass as they are."""
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 (PyYAML) reads 1e-3 and 1e30 as strings: only 1.0e-3 is a float there
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys raise :class:`ConfigError` naming them."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls} is not a dataclass")
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        where = ", ".join(f"{prefix}.{k}" if prefix else k for k in unknown)
        raise ConfigError(f"unknown config key(s): {where} (known: {', '.join(sorted(names))})")
    kwargs = {k: _convert(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    return cls(**kwargs)


#: Naming rules of numeric config fields, checked in every section by :func:`check_field_ranges`:
#: (suffix of the field's name, the bound it must meet, the words of the error).
FIELD_RULES: tuple[tuple[str, Callable[[float], bool], str], ...] = (
    ("_weight", lambda v: v >= 0, "must be >= 0 (a loss weight; 0 turns the term off)"),
    ("_weights", lambda v: v >= 0, "must be >= 0 (loss weights)"),
    ("_channels", lambda v: v >= 1, "must be >= 1 (a number of channels)"),
    ("_widths", lambda v: v >= 1, "must be >= 1 (numbers of channels)"),
)


def check_field_ranges(cfg: Any, prefix: str = "") -> None:
    """Refuse, naming the key, a numeric field of ``cfg`` (a dataclass, nested ones included) whose
    name says what it is (:data:`FIELD_RULES`: a loss weight ``*_weight``, a channel count
    ``*_channels``, ...) and whose value (or one of whose values) is out of range or not finite:
    ``render_sup.depth_weight=-5``, ``model.neck_channels=-8``."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}.{f.name}" if prefix else f.name
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_field_ranges(value, key)
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if any(math.isnan(v) for v in numbers):  # no setting means NaN: it passes every "<= 0" check below and later
            raise ConfigError(f"{key}: NaN is not a setting, got {value!r}")
        for suffix, ok, words in FIELD_RULES:
            if f.name.endswith(suffix):
                bad = [v for v in numbers if not (math.isfinite(v) and ok(v))]
                if bad:
                    raise ConfigError(f"{key} {words}, got {value!r}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, YAML/JSON-serialisable dict (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: ``over`` wins; nested mappings merge."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def yaml_problem(e: Exception) -> str:
    """A YAML parse error in one line: the problem and where (``line L, column C``), not PyYAML's
    several lines that quote the text with a caret under it."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = " ".join(x for x in (e.context, e.problem) if x)
        return where + (" ".join(problem.split()) or type(e).__name__)
    return " ".join(str(e).split()) or type(e).__name__


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["a.b=3", "c=[1, 2]"]`` -> ``{"a": {"b": 3}, "c": [1, 2]}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: cannot parse value ({yaml_problem(e)})") from e
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def _unique_key_loader() -> type:
    """A safe YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last one in
    silence: a class map's duplicate class was then reported as a class it does not map)."""

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # an unhashable key: PyYAML's own error follows
                    continue
                if first is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key!r} given twice in one mapping (first on line {first.line + 1})",
                        key_node.start_mark,
                    )
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file (not UTF-8 text, invalid YAML, a key given twice)."""
    from occkit.fileio import read_utf8_text

    text = read_utf8_text(Path(path), "YAML file", ConfigError)
    try:
        data = yaml.load(text, Loader=_unique_key_loader()) or {}  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({yaml_problem(e)})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_config(cls: type[T], path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> T:
    """Defaults of ``cls``, then the YAML preset at ``path``, then ``overrides``."""
    data = to_dict(cls())
    if path is not None:
        data = merge(data, load_yaml(path))  # its errors name the file
        try:
            from_dict(cls, data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from e
    if overrides:
        data = merge(data, parse_overrides(overrides))
    return from_dict(cls, data)
