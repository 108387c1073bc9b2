"""The raw CDC table in the Glue Data Catalog: the crawler run, its schema checks and schedule."""

from typing import Any

import dagster as dg

from sales_cdc.defs import schedule_status
from sales_cdc.defs.asset_keys import GLUE_ORDERS_CDC, RAW_ORDERS_CDC
from sales_cdc.landing_format import LANDING_COLUMNS, PARTITION_KEYS
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.crawler import CrawlerResource

# The landing contract's columns with their declared Glue types (provisioning declares them, the
# crawler only adds columns): a type that differs means something retyped the table.
EXPECTED_COLUMNS: dict[str, str] = dict(LANDING_COLUMNS)
EXPECTED_PARTITION_KEYS = list(PARTITION_KEYS)


@dg.asset(
    key=GLUE_ORDERS_CDC,
    deps=[RAW_ORDERS_CDC],
    kinds={"glue", "s3"},
    group_name="lake",
)
def glue_orders_cdc(
    context: dg.AssetExecutionContext, crawler: CrawlerResource
) -> dg.MaterializeResult:
    """The raw CDC log as a Glue table, kept current by a crawler run over raw/orders_cdc/."""
    result = crawler.run(context)
    context.log.info(
        f"{result.database}.{result.table}: {len(result.columns)} columns, "
        f"{result.partitions} partitions (+{result.partitions_added}), "
        f"columns added: {result.columns_added or 'none'}"
    )
    return dg.MaterializeResult(metadata=result.metadata())


def _raw_table(aws: AwsResource) -> dict[str, Any] | None:
    stack = aws.stack()
    glue = aws.client("glue")
    try:
        return glue.get_table(DatabaseName=stack.database, Name=stack.raw_table)["Table"]
    except glue.exceptions.EntityNotFoundException:
        return None


def columns_problems(columns: dict[str, str]) -> list[str]:
    """What is missing or retyped among EXPECTED_COLUMNS, given the table's name -> type."""
    problems = []
    for name, declared in EXPECTED_COLUMNS.items():
        have = columns.get(name)
        if have is None:
            problems.append(f"{name} is missing")
        elif have.replace(" ", "").lower() != declared:
            problems.append(f"{name} is {have}, declared {declared}")
    return problems


@dg.asset_check(asset=GLUE_ORDERS_CDC, blocking=True)
def raw_cdc_columns(aws: AwsResource) -> dg.AssetCheckResult:
    """The landing contract's columns are present with their declared Glue types."""
    table = _raw_table(aws)
    if table is None:
        return dg.AssetCheckResult(passed=False, metadata={"problem": "table does not exist"})
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"].get("Columns") or []}
    problems = columns_problems(columns)
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "columns": len(columns),
            "problems": "; ".join(problems) or "none",
            "fix": "re-run provision_infrastructure (it restores the declared types)"
            if problems
            else "none",
        },
    )


@dg.asset_check(asset=GLUE_ORDERS_CDC, blocking=True)
def raw_cdc_partition_keys(aws: AwsResource) -> dg.AssetCheckResult:
    """The table is partitioned by year/month/day/hour (strings), as Firehose lands it."""
    table = _raw_table(aws)
    if table is None:
        return dg.AssetCheckResult(passed=False, metadata={"problem": "table does not exist"})
    keys = [(k["Name"], k.get("Type", "")) for k in table.get("PartitionKeys") or []]
    expected = [(name, "string") for name in EXPECTED_PARTITION_KEYS]
    return dg.AssetCheckResult(
        passed=keys == expected,
        metadata={
            "partition_keys": ", ".join(f"{n} {t}" for n, t in keys) or "none",
            "expected": ", ".join(f"{n} {t}" for n, t in expected),
        },
    )


def build_crawler_schedule(schedules: dict[str, Any]) -> dg.ScheduleDefinition:
    """crawler_schedule, as the `schedules` section of infra/stack.yaml declares it."""

    @dg.schedule(
        name="crawler_schedule",
        target=dg.AssetSelection.assets(GLUE_ORDERS_CDC),
        cron_schedule=schedules["crawler_cron"],
        default_status=schedule_status(schedules["crawler_running"]),
        description=(
            "Runs the crawler over raw/orders_cdc/ so new columns and partitions become "
            "queryable; skips its tick while nothing has landed yet."
        ),
    )
    def _schedule(context: dg.ScheduleEvaluationContext, aws: AwsResource):
        stack = aws.stack()
        landed = aws.client("s3").list_objects_v2(
            Bucket=stack.bucket, Prefix=stack.raw_prefix, MaxKeys=1
        )
        if not landed.get("KeyCount"):
            return dg.SkipReason(
                f"nothing has landed in s3://{stack.bucket}/{stack.raw_prefix} yet"
            )
        return dg.RunRequest()

    return _schedule


ASSETS = [glue_orders_cdc]
ASSET_CHECKS = [raw_cdc_columns, raw_cdc_partition_keys]
