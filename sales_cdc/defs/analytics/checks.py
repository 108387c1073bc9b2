"""Checks of the aggregate tables: each order day adds up to orders_current, no negative money."""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import dagster as dg

from sales_cdc.defs.analytics.assets import (
    AGGREGATES,
    CUSTOMER_TABLE,
    DAYS,
    PARTITION,
    SALES_TABLES,
    SNAPSHOT_METADATA,
    totals_sql,
)
from sales_cdc.defs.asset_keys import athena_table
from sales_cdc.defs.lake.merge import ORDERS_CURRENT_TABLE
from sales_cdc.resources.query import QueryEngine, QueryFailedError, read_sql
from sales_cdc.resources.sql import as_of, bind

SAMPLE_SIZE = 10
SALES_MEASURES = (
    "orders",
    "units",
    "gross_revenue",
    "discounts",
    "net_revenue",
    "cancelled_orders",
    "cancelled_amount",
    "returned_orders",
    "returned_amount",
)
CUSTOMER_MEASURES = ("orders", "units", "net_revenue", "cancelled_orders", "returned_orders")


@dataclass
class Findings:
    """What checking some order days of one aggregate table found."""

    days: list[str] = field(default_factory=list)
    mismatched: list[dict[str, Any]] = field(default_factory=list)
    negative: list[dict[str, Any]] = field(default_factory=list)
    not_adding_up: list[dict[str, Any]] = field(default_factory=list)
    bytes_read: int = 0
    # days whose refresh read an orders_current snapshot that maintenance has since expired:
    # compared with the current orders_current instead
    unpinned_days: list[str] = field(default_factory=list)


def _number(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def _by_currency(
    rows: list[dict[str, Any]], measures: tuple[str, ...] = SALES_MEASURES
) -> dict[str, dict[str, Decimal]]:
    return {
        str(r["currency"]): {m: _number(r[m]) for m in measures}
        for r in rows
        if _number(r.get("table_rows", 1))
    }


def _differences(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {"orders_current": str(expected.get(name)), "aggregate": str(actual.get(name))}
        for name in sorted(set(expected) | set(actual))
        if expected.get(name) != actual.get(name)
    }


def check_days(
    query_engine: QueryEngine,
    table: str,
    days: Iterable[str],
    snapshots: Mapping[str, int | None] | None = None,
) -> Findings:
    """Compare each order day of `table` with orders_current's totals for that day, as of the
    orders_current snapshot the day's refresh read (`snapshots`: day -> snapshot id; a day
    without one is compared with the current orders_current)."""
    findings = Findings()
    days = sorted(set(days))
    if not days:
        return findings
    # One read of orders_current's totals per snapshot the days were computed from (one, for
    # the days of one run), one read of the table's totals: one row per day.
    by_snapshot: dict[int | None, list[str]] = defaultdict(list)
    for day in days:
        by_snapshot[(snapshots or {}).get(day)].append(day)
    expected_by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for snapshot, snapshot_days in by_snapshot.items():
        expected_sql = bind(read_sql("aggregate_totals"), {DAYS: snapshot_days})
        try:
            expected_result = query_engine.query(
                as_of(expected_sql, {ORDERS_CURRENT_TABLE: snapshot})
            )
        except QueryFailedError:
            if snapshot is None or snapshot in query_engine.snapshot_ids(ORDERS_CURRENT_TABLE):
                raise
            findings.unpinned_days.extend(snapshot_days)
            expected_result = query_engine.query(expected_sql)
        findings.bytes_read += expected_result.bytes_scanned
        for row in expected_result.dicts():
            expected_by_day[str(row[PARTITION])].append(row)
    actual_result = query_engine.query(totals_sql(table, days))
    findings.bytes_read += actual_result.bytes_scanned
    actual_by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in actual_result.dicts():
        if _number(row["table_rows"]):
            actual_by_day[str(row[PARTITION])].append(row)
    for day in days:
        findings.days.append(day)
        expected_rows = expected_by_day.get(day, [])
        actual_rows = actual_by_day.get(day, [])
        negative = sum(int(r["negative_rows"] or 0) for r in actual_rows)
        if negative:
            findings.negative.append({"order_date": day, "rows": negative})

        if table in SALES_TABLES or table == CUSTOMER_TABLE:
            measures = SALES_MEASURES if table in SALES_TABLES else CUSTOMER_MEASURES
            expected = _by_currency(expected_rows, measures)
            actual = _by_currency(actual_rows, measures)
            differences = {
                ccy: _differences(expected.get(ccy, {}), actual.get(ccy, {}))
                for ccy in sorted(set(expected) | set(actual))
                if expected.get(ccy) != actual.get(ccy)
            }
        else:
            expected = {
                "orders": sum(_number(r["all_orders"]) for r in expected_rows),
                "units": sum(_number(r["all_units"]) for r in expected_rows),
                "cancelled_orders": sum(_number(r["cancelled_orders"]) for r in expected_rows),
                "returned_orders": sum(_number(r["returned_orders"]) for r in expected_rows),
            }
            row = actual_rows[0] if actual_rows else {}
            actual = {name: _number(row.get(name)) for name in expected}
            differences = _differences(expected, actual)
            day_orders = {_number(row.get("min_day_orders")), _number(row.get("max_day_orders"))}
            if day_orders != {actual["orders"]}:
                findings.not_adding_up.append(
                    {
                        "order_date": day,
                        "sum_of_status_orders": str(actual["orders"]),
                        "day_orders_stated": sorted(str(v) for v in day_orders),
                    }
                )
        if table == CUSTOMER_TABLE and actual_rows:
            stated = {
                (_number(r[f"{edge}_day_customers"]), _number(r[f"{edge}_day_repeat_customers"]))
                for r in actual_rows
                for edge in ("min", "max")
            }
            (customers, repeat), *others = sorted(stated)
            largest_row = max(_number(r["max_row_customers"]) for r in actual_rows)
            if others or repeat > customers or largest_row > customers:
                findings.not_adding_up.append(
                    {
                        "order_date": day,
                        "day_customers_stated": sorted(str(c) for c, _ in stated),
                        "day_repeat_customers_stated": sorted(str(r) for _, r in stated),
                        "largest_row_customers": str(largest_row),
                    }
                )
        if differences:
            findings.mismatched.append({"order_date": day, "differences": differences})
    return findings


def days_to_check(context: dg.AssetCheckExecutionContext, query_engine: QueryEngine, table: str):
    """The run's order days; every day either table holds when the run has no partition."""
    if context.has_partition_key or context.has_partition_key_range:
        return list(context.partition_keys)
    catalog = query_engine.catalog()
    days: set[str] = set()
    for name in ("orders_current", table):
        if catalog.get_table(name) is not None:
            found = query_engine.query(f"SELECT DISTINCT {PARTITION} FROM {name}")  # noqa: S608
            days |= {str(r[0]) for r in found.rows if r[0] is not None}
    return sorted(days)


def refreshed_from(
    context: dg.AssetCheckExecutionContext, key: dg.AssetKey, days: list[str]
) -> dict[str, int | None]:
    """Day -> the orders_current snapshot the day's latest refresh read (its materialization's
    metadata); days refreshed before the snapshot was recorded are left out."""
    found: dict[str, int | None] = {}
    cursor = None
    while True:
        page = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=days),
            limit=1000,
            cursor=cursor,
            ascending=False,
        )
        for record in page.records:
            materialization = record.asset_materialization
            day = materialization.partition if materialization else None
            if materialization is None or day is None or day in found:
                continue
            value = materialization.metadata.get(SNAPSHOT_METADATA)
            text = str(getattr(value, "value", value) or "")
            found[day] = int(text) if text.isdigit() else None
        if not page.has_more or len(found) == len(days):
            return found
        cursor = page.cursor


