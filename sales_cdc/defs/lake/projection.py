"""athena/orders_current: the CDC projection of the raw log, its data checks and reconciliation."""

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import dagster as dg
from pydantic import Field

from sales_cdc.defs import schedule_status
from sales_cdc.defs.asset_keys import GLUE_ORDERS_CDC, MATCHES_DYNAMODB, ORDERS, ORDERS_CURRENT
from sales_cdc.defs.lake.merge import (
    LEDGER_TABLE,
    MAX_PATHS_BYTES,
    MERGED,
    TOMBSTONES_TABLE,
    UNREADABLE,
    LandingObject,
    LedgerRow,
    combine,
    days_parameter,
    ledger_select,
    merge_changes,
    object_uri,
    path_batches,
    pending_objects,
    rebuild_tables,
)
from sales_cdc.defs.landing.objects import LandingRead, read_landing_object
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.query import QueryEngine, read_sql

TABLE = "orders_current"
SCAN_SEGMENTS = 4
# Items per Scan page of the reconciliation (Limit). DynamoDB caps a page at 1 MB, several thousand
# orders: smaller pages keep what each request holds at once small, on both ends, for the same
# read capacity. https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html#Scan.Limit
SCAN_PAGE_ITEMS = 1000
READ_THREADS = 8
# A DynamoDB change newer than (newest landed event - this) may still be on its way to the lake.
IN_FLIGHT_MARGIN = dt.timedelta(seconds=60)
SAMPLE_SIZE = 10
CENT = Decimal("0.01")
# Called between the data commits and the ledger write (a test kills the process there).
before_ledger_write: Callable[[], None] | None = None


def _int(value: Any) -> int:
    return int(value or 0)


def _as_utc(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed


class OrdersCurrentConfig(dg.Config):
    """Run configuration of orders_current."""

    full_rebuild: bool = Field(
        default=False,
        description="Recompute orders_current and order_tombstones from the whole raw log "
        "(every readable landing object) and rewrite the ledger, instead of merging new objects.",
    )
    max_objects: int = Field(
        default=2000,
        description="Landing objects merged per run at most; the rest wait for the next run.",
    )


def list_landing_objects(aws: AwsResource) -> list[LandingObject]:
    """Keys, sizes and LastModified of every object under raw/orders_cdc/."""
    stack = aws.stack()
    s3 = aws.client("s3")
    found = []
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.bucket, Prefix=stack.raw_prefix
    )
    for page in pages:
        for obj in page.get("Contents", []):
            found.append(LandingObject(obj["Key"], int(obj["Size"]), obj["LastModified"]))
    return found


def read_objects(aws: AwsResource, objects: list[LandingObject]) -> list[LandingRead]:
    """Each object's body read in the run: rows, event days, order days; unreadable ones flagged."""
    bucket = aws.stack().bucket
    s3 = aws.client("s3")

    def read(obj: LandingObject) -> LandingRead:
        body = s3.get_object(Bucket=bucket, Key=obj.key)["Body"].read()
        return read_landing_object(body)

    with ThreadPoolExecutor(READ_THREADS) as pool:
        return list(pool.map(read, objects))


