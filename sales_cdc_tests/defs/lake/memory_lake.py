"""An in-memory lake for the merge SQL: Athena SQL transpiled to DuckDB over landed rows and tables.

It holds the raw table orders_cdc (rows read from landing lines the way the embedded engine reads
them, with "$path") and the curated tables with their DDL types, and applies merge_rows /
replace_rows / append_rows with the semantics of the QueryEngine interface. merge_rows also
verifies the caller's guarantee: the scope covers every stored row of the source's keys and every
partition the source writes to.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot

from sales_cdc.emulator.duckdb_engine import hive_to_arrow, json_lines_as_table
from sales_cdc.resources.sql import bind
from sales_cdc_tests.lake_data import RAW_COLUMNS

TABLES = {
    "orders_current": """order_id VARCHAR, customer_id VARCHAR, customer_name VARCHAR,
        customer_city VARCHAR, customer_country VARCHAR, product_id VARCHAR, product_name VARCHAR,
        category VARCHAR, quantity BIGINT, unit_price DECIMAL(18, 2), discount DECIMAL(18, 2),
        total_amount DECIMAL(18, 2), currency VARCHAR, payment_method VARCHAR, channel VARCHAR,
        status VARCHAR, created_at TIMESTAMP, updated_at TIMESTAMP, version BIGINT,
        last_event_id VARCHAR, last_sequence_number DECIMAL(38, 0), last_event_time TIMESTAMP,
        order_date VARCHAR""",
    "order_tombstones": """order_id VARCHAR, last_event_id VARCHAR,
        last_sequence_number DECIMAL(38, 0), last_event_time TIMESTAMP, order_date VARCHAR""",
    "orders_cdc_merge_log": """object_key VARCHAR, object_size BIGINT, last_modified TIMESTAMP,
        status VARCHAR, reason VARCHAR, rows BIGINT, run_id VARCHAR, merged_at TIMESTAMP""",
}
RAW_SCHEMA = pa.schema([pa.field(name, hive_to_arrow(kind)) for name, kind in RAW_COLUMNS])


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    bytes_scanned: int = 0

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


@dataclass
class Written:
    rows_written: int
    bytes_scanned: int = 0


class ScopeViolation(AssertionError):
    """merge_rows was called with a scope that misses stored rows or written partitions."""


class MemoryLake:
    def __init__(self) -> None:
        self.connection = duckdb.connect()
        self.connection.execute("SET TimeZone = 'UTC'")
        for name, columns in TABLES.items():
            self.connection.execute(f"CREATE TABLE {name} ({columns})")
        self.raw = RAW_SCHEMA.append(pa.field("$path", pa.string())).empty_table()
        self.merges: list[tuple[str, str]] = []

    def land(self, path: str, rows: Iterable[Mapping[str, Any] | str]) -> None:
        lines = [r if isinstance(r, str) else json.dumps(dict(r)) for r in rows]
        data = json_lines_as_table("\n".join(lines).encode(), RAW_SCHEMA)
        data = data.append_column("$path", pa.array([path] * data.num_rows, pa.string()))
        self.raw = pa.concat_tables([self.raw, data])

    def _sql(self, sql: str, params: Mapping[str, Any] | None) -> str:
        return sqlglot.transpile(bind(sql, params), read="athena", write="duckdb")[0]

    def _run(self, sql: str) -> duckdb.DuckDBPyConnection:
        self.connection.register("orders_cdc", self.raw)
        return self.connection.execute(sql)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> Result:
        cursor = self._run(self._sql(sql, params))
        rows = cursor.fetchall()
        return Result([d[0] for d in cursor.description], rows)

    def table(self, name: str) -> list[tuple[Any, ...]]:
        return sorted(self.connection.sql(f"SELECT * FROM {name}").fetchall(), key=repr)

    def merge_rows(
        self,
        name: str,
        source_sql: str,
        *,
        key: Sequence[str],
        delete_column: str | None = None,
        scope: str | None,
        params: Mapping[str, Any] | None = None,
    ) -> Written:
        (k,) = key
        deleting = delete_column or "FALSE"
        self._run(f"CREATE OR REPLACE TEMP TABLE merge_source AS {self._sql(source_sql, params)}")
        where = self._sql(f"SELECT * FROM t WHERE {scope}", None).split(" WHERE ", 1)[1]
        outside = self.connection.execute(
            f"SELECT count(*) FROM {name} WHERE {k} IN (SELECT {k} FROM merge_source) "
            f"AND NOT COALESCE({where}, FALSE)"
        ).fetchone()[0]
        written_outside = self.connection.execute(
            f"SELECT count(*) FROM merge_source WHERE NOT {deleting} "
            f"AND NOT COALESCE({where}, FALSE)"
        ).fetchone()[0]
        if outside or written_outside:
            raise ScopeViolation(
                f"{name}: scope {scope!r} misses {outside} stored row(s) of the source's keys "
                f"and {written_outside} written row(s)"
            )
        self.connection.execute(f"DELETE FROM {name} WHERE {k} IN (SELECT {k} FROM merge_source)")
        columns = [c[0] for c in self.connection.sql(f"DESCRIBE {name}").fetchall()]
        inserted = self.connection.execute(
            f"INSERT INTO {name} SELECT {', '.join(columns)} FROM merge_source WHERE NOT {deleting}"
        ).fetchone()[0]
        self.merges.append((name, scope or ""))
        return Written(int(inserted))

    def replace_rows(
        self,
        name: str,
        select_sql: str,
        *,
        where: str | None,
        params: Mapping[str, Any] | None = None,
    ) -> Written:
        assert where is None, "the memory lake replaces whole tables only"
        self._run(f"CREATE OR REPLACE TEMP TABLE replace_source AS {self._sql(select_sql, params)}")
        self.connection.execute(f"DELETE FROM {name}")
        columns = [c[0] for c in self.connection.sql(f"DESCRIBE {name}").fetchall()]
        inserted = self.connection.execute(
            f"INSERT INTO {name} SELECT {', '.join(columns)} FROM replace_source"
        ).fetchone()[0]
        return Written(int(inserted))

    def append_rows(
        self, name: str, select_sql: str, params: Mapping[str, Any] | None = None
    ) -> Written:
        inserted = self.connection.execute(
            f"INSERT INTO {name} {self._sql(select_sql, params)}"
        ).fetchone()[0]
        return Written(int(inserted))
