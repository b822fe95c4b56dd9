"""Runtime shape checks with named axes: ``check_shape(x, "B N 3 H W", name="images")``, and
:class:`Rows`, the records whose fields are arrays of one row per item."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, replace
from typing import Any, TypeVar

_R = TypeVar("_R", bound="Rows")


class Rows:
    """What a dataclass of arrays with one row per item along their first axis (numpy or torch,
    every field) shares: ``len`` is the rows (the first field's), :meth:`select` keeps some rows of
    every field, :meth:`map_fields` makes a copy with a function applied to every field."""

    def __len__(self) -> int:
        return int(getattr(self, fields(self)[0].name).shape[0])  # type: ignore[arg-type]

    def map_fields(self: _R, fn: Callable[[Any], Any]) -> _R:
        """A copy whose every field is ``fn(field)``."""
        return replace(self, **{f.name: fn(getattr(self, f.name)) for f in fields(self)})  # type: ignore[arg-type]

    def select(self: _R, index: Any) -> _R:
        """The rows at ``index`` (an integer index or a boolean mask over the rows), every field alike."""
        return self.map_fields(lambda a: a[index])


def check_shape(
    x: Any,
    spec: str,
    name: str = "tensor",
    dims: dict[str, int] | None = None,
) -> dict[str, int]:
    """Check that ``x.shape`` matches ``spec`` and return the bound axis sizes.

    ``spec`` is a space-separated list of axes: an integer is a fixed size, a name binds a size
    that must be the same wherever the name repeats (and equal to ``dims[name]`` when given),
    ``_`` matches anything, and a leading ``...`` matches any number of leading axes.

    Raises:
        ValueError: naming the tensor, the expected and the actual shape.
    """
    shape = tuple(getattr(x, "shape", ()))
    tokens = spec.split()
    bound: dict[str, int] = dict(dims or {})
    ellipsis = bool(tokens) and tokens[0] == "..."
    if ellipsis:
        tokens = tokens[1:]
        if len(shape) < len(tokens):
            _fail(name, spec, shape)
        shape_tail = shape[len(shape) - len(tokens) :]
    else:
        if len(shape) != len(tokens):
            _fail(name, spec, shape)
        shape_tail = shape
    for tok, size in zip(tokens, shape_tail):
        if tok == "_":
            continue
        if tok.lstrip("-").isdigit():
            if int(tok) != size:
                _fail(name, spec, shape, bound)
            continue
        if tok in bound and bound[tok] != size:
            _fail(name, spec, shape, bound)
        bound[tok] = size
    return bound


def _fail(name: str, spec: str, shape: Sequence[int], bound: Mapping[str, int] | None = None) -> None:
    extra = f" (with {', '.join(f'{k}={v}' for k, v in bound.items())})" if bound else ""
    raise ValueError(f"{name}: expected shape ({spec}){extra}, got {tuple(shape)}")
