"""The EventBridge Pipe data plane: DynamoDB stream records, unwrapped, into a Kinesis stream.

Per source shard, records are batched up to the pipe's BatchSize or MaximumBatchingWindowInSeconds,
put with PutRecords (partition key from the pipe's JSONPath) and only then checkpointed. A batch
the target keeps refusing is retried MaximumRetryAttempts times (or until its records are older
than MaximumRecordAgeInSeconds), halved on each exhaustion with AUTOMATIC_BISECT, then described in
the pipe's dead-letter queue and skipped, so the shard moves on.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError
from jsonpath_ng import parse as parse_jsonpath

from sales_cdc.emulator.checkpoints import CheckpointStore
from sales_cdc.emulator.shards import DynamoDBStreamSource, ShardedReader, ShardState

log = logging.getLogger(__name__)

PUT_RECORDS_MAX_ENTRIES = 500
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024
PARTITION_KEY_MAX_CHARS = 256


@dataclass(frozen=True)
class PipeConfig:
    """What the Pipes API says about one DynamoDB stream -> Kinesis pipe."""

    name: str
    arn: str
    source_arn: str
    target_arn: str
    batch_size: int
    batching_window_seconds: float
    starting_position: str
    partition_key_path: str
    maximum_retry_attempts: int = -1  # -1: retry until the record leaves the source
    maximum_record_age_seconds: int = -1  # -1: no age limit
    bisect_on_failure: bool = False
    dead_letter_arn: str | None = None

    @property
    def target_stream_name(self) -> str:
        return self.target_arn.split(":stream/", 1)[1]

    @classmethod
    def from_description(cls, pipe: dict[str, Any]) -> PipeConfig | None:
        """The pipe's configuration, or None when it is not a running DynamoDB -> Kinesis pipe."""
        source, target = pipe.get("Source", ""), pipe.get("Target", "")
        if ":dynamodb:" not in source or "/stream/" not in source or ":kinesis:" not in target:
            return None
        if pipe.get("CurrentState") != "RUNNING" or pipe.get("DesiredState") != "RUNNING":
            return None
        params = pipe.get("SourceParameters", {}).get("DynamoDBStreamParameters", {})
        target_params = pipe.get("TargetParameters", {}).get("KinesisStreamParameters", {})
        return cls(
            name=pipe["Name"],
            arn=pipe["Arn"],
            source_arn=source,
            target_arn=target,
            batch_size=int(params.get("BatchSize") or 100),
            batching_window_seconds=float(params.get("MaximumBatchingWindowInSeconds") or 0),
            starting_position=params.get("StartingPosition") or "TRIM_HORIZON",
            partition_key_path=target_params.get("PartitionKey", ""),
            maximum_retry_attempts=int(params.get("MaximumRetryAttempts", -1)),
            maximum_record_age_seconds=int(params.get("MaximumRecordAgeInSeconds", -1)),
            bisect_on_failure=params.get("OnPartialBatchItemFailure") == "AUTOMATIC_BISECT",
            dead_letter_arn=(params.get("DeadLetterConfig") or {}).get("Arn"),
        )


# -- the record as the pipe writes it ----------------------------------------------------------


