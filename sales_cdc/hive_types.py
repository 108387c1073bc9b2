"""Glue (Hive) column types: one parser (sqlglot's DataType), inference, widening, Arrow types.

A type is a primitive name ("bigint", "double", "decimal(38,6)", "string", "null", ...) or a tuple:
("array", element), ("map", key, value), ("struct", ((name, type), ...)). The embedded crawler
infers and merges these; the embedded engine turns them into Arrow types to read JSON and Parquet.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
from sqlglot import exp
from sqlglot.errors import ParseError

GlueType = str | tuple

INTEGER_RANK = {"tinyint": 0, "smallint": 1, "int": 2, "bigint": 3}
FLOATING = ("float", "double")
BIGINT_RANGE = (-(2**63), 2**63 - 1)
MAX_DECIMAL_DIGITS = 38  # Athena's and Glue's largest decimal precision
_DECIMAL = re.compile(r"decimal(?:\((\d+),(\d+)\))?")
_STRING_TYPES = {exp.DataType.Type.TEXT, exp.DataType.Type.VARCHAR, exp.DataType.Type.CHAR}


class HiveTypeError(ValueError):
    """A column type text that is not a Hive type this project reads."""


def parse(text: str) -> GlueType:
    """The type of a Hive type text such as `struct<a:bigint,b:array<string>>`."""
    try:
        data_type = exp.DataType.build(text, dialect="hive")
    except (ParseError, ValueError) as exc:
        raise HiveTypeError(f"{text!r} is not a Hive type: {exc}") from None
    return _from_sqlglot(data_type, text)


def _from_sqlglot(data_type: exp.DataType, text: str) -> GlueType:
    kind = data_type.this
    children = data_type.expressions
    nested = {exp.DataType.Type.ARRAY: 1, exp.DataType.Type.MAP: 2}
    if kind in nested and len(children) != nested[kind]:
        raise HiveTypeError(f"{text!r} is not a Hive type: {kind.value.lower()} needs its types")
    if kind == exp.DataType.Type.ARRAY:
        return ("array", _from_sqlglot(children[0], text))
    if kind == exp.DataType.Type.MAP:
        return ("map", _from_sqlglot(children[0], text), _from_sqlglot(children[1], text))
    if kind == exp.DataType.Type.STRUCT:
        fields = tuple(
            (column.name.lower(), _from_sqlglot(column.args["kind"], text)) for column in children
        )
        return ("struct", fields)
    if kind in _STRING_TYPES and not children:
        return "string"
    if kind == exp.DataType.Type.USERDEFINED or kind == exp.DataType.Type.UNKNOWN:
        raise HiveTypeError(f"{text!r} is not a Hive type this project reads")
    return data_type.sql(dialect="hive").lower().replace(" ", "")


def render(glue_type: GlueType, null_as: str = "string") -> str:
    """Hive type text; a column that only ever held null is declared `null_as`."""
    if isinstance(glue_type, str):
        return null_as if glue_type == "null" else glue_type
    kind = glue_type[0]
    if kind == "array":
        return f"array<{render(glue_type[1], null_as)}>"
    if kind == "map":
        return f"map<{render(glue_type[1], null_as)},{render(glue_type[2], null_as)}>"
    inner = ",".join(f"{name}:{render(child, null_as)}" for name, child in glue_type[1])
    return f"struct<{inner}>"


def decimal_of(glue_type: GlueType) -> tuple[int, int] | None:
    """(precision, scale) of a decimal type (Hive's bare `decimal` is decimal(10,0))."""
    if isinstance(glue_type, str):
        match = _DECIMAL.fullmatch(glue_type)
        if match:
            return (int(match.group(1)), int(match.group(2))) if match.group(1) else (10, 0)
    return None


# -- inference --------------------------------------------------------------------------------


def of_value(value: Any) -> GlueType:
    """The type the Glue JSON classifier gives one parsed JSON value (numbers as int/Decimal)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return _integer(value)
    if isinstance(value, Decimal | float):
        number = Decimal(value)
        if isinstance(value, Decimal) and number.as_tuple().exponent == 0:
            return _integer(int(number))
        return "double"
    if isinstance(value, list):
        element: GlueType = "null"
        for item in value:
            element = widen(element, of_value(item))
        return ("array", element)
    if isinstance(value, dict):
        fields: list[tuple[str, GlueType]] = []
        for name, item in value.items():
            fields = merge_columns(fields, [(str(name).lower(), of_value(item))])[0]
        return ("struct", tuple(fields))
    return "string"


def _integer(value: int) -> GlueType:
    if BIGINT_RANGE[0] <= value <= BIGINT_RANGE[1]:
        return "bigint"
    if len(str(abs(value))) <= MAX_DECIMAL_DIGITS:
        return f"decimal({MAX_DECIMAL_DIGITS},0)"
    return "double"


def from_arrow(arrow_type: pa.DataType) -> GlueType:
    """The type the Glue JSON classifier gives a column that Arrow inferred as `arrow_type`."""
    t = pa.types
    if t.is_null(arrow_type):
        return "null"
    if t.is_boolean(arrow_type):
        return "boolean"
    if t.is_integer(arrow_type):
        return "bigint"
    if t.is_floating(arrow_type):
        return "double"
    if t.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    if t.is_list(arrow_type) or t.is_large_list(arrow_type):
        return ("array", from_arrow(arrow_type.value_type))
    if t.is_map(arrow_type):
        return ("map", from_arrow(arrow_type.key_type), from_arrow(arrow_type.item_type))
    if t.is_struct(arrow_type):
        fields: list[tuple[str, GlueType]] = []
        for child in arrow_type:
            fields = merge_columns(fields, [(child.name.lower(), from_arrow(child.type))])[0]
        return ("struct", tuple(fields))
    # Strings, and what Arrow reads out of strings (timestamps, dates): the JSON SerDe reads
    # them as strings and Glue classifies them as string.
    return "string"


# -- widening and merging ---------------------------------------------------------------------


def widen(current: GlueType, new: GlueType) -> GlueType:
    """The narrowest type holding both: int -> bigint -> double; anything conflicting -> string."""
    if current == new:
        return current
    if current == "null":
        return new
    if new == "null":
        return current
    if isinstance(current, str) and isinstance(new, str):
        if current in INTEGER_RANK and new in INTEGER_RANK:
            return max(current, new, key=INTEGER_RANK.__getitem__)
        numeric = INTEGER_RANK.keys() | set(FLOATING)
        if current in numeric and new in numeric:
            return "double"
        dec_current, dec_new = decimal_of(current), decimal_of(new)
        if dec_current and dec_new:
            scale = max(dec_current[1], dec_new[1])
            digits = max(dec_current[0] - dec_current[1], dec_new[0] - dec_new[1])
            return f"decimal({min(MAX_DECIMAL_DIGITS, digits + scale)},{scale})"
        if (dec_current and new in INTEGER_RANK) or (dec_new and current in INTEGER_RANK):
            return current if dec_current else new
        if (dec_current and new in FLOATING) or (dec_new and current in FLOATING):
            return "double"
        return "string"
    if isinstance(current, tuple) and isinstance(new, tuple) and current[0] == new[0]:
        if current[0] == "array":
            return ("array", widen(current[1], new[1]))
        if current[0] == "map":
            return ("map", widen(current[1], new[1]), widen(current[2], new[2]))
        return ("struct", tuple(merge_columns(list(current[1]), list(new[1]))[0]))
    return "string"


@dataclass
class SchemaChange:
    """What merging new columns into a schema changed."""

    added: list[str] = field(default_factory=list)
    widened: list[tuple[str, str, str]] = field(default_factory=list)  # name, before, after

    @property
    def changed(self) -> bool:
        return bool(self.added or self.widened)


def merge_columns(
    current: list[tuple[str, GlueType]],
    new: Iterable[tuple[str, GlueType]],
    *,
    add_only: bool = False,
) -> tuple[list[tuple[str, GlueType]], SchemaChange]:
    """Columns of `current` (none dropped, order kept) and new ones appended.

    Existing columns are widened to hold the new types, unless `add_only` (the crawler setting
    "Add new columns only", MergeNewColumns): then a declared type never changes.
    """
    merged = list(current)
    index = {name: i for i, (name, _) in enumerate(merged)}
    change = SchemaChange()
    for name, new_type in new:
        if name not in index:
            index[name] = len(merged)
            merged.append((name, new_type))
            change.added.append(name)
            continue
        if add_only:
            continue
        before = merged[index[name]][1]
        after = widen(before, new_type)
        if after != before:
            merged[index[name]] = (name, after)
            if before != "null":
                change.widened.append((name, render(before), render(after)))
    return merged, change


# -- Arrow ------------------------------------------------------------------------------------

_ARROW_PRIMITIVES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "null": pa.string(),  # a column that only ever held null is declared string
    "bigint": pa.int64(),
    "int": pa.int32(),
    "smallint": pa.int16(),
    "tinyint": pa.int8(),
    "double": pa.float64(),
    "float": pa.float32(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "binary": pa.binary(),
}


def to_arrow(glue_type: GlueType) -> pa.DataType:
    """The Arrow type that holds values of a Glue type (HiveTypeError when there is none)."""
    if isinstance(glue_type, tuple):
        if glue_type[0] == "array":
            return pa.list_(to_arrow(glue_type[1]))
        if glue_type[0] == "map":
            return pa.map_(to_arrow(glue_type[1]), to_arrow(glue_type[2]))
        return pa.struct([pa.field(name, to_arrow(child)) for name, child in glue_type[1]])
    if glue_type in _ARROW_PRIMITIVES:
        return _ARROW_PRIMITIVES[glue_type]
    if glue_type.startswith(("varchar", "char")):
        return pa.string()
    decimal = decimal_of(glue_type)
    if decimal:
        return pa.decimal128(*decimal)
    raise HiveTypeError(f"Hive type {glue_type!r} has no Arrow type here")


def hive_to_arrow(text: str) -> pa.DataType:
    """The Arrow type of a Glue/Hive column type text (string, decimal(38,6), struct<...>…)."""
    return to_arrow(parse(text))
