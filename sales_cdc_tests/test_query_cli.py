import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pytest

from sales_cdc.emulator.duckdb_engine import DuckDBEngine, EngineError
from sales_cdc.query_cli import (
    RefusedStatement,
    format_table,
    limited_sql,
    read_only_statement,
    run_query,
)
from sales_cdc.resources.query import DuckDBQueryEngine


def test_format_table_aligns_columns_and_says_when_rows_were_left_out():
    text = format_table(["order_date", "orders"], [("2026-11-21", 12), ("2026-11-22", None)], 1)
    lines = text.splitlines()
    assert lines[0] == "order_date | orders"
    assert lines[2] == "2026-11-21 | 12    "
    assert lines[-1] == "(first 1 rows; more not fetched: raise --max-rows)"
    complete = format_table(["a"], [(1,), (None,)], 5).splitlines()
    assert complete[-2:] == ["NULL", "(2 rows)"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM orders_current",
        "WITH d AS (SELECT 1 AS x) SELECT x FROM d",
        "SELECT 1 UNION ALL SELECT 2",
        "VALUES (1, 'a'), (2, 'b')",
        "SHOW TABLES",
        "SHOW PARTITIONS orders_cdc",
        "DESCRIBE orders_current",
        "SELECT 1;",
    ],
)
def test_queries_pass(sql):
    read_only_statement(sql)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("COPY (SELECT 42) TO '/tmp/sales-cdc-copy.csv'", "COPY is not a query"),
        ("DROP TABLE orders_current", "DROP is not a query"),
        ("CREATE TABLE x AS SELECT 1", "CREATE is not a query"),
        ("INSERT INTO orders_current SELECT * FROM orders_current", "INSERT is not a query"),
        ("WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a", "INSERT is not a query"),
        ("DELETE FROM orders_current", "DELETE is not a query"),
        ("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", "MERGE is not a query"),
        ("UNLOAD (SELECT 1) TO 's3://bucket/x/' WITH (format = 'JSON')", "UNLOAD is not"),
        ("ATTACH '/tmp/sales-cdc.db' AS other", "not valid Athena SQL"),
        ("INSTALL httpfs", "ALIAS is not a query"),
        ("LOAD httpfs", "LOAD is not a query"),
        ("SET enable_external_access = true", "SET is not a query"),
        ("PRAGMA database_list", "PRAGMA is not a query"),
        ("SELECT 1; DROP TABLE orders_current", "2 statements given"),
        ("SELECT 1; SELECT 2", "2 statements given"),
        ("", "0 statements given"),
    ],
)
def test_statements_that_are_not_one_query_are_refused(sql, reason):
    with pytest.raises(RefusedStatement, match=reason):
        read_only_statement(sql)


def test_limit_is_pushed_into_the_outermost_query():
    def sql(text: str) -> str:
        return limited_sql(read_only_statement(text), 11)

    assert sql("SELECT a FROM t ORDER BY a") == "SELECT a FROM t ORDER BY a LIMIT 11"
    assert sql("SELECT a FROM t LIMIT 5") == "SELECT a FROM t LIMIT 5"
    assert sql("SELECT a FROM t LIMIT 500") == "SELECT a FROM t LIMIT 11"
    assert sql("SELECT 1 UNION ALL SELECT 2 ORDER BY 1").endswith("ORDER BY 1 LIMIT 11")
    assert sql("VALUES (1), (2)") == "SELECT * FROM (VALUES (1), (2)) AS q LIMIT 11"
    assert sql("DESCRIBE orders_current") == "DESCRIBE orders_current"


def _engine() -> DuckDBEngine:
    class NoCatalog:
        def get_table(self, name):
            return None

        def get_partitions(self, name):
            return []

    return DuckDBEngine(NoCatalog(), pa.fs.LocalFileSystem())


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_blob('/etc/hostname')",
        "SELECT * FROM read_json('/etc/hostname')",
        "COPY (SELECT 42) TO '{target}'",
        "SELECT * FROM read_parquet('https://example.invalid/orders.parquet')",
        "LOAD httpfs",
        "SET enable_external_access = true",
    ],
)
def test_the_embedded_engine_cannot_touch_local_files(sql, tmp_path: Path):
    # Even a statement that got past the CLI's check cannot read or write files with DuckDB.
    target = tmp_path / "written.csv"
    with pytest.raises(EngineError, match="disabled|Cannot change configuration"):
        _engine().query_arrow(sql.format(target=target))
    assert not target.exists()


def test_the_embedded_engine_cannot_attach_a_database(tmp_path: Path):
    connection_sql = f"ATTACH '{tmp_path / 'other.db'}' AS other"
    with pytest.raises(EngineError):
        _engine().query_arrow(connection_sql)
    assert not (tmp_path / "other.db").exists()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sales_cdc.cli", "query", *args],
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_query_runs_athena_sql_on_the_embedded_engine(provisioned):
    result = _cli("SELECT 1 AS one, date_format(DATE '2026-11-21', '%Y/%m') AS month")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split(" | ") == ["one", "month  "]
    assert "2026/11" in result.stdout
    as_json = _cli("SELECT 2 AS two", "--output", "json")
    assert as_json.stdout.strip() == '{"two": 2}'


