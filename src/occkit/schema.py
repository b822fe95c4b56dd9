"""Schemas of the files occkit reads (docs/design.md, "Schemas of the files occkit reads").

A file's layout is declared once, as pydantic models deriving from :class:`Table` (JSON types kept strict,
no key the layout does not have), with the field types below (:data:`Int`, :data:`Number`, :data:`Finite`,
:func:`numbers`, :data:`Text`) and bounds as ``Field(ge=..., le=..., description=...)``; :func:`validate`
reads a parsed file against it and turns pydantic's ``ValidationError`` into one ``ValueError`` line naming
the file, the row, the field and the problem in plain words (:func:`one_line`; :func:`every_line` says every
problem, in one line), e.g.::

    rig/scene-0000/boxes.json: boxes[12]: class: 6.7 is not an integer (refused, not rounded)

What a schema holds: the types, shapes, key sets and bounds of each field, and rules that need one field
alone (a unit quaternion, an invertible intrinsic). Rules about a whole record (time order, a pose's
rigidity, a box of positive size, a track that keeps its class) are :func:`occkit.data.scene_record.check_record`'s.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

__all__ = [
    "Finite",
    "Int",
    "Number",
    "Table",
    "Text",
    "every_line",
    "numbers",
    "one_line",
    "problem",
    "problems",
    "validate",
]


class Table(BaseModel):
    """A JSON object of a file occkit reads: strict JSON types (``true`` is not ``1``, ``"3"`` is not ``3``),
    and a key the layout does not have refused by name (a misspelt key read as absent changes what is read)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _whole(v: Any) -> Any:
    """A JSON integer as JSON writes it: ``3`` or ``3.0`` (the fraction then refused by pydantic, not rounded);
    not a boolean, not text."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PydanticCustomError("int_type", "not an integer")
    return v


def problem(text: str) -> PydanticCustomError:
    """A rule of a schema's own, broken: raise it from a validator; ``text`` (plain words) is the line's
    problem, after the field's name."""
    return PydanticCustomError("schema_rule", text)  # no context: the text is not formatted, braces kept


#: A JSON integer: ``3`` and ``3.0`` read as 3; ``3.5``, ``true`` and ``"3"`` refused.
Int = Annotated[int, Field(strict=False), BeforeValidator(_whole)]
#: A JSON number (an integer is one; a boolean or text is not); NaN and infinities pass (see :data:`Finite`).
Number = float
#: A finite JSON number.
Finite = Annotated[float, Field(allow_inf_nan=False)]
#: Non-empty text.
Text = Annotated[str, Field(min_length=1)]

T = TypeVar("T")