def _attribute_value(value: dict[str, Any]) -> dict[str, Any]:
    """A boto3-parsed attribute value back in its wire form (binary as base64 text)."""
    (kind, inner), *_ = value.items()
    if kind == "B":
        return {"B": base64.b64encode(bytes(inner)).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(bytes(v)).decode() for v in inner]}
    if kind == "M":
        return {"M": {k: _attribute_value(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_attribute_value(v) for v in inner]}
    return {kind: inner}


def _image(image: dict[str, Any]) -> dict[str, Any]:
    return {name: _attribute_value(value) for name, value in image.items()}


def _epoch_seconds(value: Any) -> int | float:
    seconds = round(value.timestamp(), 6) if isinstance(value, datetime) else float(value)
    return int(seconds) if seconds == int(seconds) else seconds


def stream_record_payload(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A dynamodbstreams record as Pipes puts it into Kinesis (ARCHITECTURE §3.2)."""
    source = record["dynamodb"]
    dynamodb: dict[str, Any] = {}
    if "ApproximateCreationDateTime" in source:
        dynamodb["ApproximateCreationDateTime"] = _epoch_seconds(
            source["ApproximateCreationDateTime"]
        )
    for image in ("Keys", "NewImage", "OldImage"):
        if image in source:
            dynamodb[image] = _image(source[image])
    for name in ("SequenceNumber", "SizeBytes", "StreamViewType"):
        if name in source:
            dynamodb[name] = source[name]
    payload: dict[str, Any] = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": record.get("eventSource", "aws:dynamodb"),
        "awsRegion": record.get("awsRegion"),
        "eventSourceARN": stream_arn,
        "dynamodb": dynamodb,
    }
    if "userIdentity" in record:
        payload["userIdentity"] = record["userIdentity"]
    return payload


class PartitionKey:
    """The pipe's partition key JSONPath, evaluated on each record."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._expression = parse_jsonpath(path) if path.startswith("$") else None

    def evaluate(self, payload: dict[str, Any]) -> str:
        """The key for `payload`; a literal key is used as is.

        A path that matches nothing falls back to a digest of the item's key, so that every
        change of one item still goes to one shard (and its order is kept).
        """
        if self._expression is None:
            return self.path
        matches = self._expression.find(payload)
        if matches and matches[0].value not in (None, ""):
            value = matches[0].value
            key = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            if len(key) <= PARTITION_KEY_MAX_CHARS:
                return key
        keys = json.dumps(payload.get("dynamodb", {}).get("Keys", {}), sort_keys=True)
        return hashlib.sha256(keys.encode()).hexdigest()


# -- the worker -------------------------------------------------------------------------------


class PipeWorker:
    """Runs one pipe until stopped: read, batch, PutRecords, checkpoint."""

    def __init__(
        self,
        config: PipeConfig,
        dynamodbstreams: Any,
        kinesis: Any,
        store: CheckpointStore,
        stop: threading.Event,
        poll_interval: float = 0.3,
        relist_interval: float = 5.0,
        sqs: Any = None,
    ) -> None:
        self.config = config
        self.kinesis = kinesis
        self.sqs = sqs
        self.stop = stop
        self.poll_interval = poll_interval
        self._partition_key = PartitionKey(config.partition_key_path)
        self.reader = ShardedReader(
            source=DynamoDBStreamSource(dynamodbstreams, config.source_arn),
            store=store,
            consumer=f"pipe:{config.name}",
            starting_position=config.starting_position,
            relist_interval=relist_interval,
        )
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._pending_since: dict[str, float] = {}
        self.retired = threading.Event()  # set when the pipe is gone: finish and stop
        self.stats = {
            "records": 0,
            "batches": 0,
            "read_seconds": 0.0,
            "put_seconds": 0.0,
            "checkpoint_seconds": 0.0,
            "dead_lettered_records": 0,
        }

    def update(self, config: PipeConfig) -> None:
        """Apply a changed configuration (batching, partition key) from the next batch on."""
        if config != self.config:
            log.info("pipe %s: configuration changed", config.name)
            self.config = config
            self._partition_key = PartitionKey(config.partition_key_path)

    def run(self) -> None:
        log.info("pipe %s: %s -> %s", self.config.name, self.config.source_arn,
                 self.config.target_arn)  # fmt: skip
        backoff = self.poll_interval
        while not (self.stop.is_set() or self.retired.is_set()):
            try:
                busy = self.step()
                backoff = self.poll_interval
            except BotoCoreError as exc:  # the emulator is down or restarting
                log.warning("pipe %s: %s; resuming from checkpoints", self.config.name, exc)
                self._reset()
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception:  # noqa: BLE001 - keep running; resume from the checkpoints
                log.exception("pipe %s: step failed; resuming from checkpoints", self.config.name)
                self._reset()
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if not busy:
                self.stop.wait(self._idle_wait())
        self._drain()
        log.info("pipe %s: stopped; stats %s", self.config.name, json.dumps(self.stats))

    def _reset(self) -> None:
        """Forget what was read but not delivered; reading resumes from the checkpoints."""
        self._pending.clear()
        self._pending_since.clear()
        self.reader.forget_positions()

    def _idle_wait(self) -> float:
        wait = self.poll_interval
        window = self.config.batching_window_seconds
        for since in self._pending_since.values():
            wait = min(wait, max(0.0, since + window - time.monotonic()))
        return max(wait, 0.01)

    def _drain(self) -> None:
        """On shutdown deliver what was read, so the checkpoints cover it."""
        try:
            for shard_id in list(self._pending):
                if self._pending[shard_id]:
                    self._deliver(self.reader.states[shard_id], final=True)
        except Exception:  # noqa: BLE001 - undelivered records are read again on restart
            log.exception("pipe %s: could not deliver on shutdown", self.config.name)

    def step(self) -> bool:
        """One pass over the readable shards; True when a shard may have more records waiting."""
        self.reader.refresh()
        busy = False
        config = self.config
        for state in self.reader.readable():
            pending = self._pending.setdefault(state.shard_id, [])
            room = config.batch_size - len(pending)
            if room > 0:
                started = time.perf_counter()
                records = self.reader.read(state, room)
                self.stats["read_seconds"] += time.perf_counter() - started
                # Only a full page means more is waiting: otherwise wait a poll interval rather
                # than asking the emulator again at once for one record at a time.
                busy = busy or len(records) >= room
                if records:
                    if not pending:
                        self._pending_since[state.shard_id] = time.monotonic()
                    pending.extend(records)
            if pending and self._due(state, pending):
                self._deliver(state)
        for state in list(self.reader.states.values()):
            if state.reached_end and not state.finished and not self._pending.get(state.shard_id):
                self.reader.commit(state.shard_id, None, shard_end=True)
        return busy

    def _due(self, state: ShardState, pending: list[dict[str, Any]]) -> bool:
        if len(pending) >= self.config.batch_size or state.reached_end:
            return True
        since = self._pending_since.get(state.shard_id, time.monotonic())
        return time.monotonic() - since >= self.config.batching_window_seconds

    def _deliver(self, state: ShardState, final: bool = False) -> None:
        records = self._pending.pop(state.shard_id, [])
        self._pending_since.pop(state.shard_id, None)
        if not records:
            return
        entries = []
        for record in records:
            payload = stream_record_payload(record, self.config.source_arn)
            data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
            entries.append({"Data": data, "PartitionKey": self._partition_key.evaluate(payload)})
        started = time.perf_counter()
        deadline = time.monotonic() + 5.0 if final else None
        if not self.put_in_order(entries, deadline, records, state.shard_id):
            # Stopping while the target refuses: nothing is checkpointed, it is read again.
            return
        self.stats["put_seconds"] += time.perf_counter() - started
        self.stats["records"] += len(entries)
        self.stats["batches"] += 1
        last = records[-1]["dynamodb"]["SequenceNumber"]
        started = time.perf_counter()
        self.reader.commit(state.shard_id, last, shard_end=state.reached_end)
        self.stats["checkpoint_seconds"] += time.perf_counter() - started

    def put_in_order(
        self,
        entries: list[dict[str, Any]],
        deadline: float | None = None,
        records: list[dict[str, Any]] | None = None,
        shard_id: str = "",
    ) -> bool:
        """PutRecords every entry; on a partial failure resend from the first failed one on.

        Resending the successful entries after it keeps every key's order (duplicates are
        allowed downstream). After MaximumRetryAttempts failed attempts (or once the first
        refused record is older than MaximumRecordAgeInSeconds) the rest of the batch is halved
        (AUTOMATIC_BISECT) or described in the dead-letter queue and skipped. False when the
        runtime stops (or `deadline` passes) first: nothing is skipped then.
        """
        records = records if records is not None else [{} for _ in entries]
        start = 0
        attempts = 0
        backoff = 0.05
        while start < len(entries):
            chunk = _chunk(entries, start)
            response = self.kinesis.put_records(
                StreamName=self.config.target_stream_name, Records=chunk
            )
            if not response.get("FailedRecordCount"):
                start += len(chunk)
                backoff = 0.05
                continue
            failed = next(
                i for i, result in enumerate(response["Records"]) if result.get("ErrorCode")
            )
            error = response["Records"][failed]
            log.warning(
                "pipe %s: %d of %d records refused (%s); resending from the first refused",
                self.config.name,
                response["FailedRecordCount"],
                len(chunk),
                error.get("ErrorCode"),
            )
            start += failed
            attempts += 1
            condition = self._exhausted(attempts, records[start])
            if condition:
                rest, rest_records = entries[start:], records[start:]
                if self.config.bisect_on_failure and len(rest) > 1:
                    half = len(rest) // 2
                    return self.put_in_order(
                        rest[:half], deadline, rest_records[:half], shard_id
                    ) and self.put_in_order(rest[half:], deadline, rest_records[half:], shard_id)
                self._dead_letter(rest_records, shard_id, condition, attempts, error)
                return True
            if deadline is None:
                if self.stop.wait(backoff):
                    return False
            elif time.monotonic() > deadline:
                return False
            else:
                time.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
        return True

    def _exhausted(self, attempts: int, record: dict[str, Any]) -> str | None:
        """Why the pipe gives up on a batch now, or None to retry it."""
        config = self.config
        if 0 <= config.maximum_retry_attempts < attempts:
            return "RetryAttemptsExhausted"
        created = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
        if config.maximum_record_age_seconds >= 0 and created is not None:
            age = time.time() - _epoch_seconds(created)
            if age > config.maximum_record_age_seconds:
                return "RecordAgeExceeded"
        return None

    def _dead_letter(
        self,
        records: list[dict[str, Any]],
        shard_id: str,
        condition: str,
        attempts: int,
        error: dict[str, Any],
    ) -> None:
        """Describe the skipped records in the dead-letter queue (or log them without one)."""
        message = dead_letter_message(self.config, records, shard_id, condition, attempts, error)
        self.stats["dead_lettered_records"] += len(records)
        if not self.config.dead_letter_arn or self.sqs is None:
            log.error("pipe %s: skipping records (no dead-letter queue): %s",
                      self.config.name, json.dumps(message))  # fmt: skip
            return
        queue = self.config.dead_letter_arn.rsplit(":", 1)[1]
        url = self.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        self.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message))
        log.error("pipe %s: %d record(s) sent to the dead-letter queue (%s)",
                  self.config.name, len(records), condition)  # fmt: skip


