"""maintain_lake_tables: compaction, snapshot expiry and orphan removal over every curated table."""

import dagster as dg

from sales_cdc.defs.lake.maintenance import build_maintenance, curated_tables
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.query import DuckDBQueryEngine
from sales_cdc.stack import load_declaration
from sales_cdc_tests.lake_data import setup_lake

STATUS = (
    "SELECT 'PAID' AS status, 2 AS funnel_step, CAST(%(n)s AS BIGINT) AS orders, "
    "CAST(1 AS BIGINT) AS units, CAST(%(n)s AS BIGINT) AS day_orders, 1.0 AS share_of_orders, "
    "CAST(%(n)s AS BIGINT) AS reached_orders, %(day)s AS order_date"
)


def test_every_curated_table_is_maintained(aws: AwsResource) -> None:
    setup_lake(aws)
    engine = DuckDBQueryEngine(aws=aws)
    for n, day in enumerate(["2026-03-01", "2026-03-02", "2026-03-01", "2026-03-03"]):
        engine.append_rows("daily_order_status", STATUS, {"n": n, "day": day})
    bucket = aws.stack().bucket
    orphan = "curated/daily_order_status/data/order_date=2026-03-01/crashed-writer.parquet"
    aws.client("s3").put_object(Bucket=bucket, Key=orphan, Body=b"half a file")
    before = engine.query("SELECT * FROM daily_order_status ORDER BY orders").rows

    maintain_lake_tables, _ = build_maintenance(load_declaration("local")["maintenance"])
    result = maintain_lake_tables.execute_in_process(
        resources={"query_engine": engine},
        run_config={
            "ops": {
                "maintain_curated_tables": {
                    "config": {"snapshot_retention_hours": -1, "retain_last_snapshots": 1}
                }
            }
        },
    )
    assert result.success
    observations = [
        e.event_specific_data.asset_observation
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    (observation,) = observations  # the only Iceberg table that exists
    assert observation.asset_key == dg.AssetKey(["athena", "daily_order_status"])
    figures = {k: v.value for k, v in observation.metadata.items()}
    assert (figures["data_files_before"], figures["data_files_after"]) == (4, 3)  # 3 days
    assert (figures["snapshots_before"], figures["snapshots_after"]) == (4, 1)
    assert figures["files_deleted"] > 4 and figures["bytes_deleted"] > 0
    keys = aws.client("s3").list_objects_v2(Bucket=bucket, Prefix="curated/")["Contents"]
    assert orphan not in {o["Key"] for o in keys}
    assert engine.query("SELECT * FROM daily_order_status ORDER BY orders").rows == before
    assert result.output_for_node("maintain_curated_tables") == ["daily_order_status"]


def test_schedule_runs_locally_and_is_stopped_in_aws() -> None:
    assert {"orders_current", "daily_sales_by_product", "orders_cdc_merge_log"} <= set(
        curated_tables()
    )
    _, local = build_maintenance(load_declaration("local")["maintenance"])
    _, cloud = build_maintenance(load_declaration("aws")["maintenance"])
    assert local.default_status == dg.DefaultScheduleStatus.RUNNING
    assert cloud.default_status == dg.DefaultScheduleStatus.STOPPED
    assert local.cron_schedule == "17 * * * *" and cloud.cron_schedule == "0 4 * * *"
