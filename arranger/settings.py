"""How the settings a user writes (a preset, a manifest) are declared, read and written back.

Every setting is a dataclass field made by :func:`setting`, whose metadata carries its help,
unit, range and choices. One generic mechanism reads those declarations:

- :func:`parse` turns a table (TOML or JSON, already decoded) into the dataclass, checking types
  (from the annotations), ranges, choices and checks; a bad value raises
  :class:`arranger.errors.InputError`, one line ``FILE: table.field = VALUE: expected ...``;
- :func:`dump` turns it back into plain tables (tuples become lists), so that
  ``parse(cls, dump(x)) == x``;
- :class:`Settings` gives a dataclass ``from_dict(d, where)`` and ``to_dict()`` from those two.

The declarations live beside what they configure: the song's in :mod:`arranger.song_settings`,
the audio's in :mod:`arranger.audio.config`, a song folder's in :mod:`arranger.manifest`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from arranger.errors import InputError

T = TypeVar("T")
INF = math.inf


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a setting allows and means: the metadata of one field (see :func:`setting`)."""

    help: str = ""
    unit: str = ""
    low: float = -INF
    high: float = INF
    choices: tuple = ()  # allowed values (strings, numbers) or, for a dict, allowed keys
    check: Callable[[Any], bool] | None = None  # a further rule on the converted value
    expected: str = ""  # what the error line says is allowed ("" = derived from type and range)
    schema: type | None = None  # a dict (or list of dicts) is checked as this Settings class
    fill: bool = False  # a dict of settings gets every key of ``choices`` (defaults if absent)


class FileError(InputError):
    """Bad input that is a whole file (not valid TOML, not found): the line is ``FILE: problem``.
    """

    def __init__(self, where: str, problem: str) -> None:
        super().__init__("", None, problem, where)

    def line(self, field_text: str | None = None) -> str:
        if self.field:
            return super().line(field_text)
        return f"{self.where}: {self.expected}" if self.where else self.expected


def unreadable_reason(e: BaseException) -> str:
    """Why a file could not be decoded, in a few words (for ``FILE: not valid TOML (...)``)."""
    if isinstance(e, RecursionError):
        return "nested too deeply"
    if isinstance(e, OSError):
        return e.strerror or type(e).__name__
    # A decoder's message; a ValueError is also an integer of more than 4,300 digits.
    return (str(e).splitlines() or [type(e).__name__])[0][:120]


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


MISSING_VALUE = _Missing()  # the value an error line shows for a required field left out


def setting(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
            **spec: Any) -> Any:
    """A dataclass field declaring one setting: its default and :class:`Spec` (help, unit...)."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"setting": Spec(**spec)})


INTERNAL = {"setting": None}  # field metadata: not a setting (neither read nor written)


def spec_of(cls: type, name: str) -> Spec:
    """The :class:`Spec` of field ``name`` of ``cls``: derive a setting from another's."""
    return _fields(cls)[name][1]


@functools.cache
def _fields(cls: type) -> dict[str, tuple[Any, Spec, dataclasses.Field]]:
    """Field name -> (resolved type, spec, field) for every setting of dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("setting", Spec())
        if spec is not None and f.init:
            out[f.name] = (hints[f.name], spec, f)
    return out


def split_where(where: str) -> tuple[str, str]:
    """``"presets/x.toml: layers.drums"`` -> ``("presets/x.toml", "layers.drums")``."""
    file, sep, path = where.rpartition(": ")
    return (file, path) if sep else (where, "")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def parse(cls: type[T], data: Any, file: str = "", path: str = "",
          unknown: str = "unknown field {key}") -> T:
    """Check ``data`` (a mapping) against the settings of dataclass ``cls`` and build it.

    Fields left out take their declared defaults. ``file`` and ``path`` (the table's dotted
    place, e.g. ``layers.drums``) name the place in error lines; ``unknown`` words the line for
    a key ``cls`` does not declare.
    """
    values = check_table(cls, data, file, path, unknown)
    for name, (tp, spec, f) in _fields(cls).items():
        if name not in values and f.default is dataclasses.MISSING \
                and f.default_factory is dataclasses.MISSING:
            raise InputError(_join(path, name), MISSING_VALUE, _expected(tp, spec), file)
    return cls(**values)


def check_table(cls: type, data: Any, file: str = "", path: str = "",
                unknown: str = "unknown field {key}") -> dict[str, Any]:
    """The converted values of the keys present in ``data``, checked against ``cls``."""
    fields = _fields(cls)
    if not isinstance(data, Mapping):
        if not path:
            raise FileError(file, f"expected a table at the top, got {repr(data)[:60]}")
        raise InputError(path, data, "a table", file)
    for key in data:
        if key not in fields:
            raise InputError(_join(path, str(key)), data[key], f"one of {', '.join(fields)} "
                             f"({unknown.format(key=repr(key))})", file)
    return {k: convert(fields[k][0], v, fields[k][1], file, _join(path, k))
            for k, v in data.items()}


def convert(tp: Any, value: Any, spec: Spec, file: str, path: str) -> Any:
    """``value`` checked against type ``tp`` and ``spec``; raises InputError naming ``path``."""
    if isinstance(tp, type) and hasattr(tp, "parse_at"):
        return tp.parse_at(value, file, path)
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, file, path)
    if spec.schema is not None:
        return _schema_value(tp, value, spec, file, path)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return convert(inner[0], value, spec, file, path)
    if origin is dict:
        return _dict_value(args[1], value, spec, file, path)
    if origin in (tuple, list):
        return _sequence_value(tp, origin, args, value, spec, file, path)
    converted = _scalar(tp, value, spec)
    if converted is _BAD or (spec.check is not None and not spec.check(converted)):
        raise InputError(path, value, _expected(tp, spec), file)
    return converted


_BAD = object()


def _scalar(tp: Any, value: Any, spec: Spec) -> Any:
    """``value`` as a ``tp`` (bool, int, float, str) within the spec's range, else ``_BAD``."""
    if tp is bool:
        return value if isinstance(value, bool) else _BAD
    if isinstance(value, bool):
        return _BAD
    if tp is int:
        ok = isinstance(value, int) and spec.low <= value <= spec.high
    elif tp is float:
        # Compare before converting: a 400-digit integer must fail the range, not overflow.
        ok = isinstance(value, int | float) and spec.low <= value <= spec.high
        try:
            value = float(value) if ok else value
        except OverflowError:
            return _BAD
    elif tp is str:
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, tp)
    if ok and spec.choices and value not in spec.choices:
        ok = False
    return value if ok else _BAD