def dead_letter_message(
    config: PipeConfig,
    records: list[dict[str, Any]],
    shard_id: str,
    condition: str,
    attempts: int,
    error: dict[str, Any],
) -> dict[str, Any]:
    """What Pipes puts in a stream source's DLQ: where the skipped batch is, not its records.

    The batch is described by shard and sequence range (DDBStreamBatchInfo), so it can be read
    again from the stream while the records are retained (24 h).
    """
    first, last = records[0].get("dynamodb", {}), records[-1].get("dynamodb", {})

    def arrival(image: dict[str, Any]) -> str | None:
        created = image.get("ApproximateCreationDateTime")
        if created is None:
            return None
        return (
            datetime.fromtimestamp(_epoch_seconds(created), tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )

    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "pipeArn": config.arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "responseContext": {
            "errorCode": error.get("ErrorCode"),
            "errorMessage": error.get("ErrorMessage"),
        },
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first.get("SequenceNumber"),
            "endSequenceNumber": last.get("SequenceNumber"),
            "approximateArrivalOfFirstRecord": arrival(first),
            "approximateArrivalOfLastRecord": arrival(last),
            "batchSize": len(records),
            "streamArn": config.source_arn,
        },
    }


def _chunk(entries: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
    """The longest run from `start` within PutRecords' count and size limits."""
    size = 0
    end = start
    while end < len(entries) and end - start < PUT_RECORDS_MAX_ENTRIES:
        entry_size = len(entries[end]["Data"]) + len(entries[end]["PartitionKey"].encode())
        if end > start and size + entry_size > PUT_RECORDS_MAX_BYTES:
            break
        size += entry_size
        end += 1
    return entries[start:end]
