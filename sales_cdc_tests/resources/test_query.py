"""Both query engines: Athena's statements (sqlglot, fake cursor, Stubber), the embedded Iceberg
writes and reads against the emulator."""

import datetime as dt
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import sqlglot
from botocore.stub import Stubber

from sales_cdc.resources import build_resources
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.query import (
    AthenaQueryEngine,
    DuckDBQueryEngine,
    QueryFailedError,
    with_optional_columns,
)
from sales_cdc.resources.sql import as_of, bind, read_sql
from sales_cdc.settings import Settings
from sales_cdc_tests.lake_data import RAW_COLUMNS, catalog_raw_table, setup_lake


@pytest.fixture
def athena(aws: AwsResource) -> AthenaQueryEngine:
    setup_lake(aws)
    stack = aws.stack()
    aws.client("athena").create_work_group(
        Name=stack.workgroup,
        Configuration={"ResultConfiguration": {"OutputLocation": stack.athena_results_location}},
    )
    return AthenaQueryEngine(aws=aws, poll_interval_seconds=0.01)


def _executions(aws: AwsResource) -> list[dict]:
    client = aws.client("athena")
    ids = client.list_query_executions(WorkGroup=aws.stack().workgroup)["QueryExecutionIds"]
    return [client.get_query_execution(QueryExecutionId=i)["QueryExecution"] for i in ids]


def test_build_resources_picks_the_engine_per_environment(local_env: Settings) -> None:
    assert isinstance(build_resources(local_env)["query_engine"], DuckDBQueryEngine)
    aws_settings = Settings(env="aws", prefix="p-x", region="eu-west-1", endpoint_url=None)
    assert isinstance(build_resources(aws_settings)["query_engine"], AthenaQueryEngine)


def test_query_runs_in_the_stack_workgroup(athena: AthenaQueryEngine) -> None:
    result = athena.query("SELECT order_id FROM orders_cdc WHERE day = %(d)s", {"d": "01"})
    assert result.query_id
    (execution,) = [e for e in _executions(athena.aws) if e["QueryExecutionId"] == result.query_id]
    assert execution["Query"] == "SELECT order_id FROM orders_cdc WHERE day = '01'"
    assert execution["WorkGroup"] == athena.aws.stack().workgroup
    assert execution["Status"]["State"] == "SUCCEEDED"


def _stubbed(athena: AthenaQueryEngine, monkeypatch: pytest.MonkeyPatch, states: list[dict]):
    connection = athena._connect()
    stubber = Stubber(connection.client)
    stubber.add_response("start_query_execution", {"QueryExecutionId": "q-123"})
    for status in states:
        stubber.add_response(
            "get_query_execution",
            {
                "QueryExecution": {
                    "QueryExecutionId": "q-123",
                    "Query": "SELECT discount FROM orders_cdc",
                    "StatementType": "DML",
                    "WorkGroup": athena.aws.stack().workgroup,
                    "ResultConfiguration": {"OutputLocation": "s3://b/athena-results/q-123.csv"},
                    "QueryExecutionContext": {"Database": athena.aws.stack().database},
                    "Status": status,
                    "Statistics": {"DataScannedInBytes": 42},
                }
            },
        )
    stubber.activate()
    monkeypatch.setattr(AthenaQueryEngine, "_connect", lambda self: connection)
    return stubber