def _sequence_value(tp, origin, args, value, spec: Spec, file: str, path: str):
    """A list or tuple: items of settings report their own place, scalars the whole field."""
    fixed = origin is tuple and args[-1] is not Ellipsis
    if not isinstance(value, list | tuple) or (fixed and len(args) != len(value)):
        raise InputError(path, value, _expected(tp, spec), file)
    kinds = args if fixed else args[:1] * len(value)
    item_spec = dataclasses.replace(spec, check=None, expected="")
    try:
        items = [convert(k, v, item_spec, file, f"{path}[{i}]")
                 for i, (k, v) in enumerate(zip(kinds, value, strict=True))]
    except InputError:
        if _is_settings(args[0]):
            raise
        raise InputError(path, value, _expected(tp, spec), file) from None
    out = tuple(items) if origin is tuple else items
    if spec.check is not None and not spec.check(out):
        raise InputError(path, value, _expected(tp, spec), file)
    return out


def _dict_value(item_tp, value, spec: Spec, file: str, path: str) -> dict:
    if not isinstance(value, Mapping):
        raise InputError(path, value, "a table", file)
    for key in value:
        if spec.choices and key not in spec.choices:
            raise InputError(_join(path, str(key)), value[key], f"one of "
                             f"{', '.join(spec.choices)} (unknown field {key!r})", file)
    keys = list(spec.choices) if spec.fill else list(value)
    return {k: convert(item_tp, value.get(k, {}), Spec(), file, _join(path, k)) for k in keys}


def _schema_value(tp, value, spec: Spec, file: str, path: str) -> Any:
    """A plain dict (or list of dicts) checked as ``spec.schema`` and kept as plain tables."""
    if typing.get_origin(tp) is list:
        if not isinstance(value, list):
            raise InputError(path, value, f"a list of tables ({spec.help or 'entries'})", file)
        return [dump(parse(spec.schema, v, file, f"{path}[{i}]")) for i, v in enumerate(value)]
    parse(spec.schema, value, file, path)
    return dict(value)


def _is_settings(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp) or (isinstance(tp, type) and hasattr(tp, "parse_at"))


def _range(spec: Spec) -> str:
    if spec.low == -INF and spec.high == INF:
        return ""
    return f" in {spec.low:g}..{spec.high:g}"


def _expected(tp: Any, spec: Spec) -> str:
    """What an error line says is allowed, from the declared type and range."""
    if spec.expected:
        return spec.expected
    if spec.choices:
        return f"one of {', '.join(str(c) for c in spec.choices)}"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer" + _range(spec)
    if tp is float:
        return "a number" + _range(spec)
    if tp is str:
        return "a string"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _expected([a for a in args if a is not type(None)][0], spec)
    if origin in (tuple, list):
        many = not args or args[-1] is Ellipsis or origin is list
        items = _PLURALS.get(args[0] if args else None, "tables") + _range(spec)
        return f"a list of {items}" if many else f"a list of {len(args)} {items}"
    return "a table"


_PLURALS = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}


def dump(obj: Any) -> Any:
    """Plain tables of a settings object: dataclasses -> dicts, tuples -> lists."""
    if isinstance(obj, Settings):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj):
        return _dump_fields(obj)
    if isinstance(obj, Mapping):
        return {k: dump(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [dump(v) for v in obj]
    return obj


def _dump_fields(obj: Any) -> dict[str, Any]:
    return {name: dump(getattr(obj, name)) for name in _fields(type(obj))}


class Settings:
    """Mix-in for settings dataclasses: ``from_dict``/``to_dict`` from the declarations."""

    @classmethod
    def from_dict(cls: type[T], d: Any, where: str = "") -> T:
        """Check and build from a table; ``where`` is ``"FILE: table"`` (or just ``FILE``)."""
        return cls.parse_at(d, *split_where(where))  # type: ignore[attr-defined]

    @classmethod
    def parse_at(cls: type[T], d: Any, file: str, path: str) -> T:
        """:func:`parse` of this class at ``file``/``path``; a class may add to it."""
        return parse(cls, d, file, path)

    def to_dict(self) -> dict[str, Any]:
        """Plain tables that ``from_dict`` reads back to an equal object."""
        return _dump_fields(self)
