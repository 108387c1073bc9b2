"""Planning the incremental merge of orders_current: objects to merge, lookup scope, ledger rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sales_cdc.defs.landing.objects import LandingRead
from sales_cdc.resources.sql import literal

MERGED = "merged"
UNREADABLE = "unreadable"
LEDGER_COLUMNS = (
    ("object_key", "VARCHAR"),
    ("object_size", "BIGINT"),
    ("last_modified", "TIMESTAMP"),
    ("status", "VARCHAR"),
    ("reason", "VARCHAR"),
    ("rows", "BIGINT"),
    ("run_id", "VARCHAR"),
    ("merged_at", "TIMESTAMP"),
)
# The columns of orders_current, in table order (sql/orders_current.ddl.sql).
ORDERS_CURRENT_COLUMNS = (
    "order_id",
    "customer_id",
    "customer_name",
    "customer_city",
    "customer_country",
    "product_id",
    "product_name",
    "category",
    "quantity",
    "unit_price",
    "discount",
    "total_amount",
    "currency",
    "payment_method",
    "channel",
    "status",
    "created_at",
    "updated_at",
    "version",
    "last_event_id",
    "last_sequence_number",
    "last_event_time",
    "order_date",
)
TOMBSTONE_COLUMNS = (
    "order_id",
    "last_event_id",
    "last_sequence_number",
    "last_event_time",
    "order_date",
)
DELETE_COLUMN = "is_removed"
WINNER_COLUMN = "is_winner"  # the order's winner (its orders_current row); else a tombstone only


@dataclass(frozen=True)
class LandingObject:
    """One object listed under raw/orders_cdc/."""

    key: str
    size: int
    last_modified: dt.datetime


def pending_objects(
    listed: Iterable[LandingObject], recorded: Iterable[str], limit: int
) -> tuple[list[LandingObject], int]:
    """Listed objects the ledger does not record, oldest first, at most `limit`; and the backlog.

    An object that lands late in an old hour partition is new all the same: the ledger records
    keys, not times.
    """
    known = set(recorded)
    new = sorted((o for o in listed if o.key not in known), key=lambda o: (o.last_modified, o.key))
    return new[:limit], max(0, len(new) - limit)


# Athena's query string limit is 262,144 bytes ("Service Quotas", not adjustable): the object
# URIs named in one merge statement keep well below it, leaving room for the SQL around them.
MAX_PATHS_BYTES = 200_000


def path_batches(items: Sequence[tuple[Any, ...]], limit: int) -> list[list[Any]]:
    """(text, ...) items in order, in turns whose texts (quoted, comma-separated, as a statement
    names them) take at most `limit` bytes each; an item never waits for a later turn."""
    turns: list[list[Any]] = []
    size = limit + 1
    for item in items:
        length = len(item[0].encode()) + 4  # 'uri',<space>
        if size + length > limit and (not turns or turns[-1]):
            turns.append([])
            size = 0
        turns[-1].append(item)
        size += length
    return turns


def object_uri(bucket: str, key: str) -> str:
    """The "$path" of an object (s3://bucket/key)."""
    return f"s3://{bucket}/{key}"


def scope_days(reads: Iterable[LandingRead]) -> set[str | None]:
    """Order days whose stored state the merge reads: those of the new events, and the NULL day."""
    days: set[str | None] = {None}
    for read in reads:
        days |= read.order_days
    return days


def scope_predicate(days: Iterable[str | None]) -> str:
    """An Athena predicate on order_date selecting `days` (None: the NULL day)."""
    named = sorted(d for d in set(days) if d is not None)
    parts = [f"order_date IN ({literal(named)})"] if named else []
    if None in set(days):
        parts.append("order_date IS NULL")
    return " OR ".join(parts) if parts else "FALSE"


def days_parameter(days: Iterable[str | None]) -> list[str]:
    """The named days for an `IN (%(days)s)` parameter (never empty: IN () is not SQL)."""
    return sorted(d for d in set(days) if d is not None) or [""]


def change_groups(changes_sql: str) -> str:
    """The changes of orders_current_changes counted by what planning needs (order days, kind of
    change, and the order ids to look up), so a merge never holds a row per changed order: a
    turn of a rebuild changes hundreds of thousands of orders."""
    return f"""SELECT
    order_date,
    previous_order_date,
    is_winner,
    is_removed,
    was_live,
    is_reapplied,
    IF(NOT was_stored AND COALESCE(first_new_event, '') <> 'INSERT', order_id) AS lookup_order_id,
    COUNT(*) AS orders
FROM (
{changes_sql.strip().rstrip(";")}
) AS changes
GROUP BY 1, 2, 3, 4, 5, 6, 7"""


def lookup_candidates(changes: Sequence[Mapping[str, Any]]) -> list[str]:
    """Orders whose stored state may lie outside the scope: no stored state found there, and
    their first new event is not an INSERT (out-of-order delivery or a changed created_at)."""
    return sorted({str(c["lookup_order_id"]) for c in changes if c["lookup_order_id"]})


def changed_order_days(
    changes: Sequence[Mapping[str, Any]], reads: Iterable[LandingRead]
) -> list[str]:
    """Order days whose orders_current rows may have changed, for aggregates_sensor.

    The old and new day of every changed order, and the days of every merged event: a run that
    re-applies objects after a crash before its ledger write reports their days again.
    """
    days: set[str | None] = set()
    for change in winners(changes):
        if not change[DELETE_COLUMN]:
            days.add(change["order_date"])
        if change["was_live"]:
            days.add(change["previous_order_date"])
    for read in reads:
        days |= read.order_days
    return sorted(d for d in days if d is not None)


@dataclass
class ChangeCounts:
    """What a merge changes, counted from orders_current_changes rows."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    tombstones: int = 0
    reapplied: int = 0


def winners(changes: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The changes rows that change orders_current (the others only write a tombstone)."""
    return [c for c in changes if c[WINNER_COLUMN]]


def count_changes(changes: Sequence[Mapping[str, Any]]) -> ChangeCounts:
    """Counts of change_groups rows (each counts `orders` orders)."""
    counts = ChangeCounts()
    for change in changes:
        orders = int(change["orders"])
        if change["is_reapplied"]:
            counts.reapplied += orders
            continue
        if change[DELETE_COLUMN]:
            counts.tombstones += orders
        if not change[WINNER_COLUMN]:
            continue  # a REMOVE older than the order's winner: its tombstone only
        if change[DELETE_COLUMN]:
            counts.deleted += orders if change["was_live"] else 0
        elif change["was_live"]:
            counts.updated += orders
        else:
            counts.inserted += orders
    return counts


@dataclass(frozen=True)
class LedgerRow:
    """One ledger row of orders_cdc_merge_log."""

    object_key: str
    object_size: int
    last_modified: dt.datetime
    status: str
    reason: str
    rows: int
    run_id: str
    merged_at: dt.datetime


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def ledger_select(rows: Sequence[LedgerRow]) -> str:
    """A SELECT of ledger rows (VALUES), typed as orders_cdc_merge_log's columns."""
    if not rows:
        raise ValueError("No ledger rows to write.")
    values = ",\n    ".join(
        "("
        + ", ".join(
            literal(v)
            for v in (
                r.object_key,
                r.object_size,
                _naive_utc(r.last_modified),
                r.status,
                r.reason,
                r.rows,
                r.run_id,
                _naive_utc(r.merged_at),
            )
        )
        + ")"
        for r in rows
    )
    names = ", ".join(name for name, _ in LEDGER_COLUMNS)
    casts = ", ".join(f"CAST({name} AS {kind}) AS {name}" for name, kind in LEDGER_COLUMNS)
    return f"SELECT {casts}\nFROM (\n    VALUES\n    {values}\n) AS ledger ({names})"


def projection(source_sql: str, columns: Sequence[str], extra: str = "") -> str:
    """`SELECT <columns>[, extra] FROM (<source_sql>)`: one table's columns of a shared query."""
    select = ", ".join(columns) + (f", {extra}" if extra else "")
    return f"SELECT {select}\nFROM (\n{source_sql.strip().rstrip(';')}\n) AS source"


# -- applying a merge ---------------------------------------------------------------------------
ORDERS_CURRENT_TABLE = "orders_current"
TOMBSTONES_TABLE = "order_tombstones"
LEDGER_TABLE = "orders_cdc_merge_log"
KEY = ("order_id",)


@dataclass
class MergeOutcome:
    """What one merge (or rebuild) did."""

    changes: list[dict[str, Any]]  # change_groups rows
    counts: ChangeCounts
    changed_days: list[str]
    scope: list[str | None]
    looked_up: int
    bytes_read: int
    rows_written: int


def _bytes(result: Any) -> int:
    return int(getattr(result, "bytes_scanned", 0) or 0)


def _written(result: Any) -> int:
    return int(getattr(result, "rows_written", 0) or 0)


def merge_changes(
    engine: Any,
    paths: Sequence[str],
    reads: Sequence[LandingRead],
    read_sql: Any,
    before_ledger: Any = None,
) -> MergeOutcome:
    """Merge the readable new objects `paths` into orders_current and order_tombstones.

    1. orders_current_changes over the new objects and the stored state of the lookup scope,
       counted by change_groups;
    2. orders whose stored state was not found there and whose first new event is not an INSERT
       (and re-inserts whose tombstone may lie elsewhere) are looked up across the whole table,
       their days added to the scope, and the changes computed again;
    3. merge_rows into orders_current, then into order_tombstones. The ledger is written by the
       caller after this returns: a crash in between makes the next run re-apply the objects,
       which changes nothing where they were already applied.
    """
    scope = scope_days(reads)
    sql = read_sql("orders_current_changes")
    bytes_read = 0
    looked_up = 0

    def changes_for(days: set[str | None]) -> list[dict[str, Any]]:
        nonlocal bytes_read
        params = {"paths": list(paths), "days": days_parameter(days)}
        result = engine.query(change_groups(sql), params)
        bytes_read += _bytes(result)
        return result.dicts()

    # Re-inserts: an order whose first new event is an INSERT may have a tombstone in another day.
    if any(read.order_ids for read in reads):
        found = engine.query(read_sql("order_tombstones_lookup"), {"paths": list(paths)})
        bytes_read += _bytes(found)
        extra = {r["order_date"] for r in found.dicts()} - scope
        scope |= extra
    changes = changes_for(scope)
    missing = lookup_candidates(changes)
    if missing:
        looked_up = len(missing)
        extra = set()
        # In turns of at most MAX_PATHS_BYTES of ids, as object URIs (one statement's size).
        for turn in path_batches([(order_id,) for order_id in missing], MAX_PATHS_BYTES):
            ids = [order_id for (order_id,) in turn]
            found = engine.query(read_sql("orders_current_lookup"), {"order_ids": ids})
            bytes_read += _bytes(found)
            extra |= {r["order_date"] for r in found.dicts()} - scope
        if extra:
            scope |= extra
            changes = changes_for(scope)

    # The scope also covers every day the changes write to.
    scope |= {c["order_date"] for c in changes}
    rows_written = 0
    if changes:
        params = {"paths": list(paths), "days": days_parameter(scope)}
        predicate = scope_predicate(scope)
        current = engine.merge_rows(
            ORDERS_CURRENT_TABLE,
            projection(sql, ORDERS_CURRENT_COLUMNS, DELETE_COLUMN) + f"\nWHERE {WINNER_COLUMN}",
            key=KEY,
            delete_column=DELETE_COLUMN,
            scope=predicate,
            params=params,
        )
        # Tombstones are only ever upserted: an order keeps its greatest REMOVE for good.
        tombstones = engine.merge_rows(
            TOMBSTONES_TABLE,
            projection(sql, TOMBSTONE_COLUMNS) + f"\nWHERE {DELETE_COLUMN}",
            key=KEY,
            scope=predicate,
            params=params,
        )
        bytes_read += _bytes(current) + _bytes(tombstones)
        rows_written += _written(current) + _written(tombstones)
    if before_ledger is not None:
        before_ledger()
    return MergeOutcome(
        changes=changes,
        counts=count_changes(changes),
        changed_days=changed_order_days(changes, reads),
        scope=sorted(scope, key=lambda d: d or ""),
        looked_up=looked_up,
        bytes_read=bytes_read,
        rows_written=rows_written,
    )


def combine(outcomes: Sequence[MergeOutcome]) -> MergeOutcome | None:
    """One outcome for a run's turns (None when nothing was merged)."""
    if not outcomes:
        return None
    counts = ChangeCounts()
    for outcome in outcomes:
        for name in vars(counts):
            setattr(counts, name, getattr(counts, name) + getattr(outcome.counts, name))
    return MergeOutcome(
        changes=[c for o in outcomes for c in o.changes],
        counts=counts,
        changed_days=sorted({d for o in outcomes for d in o.changed_days}),
        scope=sorted({d for o in outcomes for d in o.scope}, key=lambda d: d or ""),
        looked_up=sum(o.looked_up for o in outcomes),
        bytes_read=sum(o.bytes_read for o in outcomes),
        rows_written=sum(o.rows_written for o in outcomes),
    )


def rebuild_tables(engine: Any, paths: Sequence[str], read_sql: Any) -> MergeOutcome:
    """Recompute orders_current and order_tombstones from the readable objects `paths`."""
    sql = read_sql("orders_current")
    params = {"paths": list(paths) or [""]}
    current = engine.replace_rows(
        ORDERS_CURRENT_TABLE,
        projection(sql, ORDERS_CURRENT_COLUMNS)
        + f"\nWHERE {WINNER_COLUMN} AND NOT {DELETE_COLUMN}",
        where=None,
        params=params,
    )
    tombstones = engine.replace_rows(
        TOMBSTONES_TABLE,
        projection(sql, TOMBSTONE_COLUMNS) + f"\nWHERE {DELETE_COLUMN}",
        where=None,
        params=params,
    )
    return MergeOutcome(
        changes=[],
        counts=ChangeCounts(),
        changed_days=[],
        scope=[],
        looked_up=0,
        bytes_read=_bytes(current) + _bytes(tombstones),
        rows_written=_written(current) + _written(tombstones),
    )