def numbers(n: int, item: Any = Number) -> Any:
    """A JSON list of exactly ``n`` values of type ``item`` (numbers by default)."""
    return Annotated[list[item], Field(min_length=n, max_length=n)]


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: Any, where: str, row: Callable[[int], str] | None = None) -> M:
    """``data`` (a parsed file, or one object of it) read as ``model``; a one-line ``ValueError`` starting
    with ``where`` (the file) when it breaks the schema (:func:`one_line`)."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ValueError(one_line(e, where, model, row)) from None


def one_line(err: ValidationError, where: str, model: type[BaseModel], row: Callable[[int], str] | None = None) -> str:
    """The first problem of a pydantic ``ValidationError`` as one line: ``where``, the row (the path up to the
    first list index, e.g. ``boxes[12]``; ``row(12)`` may add words to it, such as the row's token), the
    field, the value and the problem in plain words, and the field's ``description`` where it has one."""
    errors = err.errors(include_url=False)
    e = errors[0]
    if e["type"] == "missing":  # a key missing beside an unknown one: the unknown one is likely its misspelling
        e = next((x for x in errors if x["type"] == "extra_forbidden" and x["loc"][:-1] == e["loc"][:-1]), e)
    return f"{where}: {_said(e, model, row)}"


def every_line(
    err: ValidationError, where: str, model: type[BaseModel], row: Callable[[int], str] | None = None
) -> str:
    """Every problem of a pydantic ``ValidationError`` in one line: ``where``, then :func:`problems` joined by
    ``; `` (a file whose every bad field is said at once)."""
    return f"{where}: " + "; ".join(problems(err, model, row))


def problems(err: ValidationError, model: type[BaseModel], row: Callable[[int], str] | None = None) -> list[str]:
    """Each problem of a pydantic ``ValidationError`` as :func:`one_line` says it, without its ``where``: the
    row, the field, the value and the problem in words (each once)."""
    return list(dict.fromkeys(_said(e, model, row) for e in err.errors(include_url=False)))


def _said(e: Any, model: type[BaseModel], row: Callable[[int], str] | None) -> str:
    """One pydantic error in words: its row, field, value and problem (:func:`one_line` without ``where``)."""
    loc = tuple(e["loc"])
    if e["type"] == "extra_forbidden":
        head = _path(loc[:-1], row)
        keys = ", ".join(_keys(model, loc[:-1]))
        return f"{head + ': ' if head else ''}unknown key {_short(loc[-1])} (its keys: {keys})"
    cut = next((k + 1 for k, p in enumerate(loc) if isinstance(p, int)), len(loc))
    while cut < len(loc) and isinstance(loc[cut], int):  # a list of lists: the row is its indices together
        cut += 1
    head, field = _path(loc[:cut], row), _path(loc[cut:], None)
    if e["type"] == "missing":
        return f"{head + ': ' if head and field else ''}{field or head} missing"
    info = _info(model, loc)
    text = _words(e, info)
    about = f" ({info['description']})" if info.get("description") and e["type"] not in _OWN else ""
    name = ": ".join(p for p in (head, field) if p)
    return f"{name + ': ' if name else ''}{text}{about}"


#: Kinds of error whose words are the schema's own (they say what the field is): no description added.
_OWN = {"schema_rule", "value_error", "assertion_error"}


def _words(e: dict[str, Any], info: dict[str, Any]) -> str:
    """The problem of one pydantic error in plain words, the value first."""
    kind, v, ctx = e["type"], e.get("input"), e.get("ctx") or {}
    value = _short(v)
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{_typed(v)} is not an object"
    if kind in ("list_type", "tuple_type", "too_short", "too_long"):
        n = info.get("length")
        if n is not None:
            return f"{value} is not a list of {n}"
        if kind == "too_short":
            return f"{value} has {ctx.get('actual_length')} entries, fewer than {ctx.get('min_length')}"
        if kind == "too_long":
            return f"{value} has {ctx.get('actual_length')} entries, more than {ctx.get('max_length')}"
        return f"{_typed(v)} is not a list"
    if kind in ("int_type", "int_parsing"):
        return f"{value} is not an integer"
    if kind == "int_from_float":
        return f"{value} is not an integer (refused, not rounded)"
    if kind in ("float_type", "float_parsing"):
        return f"{value} is not a number"
    if kind == "finite_number":
        return f"{value} is not finite"
    if kind in ("bool_type", "bool_parsing"):
        return f"{value} is not true or false (a JSON boolean)"
    if kind in ("string_type", "str_type"):
        return f"{value} is not text"
    if kind == "string_too_short":
        return f"{value} is empty"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{value} is not in {_interval(info, ctx)}"
    if kind == "literal_error":
        return f"{value} is not {ctx.get('expected')}"
    if kind == "value_error":
        return str(ctx.get("error", e["msg"]))
    if kind == "schema_rule":  # a rule of the schema's own (:func:`problem`): its words
        return e["msg"]
    return f"{value}: {e['msg'][0].lower()}{e['msg'][1:]}"


def _interval(info: dict[str, Any], ctx: dict[str, Any]) -> str:
    """The field's bounds as an interval (``(0, 50]``), from its declaration, else from the error's."""
    b = {**{k: ctx[k] for k in ("gt", "ge", "lt", "le") if k in ctx}, **info.get("bounds", {})}
    lo = f"({_num(b['gt'])}" if "gt" in b else f"[{_num(b['ge'])}" if "ge" in b else "(-inf"
    hi = f"{_num(b['lt'])})" if "lt" in b else f"{_num(b['le'])}]" if "le" in b else "inf)"
    return f"{lo}, {hi}"


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _typed(v: Any) -> str:
    """A value with its JSON type, as a message says what was found where an object or a list was meant."""
    return "null" if v is None else f"{_json_type(v)} {_short(v)}"


def _json_type(v: Any) -> str:
    for t, name in ((bool, "true/false"), (dict, "object"), (list, "list"), (str, "text"), (int, "number")):
        if isinstance(v, t):
            return name
    return "number" if isinstance(v, float) else "null" if v is None else type(v).__name__


def _short(v: Any) -> str:
    """A value on one line, at most 60 characters."""
    t = " ".join(repr(v).split())
    return t if len(t) <= 60 else t[:57] + "..."


def _path(loc: tuple[Any, ...], row: Callable[[int], str] | None) -> str:
    """``('sweeps', 3, 'ego_pose', 'rotation')`` as ``sweeps[3].ego_pose.rotation``; ``row`` adds its words
    after the first index of a table's rows (``sweeps[3] (token 'a')``)."""
    out = ""
    for k, p in enumerate(loc):
        if isinstance(p, int):
            out += f"[{p}]" + (row(p) if row is not None and k == 1 else "")
        else:
            out += f".{p}" if out else str(p)
    return out


def _strip(tp: Any) -> tuple[Any, list[Any]]:
    """A type without its ``Annotated`` wrapper and ``None`` alternative, and the metadata it carried."""
    meta: list[Any] = []
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp, *extra = typing.get_args(tp)
            meta.extend(extra)
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = rest[0] if len(rest) == 1 else tp
            if len(rest) != 1:
                return tp, meta
        else:
            return tp, meta


def _field_of(model: type[BaseModel], key: Any) -> Any:
    return next((f for name, f in model.model_fields.items() if (f.alias or name) == key), None)


def _keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys of the object at ``loc`` in ``model`` (its fields' names as the file spells them)."""
    tp = _walk(model, loc)[0]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or name for name, f in tp.model_fields.items()]
    return []


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, list[Any], str | None]:
    """The declared type at ``loc`` of ``model``, the constraints met on the way to it (the last field's and
    the item types' below it) and the nearest field's description."""
    tp: Any = model
    meta: list[Any] = []
    description = None
    for p in loc:
        tp, more = _strip(tp)
        meta.extend(more)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            f = _field_of(tp, p)
            if f is None:
                return None, [], description
            tp, meta = f.annotation, list(f.metadata)
            description = f.description or description
            continue
        args = typing.get_args(tp)
        origin = typing.get_origin(tp)
        if origin in (list, tuple) and args:
            tp, meta = args[0], []
        elif origin is dict and len(args) == 2:
            tp, meta = args[1], []
        else:
            return None, [], description
    tp, more = _strip(tp)
    return tp, meta + more, description


def _info(model: type[BaseModel], loc: tuple[Any, ...]) -> dict[str, Any]:
    """What the schema declares of the field at ``loc``: ``bounds`` (gt, ge, lt, le), ``length`` (a list of
    exactly that many) and ``description``."""
    tp, meta, description = _walk(model, loc)
    out: dict[str, Any] = {"description": description, "bounds": {}}
    lengths = {}
    # a Field(...) inside Annotated keeps its constraints in its own metadata
    for m in [x for m in meta for x in (m, *getattr(m, "metadata", ()))]:
        out["bounds"].update({k: getattr(m, k) for k in ("gt", "ge", "lt", "le") if getattr(m, k, None) is not None})
        lengths.update({k: getattr(m, k) for k in ("min_length", "max_length") if getattr(m, k, None) is not None})
    if lengths.get("min_length") is not None and lengths.get("min_length") == lengths.get("max_length"):
        out["length"] = lengths["min_length"]
    return out
