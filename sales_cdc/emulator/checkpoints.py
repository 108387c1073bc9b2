"""Lease and checkpoint table of the local runtime, kept in the emulator's DynamoDB like the KCL.

One item per (consumer, shard): ``leaseKey`` = ``"<consumer>|<shard id>"``, the checkpoint (the
last sequence number delivered downstream), whether the shard was read to its end, the lease
owner and when it was last written. A runtime takes a shard's lease when it starts reading it
and writes checkpoints only while it still owns the lease, so a second runtime started against
the same stack takes the shards over instead of both writing every record.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

log = logging.getLogger(__name__)


class LeaseLost(RuntimeError):
    """Another runtime took the shard's lease: this one must stop reading the shard."""


@dataclass(frozen=True)
class Checkpoint:
    """Where a consumer is in one shard."""

    sequence_number: str | None
    shard_end: bool = False
    owner: str | None = None


def lease_key(consumer: str, shard_id: str) -> str:
    return f"{consumer}|{shard_id}"


def sequence_after(candidate: str, current: str | None) -> bool:
    """Sequence numbers are decimal strings compared as numbers (they grow in length)."""
    return current is None or int(candidate) > int(current)


class CheckpointStore:
    """Reads and advances checkpoints in the lease table, which it creates when missing."""

    def __init__(self, dynamodb: Any, table_name: str, owner: str) -> None:
        self.dynamodb = dynamodb
        self.table_name = table_name
        self.owner = owner

    def ensure_table(self, timeout: float = 60.0) -> bool:
        """Create the table (on-demand) unless it exists; True when it was created."""
        try:
            status = self.dynamodb.describe_table(TableName=self.table_name)["Table"]
            if status["TableStatus"] == "ACTIVE":
                return False
            created = False
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            try:
                self.dynamodb.create_table(
                    TableName=self.table_name,
                    KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
                    AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
                    BillingMode="PAY_PER_REQUEST",
                )
                log.info("created checkpoint table %s", self.table_name)
            except ClientError as create_exc:
                if create_exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                    raise
            created = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            table = self.dynamodb.describe_table(TableName=self.table_name)["Table"]
            if table["TableStatus"] == "ACTIVE":
                return created
            time.sleep(0.2)
        raise RuntimeError(f"checkpoint table {self.table_name} did not become ACTIVE")

    def get(self, consumer: str, shard_id: str) -> Checkpoint | None:
        item = self.dynamodb.get_item(
            TableName=self.table_name,
            Key={"leaseKey": {"S": lease_key(consumer, shard_id)}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        return Checkpoint(
            sequence_number=item.get("checkpoint", {}).get("S"),
            shard_end=item.get("shardEnd", {}).get("BOOL", False),
            owner=item.get("leaseOwner", {}).get("S"),
        )

    def take_lease(self, consumer: str, shard_id: str) -> Checkpoint | None:
        """Own the shard's lease from now on; return its checkpoint (None when never read)."""
        key = lease_key(consumer, shard_id)
        now = _now()
        attributes = self.dynamodb.update_item(
            TableName=self.table_name,
            Key={"leaseKey": {"S": key}},
            UpdateExpression=(
                "SET leaseOwner = :owner, consumer = :consumer, shardId = :shard, "
                "updatedAt = :now ADD leaseCounter :one"
            ),
            ExpressionAttributeValues={
                ":owner": {"S": self.owner},
                ":consumer": {"S": consumer},
                ":shard": {"S": shard_id},
                ":now": {"S": now},
                ":one": {"N": "1"},
            },
            ReturnValues="ALL_NEW",
        )["Attributes"]
        return Checkpoint(
            sequence_number=attributes.get("checkpoint", {}).get("S"),
            shard_end=attributes.get("shardEnd", {}).get("BOOL", False),
            owner=self.owner,
        )

    def advance(
        self, consumer: str, shard_id: str, sequence_number: str | None, shard_end: bool = False
    ) -> None:
        """Record that everything up to `sequence_number` was delivered (and the shard ended).

        Raises LeaseLost when another runtime owns the shard now.
        """
        values: dict[str, Any] = {
            ":owner": {"S": self.owner},
            ":now": {"S": _now()},
            ":end": {"BOOL": shard_end},
        }
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": {"leaseKey": {"S": lease_key(consumer, shard_id)}},
            "UpdateExpression": "SET updatedAt = :now, shardEnd = :end",
            "ConditionExpression": "leaseOwner = :owner",
            "ExpressionAttributeValues": values,
        }
        if sequence_number is not None:
            request["UpdateExpression"] += ", #cp = :seq"
            request["ExpressionAttributeNames"] = {"#cp": "checkpoint"}
            values[":seq"] = {"S": sequence_number}
        try:
            self.dynamodb.update_item(**request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                current = self.get(consumer, shard_id)
                raise LeaseLost(
                    f"lease {lease_key(consumer, shard_id)} is owned by "
                    f"{current.owner if current else 'nobody'}, not {self.owner}: another "
                    "runtime runs against this stack"
                ) from exc
            raise


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