def test_query_failure_exits_non_zero_with_the_reason(provisioned):
    result = _cli("SELECT * FROM no_such_table")
    assert result.returncode == 1
    assert "no_such_table" in result.stderr


def test_refused_statement_never_reaches_an_engine(tmp_path: Path, monkeypatch):
    # No emulator and an unreachable endpoint: a refusal must come before any engine is built.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    target = tmp_path / "copy.csv"
    result = _cli(f"COPY (SELECT 42) TO '{target}'")
    assert result.returncode == 2
    assert "refused: COPY is not a query" in result.stderr
    assert not target.exists()
    dropped = _cli("DROP TABLE orders_current")
    assert dropped.returncode == 2 and "DROP is not a query" in dropped.stderr


def test_file_functions_fail_through_the_cli(provisioned):
    result = _cli("SELECT * FROM read_text('/etc/hostname')")
    assert result.returncode == 1
    assert "file system operations are disabled" in result.stderr


TWO_MILLION = "SELECT a.x * 1000 + b.y AS n FROM UNNEST(SEQUENCE(1, 2000)) AS a(x) CROSS JOIN UNNEST(SEQUENCE(1, 1000)) AS b(y)"  # noqa: E501


def test_a_large_result_is_never_fetched_beyond_max_rows(aws, capsys, monkeypatch):
    fetched: list[int] = []
    original = DuckDBQueryEngine.query

    def counting(self, sql, params=None):
        result = original(self, sql, params)
        fetched.append(len(result.rows))
        return result

    monkeypatch.setattr(DuckDBQueryEngine, "query", counting)
    assert run_query("SELECT 1", max_rows=1) == 0  # imports and clients, before measuring
    capsys.readouterr()
    fetched.clear()
    tracemalloc.start()
    try:
        assert run_query(TWO_MILLION, max_rows=10) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fetched == [11]
    # 2M rows as Python tuples take over 180 MB; what is left is boto3 clients being built.
    assert peak < 64 * 1024 * 1024, peak
    out = capsys.readouterr()
    table = out.out.splitlines()
    assert len(table) == 2 + 10 + 1
    assert table[-1] == "(first 10 rows; more not fetched: raise --max-rows)"


@pytest.mark.parametrize("output", ["csv", "json"])
def test_every_output_format_stops_at_max_rows(aws, capsys, output):
    assert run_query(TWO_MILLION + " ORDER BY n", output=output, max_rows=3) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    if output == "csv":
        assert lines == ["n", "1001", "1002", "1003"]
    else:
        assert [json.loads(line) for line in lines] == [{"n": 1001}, {"n": 1002}, {"n": 1003}]
    assert "first 3 rows; more not fetched" in out.err


def test_max_rows_must_be_positive(capsys):
    assert run_query("SELECT 1", max_rows=0) == 2
    assert "--max-rows must be at least 1" in capsys.readouterr().err


class _RecordingEngine:
    """Stands in for AthenaQueryEngine: records the SQL it is given, returns what it is told."""

    def __init__(self, rows: int) -> None:
        self.statements: list[str] = []
        self.rows = rows

    def query(self, sql, params=None):
        from sales_cdc.resources.query import QueryResult

        self.statements.append(sql)
        return QueryResult(columns=["n"], rows=[(i,) for i in range(self.rows)], bytes_scanned=7)


def test_athena_receives_the_limited_statement(monkeypatch, capsys):
    import sqlglot

    import sales_cdc.query_cli as query_cli

    engine = _RecordingEngine(rows=6)
    monkeypatch.setattr(query_cli, "build_resources", lambda settings: {"query_engine": engine})
    monkeypatch.setattr(query_cli, "apply_local_credentials", lambda settings: None)
    sql = "SELECT order_id AS n FROM orders_current ORDER BY updated_at DESC"
    assert run_query(sql, output="csv", max_rows=5) == 0
    (sent,) = engine.statements
    assert sent == f"{sql} LIMIT 6"
    assert sqlglot.parse_one(sent, read="athena").args["limit"].expression.this == "6"
    out = capsys.readouterr()
    assert out.out.splitlines() == ["n", "0", "1", "2", "3", "4"]
    assert "first 5 rows; more not fetched" in out.err


def test_a_refused_statement_builds_no_engine(monkeypatch, capsys):
    import sales_cdc.query_cli as query_cli

    def no_engine(settings):
        raise AssertionError("an engine was built for a refused statement")

    monkeypatch.setattr(query_cli, "build_resources", no_engine)
    assert run_query("DROP TABLE orders_current") == 2
    assert "refused: DROP is not a query" in capsys.readouterr().err
