"""Daily aggregate tables of orders_current, one partition per order day (the day of created_at)."""

import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import dagster as dg
import sqlglot
from sqlglot import exp

from sales_cdc.defs.asset_keys import ORDERS_CURRENT, athena_table
from sales_cdc.defs.lake.merge import ORDERS_CURRENT_TABLE
from sales_cdc.resources.query import QueryEngine, read_sql
from sales_cdc.resources.sql import as_of, bind, literal
from sales_cdc.settings import SettingsError

# Metadata of an aggregate materialization: the orders_current snapshot its refresh read.
SNAPSHOT_METADATA = "orders_current_snapshot_id"
PARTITION = "order_date"


def partitions_start(analytics: dict[str, Any]) -> str:
    """partitions_start of the `analytics` section of infra/stack.yaml, checked: a date like
    2025-01-01."""
    value = str(analytics["partitions_start"])
    try:
        date.fromisoformat(value)
    except ValueError:
        raise SettingsError(
            f"analytics.partitions_start={value!r} in infra/stack.yaml is not a date. "
            "Set it to the first order day to aggregate, as YYYY-MM-DD (e.g. 2025-01-01)."
        ) from None
    return value


# One partition per UTC order day (YYYY-MM-DD) that has orders: aggregates_sensor adds a day when
# orders_current first reports a change on it, so the partitions are exactly the days with data
# (none shows as missing). Days before analytics.partitions_start are never added.
order_days = dg.DynamicPartitionsDefinition(name="order_days")

# table -> description; each table is sales_cdc/sql/<table>.sql, summed up by totals_sql().
AGGREGATES: dict[str, str] = {
    "daily_sales_by_product": (
        "Sales orders, units, gross and net revenue per order day, product and currency; "
        "cancelled and returned orders counted apart."
    ),
    "daily_sales_by_category": (
        "Sales orders, units, gross and net revenue per order day, category and currency; "
        "cancelled and returned orders counted apart."
    ),
    "daily_order_status": (
        "The fulfilment funnel: live orders per order day and current status, with each "
        "status's share of the day (cancel and return rates) and the orders that reached each step."
    ),
    "hourly_revenue": (
        "Sales orders, units, gross and net revenue per order day, hour of the day (UTC) and "
        "currency; cancelled and returned orders counted apart."
    ),
    "daily_customer_behaviour": (
        "Sales orders, units and net revenue per order day, customer country, channel, payment "
        "method and currency, with the day's customers and repeat customers (more than one sale "
        "that day)."
    ),
}
SALES_TABLES = ("daily_sales_by_product", "daily_sales_by_category", "hourly_revenue")
CUSTOMER_TABLE = "daily_customer_behaviour"
AGGREGATE_KEYS = [athena_table(table) for table in AGGREGATES]


DAYS = "order_dates"  # the list parameter of the aggregate and totals SQL files


def totals_sql(table: str, days: Sequence[str]) -> str:
    """The order days `days` of `table` summed up, one row per day (and currency): the sales tables
    share sales_aggregate_totals.sql (read with their own table name), the others have their own
    file."""
    if table not in SALES_TABLES:
        return bind(read_sql(f"{table}_totals"), {DAYS: list(days)})
    bound = bind(read_sql("sales_aggregate_totals"), {DAYS: list(days)})
    tree = sqlglot.parse_one(bound, read="athena")
    return exp.replace_tables(tree, {"daily_sales_by_product": table}).sql(dialect="athena")


@dataclass
class Refresh:
    """What refreshing some order days of one aggregate table wrote and read."""

    table: str
    days: list[str] = field(default_factory=list)
    empty_days: list[str] = field(default_factory=list)
    rows: int = 0
    orders: int = 0
    cancelled_orders: int = 0
    returned_orders: int = 0
    net_revenue: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    customers: int = 0
    repeat_customers: int = 0
    bytes_read: int = 0
    source_bytes_read: int = 0
    rows_written: int = 0
    files_written: int = 0
    bytes_written: int = 0
    orders_current_snapshot: int | None = None

    def metadata(self) -> dict[str, Any]:
        """Figures a person would plot, summed over the refreshed days (`orders`: sales in the
        sales tables, every live order in daily_order_status)."""
        metadata: dict[str, Any] = {
            "rows": dg.MetadataValue.int(self.rows),
            "orders": dg.MetadataValue.int(self.orders),
            "days_refreshed": dg.MetadataValue.int(len(self.days)),
            "days_without_orders": dg.MetadataValue.int(len(self.empty_days)),
            "bytes_read": dg.MetadataValue.int(self.bytes_read),
            "orders_current_bytes_read": dg.MetadataValue.int(self.source_bytes_read),
            "rows_written": dg.MetadataValue.int(self.rows_written),
            "files_written": dg.MetadataValue.int(self.files_written),
            "bytes_written": dg.MetadataValue.int(self.bytes_written),
            # text: a 64-bit id, beyond what the UI's numbers hold exactly
            SNAPSHOT_METADATA: dg.MetadataValue.text(str(self.orders_current_snapshot or "")),
        }
        if len(self.days) > 1:
            metadata["first_day"] = dg.MetadataValue.text(self.days[0])
            metadata["last_day"] = dg.MetadataValue.text(self.days[-1])
        if self.table == CUSTOMER_TABLE:
            metadata["customers"] = dg.MetadataValue.int(self.customers)
            metadata["repeat_customers"] = dg.MetadataValue.int(self.repeat_customers)
        if self.table in SALES_TABLES or self.table == CUSTOMER_TABLE:
            # Net revenue per currency: amounts in different currencies are never added up.
            metadata["net_revenue"] = dg.MetadataValue.json(
                {ccy: str(amount) for ccy, amount in sorted(self.net_revenue.items())}
            )
            for ccy, amount in sorted(self.net_revenue.items()):
                metadata[f"net_revenue_{ccy.lower()}"] = dg.MetadataValue.float(float(amount))
        else:
            live = self.orders or 1
            metadata["cancel_rate"] = dg.MetadataValue.float(round(self.cancelled_orders / live, 6))
            metadata["return_rate"] = dg.MetadataValue.float(round(self.returned_orders / live, 6))
        return metadata


