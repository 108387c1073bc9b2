"""Writes planned changes to OrderTable: transactional batches, each write conditional on version."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from sales_cdc.defs.orders.generator import Change, utc_timestamp

TRANSACTION_SIZE = 25
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(order: dict[str, Any]) -> dict[str, Any]:
    """Python values (Decimal money, int quantities) to DynamoDB-typed attributes."""
    return {k: _serializer.serialize(v) for k, v in order.items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def sample_orders(
    ddb: Any, table: str, rng: random.Random, item_count: int, limit: int = 500
) -> list[dict]:
    """A random slice of the table: one segment of a parallel scan, not the whole table."""
    segments = max(1, item_count // limit)
    segment = rng.randrange(segments)
    items: list[dict] = []
    kwargs: dict[str, Any] = {
        "TableName": table,
        "Segment": segment,
        "TotalSegments": segments,
        "ProjectionExpression": "orderId, #s, version",
        "ExpressionAttributeNames": {"#s": "status"},
    }
    while len(items) < limit:
        page = ddb.scan(**kwargs)
        items.extend(from_item(i) for i in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return items[:limit]


def _transact_item(table: str, change: Change, now: datetime) -> dict[str, Any]:
    if change.kind == "insert":
        return {
            "Put": {
                "TableName": table,
                "Item": to_item(change.item),
                "ConditionExpression": "attribute_not_exists(orderId)",
            }
        }
    key = {"orderId": {"S": change.order_id}}
    expected = {":expected": {"N": str(change.expected_version)}}
    if change.kind == "update":
        return {
            "Update": {
                "TableName": table,
                "Key": key,
                "UpdateExpression": "SET #s = :status, updatedAt = :now, version = :next",
                "ConditionExpression": "version = :expected",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": {
                    **expected,
                    ":status": {"S": change.new_status},
                    ":now": {"S": utc_timestamp(now)},
                    ":next": {"N": str((change.expected_version or 0) + 1)},
                },
            }
        }
    return {
        "Delete": {
            "TableName": table,
            "Key": key,
            "ConditionExpression": "version = :expected",
            "ExpressionAttributeValues": expected,
        }
    }


def apply_changes(
    ddb: Any,
    table: str,
    changes: list[Change],
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> Counter:
    """Write `changes` in transactions of 25; a change whose version moved on is a conflict, skipped."""
    counts: Counter = Counter()
    done_word = {"insert": "inserted", "update": "updated", "delete": "deleted"}
    for start in range(0, len(changes), TRANSACTION_SIZE):
        batch = changes[start : start + TRANSACTION_SIZE]
        while batch:
            try:
                ddb.transact_write_items(
                    TransactItems=[_transact_item(table, c, now) for c in batch]
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = exc.response.get("CancellationReasons") or []
                failed = {
                    i for i, r in enumerate(reasons) if r.get("Code") == "ConditionalCheckFailed"
                }
                if not failed:
                    raise
                counts["conflicts"] += len(failed)
                batch = [c for i, c in enumerate(batch) if i not in failed]
                continue
            counts.update(done_word[c.kind] for c in batch)
            break
        if progress:
            progress(min(start + TRANSACTION_SIZE, len(changes)), len(changes))
    return counts