@dg.asset(
    key=ORDERS_CURRENT,
    deps=[GLUE_ORDERS_CDC],
    group_name="lake",
    kinds={"athena", "iceberg", "s3"},
    pool="orders_current",
)
def orders_current(
    context: dg.AssetExecutionContext,
    config: OrdersCurrentConfig,
    aws: AwsResource,
    query_engine: QueryEngine,
) -> dg.MaterializeResult:
    """One row per live order, merged from the landing objects not merged yet (tombstones kept)."""
    stack = aws.stack()
    for table in (TABLE, TOMBSTONES_TABLE, LEDGER_TABLE):
        query_engine.ensure_table(table)

    listed = list_landing_objects(aws)
    if config.full_rebuild:
        batch, backlog = sorted(listed, key=lambda o: (o.last_modified, o.key)), 0
    else:
        ledger = query_engine.query(read_sql("orders_cdc_merge_log_keys"))
        recorded = {str(r["object_key"]) for r in ledger.dicts()}
        batch, backlog = pending_objects(listed, recorded, config.max_objects)
    # Hour folders of the objects to merge that no crawl has registered yet (a run reads them).
    added = query_engine.sync_partitions(stack.raw_table, [o.key for o in batch])
    if added:
        context.log.info(f"Registered {len(added)} new landing partition(s): {added[:5]}")
    reads = read_objects(aws, batch)
    readable = [(o, r) for o, r in zip(batch, reads, strict=True) if r.readable]
    set_aside = [(o, r) for o, r in zip(batch, reads, strict=True) if not r.readable]
    for obj, read in set_aside:
        context.log.warning(f"Set aside unreadable landing object {obj.key}: {read.reason}")
    now = dt.datetime.now(dt.UTC)
    ledger = {
        o.key: LedgerRow(o.key, o.size, o.last_modified, MERGED if r.readable else UNREADABLE,
                         r.reason, r.rows, context.run_id, now)
        for o, r in zip(batch, reads, strict=True)
    }  # fmt: skip
    # One statement names at most MAX_PATHS_BYTES of object URIs (Athena's query string limit):
    # a longer list is merged in turns, each turn's objects recorded after its commits. A full
    # rebuild rebuilds from the first turn and merges the others (the same tables).
    turns = path_batches(
        [(object_uri(stack.bucket, o.key), o, r) for o, r in readable], MAX_PATHS_BYTES
    )
    outcomes = []
    for turn, items in enumerate(turns or [[]]):
        paths = [uri for uri, _, _ in items]
        rows = [ledger[o.key] for _, o, _ in items]
        if turn == 0:  # the objects set aside are recorded with the first turn
            rows += [ledger[o.key] for o, _ in set_aside]
        if config.full_rebuild and turn == 0:
            outcomes.append(rebuild_tables(query_engine, paths, read_sql))
        elif paths:
            turn_reads = [r for _, _, r in items]
            outcomes.append(
                merge_changes(query_engine, paths, turn_reads, read_sql, before_ledger_write)
            )
        if rows and config.full_rebuild and turn == 0:
            query_engine.replace_rows(LEDGER_TABLE, ledger_select(rows), where=None)
        elif rows:
            query_engine.append_rows(LEDGER_TABLE, ledger_select(rows))
    outcome = combine(outcomes)

    newest = max((r.newest_event_time for _, r in readable if r.newest_event_time), default=None)
    lag = (now - newest).total_seconds() if newest else None
    counts = outcome.counts if outcome else None
    events = sum(r.rows for _, r in readable)
    if config.full_rebuild:
        changed = sorted(
            {d for _, r in readable for d in r.order_days if d is not None}
            | set(_stored_days(query_engine))
        )
    else:
        changed = outcome.changed_days if outcome else []
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(query_engine.row_count(TABLE)),
            "tombstones": dg.MetadataValue.int(query_engine.row_count(TOMBSTONES_TABLE)),
            "full_rebuild": dg.MetadataValue.bool(config.full_rebuild),
            "events_merged": dg.MetadataValue.int(events),
            "objects_merged": dg.MetadataValue.int(len(readable)),
            "objects_set_aside": dg.MetadataValue.int(len(set_aside)),
            "set_aside_keys": dg.MetadataValue.json([o.key for o, _ in set_aside][:SAMPLE_SIZE]),
            "backlog_objects": dg.MetadataValue.int(backlog),
            "orders_inserted": dg.MetadataValue.int(counts.inserted if counts else 0),
            "orders_updated": dg.MetadataValue.int(counts.updated if counts else 0),
            "orders_deleted": dg.MetadataValue.int(counts.deleted if counts else 0),
            "tombstones_written": dg.MetadataValue.int(counts.tombstones if counts else 0),
            "orders_reapplied": dg.MetadataValue.int(counts.reapplied if counts else 0),
            "orders_looked_up": dg.MetadataValue.int(outcome.looked_up if outcome else 0),
            "unreadable_lines_skipped": dg.MetadataValue.int(
                sum(r.unreadable_lines for _, r in readable)
            ),
            "bytes_read": dg.MetadataValue.int(
                sum(o.size for o in batch) + (outcome.bytes_read if outcome else 0)
            ),
            "rows_written": dg.MetadataValue.int(outcome.rows_written if outcome else 0),
            "newest_event_time": dg.MetadataValue.text(newest.isoformat() if newest else ""),
            "lag_seconds": dg.MetadataValue.float(round(lag, 3) if lag is not None else -1.0),
            "landing_partitions_added": dg.MetadataValue.int(len(added)),
            "changed_order_dates": dg.MetadataValue.json(changed),
        }
    )


def _stored_days(query_engine: QueryEngine) -> list[str]:
    result = query_engine.query(read_sql("orders_current_fingerprints"))
    return [str(r["order_date"]) for r in result.dicts() if r["order_date"] is not None]