def _int(value: Any) -> int:
    return int(value or 0)


def refresh_days(query_engine: QueryEngine, table: str, days: list[str]) -> Refresh:
    """Rebuild exactly the partitions `days` of `table` from those days of orders_current.

    One write replaces all of them: it reads only those order_date partitions of orders_current
    and replaces only those partitions of the Iceberg table (a day without live orders is left
    empty), so a re-run changes nothing and no other day is touched. Embedded, the write is one
    Iceberg commit (a reader sees every day before or after, never half replaced); on Athena it is
    a DELETE and an INSERT INTO.
    """
    refresh = Refresh(table=table)
    days = sorted(set(days))
    if not days:
        return refresh
    # The orders_current state the days are computed from, pinned: the checks compare the days
    # with that same state, however far orders_current has merged on in the meantime.
    refresh.orders_current_snapshot = query_engine.snapshot_id(ORDERS_CURRENT_TABLE)
    select_sql = bind(read_sql(table), {DAYS: days})
    written = query_engine.replace_rows(
        table,
        as_of(select_sql, {ORDERS_CURRENT_TABLE: refresh.orders_current_snapshot}),
        where=f"{PARTITION} IN ({', '.join(literal(day) for day in days)})",
    )
    refresh.rows_written = written.rows_written
    refresh.files_written = written.files_written
    refresh.bytes_written = written.bytes_written
    totals = query_engine.query(totals_sql(table, days))
    refresh.days = days
    refresh.source_bytes_read = written.bytes_scanned
    refresh.bytes_read = written.bytes_scanned + totals.bytes_scanned
    by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in totals.dicts():
        if _int(row["table_rows"]):
            by_day[str(row[PARTITION])].append(row)
    refresh.empty_days = [day for day in days if day not in by_day]
    for rows in by_day.values():
        for row in rows:
            refresh.rows += _int(row["table_rows"])
            refresh.orders += _int(row["orders"])
            refresh.cancelled_orders += _int(row["cancelled_orders"])
            refresh.returned_orders += _int(row["returned_orders"])
            if "net_revenue" in row:
                refresh.net_revenue[str(row["currency"])] += Decimal(str(row["net_revenue"]))
        if table == CUSTOMER_TABLE:
            # Every row states the day's customers: count them once per day, not per currency.
            refresh.customers += max(_int(r["max_day_customers"]) for r in rows)
            refresh.repeat_customers += max(_int(r["max_day_repeat_customers"]) for r in rows)
    return refresh


def _aggregate_asset(table: str, description: str) -> dg.AssetsDefinition:
    with warnings.catch_warnings():
        # BackfillPolicy is a beta parameter of @asset; its behaviour here is tested.
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _define_aggregate_asset(table, description)


def _define_aggregate_asset(table: str, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=athena_table(table),
        description=description,
        deps=[ORDERS_CURRENT],
        partitions_def=order_days,
        # A backfill of a date range is one run that refreshes its days one partition at a time.
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="analytics",
        kinds={"athena", "iceberg", "s3"},
    )
    def aggregate(
        context: dg.AssetExecutionContext, query_engine: QueryEngine
    ) -> dg.MaterializeResult:
        days = sorted(context.partition_keys)
        refresh = refresh_days(query_engine, table, days)
        context.log.info(
            f"{table}: refreshed {len(days)} order day(s) {days[0]}..{days[-1]}, "
            f"{refresh.rows} rows, {len(refresh.empty_days)} day(s) without orders, "
            f"{refresh.bytes_read} bytes read."
        )
        return dg.MaterializeResult(metadata=refresh.metadata())

    return aggregate


daily_sales_by_product = _aggregate_asset(
    "daily_sales_by_product", AGGREGATES["daily_sales_by_product"]
)
daily_sales_by_category = _aggregate_asset(
    "daily_sales_by_category", AGGREGATES["daily_sales_by_category"]
)
daily_order_status = _aggregate_asset("daily_order_status", AGGREGATES["daily_order_status"])
hourly_revenue = _aggregate_asset("hourly_revenue", AGGREGATES["hourly_revenue"])
daily_customer_behaviour = _aggregate_asset(CUSTOMER_TABLE, AGGREGATES[CUSTOMER_TABLE])

ASSETS = [
    daily_sales_by_product,
    daily_sales_by_category,
    daily_order_status,
    hourly_revenue,
    daily_customer_behaviour,
]
