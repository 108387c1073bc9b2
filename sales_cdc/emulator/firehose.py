"""The Kinesis Data Firehose data plane: Kinesis -> transform Lambda -> S3, as Firehose does it.

Records of every shard are buffered by the destination's size and interval hints; a full or due
buffer is sent through the deployed transform Lambda (validated like Firehose validates it),
grouped by the evaluated prefix, written as GZIP objects named as Firehose names them, failed
records written to the error prefix; only then are the shards checkpointed.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import logging
import random
import re
import string
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError

from sales_cdc.emulator.checkpoints import CheckpointStore, sequence_after
from sales_cdc.emulator.lambda_runtime import FunctionLoader, FunctionLoadError
from sales_cdc.emulator.shards import KinesisStreamSource, ShardedReader

log = logging.getLogger(__name__)

MB = 1024 * 1024
RESULTS = ("Ok", "Dropped", "ProcessingFailed")
EXTENSIONS = {"GZIP": ".gz", "UNCOMPRESSED": ""}
PROCESSING_FAILED = "processing-failed"
PARTITIONING_FAILED = "partitioning-failed"
RANDOM_STRING = "!{firehose:random-string}"
RANDOM_STRING_LENGTH = 11
READ_LIMIT = 1000  # Kinesis GetRecords page size


class UnsupportedConfiguration(ValueError):
    """A delivery stream setting the local runtime does not implement."""


@dataclass(frozen=True)
class DeliveryConfig:
    """What the Firehose API says about one Kinesis -> S3 delivery stream."""

    name: str
    arn: str
    version_id: str
    source_stream_arn: str
    bucket: str
    prefix: str
    error_prefix: str
    buffer_bytes: int
    buffer_seconds: float
    compression: str
    lambda_arn: str | None = None
    lambda_retries: int = 3
    lambda_buffer_bytes: int = MB
    dynamic_partitioning: bool = False

    @property
    def source_stream_name(self) -> str:
        return self.source_stream_arn.split(":stream/", 1)[1]

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> DeliveryConfig | None:
        """The stream's configuration, or None when it is not an active Kinesis -> S3 stream."""
        if description.get("DeliveryStreamStatus") != "ACTIVE":
            return None
        source = (description.get("Source") or {}).get("KinesisStreamSourceDescription") or {}
        destinations = description.get("Destinations") or []
        s3 = (destinations[0] if destinations else {}).get("ExtendedS3DestinationDescription")
        if not source.get("KinesisStreamARN") or not s3:
            return None
        compression = s3.get("CompressionFormat", "UNCOMPRESSED")
        if compression not in EXTENSIONS:
            raise UnsupportedConfiguration(
                f"delivery stream {description['DeliveryStreamName']}: CompressionFormat "
                f"{compression} is not implemented locally (use GZIP or UNCOMPRESSED)"
            )
        hints = s3.get("BufferingHints") or {}
        lambda_arn, retries, lambda_mb = None, 3, 1.0
        processing = s3.get("ProcessingConfiguration") or {}
        if processing.get("Enabled"):
            for processor in processing.get("Processors", []):
                if processor.get("Type") != "Lambda":
                    raise UnsupportedConfiguration(
                        f"delivery stream {description['DeliveryStreamName']}: processor "
                        f"{processor.get('Type')} is not implemented locally (only Lambda)"
                    )
                params = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
                lambda_arn = params.get("LambdaArn")
                retries = int(params.get("NumberOfRetries", 3))
                lambda_mb = float(params.get("BufferSizeInMBs", 1))
        return cls(
            name=description["DeliveryStreamName"],
            arn=description["DeliveryStreamARN"],
            version_id=str(description.get("VersionId", "1")),
            source_stream_arn=source["KinesisStreamARN"],
            bucket=s3["BucketARN"].split(":::", 1)[1],
            prefix=s3.get("Prefix") or "",
            error_prefix=s3.get("ErrorOutputPrefix") or "",
            buffer_bytes=int(float(hints.get("SizeInMBs", 5)) * MB),
            buffer_seconds=float(hints.get("IntervalInSeconds", 300)),
            compression=compression,
            lambda_arn=lambda_arn,
            lambda_retries=retries,
            lambda_buffer_bytes=int(lambda_mb * MB),
            dynamic_partitioning=bool(
                (s3.get("DynamicPartitioningConfiguration") or {}).get("Enabled")
            ),
        )


