"""Typed schemas: parse plain data (YAML, JSON, ``--set`` values) into dataclasses, checked.

One parser serves the run config, the model specification stored in checkpoints and exports,
and the parameters of every plugin component (a ``build`` function's annotations are its
schema). Every error is a :class:`~domainfm.errors.ConfigError` naming the key and what was
expected: an unknown key (with a did-you-mean), a wrong type, a value outside its range
(``typing.Annotated[int, Range(gt=0)]``) or not among a ``Literal``'s choices.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from domainfm.errors import ConfigError


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """A hint naming the closest valid choices, and all of them when few."""
    choices = sorted(choices)
    close = difflib.get_close_matches(value, choices, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listing = ", ".join(choices) if choices else "(none installed)"
    return f"{hint} Valid choices: {listing}."


@dataclass(frozen=True)
class Range:
    """A numeric bound for ``Annotated``: ``Annotated[float, Range(gt=0)]`` is a positive float."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def describe(self) -> str:
        parts = [f"{op} {bound:g}" for op, bound in
                 ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le)) if bound is not None]
        return " and ".join(parts)

    def check(self, value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        ok = not (isinstance(value, float) and math.isnan(value))
        ok = ok and (self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
        ok = ok and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le)
        if not ok:
            raise ConfigError(f"{where} must be {self.describe()}, got {value!r}")


PositiveInt = Annotated[int, Range(gt=0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeInt = Annotated[int, Range(ge=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]
Fraction = Annotated[float, Range(ge=0, le=1)]


def parse(cls: type, raw: Any, where: str) -> Any:
    """An instance of dataclass ``cls`` from a mapping, every field checked against its type."""
    if dataclasses.is_dataclass(raw) and not isinstance(raw, type):
        raw = to_plain(raw)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in raw:
        if key not in fields:
            raise ConfigError(f"unknown key {where}.{key}.{did_you_mean(str(key), fields)}")
    values = {}
    for name, f in fields.items():
        if name in raw:
            values[name] = coerce(hints[name], raw[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {where}.{name}")
    return cls(**values)


def coerce(tp: Any, value: Any, where: str) -> Any:
    """``value`` checked (and, where lossless, converted) to the type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        value = coerce(args[0], value, where)
        for constraint in args[1:]:
            if isinstance(constraint, Range):
                constraint.check(value, where)
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        bases = [typing.get_args(a)[0] if typing.get_origin(a) is Annotated else a for a in args]
        if type(value) in bases:  # an exact match wins: `float | int` keeps 50 (batches) an int
            return coerce(args[bases.index(type(value))], value, where)
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return coerce(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        ranged = [e for e in errors if " must be " in e and "," in e and "got" in e]
        raise ConfigError(errors[0] if len(errors) == 1 else ranged[0] if len(ranged) == 1
                          else f"{where}: invalid value {value!r}")
    if origin is Literal:
        if isinstance(value, int) and not isinstance(value, bool) and str(value) in args:
            value = str(value)  # YAML reads `precision: 32` as a number
        if value not in args:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        item = args[0] if args else Any
        if isinstance(value, (str, Mapping)) and dataclasses.is_dataclass(item):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        items = [coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        first = dataclasses.fields(tp)[0]
        if isinstance(value, str) and first.type in (str, "str"):
            value = {first.name: value}  # shorthand: `objective: medical.multimodal_mae`
        return parse(tp, value, where)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML reads `3e-4` (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool):
        if type(value) is not tp:
            raise ConfigError(f"{where} must be {tp.__name__}, got {value!r}")
        return value
    return value  # Any, or a type the schema does not check (a path, a tensor...)


def to_plain(obj: Any) -> Any:
    """Dataclasses, tuples and mappings as JSON/YAML types (dicts and lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj
