"""athena/orders_current: the CDC projection of the raw log, its data checks and reconciliation."""

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import dagster as dg

from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.query import QueryEngine, read_sql

ORDERS_CURRENT = dg.AssetKey(["athena", "orders_current"])
DYNAMODB_ORDERS = dg.AssetKey(["dynamodb", "orders"])
RAW_TABLE_ASSET = dg.AssetKey(["glue", "orders_cdc"])
TABLE = "orders_current"
PARTITION = "order_date"
FINGERPRINTS_PARAMETER = "sales_cdc.fingerprints"
SCAN_SEGMENTS = 4
# A DynamoDB change newer than (newest landed event - this) may still be on its way to the lake.
IN_FLIGHT_MARGIN = dt.timedelta(seconds=60)
SAMPLE_SIZE = 10
CENT = Decimal("0.01")


def _int(value: Any) -> int:
    return int(value or 0)


def _fingerprints(query: QueryEngine) -> tuple[dict[str, str], int, int]:
    """{order_date: fingerprint} of orders_current, its row count and the bytes scanned."""
    result = query.query(read_sql("orders_current_fingerprints"))
    rows = result.dicts()
    fingerprints = {str(r["order_date"]): f"{_int(r['orders'])}:{r['fingerprint']}" for r in rows}
    return fingerprints, sum(_int(r["orders"]) for r in rows), result.bytes_scanned


def changed_days(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Order days whose rows were added, removed or updated between two fingerprint sets."""
    return sorted(day for day in set(before) | set(after) if before.get(day) != after.get(day))


def _as_utc(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed


@dg.asset(
    key=ORDERS_CURRENT,
    deps=[RAW_TABLE_ASSET],
    group_name="lake",
    kinds={"athena", "s3"},
)
def orders_current(
    context: dg.AssetExecutionContext, query_engine: QueryEngine
) -> dg.MaterializeResult:
    """One row per live order: the latest de-duplicated CDC event of each order, REMOVEs dropped."""
    stack = query_engine.aws.stack()
    added = query_engine.sync_partitions(stack.raw_table)
    if added:
        context.log.info(f"Registered {len(added)} new landing partition(s): {added[:5]}")

    previous = query_engine.table_parameters(TABLE).get(FINGERPRINTS_PARAMETER)
    before: dict[str, str] = json.loads(previous) if previous else {}

    stats = query_engine.query(read_sql("orders_cdc_stats")).one()
    written = query_engine.write_table(
        TABLE, read_sql("orders_current"), partitioned_by=[PARTITION]
    )
    after, rows, fingerprint_bytes = _fingerprints(query_engine)
    changed = changed_days(before, after) if previous else sorted(after)
    # Stored last: a crash before this line reports these days again next time (never fewer).
    query_engine.set_table_parameters(
        TABLE, {FINGERPRINTS_PARAMETER: json.dumps(after, sort_keys=True)}
    )

    if _int(stats["unreadable_rows"]):
        context.log.warning(
            f"Skipped {_int(stats['unreadable_rows'])} line(s) of {stack.raw_table} that are not "
            "landing rows (no event_id, order_id or numeric sequence_number)."
        )
    newest = _as_utc(stats["newest_event_time"])
    lag = (dt.datetime.now(dt.UTC) - newest).total_seconds() if newest else None
    bytes_read = written.bytes_scanned + fingerprint_bytes
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(rows),
            "orders_deleted": dg.MetadataValue.int(_int(stats["orders_deleted"])),
            "duplicate_events_ignored": dg.MetadataValue.int(_int(stats["duplicate_events"])),
            "events_read": dg.MetadataValue.int(_int(stats["events_read"])),
            "unreadable_rows_skipped": dg.MetadataValue.int(_int(stats["unreadable_rows"])),
            "newest_event_time": dg.MetadataValue.text(newest.isoformat() if newest else ""),
            "lag_seconds": dg.MetadataValue.float(round(lag, 3) if lag is not None else -1.0),
            "bytes_read": dg.MetadataValue.int(bytes_read),
            "partitions": dg.MetadataValue.int(len(written.partitions)),
            "landing_partitions_added": dg.MetadataValue.int(len(added)),
            "changed_order_dates": dg.MetadataValue.json(changed),
            "location": dg.MetadataValue.path(written.location),
        }
    )


# -- data checks --------------------------------------------------------------------------------
RULES = {
    "one_row_per_order": ("duplicate_order_ids", None, "order_ids present more than once"),
    "order_id_not_null": ("null_order_ids", None, "rows without order_id"),
    "quantity_positive": ("bad_quantity", "bad_quantity_sample", "rows with quantity <= 0"),
    "amounts_not_negative": (
        "negative_amounts",
        "negative_amounts_sample",
        "rows with a negative unit_price, total_amount or discount",
    ),
    "status_known": (
        "bad_status",
        "bad_status_sample",
        "rows whose status is not PLACED, PAID, SHIPPED, DELIVERED, CANCELLED or RETURNED",
    ),
    "order_date_known": (
        "unknown_order_date",
        "unknown_order_date_sample",
        "rows whose created_at is not an ISO-8601 time (no order day: in no aggregate)",
    ),
}


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(name=name, asset=ORDERS_CURRENT, blocking=True, description=text)
        for name, (_, _, text) in RULES.items()
    ],
    can_subset=False,
)
def orders_current_rules(context: dg.AssetCheckExecutionContext, query_engine: QueryEngine):
    """Keys unique and present, quantity > 0, amounts >= 0, status known, order day known."""
    figures = query_engine.query(read_sql("orders_current_checks")).one()
    for name, (column, sample_column, text) in RULES.items():
        bad = _int(figures[column])
        metadata: dict[str, Any] = {
            "violations": dg.MetadataValue.int(bad),
            "rows_checked": dg.MetadataValue.int(_int(figures["total_rows"])),
        }
        if sample_column and figures[sample_column] is not None:
            metadata["sample_order_id"] = dg.MetadataValue.text(str(figures[sample_column]))
        yield dg.AssetCheckResult(
            check_name=name,
            asset_key=ORDERS_CURRENT,
            passed=bad == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{bad} {text}",
            metadata=metadata,
        )


# -- reconciliation with DynamoDB -------------------------------------------------------------
def scan_orders(aws: AwsResource, segments: int = SCAN_SEGMENTS) -> dict[str, dict[str, Any]]:
    """{orderId: status, version, totalAmount} of OrderTable: a paginated parallel Scan."""
    table = aws.stack().table_name

    def scan(segment: int) -> list[dict[str, Any]]:
        client = aws.client("dynamodb")
        items: list[dict[str, Any]] = []
        pages = client.get_paginator("scan").paginate(
            TableName=table,
            Segment=segment,
            TotalSegments=segments,
            ProjectionExpression="orderId, #s, version, totalAmount, updatedAt",
            ExpressionAttributeNames={"#s": "status"},
        )
        for page in pages:
            items.extend(page.get("Items", []))
        return items

    with ThreadPoolExecutor(segments) as pool:
        items = [item for part in pool.map(scan, range(segments)) for item in part]
    orders = {}
    for item in items:
        orders[item["orderId"]["S"]] = {
            "status": item.get("status", {}).get("S"),
            "version": int(item["version"]["N"]) if "version" in item else None,
            "total_amount": Decimal(item["totalAmount"]["N"]).quantize(CENT)
            if "totalAmount" in item
            else None,
            "updated_at": _as_utc(item["updatedAt"]["S"]) if "updatedAt" in item else None,
        }
    return orders


def reconcile(
    dynamodb: dict[str, dict[str, Any]],
    lake: dict[str, dict[str, Any]],
    cutoff: dt.datetime | None = None,
) -> dict[str, Any]:
    """Missing (in DynamoDB only), extra (in orders_current only) and mismatched orders.

    Orders DynamoDB changed after `cutoff` (the newest landed event, less a margin) may still
    be in flight: they are set aside as `in_flight`, not compared. While any are in flight the
    stream is not drained, and an extra order may simply be a delete still on its way.
    """
    in_flight = sorted(
        order_id
        for order_id, order in dynamodb.items()
        if cutoff is not None and order.get("updated_at") and order["updated_at"] > cutoff
    )
    settled = {k: v for k, v in dynamodb.items() if k not in set(in_flight)}
    missing = sorted(set(settled) - set(lake))
    extra = sorted(set(lake) - set(dynamodb))
    mismatched = []
    for order_id in sorted(set(settled) & set(lake)):
        differences = {
            name: {
                "dynamodb": str(settled[order_id][name]),
                "orders_current": str(lake[order_id][name]),
            }
            for name in ("status", "version", "total_amount")
            if settled[order_id][name] != lake[order_id][name]
        }
        if differences:
            mismatched.append({"order_id": order_id, **differences})
    return {
        "missing": missing,
        "extra": extra,
        "mismatched": mismatched,
        "in_flight": in_flight,
        "drained": not in_flight,
    }


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            name="matches_dynamodb",
            asset=ORDERS_CURRENT,
            additional_deps=[DYNAMODB_ORDERS],
            description="orders_current has the same orders, status, version and total as DynamoDB",
        )
    ],
)
def orders_current_matches_dynamodb(
    context: dg.AssetCheckExecutionContext, aws: AwsResource, query_engine: QueryEngine
):
    """Reconcile orders_current with OrderTable: same order ids, status, version, total amount."""
    dynamodb = scan_orders(aws)
    result = query_engine.query(read_sql("orders_current_reconciliation"))
    rows = result.dicts()
    newest = max(
        (_as_utc(r["last_event_time"]) for r in rows if r["last_event_time"]), default=None
    )
    cutoff = newest - IN_FLIGHT_MARGIN if newest else None
    lake = {
        str(r["order_id"]): {
            "status": r["status"],
            "version": None if r["version"] is None else int(r["version"]),
            "total_amount": None
            if r["total_amount"] is None
            else Decimal(str(r["total_amount"])).quantize(CENT),
        }
        for r in rows
    }
    found = reconcile(dynamodb, lake, cutoff)
    counts = {name: len(found[name]) for name in ("missing", "extra", "mismatched", "in_flight")}
    # Extra orders only count once the stream is drained (until then they may be deletes in flight).
    failing = (
        counts["missing"] + counts["mismatched"] + (counts["extra"] if found["drained"] else 0)
    )
    passed = failing == 0
    yield dg.AssetCheckResult(
        check_name="matches_dynamodb",
        asset_key=ORDERS_CURRENT,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"orders_current matches DynamoDB ({'drained' if found['drained'] else 'not drained'}: "
            f"{counts['in_flight']} orders changed after the newest landed event set aside)"
            if passed
            else f"{counts['missing']} missing, {counts['extra']} extra, "
            f"{counts['mismatched']} mismatched orders among those settled before "
            f"{cutoff.isoformat() if cutoff else 'now'}"
        ),
        metadata={
            "dynamodb_orders": dg.MetadataValue.int(len(dynamodb)),
            "orders_current_rows": dg.MetadataValue.int(len(lake)),
            "missing": dg.MetadataValue.int(counts["missing"]),
            "extra": dg.MetadataValue.int(counts["extra"]),
            "mismatched": dg.MetadataValue.int(counts["mismatched"]),
            "in_flight": dg.MetadataValue.int(counts["in_flight"]),
            "drained": dg.MetadataValue.bool(found["drained"]),
            "compared_up_to": dg.MetadataValue.text(cutoff.isoformat() if cutoff else "everything"),
            "missing_sample": dg.MetadataValue.json(found["missing"][:SAMPLE_SIZE]),
            "extra_sample": dg.MetadataValue.json(found["extra"][:SAMPLE_SIZE]),
            "mismatched_sample": dg.MetadataValue.json(found["mismatched"][:SAMPLE_SIZE]),
            "bytes_read": dg.MetadataValue.int(result.bytes_scanned),
        },
    )


ASSETS = [orders_current]
ASSET_CHECKS = [orders_current_rules, orders_current_matches_dynamodb]
SENSORS: list[dg.SensorDefinition] = []
SCHEDULES: list[dg.ScheduleDefinition] = []