# -- prefixes and names ----------------------------------------------------------------------

_EXPRESSION = re.compile(r"!\{([A-Za-z]+):([^}]*)\}")
_TIME_TOKEN = re.compile(r"yyyy|yy|MM|dd|HH|mm|ss|SSS|'[^']*'")
_TIME_FIELDS = {
    "yyyy": "%Y",
    "yy": "%y",
    "MM": "%m",
    "dd": "%d",
    "HH": "%H",
    "mm": "%M",
    "ss": "%S",
}


class PrefixError(ValueError):
    """A prefix expression cannot be evaluated for a record."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


def format_timestamp(pattern: str, when: datetime) -> str:
    """A Java DateTimeFormatter pattern (as Firehose takes it) applied to a UTC time."""
    when = when.astimezone(UTC)

    def token(match: re.Match[str]) -> str:
        text = match.group(0)
        if text.startswith("'"):
            return text[1:-1]
        if text == "SSS":
            return f"{when.microsecond // 1000:03d}"
        return when.strftime(_TIME_FIELDS[text])

    return _TIME_TOKEN.sub(token, pattern)


def evaluate_prefix(
    template: str,
    *,
    arrival: datetime,
    partition_keys: dict[str, Any] | None = None,
    error_output_type: str | None = None,
    random_string: str | None = None,
) -> str:
    """Evaluate Firehose's `!{namespace:expression}` expressions of an S3 prefix.

    `!{firehose:random-string}` stays in the result unless `random_string` is given: it is
    drawn once per object, after the records were grouped.
    """

    def expression(match: re.Match[str]) -> str:
        namespace, argument = match.group(1), match.group(2)
        if namespace == "partitionKeyFromLambda":
            value = (partition_keys or {}).get(argument)
            if value is None or not isinstance(value, str | int | float) or value == "":
                raise PrefixError(
                    "DynamicPartitioning.MetadataExtractionFailed",
                    f"partition key {argument!r} is missing from the Lambda's metadata",
                )
            return str(value)
        if namespace == "timestamp":
            return format_timestamp(argument, arrival)
        if namespace == "firehose" and argument == "error-output-type":
            if error_output_type is None:
                raise PrefixError(
                    "S3.InvalidPrefix",
                    "!{firehose:error-output-type} is only for ErrorOutputPrefix",
                )
            return error_output_type
        if namespace == "firehose" and argument == "random-string":
            return random_string if random_string is not None else match.group(0)
        raise PrefixError("S3.InvalidPrefix", f"unsupported prefix expression {match.group(0)}")

    return _EXPRESSION.sub(expression, template)


def _random_string() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(random.choices(alphabet, k=RANDOM_STRING_LENGTH))


def object_key(
    prefix: str, delivery_name: str, version_id: str, when: datetime, extension: str
) -> str:
    """`<prefix><DeliveryStreamName>-<DeliveryStreamVersion>-<yyyy-MM-dd-HH-mm-ss>-<uuid4><ext>`."""
    if RANDOM_STRING in prefix:
        prefix = prefix.replace(RANDOM_STRING, _random_string())
    stamp = when.astimezone(UTC).strftime("%Y-%m-%d-%H-%M-%S")
    return f"{prefix}{delivery_name}-{version_id}-{stamp}-{uuid.uuid4()}{extension}"


def default_prefix(template: str, error: bool) -> str:
    """Firehose appends `yyyy/MM/dd/HH/` when a prefix has no timestamp or partition expression."""
    if error:
        if "!{" in template:
            return template
        return f"{template}!{{firehose:error-output-type}}/!{{timestamp:yyyy/MM/dd/HH}}/"
    if "!{timestamp:" in template or "!{partitionKeyFrom" in template:
        return template
    return f"{template}!{{timestamp:yyyy/MM/dd/HH}}/"


# -- Lambda request and response -------------------------------------------------------------


@dataclass
class BufferedRecord:
    """One Kinesis record waiting for delivery."""

    shard_id: str
    sequence_number: str
    partition_key: str
    data: bytes
    arrival: datetime
    subsequence_number: int = 0

    @property
    def arrival_ms(self) -> int:
        return int(self.arrival.timestamp() * 1000)


@dataclass
class RecordOutcome:
    """What processing made of one record."""

    result: str  # Ok | Dropped | ProcessingFailed
    data: bytes = b""
    partition_keys: dict[str, Any] = field(default_factory=dict)
    error_code: str = ""
    error_message: str = ""
    attempts: int = 1
    ending_ms: int = 0


class InvalidResponse(ValueError):
    """The Lambda's response breaks Firehose's contract for the whole invocation."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code


