"""AthenaQueryEngine against moto's Athena (statements, workgroup, polling, failures, writes)."""

import re

import pytest
from botocore.stub import Stubber

from sales_cdc.resources import build_resources
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.query import (
    AthenaQueryEngine,
    DuckDBQueryEngine,
    QueryFailedError,
    with_optional_columns,
)
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


def test_write_table_ctas_in_batches_then_switches_the_catalog(
    athena: AthenaQueryEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's Athena does not run SQL: the test plays Athena's part of CTAS (a Glue table)."""
    catalog = athena.catalog()
    original = AthenaQueryEngine._execute
    statements: list[str] = []

    def execute_like_athena(self, sql):
        statements.append(sql)
        cursor = original(self, sql)
        match = re.match(
            r'CREATE TABLE "[^"]+"\."(\w+)" WITH \(.*external_location = \'([^\']+)\'', sql
        )
        table = match.group(1) if match else re.match(r'INSERT INTO "[^"]+"\."(\w+)"', sql).group(1)
        if match:
            catalog.publish(
                table,
                columns=[{"Name": "n", "Type": "bigint"}],
                partition_keys=["day"],
                table_location=match.group(2),
                run_location=match.group(2),
                partitions={},
                replace_partitions=[],
            )
        days = re.findall(r"day = '([^']+)'", sql)
        catalog.publish(
            table,
            columns=[{"Name": "n", "Type": "bigint"}],
            partition_keys=["day"],
            table_location=catalog.get_table(table)["StorageDescriptor"]["Location"],
            run_location="",
            replace_partitions=[(d,) for d in days],
            partitions={
                (d,): f"{catalog.get_table(table)['StorageDescriptor']['Location']}day={d}/"
                for d in days
            },
        )
        return cursor

    monkeypatch.setattr(AthenaQueryEngine, "_execute", execute_like_athena)
    days = [f"d{i:03d}" for i in range(150)]
    result = athena.write_table(
        "daily",
        "SELECT count(*) AS n, day FROM orders_cdc GROUP BY day",
        partitioned_by=["day"],
        replace_partitions=[(d,) for d in days],
    )
    assert len(statements) == 2
    assert statements[0].startswith('CREATE TABLE "')
    assert (
        "format = 'PARQUET'" in statements[0] and "partitioned_by = ARRAY['day']" in statements[0]
    )
    assert f"external_location = '{result.location}'" in statements[0]
    assert result.location.startswith(f"s3://{athena.aws.stack().bucket}/curated/daily/run=")
    assert statements[0].count("day = ") == 100 and statements[1].startswith("INSERT INTO")
    assert statements[1].count("day = ") == 50
    assert len(result.query_ids) == 2
    table = catalog.get_table("daily")
    assert table["StorageDescriptor"]["InputFormat"].endswith("MapredParquetInputFormat")
    assert len(catalog.get_partitions("daily")) == 150
    # the CTAS table is gone from the catalog; only the real table remains
    tables = athena.aws.client("glue").get_tables(DatabaseName=athena.aws.stack().database)
    assert [t["Name"] for t in tables["TableList"]] == ["daily"]


def test_a_failed_write_leaves_no_temp_table(
    athena: AthenaQueryEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(self, sql):
        raise QueryFailedError("Athena query q-9 failed: HIVE_BAD_DATA", query_id="q-9")

    monkeypatch.setattr(AthenaQueryEngine, "_execute", fail)
    with pytest.raises(QueryFailedError, match="HIVE_BAD_DATA"):
        athena.write_table("daily", "SELECT 1 AS n")
    assert athena.catalog().get_table("daily") is None
