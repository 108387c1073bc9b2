import os
import subprocess
import sys

from sales_cdc.query_cli import format_table


def test_format_table_aligns_columns_and_counts_rows():
    text = format_table(["order_date", "orders"], [("2026-11-21", 12), ("2026-11-22", None)], 1)
    lines = text.splitlines()
    assert lines[0] == "order_date | orders"
    assert lines[2] == "2026-11-21 | 12    "
    assert lines[-1] == "(2 rows (showing 1))"


def _query(sql: str, provisioned, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ}
    return subprocess.run(
        [sys.executable, "-m", "sales_cdc.cli", "query", sql, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_query_runs_athena_sql_on_the_embedded_engine(provisioned):
    result = _query(
        "SELECT 1 AS one, date_format(DATE '2026-11-21', '%Y/%m') AS month", provisioned
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split(" | ") == ["one", "month  "]
    assert "2026/11" in result.stdout
    as_json = _query("SELECT 2 AS two", provisioned, "--output", "json")
    assert as_json.stdout.strip() == '{"two": 2}'


def test_query_failure_exits_non_zero_with_the_reason(provisioned):
    result = _query("SELECT * FROM no_such_table", provisioned)
    assert result.returncode == 1
    assert "no_such_table" in result.stderr
