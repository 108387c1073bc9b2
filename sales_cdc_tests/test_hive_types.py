"""sales_cdc.hive_types: one Hive type parser (sqlglot), Glue-classifier inference, widening."""

from decimal import Decimal

import pyarrow as pa
import pytest

from sales_cdc.hive_types import (
    HiveTypeError,
    from_arrow,
    hive_to_arrow,
    merge_columns,
    of_value,
    parse,
    render,
    widen,
)


@pytest.mark.parametrize(
    "text",
    [
        "struct<a:bigint,b:array<struct<x:string>>>",
        "map<string,int>",
        "decimal(38,6)",
        "array<boolean>",
        "varchar(10)",
        "timestamp",
    ],
)
def test_parse_and_render_round_trip(text: str) -> None:
    assert render(parse(text)) == text


def test_parse_normalises_what_glue_and_hive_write() -> None:
    assert parse("STRUCT<Sku: STRING, Qty: INTEGER>") == (
        "struct",
        (("sku", "string"), ("qty", "int")),
    )
    assert parse("decimal( 9 , 2 )") == "decimal(9,2)"
    assert parse("null") == "null"
    for bad in ("uniontype<int,string>", "array<", "map<string>", "not a type"):
        with pytest.raises(HiveTypeError):
            parse(bad)


def test_arrow_types_of_hive_types() -> None:
    assert hive_to_arrow("decimal(38,6)") == pa.decimal128(38, 6)
    assert hive_to_arrow("decimal") == pa.decimal128(10, 0)
    assert hive_to_arrow("array<struct<a:bigint,b:string>>") == pa.list_(
        pa.struct([("a", pa.int64()), ("b", pa.string())])
    )
    assert hive_to_arrow("map<string,double>") == pa.map_(pa.string(), pa.float64())
    assert hive_to_arrow("char(3)") == pa.string()


def test_arrow_types_map_to_the_glue_json_classifier_types() -> None:
    assert from_arrow(pa.int64()) == "bigint"
    assert from_arrow(pa.float64()) == "double"
    assert from_arrow(pa.timestamp("s")) == "string"
    assert render(from_arrow(pa.null())) == "string"
    nested = pa.struct([("Sku", pa.string()), ("tags", pa.list_(pa.null()))])
    assert render(from_arrow(nested)) == "struct<sku:string,tags:array<string>>"


def test_values_are_typed_like_the_glue_json_classifier() -> None:
    assert of_value(True) == "boolean" and of_value(None) == "null" and of_value("x") == "string"
    assert of_value(3) == "bigint" and of_value(Decimal("2.50")) == "double"
    assert of_value(10**30) == "decimal(38,0)"  # 38-digit DynamoDB numbers stay exact
    assert of_value(10**40) == "double"
    assert render(of_value(["a", 1, {"k": 1}])) == "array<string>"  # a mixed list
    assert render(of_value([1, Decimal("2.5")])) == "array<double>"
    assert render(of_value({"A": 1, "a": "x"})) == "struct<a:string>"
    assert render(of_value([])) == "array<string>"


def test_widening_and_add_only_merging() -> None:
    assert widen("bigint", "double") == "double"
    assert widen("boolean", "bigint") == "string"
    assert widen(("array", "bigint"), "string") == "string"
    assert widen("decimal(38,6)", "bigint") == "decimal(38,6)"
    merged = widen(parse("struct<a:bigint>"), parse("struct<b:string,a:double>"))
    assert render(merged) == "struct<a:double,b:string>"

    columns, change = merge_columns(
        [("a", "bigint"), ("b", "string")], [("c", "boolean"), ("a", "double")]
    )
    assert columns == [("a", "double"), ("b", "string"), ("c", "boolean")]
    assert change.added == ["c"] and change.widened == [("a", "bigint", "double")]
    columns, change = merge_columns(
        [("a", "decimal(38,6)")], [("a", "string"), ("c", "bigint")], add_only=True
    )
    assert columns == [("a", "decimal(38,6)"), ("c", "bigint")]
    assert change.added == ["c"] and change.widened == []