def lambda_request(
    config: DeliveryConfig, records: list[BufferedRecord], region: str
) -> tuple[dict[str, Any], list[str]]:
    """A Firehose data-transformation event for `records`, and its record ids in order."""
    ids = [f"{r.sequence_number}{i:06d}" for i, r in enumerate(records)]
    event = {
        "invocationId": str(uuid.uuid4()),
        "deliveryStreamArn": config.arn,
        "sourceKinesisStreamArn": config.source_stream_arn,
        "region": region,
        "records": [
            {
                "recordId": record_id,
                "approximateArrivalTimestamp": record.arrival_ms,
                "data": base64.b64encode(record.data).decode(),
                "kinesisRecordMetadata": {
                    "shardId": record.shard_id,
                    "partitionKey": record.partition_key,
                    "approximateArrivalTimestamp": record.arrival_ms,
                    "sequenceNumber": record.sequence_number,
                    "subsequenceNumber": record.subsequence_number,
                },
            }
            for record_id, record in zip(ids, records, strict=True)
        ],
    }
    return event, ids


def validate_response(response: Any, record_ids: list[str]) -> dict[str, RecordOutcome]:
    """Check a transform response as Firehose does; one outcome per request record id."""
    if not isinstance(response, dict) or not isinstance(response.get("records"), list):
        raise InvalidResponse(
            "Lambda.JsonProcessingException",
            "The response is not an object with a 'records' list.",
        )
    expected = set(record_ids)
    outcomes: dict[str, RecordOutcome] = {}
    for item in response["records"]:
        if not isinstance(item, dict):
            raise InvalidResponse("Lambda.JsonProcessingException", "A response record is not an object.")  # fmt: skip
        record_id = item.get("recordId")
        if record_id not in expected:
            raise InvalidResponse(
                "Lambda.JsonProcessingException",
                f"The response has a record id {record_id!r} that was not in the request.",
            )
        if record_id in outcomes:
            raise InvalidResponse(
                "Lambda.DuplicatedRecordId", f"Record id {record_id} is answered more than once."
            )
        result = item.get("result")
        if result not in RESULTS:
            raise InvalidResponse(
                "Lambda.JsonProcessingException",
                f"Record {record_id} has result {result!r}, not one of {', '.join(RESULTS)}.",
            )
        data = b""
        if result == "Ok":
            try:
                data = base64.b64decode(item.get("data"), validate=True)
            except (TypeError, ValueError, binascii.Error):
                raise InvalidResponse(
                    "Lambda.JsonProcessingException", f"Record {record_id} data is not base64."
                ) from None
        metadata = item.get("metadata") or {}
        keys = metadata.get("partitionKeys") if isinstance(metadata, dict) else None
        outcomes[record_id] = RecordOutcome(
            result=result, data=data, partition_keys=keys if isinstance(keys, dict) else {}
        )
    missing = expected - outcomes.keys()
    if missing:
        raise InvalidResponse(
            "Lambda.MissingRecordId",
            f"{len(missing)} record id(s) of the request are not in the response.",
        )
    return outcomes


