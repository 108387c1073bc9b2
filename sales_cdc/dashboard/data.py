"""What the dashboard reads: its SQL files through the QueryEngine, failed records in S3, and the
Dagster instance's materializations and check results. No layout here."""

from __future__ import annotations

import datetime as dt
import functools
import os
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import dagster as dg
import pandas as pd

from sales_cdc.defs.asset_keys import ORDERS_CURRENT, RAW_ORDERS_CDC, athena_table
from sales_cdc.resources import build_resources
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.query import QueryEngine, read_sql
from sales_cdc.settings import Settings, apply_local_credentials, load_settings

# query file -> the lake table it reads (for the empty state: what to run when it has no data)
QUERIES: dict[str, str] = {
    "dashboard_currencies": "daily_sales_by_category",
    "dashboard_sales_daily": "daily_sales_by_category",
    "dashboard_sales_hourly": "hourly_revenue",
    "dashboard_order_funnel": "daily_order_status",
    "dashboard_order_rates": "daily_order_status",
    "dashboard_top_products": "daily_sales_by_product",
    "dashboard_categories": "daily_sales_by_category",
    "dashboard_customers": "daily_customer_behaviour",
    "dashboard_repeat_customers": "daily_customer_behaviour",
    "dashboard_freshness": "orders_current",
}
# The stages whose last Dagster materialization tells how fresh they are.
STAGE_ASSETS = [
    RAW_ORDERS_CDC,
    ORDERS_CURRENT,
    *(
        athena_table(table)
        for table in (
            "daily_sales_by_product",
            "daily_sales_by_category",
            "daily_order_status",
            "hourly_revenue",
            "daily_customer_behaviour",
        )
    ),
]


def what_to_run(table: str) -> str:
    """The empty state of a chart: which table has no data yet and what fills it."""
    if table == "orders_current":
        fill = "materialize athena/orders_current (landing_objects_sensor does it on new data)"
    else:
        fill = (
            f"materialize athena/{table} for the order days you want (aggregates_sensor "
            "refreshes it after each orders_current materialization)"
        )
    return (
        f"No data in {table} yet. Start the pipeline with `make demo` (locally) and wait a minute "
        f"for the first orders, or {fill}."
    )


def _plain(value: Any) -> Any:
    """Exact decimals as floats for charting (the figures shown keep two places)."""
    return float(value) if isinstance(value, Decimal) else value


@dataclass
class Answer:
    """The rows of one dashboard query, or why there are none."""

    name: str
    table: str
    frame: pd.DataFrame
    missing_table: bool = False
    error: str | None = None

    @property
    def empty(self) -> bool:
        return self.frame.empty

    def empty_state(self) -> str:
        if self.error:
            return f"The query {self.name}.sql failed: {self.error}"
        if self.missing_table:
            return what_to_run(self.table)
        return (
            f"{self.table} has no rows for the chosen order days and currencies yet: widen the "
            "date range, or wait for aggregates_sensor to refresh today's orders."
        )


@dataclass
class FailedRecords:
    """Objects Firehose wrote to errors/ (records it could not transform), from the S3 listing."""

    prefix: str
    objects: int = 0
    bytes: int = 0
    newest: dt.datetime | None = None


@dataclass
class DagsterState:
    """Last materialization of each stage and the latest result of every asset check."""

    available: bool
    reason: str = ""
    materialized: dict[str, dt.datetime | None] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)