# -- data checks --------------------------------------------------------------------------------
def days_changed_in_run(context: dg.AssetCheckExecutionContext) -> list[str] | None:
    """The order days orders_current's incremental merge in this run changed (its
    changed_order_dates); None when this run did not merge incrementally (check everything)."""
    event = context.instance.get_latest_materialization_event(ORDERS_CURRENT)
    if event is None or event.run_id != context.run.run_id or event.asset_materialization is None:
        return None
    metadata = event.asset_materialization.metadata
    if metadata.get("full_rebuild") is None or metadata["full_rebuild"].value:
        return None
    changed = metadata.get("changed_order_dates")
    return None if changed is None else [str(d) for d in changed.value]


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
    "amounts_valid": (
        "invalid_amounts",
        "invalid_amounts_sample",
        "rows whose unit_price or total_amount is missing or not a DECIMAL(18,2) (read as NULL)",
    ),
    "event_time_valid": (
        "invalid_event_time",
        "invalid_event_time_sample",
        "rows whose event_time is not a timestamp (read as NULL)",
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
    """Keys unique and present, quantity > 0, amounts >= 0, status known, order day known.

    After an incremental merge in the same run, the rows of the order days it changed (and of the
    NULL day) are checked, their orders looked up across the table for duplicates; otherwise
    (checks run alone, or after a full rebuild) the whole table.
    """
    days = days_changed_in_run(context)
    if days is None:
        figures = query_engine.query(read_sql("orders_current_checks")).one()
    else:
        figures = query_engine.query(
            read_sql("orders_current_checks_days"), {"days": days_parameter(days)}
        ).one()
    scope = "whole table" if days is None else f"{len(days)} changed order day(s) and the NULL day"
    for name, (column, sample_column, text) in RULES.items():
        bad = _int(figures[column])
        metadata: dict[str, Any] = {
            "violations": dg.MetadataValue.int(bad),
            "rows_checked": dg.MetadataValue.int(_int(figures["total_rows"])),
            "checked": dg.MetadataValue.text(scope),
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


@dg.asset_check(
    asset=ORDERS_CURRENT,
    name="landing_objects_readable",
    description="Every landing object is GZIP or plain JSON lines; set-aside objects are named.",
)
def landing_objects_readable(query_engine: QueryEngine) -> dg.AssetCheckResult:
    """Fails while the ledger records landing objects set aside as unreadable, naming them."""
    rows = query_engine.query(read_sql("orders_cdc_merge_log_keys")).dicts()
    unreadable = sorted(str(r["object_key"]) for r in rows if r["status"] == UNREADABLE)
    return dg.AssetCheckResult(
        passed=not unreadable,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(unreadable)} landing object(s) set aside as unreadable: {unreadable[0]}"
            if unreadable
            else "every landing object was readable"
        ),
        metadata={
            "objects_set_aside": dg.MetadataValue.int(len(unreadable)),
            "objects_recorded": dg.MetadataValue.int(len(rows)),
            "set_aside_keys": dg.MetadataValue.json(unreadable[:SAMPLE_SIZE]),
        },
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
            PaginationConfig={"PageSize": SCAN_PAGE_ITEMS},
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
            name=MATCHES_DYNAMODB.name,
            asset=ORDERS_CURRENT,
            additional_deps=[ORDERS],
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
        check_name=MATCHES_DYNAMODB.name,
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


# The reconciliation reads all of OrderTable and of orders_current: it runs on its own schedule,
# not in every lake_refresh run, so a merge costs what changed.
reconcile_orders_job = dg.define_asset_job(
    "reconcile_orders",
    selection=dg.AssetSelection.checks(MATCHES_DYNAMODB),
    description="Reconcile orders_current with OrderTable (check matches_dynamodb).",
)


def build_reconcile_schedule(schedules: dict[str, Any]) -> dg.ScheduleDefinition:
    """reconcile_schedule, as the `schedules` section of infra/stack.yaml declares it."""

    @dg.schedule(
        name="reconcile_schedule",
        job=reconcile_orders_job,
        cron_schedule=schedules["reconcile_cron"],
        default_status=schedule_status(schedules["reconcile_running"]),
        description=(
            "Reconciles orders_current with OrderTable (a full DynamoDB Scan and a read of the "
            "whole table); skips its tick until orders_current has been materialized."
        ),
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        if context.instance.get_latest_materialization_event(ORDERS_CURRENT) is None:
            return dg.SkipReason(f"{ORDERS_CURRENT.to_user_string()} is not materialized yet")
        return dg.RunRequest()

    return _schedule


ASSETS = [orders_current]
ASSET_CHECKS = [orders_current_rules, landing_objects_readable, orders_current_matches_dynamodb]
SENSORS: list[dg.SensorDefinition] = []
