"""Pure readers of landed objects: landing rows (in the orders_current run) and Firehose error
records (in the landing checks)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.json as pajson

from sales_cdc.landing_format import UnreadableObject, decompress, read_json_lines

EVENT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def parse_event_time(value: str) -> datetime:
    """A landing row's event_time (UTC) as an aware datetime."""
    return datetime.strptime(value, EVENT_TIME_FORMAT).replace(tzinfo=UTC)


@dataclass
class BatchSummary:
    """What the error objects under errors/orders_cdc/ hold."""

    objects: int = 0
    records: int = 0
    bytes: int = 0
    unreadable_lines: int = 0
    partitions: set[str] = field(default_factory=set)
    error_codes: Counter = field(default_factory=Counter)
    sample_errors: list[str] = field(default_factory=list)


def partition_of(key: str, prefix: str) -> str:
    """The hive partition folder of an object key (e.g. year=2026/month=11/day=21/hour=09)."""
    rest = key[len(prefix) :] if key.startswith(prefix) else key
    return "/".join(part for part in rest.split("/")[:-1] if "=" in part)


def _lines(summary: BatchSummary, key: str, prefix: str, body: bytes) -> Iterator[bytes]:
    """Count one object (GZIP as Firehose writes it, or plain) and yield its non-empty lines.

    An object that claims GZIP but does not decompress counts as one unreadable line.
    """
    summary.objects += 1
    summary.bytes += len(body)
    summary.partitions.add(partition_of(key, prefix))
    try:
        text = decompress(body)
    except UnreadableObject:
        summary.unreadable_lines += 1
        return iter(())
    return (line for line in text.splitlines() if line.strip())


def add_error_object(
    summary: BatchSummary, key: str, prefix: str, body: bytes, samples: int = 3
) -> None:
    """Count Firehose error records of one object and keep a few reasons."""
    for line in _lines(summary, key, prefix, body):
        summary.records += 1
        try:
            record = json.loads(line)
            code = str(record.get("errorCode", "unknown"))
            message = str(record.get("errorMessage", ""))
        except (ValueError, AttributeError):
            summary.unreadable_lines += 1
            code, message = "unreadable", line[:200].decode(errors="replace")
        summary.error_codes[code] += 1
        if len(summary.sample_errors) < samples:
            summary.sample_errors.append(f"{code}: {message}"[:300])


def error_rate(landed_records: int, error_records: int) -> float:
    """Share of delivered records that went to the error prefix."""
    total = landed_records + error_records
    return error_records / total if total else 0.0


@dataclass
class LandingRead:
    """What one landing object's body holds, read in the orders_current run.

    `readable` is False for an object that is not valid GZIP or whose lines are none of them a
    JSON object (random bytes, a truncated upload): such an object is set aside with `reason`.
    """

    readable: bool = True
    reason: str = ""
    rows: int = 0
    unreadable_lines: int = 0
    newest_event_time: datetime | None = None
    event_days: Counter = field(default_factory=Counter)
    order_days: set[str | None] = field(default_factory=set)
    order_ids: set[str] = field(default_factory=set)


def order_day(created_at: object) -> str | None:
    """The order day (UTC) of a created_at as orders_current computes it; None when not ISO-8601."""
    if not isinstance(created_at, str):
        return None
    try:
        parsed = datetime.fromisoformat(created_at.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.date().isoformat()


# The columns a landing object is read for in the orders_current run.
_READ_SCHEMA = pa.schema(
    [("order_id", pa.string()), ("created_at", pa.string()), ("event_time", pa.string())]
)


def read_landing_object(body: bytes) -> LandingRead:
    """Read one landing object (GZIP as Firehose writes it, or plain, as Athena reads both)."""
    try:
        text = decompress(body)
    except UnreadableObject as exc:
        return LandingRead(readable=False, reason=f"not valid GZIP: {exc}")
    lines = sum(1 for line in text.splitlines() if line.strip())
    columns = _read_columns(text, lines)
    if columns is None:  # a malformed line or an odd value: line by line
        parsed = read_json_lines(text)
        if not parsed.is_json_lines:
            return LandingRead(
                readable=False,
                reason=f"none of its {lines} line(s) is a JSON object (not JSON lines)",
            )
        columns = {name: [row.get(name) for row in parsed.rows] for name in _READ_SCHEMA.names}
        unreadable = parsed.malformed_lines
    else:
        unreadable = 0
    read = LandingRead(rows=len(columns["order_id"]), unreadable_lines=unreadable)
    read.order_ids = {v for v in columns["order_id"] if isinstance(v, str)}
    read.order_days = {order_day(v) for v in set(map(_hashable, columns["created_at"]))}
    for value, count in Counter(map(_hashable, columns["event_time"])).items():
        try:
            event_time = parse_event_time(value)
        except (ValueError, TypeError):
            continue
        read.event_days[event_time.date().isoformat()] += count
        if read.newest_event_time is None or event_time > read.newest_event_time:
            read.newest_event_time = event_time
    return read


def _read_columns(text: bytes, lines: int) -> dict[str, list[Any]] | None:
    """The object's order_id, created_at and event_time read by Arrow's JSON reader, when every
    non-blank line is one JSON object whose fields of interest are strings; else None."""
    if b"NaN" in text or b"Infinity" in text:  # Arrow accepts them, JSON (and Python's) does not
        return None
    options = pajson.ParseOptions(explicit_schema=_READ_SCHEMA, unexpected_field_behavior="ignore")
    try:
        table = pajson.read_json(pa.BufferReader(text), parse_options=options)
    except (pa.ArrowInvalid, OSError):
        return None
    if table.num_rows != lines:  # two objects on a line: the JSON SerDe reads that line as one
        return None
    return {name: table[name].to_pylist() for name in _READ_SCHEMA.names}


def _hashable(value: Any) -> Any:
    """A JSON value as a set member (lists and objects as their text; they parse as nothing)."""
    return json.dumps(value, default=str) if isinstance(value, (list, dict)) else value