def _result(
    table: str, name: str, bad: list[dict[str, Any]], findings: Findings, what: str
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=athena_table(table),
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{len(bad)} of {len(findings.days)} order day(s) {what}",
        metadata={
            "days_checked": dg.MetadataValue.int(len(findings.days)),
            "failing_days": dg.MetadataValue.int(len(bad)),
            "failing_sample": dg.MetadataValue.json(bad[:SAMPLE_SIZE]),
            "bytes_read": dg.MetadataValue.int(findings.bytes_read),
            "days_compared_with_current_orders_current": dg.MetadataValue.int(
                len(findings.unpinned_days)
            ),
        },
    )


def _aggregate_checks(table: str) -> dg.AssetChecksDefinition:
    key = athena_table(table)
    matches = "matches_orders_current"
    second = {table: "no_negative_revenue" for table in SALES_TABLES}.get(
        table, "customers_add_up" if table == CUSTOMER_TABLE else "counts_add_up"
    )
    measures = {
        **dict.fromkeys(
            SALES_TABLES, " (sales, units, gross/net revenue, cancelled and returned per currency)"
        ),
        CUSTOMER_TABLE: " (sales, units, net revenue, cancelled and returned per currency)",
    }
    texts = {
        matches: "each order day sums to orders_current's totals for that day"
        + measures.get(table, " (orders, units, cancelled and returned orders)"),
        "no_negative_revenue": "no row holds a negative amount",
        "counts_add_up": "the orders of all statuses add up to the day's orders on every row",
        "customers_add_up": "every row states the same day's customers and repeat customers, "
        "no more repeat customers than customers, no row with more customers than its day, "
        "no negative figure",
    }

    @dg.multi_asset_check(
        name=f"{table}_checks",
        specs=[
            dg.AssetCheckSpec(name=name, asset=key, blocking=True, description=texts[name])
            for name in (matches, second)
        ],
        can_subset=False,
    )
    def aggregate_checks(context: dg.AssetCheckExecutionContext, query_engine: QueryEngine):
        """Each order day of the aggregate adds up to orders_current; no negative figures."""
        days = days_to_check(context, query_engine, table)
        findings = check_days(query_engine, table, days, refreshed_from(context, key, days))
        yield _result(table, matches, findings.mismatched, findings, "differ from orders_current")
        if second == "no_negative_revenue":
            yield _result(table, second, findings.negative, findings, "hold negative amounts")
        elif second == "customers_add_up":
            bad = findings.not_adding_up + findings.negative
            yield _result(table, second, bad, findings, "whose customer counts do not add up")
        else:
            bad = findings.not_adding_up + findings.negative
            yield _result(table, second, bad, findings, "whose status counts do not add up")

    return aggregate_checks


ASSET_CHECKS = [_aggregate_checks(table) for table in AGGREGATES]
