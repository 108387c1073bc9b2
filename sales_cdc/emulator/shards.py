"""Reading every shard of a stream from its checkpoint, parents before children, as the KCL does.

Both DynamoDB Streams (read by the pipe) and Kinesis (read by Firehose) have shards that close
and split; a `ShardSource` hides the API differences and `ShardedReader` keeps, per shard, the
lease, the checkpoint (what was delivered downstream) and the position (what was read).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import ClientError

from sales_cdc.emulator.checkpoints import CheckpointStore, LeaseLost, sequence_after

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shard:
    """One shard as the stream describes it."""

    shard_id: str
    parent_ids: tuple[str, ...] = ()


@dataclass
class ShardState:
    """What the reader knows of one shard."""

    shard: Shard
    checkpoint: str | None = None  # last sequence number delivered downstream
    position: str | None = None  # last sequence number read
    iterator: str | None = None
    reached_end: bool = False  # the shard is closed and every record of it was read
    finished: bool = False  # ... and that was checkpointed
    lost: bool = False  # another runtime owns the lease

    @property
    def shard_id(self) -> str:
        return self.shard.shard_id


class ShardSource(Protocol):
    """The stream API a reader needs."""

    def list_shards(self) -> list[Shard]: ...

    def shard_iterator(self, shard_id: str, iterator_type: str, sequence: str | None) -> str: ...

    def get_records(self, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None]: ...

    def sequence_number(self, record: dict[str, Any]) -> str: ...


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


class DynamoDBStreamSource:
    """A DynamoDB stream through the dynamodbstreams API."""

    max_limit = 1000

    def __init__(self, client: Any, stream_arn: str) -> None:
        self.client = client
        self.stream_arn = stream_arn

    def list_shards(self) -> list[Shard]:
        shards: list[Shard] = []
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self.client.describe_stream(**kwargs)["StreamDescription"]
            for shard in description.get("Shards", []):
                parent = shard.get("ParentShardId")
                shards.append(Shard(shard["ShardId"], (parent,) if parent else ()))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            kwargs["ExclusiveStartShardId"] = last

    def shard_iterator(self, shard_id: str, iterator_type: str, sequence: str | None) -> str:
        kwargs: dict[str, Any] = {
            "StreamArn": self.stream_arn,
            "ShardId": shard_id,
            "ShardIteratorType": iterator_type,
        }
        if sequence is not None:
            kwargs["SequenceNumber"] = sequence
        return self.client.get_shard_iterator(**kwargs)["ShardIterator"]

    def get_records(self, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        response = self.client.get_records(ShardIterator=iterator, Limit=min(limit, 1000))
        return response.get("Records", []), response.get("NextShardIterator")

    def sequence_number(self, record: dict[str, Any]) -> str:
        return record["dynamodb"]["SequenceNumber"]


class KinesisStreamSource:
    """A Kinesis data stream through the kinesis API."""

    max_limit = 10000

    def __init__(self, client: Any, stream_name: str) -> None:
        self.client = client
        self.stream_name = stream_name

    def list_shards(self) -> list[Shard]:
        shards: list[Shard] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream_name}
        while True:
            response = self.client.list_shards(**kwargs)
            for shard in response.get("Shards", []):
                parents = tuple(
                    p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p
                )
                shards.append(Shard(shard["ShardId"], parents))
            token = response.get("NextToken")
            if not token:
                return shards
            kwargs = {"NextToken": token}

    def shard_iterator(self, shard_id: str, iterator_type: str, sequence: str | None) -> str:
        kwargs: dict[str, Any] = {
            "StreamName": self.stream_name,
            "ShardId": shard_id,
            "ShardIteratorType": iterator_type,
        }
        if sequence is not None:
            kwargs["StartingSequenceNumber"] = sequence
        return self.client.get_shard_iterator(**kwargs)["ShardIterator"]

    def get_records(self, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        response = self.client.get_records(ShardIterator=iterator, Limit=min(limit, 10000))
        return response.get("Records", []), response.get("NextShardIterator")

    def sequence_number(self, record: dict[str, Any]) -> str:
        return record["SequenceNumber"]


@dataclass
class ShardedReader:
    """Leases, checkpoints and positions of one consumer over every shard of one stream."""

    source: ShardSource
    store: CheckpointStore
    consumer: str
    starting_position: str = "TRIM_HORIZON"
    relist_interval: float = 5.0
    states: dict[str, ShardState] = field(default_factory=dict)
    _listed_at: float = field(default=float("-inf"))
    _listed: set[str] = field(default_factory=set)

    def refresh(self, force: bool = False) -> None:
        """Re-describe the stream every `relist_interval` seconds and lease new shards."""
        if not force and time.monotonic() - self._listed_at < self.relist_interval:
            return
        shards = self.source.list_shards()
        self._listed_at = time.monotonic()
        self._listed = {shard.shard_id for shard in shards}
        for shard in shards:
            if shard.shard_id in self.states:
                continue
            checkpoint = self.store.take_lease(self.consumer, shard.shard_id)
            state = ShardState(shard=shard)
            if checkpoint is not None:
                state.checkpoint = checkpoint.sequence_number
                state.position = checkpoint.sequence_number
                state.finished = checkpoint.shard_end
                state.reached_end = checkpoint.shard_end
            self.states[shard.shard_id] = state
            log.info(
                "%s: leased shard %s (checkpoint %s%s)",
                self.consumer,
                shard.shard_id,
                state.checkpoint or "none",
                ", finished" if state.finished else "",
            )

    def _parents_done(self, state: ShardState) -> bool:
        for parent in state.shard.parent_ids:
            parent_state = self.states.get(parent)
            if parent in self._listed and parent_state is not None and not parent_state.finished:
                return False
        return True

    def readable(self) -> list[ShardState]:
        """Shards with records left to read, whose parents were read and delivered completely."""
        return [
            state
            for state in self.states.values()
            if not (state.reached_end or state.lost) and self._parents_done(state)
        ]

    def read(self, state: ShardState, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` records after the shard's position; marks the shard's end."""
        for _attempt in range(2):
            if state.iterator is None:
                state.iterator = self._new_iterator(state)
            try:
                records, next_iterator = self.source.get_records(state.iterator, limit)
            except ClientError as exc:
                if _code(exc) in ("ExpiredIteratorException", "TrimmedDataAccessException"):
                    log.warning("%s: %s on %s, re-positioning", self.consumer, _code(exc), state)
                    state.iterator = None
                    continue
                raise
            state.iterator = next_iterator
            if records:
                state.position = self.source.sequence_number(records[-1])
            if next_iterator is None:
                state.reached_end = True
            return records
        return []

    def _new_iterator(self, state: ShardState) -> str:
        if state.position is not None:
            try:
                return self.source.shard_iterator(
                    state.shard_id, "AFTER_SEQUENCE_NUMBER", state.position
                )
            except ClientError as exc:
                if _code(exc) != "TrimmedDataAccessException":
                    raise
                log.warning(
                    "%s: records after %s on %s were trimmed; reading from TRIM_HORIZON",
                    self.consumer,
                    state.position,
                    state.shard_id,
                )
        # A child shard starts at its beginning: its parent was read to the end.
        start = "TRIM_HORIZON" if state.shard.parent_ids else self.starting_position
        return self.source.shard_iterator(state.shard_id, start, None)

    def commit(self, shard_id: str, sequence: str | None, shard_end: bool = False) -> None:
        """Checkpoint `shard_id` up to `sequence` (delivered downstream); never moves back."""
        state = self.states[shard_id]
        if state.lost:
            return
        if sequence is not None and not sequence_after(sequence, state.checkpoint):
            sequence = None
        if sequence is None and not shard_end:
            return
        try:
            self.store.advance(self.consumer, shard_id, sequence, shard_end=shard_end)
        except LeaseLost as exc:
            log.warning("%s: %s; no longer reading %s", self.consumer, exc, shard_id)
            state.lost = True
            return
        if sequence is not None:
            state.checkpoint = sequence
        if shard_end:
            state.finished = True
            log.info("%s: shard %s finished", self.consumer, shard_id)

    def forget_positions(self) -> None:
        """Drop what was read but not delivered: reading resumes from the checkpoints."""
        for state in self.states.values():
            state.iterator = None
            state.position = state.checkpoint
            state.reached_end = state.finished