class DashboardData:
    """The dashboard's reads, through the project's resources for the configured environment."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings()
        apply_local_credentials(self.settings)
        resources = build_resources(self.settings)
        self.engine: QueryEngine = resources["query_engine"]
        self.aws: AwsResource = resources["aws"]

    def tables(self) -> set[str]:
        """The lake tables the Glue catalog holds now."""
        catalog = self.engine.catalog()
        names = {*QUERIES.values(), self.aws.stack().raw_table}
        return {name for name in names if catalog.get_table(name) is not None}

    def run(self, name: str, params: dict[str, Any], tables: set[str] | None = None) -> Answer:
        """Run sales_cdc/sql/<name>.sql; an uncataloged table gives an empty answer, not an error."""
        table = QUERIES[name]
        tables = self.tables() if tables is None else tables
        if table not in tables:
            return Answer(name, table, pd.DataFrame(), missing_table=True)
        if name == "dashboard_freshness" and self.aws.stack().raw_table not in tables:
            return Answer(name, "orders_cdc", pd.DataFrame(), missing_table=True)
        result = self.engine.query(read_sql(name), params)
        frame = pd.DataFrame(
            [[_plain(v) for v in row] for row in result.rows], columns=result.columns
        )
        return Answer(name, table, frame)

    def failed_records(self) -> FailedRecords:
        """Objects waiting in the delivery stream's error prefix (errors/orders_cdc/)."""
        stack = self.aws.stack()
        found = FailedRecords(prefix=f"s3://{stack.bucket}/{stack.errors_prefix}")
        paginator = self.aws.client("s3").get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=stack.bucket, Prefix=stack.errors_prefix):
            for obj in page.get("Contents", []):
                found.objects += 1
                found.bytes += int(obj["Size"])
                if found.newest is None or obj["LastModified"] > found.newest:
                    found.newest = obj["LastModified"]
        return found


def freshness_params(now: dt.datetime) -> dict[str, list[str]]:
    """Partition values of today's and yesterday's raw folders (year=/month=/day=, UTC)."""
    days = [now.date(), now.date() - dt.timedelta(days=1)]
    return {
        "years": sorted({f"{d.year:04d}" for d in days}),
        "months": sorted({f"{d.month:02d}" for d in days}),
        "days": sorted({f"{d.day:02d}" for d in days}),
    }


def _timestamp(value: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, dt.UTC) if value else None


def dagster_state(instance: dg.DagsterInstance | None = None) -> DagsterState:
    """Materializations and check results from the Dagster instance of DAGSTER_HOME."""
    if instance is None:
        if not os.environ.get("DAGSTER_HOME"):
            return DagsterState(
                available=False,
                reason="DAGSTER_HOME is not set: set it to the Dagster instance's home (the demo "
                "uses .demo/dagster_home) to see materializations and check results.",
            )
        instance = _home_instance()
    state = DagsterState(available=True)
    for key in STAGE_ASSETS:
        event = instance.get_latest_materialization_event(key)
        state.materialized[key.to_user_string()] = _timestamp(event.timestamp if event else None)
    check_keys = _check_keys()
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
    for key in sorted(check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        record = latest.get(key)
        evaluation = _evaluation(record)
        state.checks.append(
            {
                "asset": key.asset_key.to_user_string(),
                "check": key.name,
                "status": _status(record, evaluation),
                "description": (evaluation.description or "") if evaluation else "",
                "time": _timestamp(record.create_timestamp) if record else None,
            }
        )
    return state


@functools.cache
def _home_instance() -> dg.DagsterInstance:
    """The instance of DAGSTER_HOME, opened once per dashboard process."""
    return dg.DagsterInstance.get()


@functools.cache
def _check_keys() -> list[dg.AssetCheckKey]:
    from sales_cdc.definitions import defs

    return sorted(defs.resolve_asset_graph().asset_check_keys, key=str)


def _evaluation(record: Any) -> Any:
    event = getattr(record, "event", None)
    dagster_event = getattr(event, "dagster_event", None)
    data = getattr(dagster_event, "event_specific_data", None)
    return data if hasattr(data, "passed") else None


def _status(record: Any, evaluation: Any) -> str:
    if record is None:
        return "not run yet"
    if evaluation is not None:
        return "passed" if evaluation.passed else "FAILED"
    return "running" if record.status.value == "PLANNED" else str(record.status.value).lower()
