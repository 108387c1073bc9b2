"""Pure readers of landed objects: landing rows (in the orders_current run) and Firehose error
records (in the landing checks)."""

from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

EVENT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
GZIP_MAGIC = b"\x1f\x8b"


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
    if body[:2] == GZIP_MAGIC:
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError):
            summary.unreadable_lines += 1
            return iter(())
    return (line for line in body.splitlines() if line.strip())


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


def read_landing_object(body: bytes) -> LandingRead:
    """Read one landing object (GZIP as Firehose writes it, or plain, as Athena reads both)."""
    read = LandingRead()
    if body[:2] == GZIP_MAGIC:
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:
            return LandingRead(readable=False, reason=f"not valid GZIP: {exc}")
    lines = [line for line in body.splitlines() if line.strip()]
    objects = 0
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            read.unreadable_lines += 1
            continue
        if not isinstance(row, dict):
            read.unreadable_lines += 1
            continue
        objects += 1
        read.rows += 1
        if isinstance(row.get("order_id"), str):
            read.order_ids.add(row["order_id"])
        read.order_days.add(order_day(row.get("created_at")))
        try:
            event_time = parse_event_time(row["event_time"])
        except (ValueError, KeyError, TypeError):
            continue
        read.event_days[event_time.date().isoformat()] += 1
        if read.newest_event_time is None or event_time > read.newest_event_time:
            read.newest_event_time = event_time
    if lines and not objects:
        return LandingRead(
            readable=False,
            reason=f"none of its {len(lines)} line(s) is a JSON object (not JSON lines)",
        )
    return read