def error_line(
    record: BufferedRecord, outcome: RecordOutcome, lambda_arn: str | None
) -> dict[str, Any]:
    """The JSON document Firehose writes to the error prefix for a processing failure."""
    document: dict[str, Any] = {
        "attemptsMade": outcome.attempts,
        "arrivalTimestamp": record.arrival_ms,
        "errorCode": outcome.error_code,
        "errorMessage": outcome.error_message,
        "attemptEndingTimestamp": outcome.ending_ms,
        "rawData": base64.b64encode(record.data).decode(),
    }
    if lambda_arn:
        document["lambdaArn"] = lambda_arn
    return document


# -- the worker -------------------------------------------------------------------------------


@dataclass
class DeliveredObject:
    key: str
    records: int
    bytes: int
    oldest_arrival: datetime


class DeliveryWorker:
    """Runs one delivery stream until stopped: read, buffer, transform, write, checkpoint."""

    def __init__(
        self,
        config: DeliveryConfig,
        kinesis: Any,
        s3: Any,
        functions: FunctionLoader,
        store: CheckpointStore,
        stop: threading.Event,
        region: str,
        poll_interval: float = 0.3,
        relist_interval: float = 5.0,
    ) -> None:
        self.config = config
        self.s3 = s3
        self.functions = functions
        self.stop = stop
        self.region = region
        self.poll_interval = poll_interval
        self.reader = ShardedReader(
            source=KinesisStreamSource(kinesis, config.source_stream_name),
            store=store,
            consumer=f"firehose:{config.name}",
            starting_position="TRIM_HORIZON",
            relist_interval=relist_interval,
        )
        self._buffer: list[BufferedRecord] = []
        self._buffer_bytes = 0
        self._buffer_since = 0.0
        self.retired = threading.Event()
        self.stats: dict[str, float] = {
            "records": 0,
            "objects": 0,
            "read_seconds": 0.0,
            "lambda_seconds": 0.0,
            "s3_seconds": 0.0,
            "checkpoint_seconds": 0.0,
        }

    def update(self, config: DeliveryConfig) -> None:
        if config != self.config:
            log.info("delivery stream %s: configuration changed (version %s)", config.name,
                     config.version_id)  # fmt: skip
            self.config = config

    def run(self) -> None:
        log.info("delivery stream %s: %s -> s3://%s/%s", self.config.name,
                 self.config.source_stream_arn, self.config.bucket, self.config.prefix)  # fmt: skip
        backoff = self.poll_interval
        while not (self.stop.is_set() or self.retired.is_set()):
            try:
                busy = self.step()
                backoff = self.poll_interval
            except BotoCoreError as exc:  # the emulator is down or restarting
                log.warning(
                    "delivery stream %s: %s; resuming from checkpoints", self.config.name, exc
                )
                self._reset()
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception:  # noqa: BLE001 - keep running; resume from the checkpoints
                log.exception("delivery stream %s: step failed; resuming from checkpoints",
                              self.config.name)  # fmt: skip
                self._reset()
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if not busy:
                self.stop.wait(self._idle_wait())
        if self._buffer:
            try:
                self.flush(final=True)
            except Exception:  # noqa: BLE001 - undelivered records are read again on restart
                log.exception("delivery stream %s: could not deliver on shutdown", self.config.name)
        log.info("delivery stream %s: stopped; stats %s", self.config.name, json.dumps(self.stats))

    def _reset(self) -> None:
        self._buffer.clear()
        self._buffer_bytes = 0
        self.reader.forget_positions()

    def _idle_wait(self) -> float:
        wait = self.poll_interval
        if self._buffer:
            due = self._buffer_since + self.config.buffer_seconds - time.monotonic()
            wait = min(wait, max(due, 0.0))
        return max(wait, 0.01)

    def step(self) -> bool:
        """One pass: read what fits in the buffer, flush when due; True when more may be waiting."""
        self.reader.refresh()
        busy = False
        for state in self.reader.readable():
            if self._buffer_bytes >= self.config.buffer_bytes:
                break
            started = time.perf_counter()
            records = self.reader.read(state, READ_LIMIT)
            self.stats["read_seconds"] += time.perf_counter() - started
            busy = busy or len(records) >= READ_LIMIT  # a full page: more may be waiting
            if not records:
                continue
            if not self._buffer:
                self._buffer_since = time.monotonic()
            for record in records:
                data = bytes(record["Data"])
                self._buffer.append(
                    BufferedRecord(
                        shard_id=state.shard_id,
                        sequence_number=record["SequenceNumber"],
                        partition_key=record.get("PartitionKey", ""),
                        data=data,
                        arrival=record["ApproximateArrivalTimestamp"].astimezone(UTC),
                    )
                )
                self._buffer_bytes += len(data)
        if self._buffer and (
            self._buffer_bytes >= self.config.buffer_bytes
            or time.monotonic() - self._buffer_since >= self.config.buffer_seconds
        ):
            self.flush()
        for state in list(self.reader.states.values()):
            if state.reached_end and not state.finished and not self._buffer:
                self.reader.commit(state.shard_id, None, shard_end=True)
        return busy

    # -- processing ------------------------------------------------------------------------

    def process(self, records: list[BufferedRecord]) -> list[RecordOutcome]:
        """Every record through the transform Lambda (or as is without one)."""
        config = self.config
        if config.lambda_arn is None:
            return [RecordOutcome("Ok", data=r.data) for r in records]
        outcomes: list[RecordOutcome] = []
        for chunk in _invocation_chunks(records, config.lambda_buffer_bytes):
            outcomes.extend(self._invoke(chunk))
        return outcomes

    def _invoke(self, records: list[BufferedRecord]) -> list[RecordOutcome]:
        config = self.config
        attempts = config.lambda_retries + 1
        code, message = "", ""
        for attempt in range(1, attempts + 1):
            started = time.perf_counter()
            try:
                function = self.functions.get(config.lambda_arn or "")
                event, ids = lambda_request(config, records, self.region)
                response = function.invoke(event)
                answered = validate_response(response, ids)
                outcomes = [answered[record_id] for record_id in ids]
                now_ms = int(time.time() * 1000)
                for outcome in outcomes:
                    outcome.attempts = attempt
                    if outcome.result == "ProcessingFailed":
                        outcome.error_code = "Lambda.ProcessingFailed"
                        outcome.error_message = (
                            "The Lambda function returned ProcessingFailed for this record."
                        )
                        outcome.ending_ms = now_ms
                return outcomes
            except FunctionLoadError as exc:
                code, message = "Lambda.InvokeFailed", str(exc)
            except InvalidResponse as exc:
                code, message = exc.error_code, str(exc)
            except Exception as exc:  # noqa: BLE001 - a raising handler is a function error
                code = "Lambda.FunctionError"
                message = (
                    "The Lambda function was successfully invoked but it returned an error "
                    f"result: {type(exc).__name__}: {exc}"
                )
            finally:
                self.stats["lambda_seconds"] += time.perf_counter() - started
            log.warning("delivery stream %s: invocation %d/%d of %d records failed: %s %s",
                        config.name, attempt, attempts, len(records), code, message)  # fmt: skip
        ending_ms = int(time.time() * 1000)
        return [
            RecordOutcome(
                "ProcessingFailed",
                error_code=code,
                error_message=message,
                attempts=attempts,
                ending_ms=ending_ms,
            )
            for _ in records
        ]

    # -- delivery --------------------------------------------------------------------------

    def flush(self, final: bool = False) -> list[DeliveredObject]:
        """Deliver the whole buffer, then checkpoint each shard up to its last buffered record."""
        records, self._buffer = self._buffer, []
        self._buffer_bytes = 0
        config = self.config
        outcomes = self.process(records)
        ok_groups: OrderedDict[str, list[tuple[BufferedRecord, bytes]]] = OrderedDict()
        error_groups: OrderedDict[str, list[tuple[BufferedRecord, bytes]]] = OrderedDict()
        prefix = default_prefix(config.prefix, error=False)
        error_prefix = default_prefix(config.error_prefix, error=True)
        for record, outcome in zip(records, outcomes, strict=True):
            error_type = PROCESSING_FAILED
            if outcome.result == "Ok":
                try:
                    key = evaluate_prefix(
                        prefix, arrival=record.arrival, partition_keys=outcome.partition_keys
                    )
                    ok_groups.setdefault(key, []).append((record, outcome.data))
                    continue
                except PrefixError as exc:
                    error_type = PARTITIONING_FAILED
                    outcome.error_code, outcome.error_message = exc.error_code, str(exc)
                    outcome.ending_ms = int(time.time() * 1000)
            elif outcome.result == "Dropped":
                continue
            line = json.dumps(error_line(record, outcome, config.lambda_arn)) + "\n"
            key = evaluate_prefix(
                error_prefix, arrival=record.arrival, error_output_type=error_type
            )
            error_groups.setdefault(key, []).append((record, line.encode()))
        delivered = [self._write(key, items, final) for key, items in ok_groups.items()]
        delivered += [self._write(key, items, final) for key, items in error_groups.items()]
        started = time.perf_counter()
        last: dict[str, str] = {}
        for record in records:
            current = last.get(record.shard_id)
            if current is None or sequence_after(record.sequence_number, current):
                last[record.shard_id] = record.sequence_number
        for shard_id, sequence in last.items():
            state = self.reader.states[shard_id]
            self.reader.commit(shard_id, sequence, shard_end=state.reached_end)
        self.stats["checkpoint_seconds"] += time.perf_counter() - started
        self.stats["records"] += len(records)
        return delivered

    def _write(
        self, prefix: str, items: list[tuple[BufferedRecord, bytes]], final: bool
    ) -> DeliveredObject:
        config = self.config
        body = b"".join(data for _, data in items)
        if config.compression == "GZIP":
            body = gzip.compress(body, compresslevel=6, mtime=0)
        key = object_key(
            prefix,
            config.name,
            config.version_id,
            datetime.now(UTC),
            EXTENSIONS[config.compression],
        )
        backoff = 0.1
        deadline = time.monotonic() + 10.0 if final else None
        while True:
            started = time.perf_counter()
            try:
                self.s3.put_object(Bucket=config.bucket, Key=key, Body=body)
                break
            except Exception:
                # Firehose retries S3 delivery until it succeeds; stopping leaves it unread.
                log.exception("delivery stream %s: writing s3://%s/%s failed", config.name,
                              config.bucket, key)  # fmt: skip
                if (deadline is not None and time.monotonic() > deadline) or (
                    deadline is None and self.stop.is_set()
                ):
                    raise
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self.stats["s3_seconds"] += time.perf_counter() - started
        oldest = min(record.arrival for record, _ in items)
        lag = (datetime.now(UTC) - oldest).total_seconds()
        self.stats["objects"] += 1
        log.info(
            "delivered s3://%s/%s records=%d bytes=%d lag=%.3fs",
            config.bucket,
            key,
            len(items),
            len(body),
            lag,
        )
        return DeliveredObject(key=key, records=len(items), bytes=len(body), oldest_arrival=oldest)


def _invocation_chunks(records: list[BufferedRecord], max_bytes: int) -> list[list[BufferedRecord]]:
    """Records split so that each invocation's payload stays under the processor's buffer size."""
    chunks: list[list[BufferedRecord]] = []
    current: list[BufferedRecord] = []
    size = 0
    for record in records:
        record_size = len(record.data) * 4 // 3 + 256
        if current and size + record_size > max_bytes:
            chunks.append(current)
            current, size = [], 0
        current.append(record)
        size += record_size
    if current:
        chunks.append(current)
    return chunks