def test_polls_until_failed_and_reports_reason_and_query_id(
    athena: AthenaQueryEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    stubber = _stubbed(
        athena,
        monkeypatch,
        [
            {"State": "QUEUED"},
            {"State": "RUNNING"},
            {
                "State": "FAILED",
                "StateChangeReason": "COLUMN_NOT_FOUND: Column 'discount' cannot be resolved",
            },
        ],
    )
    with pytest.raises(QueryFailedError) as failure:
        athena.query("SELECT discount FROM orders_cdc")
    assert failure.value.query_id == "q-123"
    assert "COLUMN_NOT_FOUND" in failure.value.reason
    assert "q-123" in str(failure.value) and athena.aws.stack().workgroup in str(failure.value)
    stubber.assert_no_pending_responses()


def test_optional_columns_are_added_as_null_when_not_cataloged(athena: AthenaQueryEngine) -> None:
    catalog_raw_table(
        athena.aws, [c for c in RAW_COLUMNS if c[0] != "discount"], with_partitions=False
    )
    sql = "-- optional: orders_cdc.discount double\nSELECT o.discount FROM orders_cdc AS o"
    result = athena.query(sql)
    (execution,) = [e for e in _executions(athena.aws) if e["QueryExecutionId"] == result.query_id]
    assert "CAST(NULL AS DOUBLE) AS discount FROM orders_cdc) AS o" in execution["Query"]
    catalog_raw_table(athena.aws, RAW_COLUMNS, with_partitions=False)
    assert "CAST(NULL" not in athena._prepare(sql, None)
    assert with_optional_columns("SELECT 1 FROM t", {}) == "SELECT 1 FROM t"


@dataclass
class FakeCursor:
    """What AthenaQueryEngine reads of a finished pyathena cursor."""

    query_id: str
    rowcount: int = -1
    data_scanned_in_bytes: int = 0
    rows: list[tuple] = field(default_factory=list)

    def fetchone(self) -> tuple:
        return self.rows[0]

    def fetchall(self) -> list[tuple]:
        return self.rows


@pytest.fixture
def statements(athena: AthenaQueryEngine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Statements AthenaQueryEngine sends, answered by a fake cursor (moto runs no SQL)."""
    sent: list[str] = []

    def execute(self, sql: str) -> FakeCursor:
        sent.append(sql)
        rows = [(3 if "$files" in sql else 2,)] if sql.startswith("SELECT COUNT") else []
        if sql.startswith("SELECT DISTINCT"):  # the partition values of a multi-day write
            rows = [(f"2026-{1 + d // 28:02d}-{1 + d % 28:02d}",) for d in range(150)] + [(None,)]
        return FakeCursor(f"q-{len(sent)}", rowcount=5, data_scanned_in_bytes=100, rows=rows)

    monkeypatch.setattr(AthenaQueryEngine, "_execute", execute)
    return sent


def athena_sql(statement: str) -> sqlglot.exp.Expression:
    (parsed,) = sqlglot.parse(statement, read="athena")
    return parsed


def test_ensure_table_runs_the_iceberg_ddl_once(
    athena: AthenaQueryEngine, statements: list[str]
) -> None:
    # Athena "Create Iceberg tables": CREATE TABLE ... LOCATION ... TBLPROPERTIES table_type.
    assert athena.ensure_table("daily_sales_by_product") is True
    (ddl,) = statements
    tree = athena_sql(ddl)
    assert isinstance(tree, sqlglot.exp.Create)
    location = f"s3://{athena.aws.stack().bucket}/curated/daily_sales_by_product/"
    assert f"LOCATION '{location}'" in ddl and "'table_type' = 'ICEBERG'" in ddl
    assert "external_location" not in ddl and " AS SELECT" not in ddl.upper()
    athena.aws.client("glue").create_table(
        DatabaseName=athena.aws.stack().database,
        TableInput={"Name": "daily_sales_by_product", "Parameters": {"table_type": "ICEBERG"}},
    )
    assert athena.ensure_table("daily_sales_by_product") is False
    assert len(statements) == 1


def test_replace_rows_is_delete_then_insert_of_the_table_columns(
    athena: AthenaQueryEngine, statements: list[str]
) -> None:
    # Athena "Update Iceberg table data": DELETE FROM ... WHERE, INSERT INTO ... SELECT.
    result = athena.replace_rows(
        "daily_order_status",
        read_sql("daily_order_status"),
        where="order_date = '2026-03-01'",
        params={"order_dates": ["2026-03-01"]},
    )
    ddl, delete, insert = statements
    assert isinstance(athena_sql(delete), sqlglot.exp.Delete)
    assert delete == "DELETE FROM daily_order_status WHERE order_date = '2026-03-01'"
    tree = athena_sql(insert)
    assert isinstance(tree, sqlglot.exp.Insert)
    columns = [c.name for c in tree.this.expressions]
    assert columns == [
        "status",
        "funnel_step",
        "orders",
        "units",
        "day_orders",
        "share_of_orders",
        "reached_orders",
        "order_date",
    ]
    assert "WHERE order_date IN ('2026-03-01')" in insert
    assert result.query_ids == ["q-2", "q-3"]  # the DDL ran first, once
    assert result.rows_written == 5 and result.bytes_scanned == 200
    athena.replace_rows("daily_order_status", "SELECT * FROM x", where=None)
    assert "DELETE FROM daily_order_status" in statements


def test_a_write_to_many_days_inserts_at_most_100_partitions_each(
    athena: AthenaQueryEngine, statements: list[str]
) -> None:
    # Athena "Use CTAS and INSERT INTO to work around the 100 partition limit".
    athena.replace_rows("hourly_revenue", "SELECT * FROM staged", where=None)
    ddl, distinct, delete, first, second = statements
    assert distinct.startswith("SELECT DISTINCT order_date FROM (SELECT * FROM staged)")
    assert delete == "DELETE FROM hourly_revenue"
    for insert, days in ((first, 100), (second, 50)):
        tree = athena_sql(insert)
        (in_list,) = list(tree.find_all(sqlglot.exp.In))
        assert len(in_list.expressions) == days
    assert "OR order_date IS NULL" in first and "IS NULL" not in second
    one_day = len(statements)
    athena.replace_rows("hourly_revenue", "SELECT 1", where="order_date = '2026-03-01'")
    # one partition: no listing of partition values (the DDL runs again: the fake creates nothing)
    assert [s.split()[0] for s in statements[one_day + 1 :]] == ["DELETE", "INSERT"]


def test_a_table_partitioned_by_truncate_is_batched_by_its_source_column(
    athena: AthenaQueryEngine, statements: list[str]
) -> None:
    # order_tombstones: PARTITIONED BY (truncate(7, order_date)), one partition per month; 100
    # order days never make more than 100 partitions.
    athena.replace_rows("order_tombstones", "SELECT * FROM staged", where=None)
    _, distinct, delete, *inserts = statements
    assert distinct.startswith("SELECT DISTINCT order_date FROM (SELECT * FROM staged)")
    assert delete == "DELETE FROM order_tombstones" and len(inserts) == 2


def test_merge_rows_is_one_merge_into_limited_to_the_scope(
    athena: AthenaQueryEngine, statements: list[str]
) -> None:
    # Athena "MERGE INTO": WHEN MATCHED [AND c] THEN DELETE / UPDATE, WHEN NOT MATCHED INSERT.
    athena.aws.client("glue").create_table(
        DatabaseName=athena.aws.stack().database,
        TableInput={"Name": "order_tombstones", "Parameters": {"table_type": "ICEBERG"}},
    )
    result = athena.merge_rows(
        "order_tombstones",
        "SELECT *, FALSE AS is_deleted FROM changes",
        key=["order_id"],
        delete_column="is_deleted",
        scope="order_date IN ('2026-03-01') OR order_date IS NULL",
    )
    (merge,) = statements
    tree = athena_sql(merge)
    assert isinstance(tree, sqlglot.exp.Merge)
    on = tree.args["on"].sql(dialect="athena")
    assert on == (
        "(t.order_date IN ('2026-03-01') OR t.order_date IS NULL) AND t.order_id = s.order_id"
    )
    whens = [w.sql(dialect="athena") for w in tree.args["whens"].expressions]
    assert whens[0] == "WHEN MATCHED AND COALESCE(s.is_deleted, FALSE) THEN DELETE"
    assert whens[1].startswith("WHEN MATCHED THEN UPDATE SET last_event_id = s.last_event_id")
    assert "order_id = s.order_id" not in whens[1]
    assert whens[2].startswith("WHEN NOT MATCHED AND NOT COALESCE(s.is_deleted, FALSE) THEN")
    assert "(order_id, last_event_id, last_sequence_number" in whens[2]
    assert result.query_ids == ["q-1"] and result.rows_written == 5
    assert result.rows_inserted is None

    # Without a delete column (order_tombstones' upserts): update or insert, never delete.
    athena.merge_rows(
        "order_tombstones", "SELECT * FROM changes", key=["order_id"], scope="order_date IS NULL"
    )
    whens = [w.sql(dialect="athena") for w in athena_sql(statements[-1]).args["whens"].expressions]
    assert [w.split(" THEN ")[0] for w in whens] == ["WHEN MATCHED", "WHEN NOT MATCHED"]
    assert whens[1].startswith("WHEN NOT MATCHED THEN INSERT (order_id, last_event_id")


def test_maintain_sets_retention_then_optimize_then_vacuum(
    athena: AthenaQueryEngine, statements: list[str]
) -> None:
    older_than = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    result = athena.maintain("hourly_revenue", older_than=older_than, retain_last=3)
    counts_before, alter, optimize, vacuum, counts_after = (
        statements[:2],
        statements[2],
        statements[3],
        statements[4],
        statements[5:],
    )
    assert counts_before == [
        'SELECT COUNT(*) FROM "hourly_revenue$files"',
        'SELECT COUNT(*) FROM "hourly_revenue$snapshots"',
    ]
    assert counts_after == counts_before
    # Athena "VACUUM": vacuum_max_snapshot_age_seconds / vacuum_min_snapshots_to_keep.
    assert alter.startswith("ALTER TABLE hourly_revenue SET TBLPROPERTIES (")
    age = int(alter.split("'vacuum_max_snapshot_age_seconds'='")[1].split("'")[0])
    assert 2 * 86400 - 5 <= age <= 2 * 86400 + 5
    assert "'vacuum_min_snapshots_to_keep'='3'" in alter
    # Athena "OPTIMIZE": OPTIMIZE table REWRITE DATA USING BIN_PACK.
    assert optimize == "OPTIMIZE hourly_revenue REWRITE DATA USING BIN_PACK"
    assert vacuum == "VACUUM hourly_revenue"
    assert (result.data_files_before, result.snapshots_before) == (3, 2)
    assert result.query_ids == ["q-3", "q-4", "q-5"]


def test_curated_writes_never_use_ctas_external_location(
    athena: AthenaQueryEngine, statements: list[str]
) -> None:
    # Athena "Troubleshoot workgroup errors": a CTAS with external_location fails in a
    # workgroup that enforces its configuration; the curated tables are Iceberg tables written
    # by DELETE / INSERT INTO / MERGE INTO.
    athena.replace_rows(
        "daily_order_status",
        read_sql("daily_order_status"),
        where="order_date IN ('2026-03-01', '2026-03-02')",
        params={"order_dates": ["2026-03-01"]},
    )
    athena.append_rows("daily_order_status", "SELECT * FROM staged")
    assert statements and not any("external_location" in s for s in statements)
    assert not any(s.upper().startswith("CREATE TABLE") and " AS " in s for s in statements)
    assert "DELETE FROM daily_order_status WHERE order_date IN ('2026-03-01', '2026-03-02')" in (
        statements
    )


def _running(athena: AthenaQueryEngine, query_id: str) -> dict:
    return {
        "QueryExecution": {
            "QueryExecutionId": query_id,
            "Query": "SELECT 1",
            "StatementType": "DML",
            "WorkGroup": athena.aws.stack().workgroup,
            "Status": {"State": "RUNNING"},
        }
    }


def test_a_query_past_the_timeout_is_stopped_and_named(
    athena: AthenaQueryEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Athena API StopQueryExecution: stops a running query; its state becomes CANCELLED.
    engine = AthenaQueryEngine(
        aws=athena.aws, poll_interval_seconds=0.01, query_timeout_seconds=0.2
    )
    connection = engine._connect()
    stubber = Stubber(connection.client)
    stubber.add_response("start_query_execution", {"QueryExecutionId": "q-slow"})
    for _ in range(3):
        stubber.add_response("get_query_execution", _running(engine, "q-slow"))
    stubber.add_response("stop_query_execution", {}, {"QueryExecutionId": "q-slow"})
    clock = iter([0.0, 0.0, 0.1, 0.3])  # start, then one reading per RUNNING poll
    monkeypatch.setattr("sales_cdc.resources.query._clock", lambda: next(clock))
    with stubber, pytest.raises(QueryFailedError) as failure:
        engine.query("SELECT 1")
    assert failure.value.query_id == "q-slow"
    assert "q-slow" in str(failure.value) and "query_timeout_seconds=0.2" in str(failure.value)
    stubber.assert_no_pending_responses()


def test_one_connection_per_engine(athena: AthenaQueryEngine, monkeypatch: pytest.MonkeyPatch):
    import pyathena

    opened: list[Any] = []
    original = pyathena.connect

    def connect(*args, **kwargs):
        opened.append(original(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(pyathena, "connect", connect)
    engine = AthenaQueryEngine(aws=athena.aws, poll_interval_seconds=0.01)
    first = engine.query("SELECT order_id FROM orders_cdc")
    second = engine.query("SELECT event_id FROM orders_cdc")
    assert first.query_id != second.query_id
    assert len(opened) == 1


# -- the embedded engine: Iceberg tables --------------------------------------------------------
SALES = (
    "SELECT product_id, MAX(product_name) AS product_name, MAX(category) AS category, currency, "
    "COUNT(*) AS orders, CAST(SUM(quantity) AS BIGINT) AS units, "
    "CAST(SUM(quantity * unit_price) AS DECIMAL(18, 2)) AS gross_revenue, "
    "CAST(0 AS DECIMAL(18, 2)) AS discounts, "
    "CAST(SUM(total_amount) AS DECIMAL(18, 2)) AS net_revenue, 0 AS cancelled_orders, "
    "CAST(0 AS DECIMAL(18, 2)) AS cancelled_amount, 0 AS returned_orders, "
    "CAST(0 AS DECIMAL(18, 2)) AS returned_amount, "
    "substr(created_at, 1, 10) AS order_date "
    "FROM orders_cdc GROUP BY product_id, currency, substr(created_at, 1, 10)"
)


@pytest.fixture
def duck(aws: AwsResource) -> DuckDBQueryEngine:
    from sales_cdc_tests.lake_data import event, land

    setup_lake(aws)
    days = ["2026-03-01", "2026-03-02", "2026-03-03"]
    land(
        aws,
        [
            event(f"o{i}", i, "INSERT", created_at=f"{days[i % 3]}T10:00:00Z", product_id=f"p{i}")
            for i in range(9)
        ],
    )
    catalog_raw_table(aws)
    return DuckDBQueryEngine(aws=aws)


def test_partition_pruning_reads_only_the_day_files(duck: DuckDBQueryEngine) -> None:
    written = duck.replace_rows("daily_sales_by_product", SALES, where=None)
    assert written.rows_written == 9 and written.files_written == 3
    assert written.bytes_written > 0 and written.bytes_scanned > 0
    whole = duck.query("SELECT * FROM daily_sales_by_product")
    one_day = duck.query(
        "SELECT product_id FROM daily_sales_by_product WHERE order_date = '2026-03-02'"
    )
    two_days = duck.query(
        "SELECT product_id FROM daily_sales_by_product "
        "WHERE order_date IN ('2026-03-01', '2026-03-03') AND orders > 0"
    )
    assert len(whole.rows) == 9
    assert sorted(r[0] for r in one_day.rows) == ["p1", "p4", "p7"]
    assert len(two_days.rows) == 6
    assert 0 < one_day.bytes_scanned < two_days.bytes_scanned < whole.bytes_scanned
    assert whole.bytes_scanned == written.bytes_written
    assert one_day.bytes_scanned * 3 == pytest.approx(whole.bytes_scanned, rel=0.1)


def test_replace_rows_replaces_one_day_in_one_commit(duck: DuckDBQueryEngine) -> None:
    duck.replace_rows("daily_sales_by_product", SALES, where=None)
    day_sql = SALES.replace("GROUP BY", "WHERE created_at LIKE '2026-03-02%' GROUP BY")
    doubled = day_sql.replace("COUNT(*) AS orders", "COUNT(*) * 2 AS orders")
    result = duck.replace_rows("daily_sales_by_product", doubled, where="order_date = '2026-03-02'")
    assert result.rows_written == 3
    rows = duck.query("SELECT order_date, SUM(orders) AS n FROM daily_sales_by_product GROUP BY 1")
    assert dict(rows.rows) == {"2026-03-01": 3, "2026-03-02": 6, "2026-03-03": 3}
    with pytest.raises(QueryFailedError, match="not a predicate the embedded engine can apply"):
        duck.replace_rows("daily_sales_by_product", SALES, where="length(order_date) = 10")


def test_version_travel_reads_the_pinned_snapshot(duck: DuckDBQueryEngine) -> None:
    # Athena "Perform time travel and version travel queries": FOR VERSION AS OF <snapshot id>.
    duck.ensure_table("daily_sales_by_product")
    assert duck.snapshot_id("daily_sales_by_product") is None  # created, nothing committed
    duck.replace_rows("daily_sales_by_product", SALES, where=None)
    first = duck.snapshot_id("daily_sales_by_product")
    doubled = SALES.replace("COUNT(*) AS orders", "COUNT(*) * 2 AS orders")
    duck.replace_rows("daily_sales_by_product", doubled, where=None)
    assert duck.snapshot_id("daily_sales_by_product") not in (None, first)
    total = "WITH t AS (SELECT orders FROM daily_sales_by_product) SELECT SUM(orders) AS n FROM t"
    assert duck.query(total).one()["n"] == 18
    pinned = as_of(total, {"daily_sales_by_product": first, "t": 1})  # a CTE is never pinned
    assert f"daily_sales_by_product FOR VERSION AS OF {first}" in pinned
    assert pinned.endswith("FROM t")  # the CTE's reference stays as it is
    assert duck.query(pinned).one()["n"] == 9
    with pytest.raises(QueryFailedError, match="has no snapshot 42"):
        duck.query("SELECT * FROM daily_sales_by_product FOR VERSION AS OF 42")
    with pytest.raises(QueryFailedError, match="'orders_cdc' is not Iceberg"):
        duck.query("SELECT * FROM orders_cdc FOR VERSION AS OF 42")


def test_athena_reads_the_current_snapshot_from_the_snapshots_table(
    athena: AthenaQueryEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Athena "Query Iceberg table metadata": "table$snapshots" has committed_at and snapshot_id.
    sent: list[str] = []

    def execute(self, sql: str) -> FakeCursor:
        sent.append(sql)
        return FakeCursor("q-1", rowcount=1, data_scanned_in_bytes=0, rows=[(949530903748831860,)])

    monkeypatch.setattr(AthenaQueryEngine, "_execute", execute)
    assert athena.snapshot_id("orders_current") == 949530903748831860
    assert sent == [
        'SELECT snapshot_id FROM "orders_current$snapshots" ORDER BY committed_at DESC LIMIT 1'
    ]
    athena_sql(sent[0])  # valid Athena SQL
    assert athena.snapshot_ids("orders_current") == {949530903748831860}
    assert sent[1] == 'SELECT snapshot_id FROM "orders_current$snapshots"'


def test_row_count_is_read_from_the_snapshot_summary(duck: DuckDBQueryEngine) -> None:
    duck.ensure_table("daily_sales_by_product")
    assert duck.row_count("daily_sales_by_product") == 0  # created, nothing committed
    duck.replace_rows("daily_sales_by_product", SALES, where=None)
    counted = duck.query("SELECT COUNT(*) AS n FROM daily_sales_by_product").one()["n"]
    assert duck.row_count("daily_sales_by_product") == counted == 9
    one_day = SALES.replace("GROUP BY", "WHERE created_at LIKE '2026-03-02%' GROUP BY")
    duck.replace_rows("daily_sales_by_product", one_day, where="order_date = '2026-03-02'")
    assert duck.row_count("daily_sales_by_product") == 9  # a day replaced, not added


def test_athena_row_count_subtracts_position_deletes(
    athena: AthenaQueryEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Athena "Query Iceberg table metadata": "table$snapshots" has summary (map(varchar, varchar)).
    sent: list[str] = []

    def execute(self, sql: str) -> FakeCursor:
        sent.append(sql)
        return FakeCursor("q-1", rowcount=1, data_scanned_in_bytes=0, rows=[("1200", "200")])

    monkeypatch.setattr(AthenaQueryEngine, "_execute", execute)
    assert athena.row_count("orders_current") == 1000
    athena_sql(sent[0])  # valid Athena SQL
    assert '"orders_current$snapshots" ORDER BY committed_at DESC LIMIT 1' in sent[0]


def test_athena_refresh_reads_orders_current_as_of_a_snapshot(
    athena: AthenaQueryEngine, statements: list[str]
) -> None:
    select = as_of(
        bind(read_sql("daily_order_status"), {"order_dates": ["2026-03-01"]}),
        {"orders_current": 949530903748831860},
    )
    athena.replace_rows("daily_order_status", select, where="order_date IN ('2026-03-01')")
    insert = statements[-1]
    tree = athena_sql(insert)
    (source,) = [t for t in tree.find_all(sqlglot.exp.Table) if t.name == "orders_current"]
    assert source.args["version"].expression.this == "949530903748831860"
    assert "FROM orders_current FOR VERSION AS OF 949530903748831860" in insert


def test_merge_rows_upserts_deletes_and_keeps_other_rows(duck: DuckDBQueryEngine) -> None:
    duck.replace_rows(
        "order_tombstones",
        "SELECT order_id, event_id AS last_event_id, "
        "CAST(sequence_number AS DECIMAL(38, 0)) AS last_sequence_number, "
        "CAST(NULL AS TIMESTAMP) AS last_event_time, substr(created_at, 1, 10) AS order_date "
        "FROM orders_cdc",
        where=None,
    )
    source = (
        "SELECT * FROM (VALUES "
        "('o0', 'e-new', CAST(100 AS DECIMAL(38, 0)), '2026-03-01', FALSE), "  # update
        "('o3', 'e-del', CAST(101 AS DECIMAL(38, 0)), '2026-03-01', TRUE), "  # delete
        "('n1', 'e-ins', CAST(102 AS DECIMAL(38, 0)), '2026-03-01', FALSE), "  # insert
        "('n2', 'e-gone', CAST(103 AS DECIMAL(38, 0)), '2026-03-01', TRUE)"  # nothing
        ") AS v (order_id, last_event_id, last_sequence_number, order_date, gone)"
    )
    source = source.replace(
        "SELECT * FROM", "SELECT *, CAST(NULL AS TIMESTAMP) AS last_event_time FROM"
    )
    result = duck.merge_rows(
        "order_tombstones",
        source,
        key=["order_id"],
        delete_column="gone",
        scope="order_date = '2026-03-01'",
    )
    assert (result.rows_inserted, result.rows_updated, result.rows_deleted) == (1, 1, 1)
    assert result.rows_written == 3
    rows = dict(duck.query("SELECT order_id, last_sequence_number FROM order_tombstones").rows)
    assert rows["o0"] == Decimal(100) and rows["n1"] == Decimal(102)
    assert "o3" not in rows and "n2" not in rows
    assert {k for k in rows if k.startswith("o")} == {
        "o0",
        "o1",
        "o2",
        "o4",
        "o5",
        "o6",
        "o7",
        "o8",
    }
    twice = source.replace("('n1', 'e-ins'", "('o0', 'e-ins'")
    with pytest.raises(QueryFailedError, match="key"):
        duck.merge_rows(
            "order_tombstones", twice, key=["order_id"], delete_column="gone", scope=None
        )


def test_a_merge_that_changes_nothing_commits_nothing(duck: DuckDBQueryEngine) -> None:
    duck.replace_rows(
        "order_tombstones",
        "SELECT order_id, event_id AS last_event_id, "
        "CAST(sequence_number AS DECIMAL(38, 0)) AS last_sequence_number, "
        "CAST(NULL AS TIMESTAMP) AS last_event_time, substr(created_at, 1, 10) AS order_date "
        "FROM orders_cdc",
        where=None,
    )
    before = duck.snapshot_id("order_tombstones")
    # a delete of an order with no tombstone: nothing matches, nothing is added
    source = (
        "SELECT *, CAST(NULL AS TIMESTAMP) AS last_event_time FROM (VALUES "
        "('n9', 'e-gone', CAST(103 AS DECIMAL(38, 0)), '2026-03-01', TRUE)"
        ") AS v (order_id, last_event_id, last_sequence_number, order_date, gone)"
    )
    result = duck.merge_rows(
        "order_tombstones", source, key=["order_id"], delete_column="gone", scope=None
    )
    assert result.rows_written == 0 and result.files_written == 0
    assert duck.snapshot_id("order_tombstones") == before
    assert duck.row_count("order_tombstones") == 9


def test_append_rows_and_maintain(duck: DuckDBQueryEngine) -> None:
    ledger = (
        "SELECT 'raw/k' AS object_key, CAST(1 AS BIGINT) AS object_size, "
        "CAST(NULL AS TIMESTAMP) AS last_modified, 'merged' AS status, "
        "CAST(NULL AS VARCHAR) AS reason, CAST(2 AS BIGINT) AS \"rows\", 'r' AS run_id, "
        "CAST(NULL AS TIMESTAMP) AS merged_at"
    )
    for _ in range(3):
        assert duck.append_rows("orders_cdc_merge_log", ledger).rows_written == 1
    done = duck.maintain(
        "orders_cdc_merge_log",
        older_than=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
        retain_last=1,
    )
    assert (done.data_files_before, done.data_files_after) == (3, 1)
    assert (done.snapshots_before, done.snapshots_after) == (3, 1)
    assert done.files_deleted and done.files_deleted > 3
    assert duck.query("SELECT COUNT(*) AS n FROM orders_cdc_merge_log").one()["n"] == 3


def test_a_reader_never_sees_a_day_half_replaced(duck: DuckDBQueryEngine) -> None:
    """Replacing a day is one snapshot: concurrent readers see the old day or the new one."""
    duck.replace_rows("daily_sales_by_product", SALES, where=None)
    day = "2026-03-02"
    day_sql = SALES.replace("GROUP BY", f"WHERE created_at LIKE '{day}%' GROUP BY")
    stop = threading.Event()
    seen: list[int] = []

    def read() -> None:
        reader = DuckDBQueryEngine(aws=duck.aws)
        while not stop.is_set():
            sql = f"SELECT COUNT(*) AS n FROM daily_sales_by_product WHERE order_date = '{day}'"
            seen.append(reader.query(sql).one()["n"])

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for _ in range(4):
            duck.replace_rows("daily_sales_by_product", day_sql, where=f"order_date = '{day}'")
    finally:
        stop.set()
        thread.join()
    assert seen and set(seen) == {3}
    tables = duck._engine().iceberg
    snapshots = tables.load("daily_sales_by_product").snapshots()
    assert [s.summary.operation.value for s in snapshots] == ["append"] + ["overwrite"] * 4
    for snapshot in snapshots:
        scan = tables.load("daily_sales_by_product").scan(snapshot_id=snapshot.snapshot_id)
        assert scan.to_arrow().num_rows == 9  # every snapshot holds every day whole


def test_athena_refuses_a_statement_beyond_its_query_string_quota(
    athena: AthenaQueryEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Athena "Service Quotas": a query string is at most 262,144 bytes (not adjustable).
    monkeypatch.setattr(
        AthenaQueryEngine, "_connect", lambda self: pytest.fail("a too long statement was sent")
    )
    paths = ", ".join(f"'s3://lake/raw/orders_cdc/{i:06d}.gz'" for i in range(8000))
    with pytest.raises(QueryFailedError, match="at most 262,144"):
        athena._execute(f'SELECT 1 FROM orders_cdc WHERE "$path" IN ({paths})')
