"""Writes planned changes to OrderTable: one conditional write per change, each on its version.

One PutItem / UpdateItem / DeleteItem per change keeps the cost of a write constant: a
TransactWriteItems batch costs the emulator (moto) a deep copy of the whole table per item, so
the generator's writes grew quadratically with the table. A change whose condition fails (the
order moved on, or the order id exists) is a conflict: skipped and counted, never retried blind.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from sales_cdc.defs.orders.generator import Change, utc_timestamp

# A sample is read from this many parallel-scan segments, starting at a random one.
SAMPLE_SEGMENTS = 16
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(order: dict[str, Any]) -> dict[str, Any]:
    """Python values (Decimal money, int quantities) to DynamoDB-typed attributes."""
    return {k: _serializer.serialize(v) for k, v in order.items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def sample_orders(ddb: Any, table: str, rng: random.Random, limit: int = 500) -> list[dict]:
    """Up to `limit` orders read by Scan from a random segment on (never from ItemCount).

    DescribeTable's ItemCount is refreshed about every six hours on AWS, so a fresh table would
    look empty: the sample reads the table itself, segment after segment from a random one,
    until it has `limit` orders or has read every segment (a small table is read whole).
    """
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html#Scan.ParallelScan
    first = rng.randrange(SAMPLE_SEGMENTS)
    items: list[dict] = []
    for step in range(SAMPLE_SEGMENTS):
        kwargs: dict[str, Any] = {
            "TableName": table,
            "Segment": (first + step) % SAMPLE_SEGMENTS,
            "TotalSegments": SAMPLE_SEGMENTS,
            "ProjectionExpression": "orderId, #s, version",
            "ExpressionAttributeNames": {"#s": "status"},
        }
        while len(items) < limit:
            kwargs["Limit"] = limit - len(items)
            page = ddb.scan(**kwargs)
            items.extend(from_item(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        if len(items) >= limit:
            break
    return items[:limit]


def write_request(table: str, change: Change, now: datetime) -> tuple[str, dict[str, Any]]:
    """The conditional PutItem / UpdateItem / DeleteItem of one change: (operation, request)."""
    if change.kind == "insert":
        return "put_item", {
            "TableName": table,
            "Item": to_item(change.item),
            "ConditionExpression": "attribute_not_exists(orderId)",
        }
    key = {"orderId": {"S": change.order_id}}
    expected = {":expected": {"N": str(change.expected_version)}}
    if change.kind == "update":
        updated_at = change.item.get("updatedAt") or utc_timestamp(now)
        return "update_item", {
            "TableName": table,
            "Key": key,
            "UpdateExpression": "SET #s = :status, updatedAt = :now, version = :next",
            "ConditionExpression": "version = :expected",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {
                **expected,
                ":status": {"S": change.new_status},
                ":now": {"S": updated_at},
                ":next": {"N": str((change.expected_version or 0) + 1)},
            },
        }
    return "delete_item", {
        "TableName": table,
        "Key": key,
        "ConditionExpression": "version = :expected",
        "ExpressionAttributeValues": expected,
    }


def apply_changes(
    ddb: Any,
    table: str,
    changes: list[Change],
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 4,
) -> Counter:
    """Write `changes` one conditional write each; a failed condition is a conflict, skipped.

    The changes of one order are written in their order by one thread; different orders are
    written side by side by `workers` threads (a boto3 client is thread-safe).
    """
    per_order: dict[str, list[Change]] = {}
    for change in changes:
        per_order.setdefault(change.order_id, []).append(change)
    counts: Counter = Counter()
    lock = threading.Lock()
    done = 0
    done_word = {"insert": "inserted", "update": "updated", "delete": "deleted"}

    def write(sequence: list[Change]) -> None:
        nonlocal done
        for change in sequence:
            operation, request = write_request(table, change, now)
            try:
                getattr(ddb, operation)(**request)
                outcome = done_word[change.kind]
            except ClientError as exc:
                # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_PutItem.html#API_PutItem_Errors
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                outcome = "conflicts"
            with lock:
                counts[outcome] += 1
                done += 1
                if progress and (done % 100 == 0 or done == len(changes)):
                    progress(done, len(changes))

    if workers <= 1 or len(per_order) <= 1:
        for sequence in per_order.values():
            write(sequence)
        return counts
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(write, sequence) for sequence in per_order.values()]:
            future.result()
    return counts
