"""Every Athena-dialect file in sales_cdc/sql/ transpiles to DuckDB and runs on the embedded engine."""

import re

import pytest
import sqlglot

from sales_cdc.defs.lake.merge import rebuild_tables
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.query import DuckDBQueryEngine
from sales_cdc.resources.sql import (
    SQL_DIR,
    SqlError,
    _expand,
    bind,
    optional_columns,
    read_sql,
    sql_names,
    table_ddl_names,
)
from sales_cdc_tests.lake_data import catalog_raw_table, event, land, setup_lake

SAMPLE_PARAMETER = "2026-03-01"
MERGED_TABLES = (
    "order_tombstones",
    "orders_cdc_merge_log",
)  # parameters of the lake's SQL are days or partition values


def test_there_are_sql_files() -> None:
    assert "orders_current" in sql_names()


@pytest.mark.parametrize("name", sql_names())
def test_file_is_athena_sql_that_transpiles(name: str) -> None:
    text = bind(read_sql(name), dict.fromkeys(re.findall(r"%\((\w+)\)s", read_sql(name)), "x"))
    (statement,) = sqlglot.parse(text, read="athena")
    assert statement is not None
    assert sqlglot.transpile(text, read="athena", write="duckdb")[0]


def test_every_file_runs_on_the_embedded_engine(aws: AwsResource) -> None:
    setup_lake(aws)
    landed = [
        land(aws, [event("a", 1, "INSERT"), event("a", 2, status="PAID"), event("b", 3, "INSERT")]),
        land(aws, [event("b", 4, "REMOVE")], hour="2026/03/01/11"),
    ]
    catalog_raw_table(aws)
    engine = DuckDBQueryEngine(aws=aws)
    catalog = engine.catalog()
    written: set[str] = set()

    def params(text: str) -> dict[str, str]:
        return dict.fromkeys(re.findall(r"%\((\w+)\)s", text), SAMPLE_PARAMETER)

    def ensure_tables(text: str, stack: tuple[str, ...] = ()) -> None:
        tree = sqlglot.parse_one(bind(text, params(text)), read="athena")
        ctes = {c.alias_or_name for c in tree.find_all(sqlglot.exp.CTE)}
        for table in tree.find_all(sqlglot.exp.Table):
            name = table.name
            if name in ctes or name in stack or catalog.get_table(name) is not None:
                continue
            if name in MERGED_TABLES:  # written by the orders_current merge, not from a SELECT
                engine.ensure_table(name)
                written.add(name)
                continue
            source = read_sql(name)  # a table the lake writes from its own .sql file
            ensure_tables(source, (*stack, name))
            if name == "orders_current":  # its .sql file is the full rebuild
                for table in MERGED_TABLES:
                    engine.ensure_table(table)
                rebuild_tables(
                    engine, [f"s3://{aws.stack().bucket}/{key}" for key in landed], read_sql
                )
            else:  # every curated table is an Iceberg table of its own .ddl.sql
                assert name in table_ddl_names(), f"{name} has no sql/{name}.ddl.sql"
                engine.replace_rows(name, source, where=None, params=params(source))
            written.add(name)

    for name in sql_names():
        if name.endswith(".ddl"):  # table definitions: test_ddl_files_create_iceberg_tables
            continue
        text = read_sql(name)
        ensure_tables(text)
        result = engine.query(text, params(text))
        assert result.columns, name
    assert "orders_current" in written


def test_ddl_files_create_iceberg_tables(aws: AwsResource) -> None:
    setup_lake(aws)
    engine = DuckDBQueryEngine(aws=aws)
    ddl_names = table_ddl_names()
    assert {"orders_current", "daily_sales_by_product", "orders_cdc_merge_log"} <= set(ddl_names)
    for name in ddl_names:
        assert engine.ensure_table(name) is True
        assert engine.ensure_table(name) is False
        table = engine.catalog().get_table(name)
        assert table["Parameters"]["table_type"] == "ICEBERG"
        assert engine.query(f"SELECT * FROM {name}").rows == []  # noqa: S608


def test_missing_file_and_parameters_are_explained() -> None:
    with pytest.raises(SqlError, match="No SQL file"):
        read_sql("no_such_table")
    with pytest.raises(SqlError, match=r"\['day'\]"):
        bind("SELECT 1 WHERE d = %(day)s", {})
    assert bind("SELECT %(a)s, %(b)s", {"a": "it's", "b": [1, 2]}) == "SELECT 'it''s', 1, 2"
    optional = optional_columns(read_sql("orders_current"))["orders_cdc"]
    assert optional["discount"] == "double" and optional["quantity"] == "bigint"
    assert "order_id" not in optional and "sequence_number" not in optional


def test_sales_measures_are_defined_once_and_included() -> None:
    measure = "COUNT(CASE WHEN outcome = 'cancelled' THEN 1 END) AS cancelled_orders"
    files = ["daily_sales_by_product", "daily_sales_by_category", "hourly_revenue"]
    for name in [*files, "aggregate_totals"]:
        raw = (SQL_DIR / f"{name}.sql").read_text()
        assert "-- include: sales_measures" in raw and measure not in raw
        assert read_sql(name).count(measure) == 1
    assert (SQL_DIR / "include" / "sales_measures.sql").read_text().count(measure) == 1
    with pytest.raises(SqlError, match="names no file"):
        _expand("SELECT\n    -- include: no_such_fragment\n    1")
