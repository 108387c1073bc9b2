"""The pipe's record shape, partition key and in-order PutRecords retries."""

import json
import threading
from datetime import UTC, datetime
from typing import Any

from sales_cdc.emulator.pipe import (
    PartitionKey,
    PipeConfig,
    PipeWorker,
    stream_record_payload,
)

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2026-01-01T00:00:00.000"


def _stream_record() -> dict[str, Any]:
    """A record as boto3's dynamodbstreams.get_records returns it (datetime, bytes parsed)."""
    return {
        "eventID": "e1",
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=UTC),
            "Keys": {"orderId": {"S": "o-1"}},
            "NewImage": {
                "orderId": {"S": "o-1"},
                "blob": {"B": b"\x00\x01"},
                "tags": {"BS": [b"a"]},
                "nested": {"M": {"l": {"L": [{"N": "1.50"}, {"NULL": True}]}}},
            },
            "OldImage": {"orderId": {"S": "o-1"}},
            "SequenceNumber": "1100000000000000000001",
            "SizeBytes": 99,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def test_payload_is_the_unwrapped_stream_record_with_epoch_seconds() -> None:
    payload = stream_record_payload(_stream_record(), STREAM_ARN)
    assert list(payload) == [
        "eventID",
        "eventName",
        "eventVersion",
        "eventSource",
        "awsRegion",
        "eventSourceARN",
        "dynamodb",
    ]
    assert payload["eventSourceARN"] == STREAM_ARN
    dynamodb = payload["dynamodb"]
    assert dynamodb["ApproximateCreationDateTime"] == 1767323045.25
    assert dynamodb["NewImage"]["blob"] == {"B": "AAE="}
    assert dynamodb["NewImage"]["tags"] == {"BS": ["YQ=="]}
    assert dynamodb["NewImage"]["nested"]["M"]["l"]["L"] == [{"N": "1.50"}, {"NULL": True}]
    assert list(dynamodb) == [
        "ApproximateCreationDateTime",
        "Keys",
        "NewImage",
        "OldImage",
        "SequenceNumber",
        "SizeBytes",
        "StreamViewType",
    ]
    json.dumps(payload)  # serialisable as is


def test_partition_key_from_jsonpath() -> None:
    payload = stream_record_payload(_stream_record(), STREAM_ARN)
    assert PartitionKey("$.dynamodb.Keys.orderId.S").evaluate(payload) == "o-1"
    assert PartitionKey("static-key").evaluate(payload) == "static-key"
    fallback = PartitionKey("$.dynamodb.Keys.missing.S").evaluate(payload)
    assert len(fallback) == 64  # a digest of the item key: stable per item
    assert fallback == PartitionKey("$.nothing").evaluate(payload)


class _FlakyKinesis:
    """Refuses given entries on the first attempt, as Kinesis does under throttling."""

    def __init__(self, refuse_first: set[bytes]) -> None:
        self.refuse = set(refuse_first)
        self.accepted: list[bytes] = []
        self.calls = 0

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.calls += 1
        results = []
        for entry in Records:
            if entry["Data"] in self.refuse:
                self.refuse.discard(entry["Data"])
                results.append({"ErrorCode": "ProvisionedThroughputExceededException"})
            else:
                self.accepted.append(entry["Data"])
                results.append({"SequenceNumber": "1", "ShardId": "shardId-000000000000"})
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedRecordCount": failed, "Records": results}


def _worker(kinesis: Any) -> PipeWorker:
    worker = PipeWorker.__new__(PipeWorker)
    worker.config = PipeConfig("p", "arn:p", STREAM_ARN, "arn:aws:kinesis:r:1:stream/s", 10, 1,
                               "TRIM_HORIZON", "$.k")  # fmt: skip
    worker.kinesis = kinesis
    worker.stop = threading.Event()
    return worker


def test_failed_entries_are_resent_without_overtaking_earlier_ones() -> None:
    entries = [{"Data": f"k{i % 2}-{i}".encode(), "PartitionKey": f"k{i % 2}"} for i in range(8)]
    kinesis = _FlakyKinesis(refuse_first={b"k1-3", b"k0-6"})
    assert _worker(kinesis).put_in_order(entries)
    assert kinesis.calls == 2  # the second call resends everything from k1-3 on
    # Within one PutRecords call Kinesis may accept k1-5 while refusing k1-3; resending from the
    # first refused entry on puts every key's records, by their last copy, in their order.
    for key in ("k0", "k1"):
        mine = [d for d in kinesis.accepted if d.startswith(key.encode())]
        last_seen: dict[bytes, int] = {d: i for i, d in enumerate(mine)}
        ordered = sorted(last_seen, key=last_seen.__getitem__)
        assert ordered == [e["Data"] for e in entries if e["PartitionKey"] == key]
    assert set(kinesis.accepted) == {e["Data"] for e in entries}


def test_pipe_config_only_for_running_dynamodb_to_kinesis_pipes() -> None:
    described = {
        "Name": "p",
        "Arn": "arn:p",
        "Source": STREAM_ARN,
        "Target": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        "CurrentState": "RUNNING",
        "DesiredState": "RUNNING",
        "SourceParameters": {
            "DynamoDBStreamParameters": {
                "BatchSize": 50,
                "MaximumBatchingWindowInSeconds": 2,
                "StartingPosition": "LATEST",
            }
        },
        "TargetParameters": {"KinesisStreamParameters": {"PartitionKey": "$.a"}},
    }
    config = PipeConfig.from_description(described)
    assert config is not None
    assert (config.batch_size, config.batching_window_seconds) == (50, 2.0)
    assert (config.starting_position, config.target_stream_name) == ("LATEST", "s")
    assert PipeConfig.from_description({**described, "CurrentState": "STOPPED"}) is None
    assert PipeConfig.from_description({**described, "Target": "arn:aws:sqs:r:1:q"}) is None


class _RefusingKinesis:
    """Always refuses the poison entries, as a target that keeps failing them does."""

    def __init__(self, poison: set[bytes]) -> None:
        self.poison = poison
        self.accepted: list[bytes] = []
        self.calls = 0

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.calls += 1
        results = []
        for entry in Records:
            if entry["Data"] in self.poison:
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "refused"})
            else:
                self.accepted.append(entry["Data"])
                results.append({"SequenceNumber": "1", "ShardId": "shardId-000000000000"})
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedRecordCount": failed, "Records": results}


class _Queue:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def get_queue_url(self, QueueName: str) -> dict[str, str]:  # noqa: N803
        return {"QueueUrl": f"http://q/{QueueName}"}

    def send_message(self, QueueUrl: str, MessageBody: str) -> dict[str, str]:  # noqa: N803
        self.messages.append(json.loads(MessageBody))
        return {"MessageId": "m"}


def _bounded_worker(kinesis: Any, queue: _Queue, bisect: bool) -> PipeWorker:
    worker = _worker(kinesis)
    worker.config = PipeConfig(
        "p", "arn:aws:pipes:us-east-1:1:pipe/p", STREAM_ARN, "arn:aws:kinesis:r:1:stream/s",
        10, 1, "TRIM_HORIZON", "$.k",
        maximum_retry_attempts=2,
        bisect_on_failure=bisect,
        dead_letter_arn="arn:aws:sqs:us-east-1:1:p-dead-letters",
    )  # fmt: skip
    worker.sqs = queue
    worker.stats = {"dead_lettered_records": 0}
    return worker


def _records(n: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {"dynamodb": {"SequenceNumber": f"{100 + i}", "ApproximateCreationDateTime": now}}
        for i in range(n)
    ]


# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-error-troubleshooting.html
def test_a_poison_record_is_dead_lettered_alone_after_bisecting_and_the_rest_delivered():
    """Retries up to MaximumRetryAttempts, AUTOMATIC_BISECT down to one record, then the DLQ."""
    entries = [{"Data": f"r{i}".encode(), "PartitionKey": f"k{i}"} for i in range(8)]
    kinesis, queue = _RefusingKinesis(poison={b"r5"}), _Queue()
    worker = _bounded_worker(kinesis, queue, bisect=True)
    assert worker.put_in_order(entries, records=_records(8), shard_id="shard-1")
    assert set(kinesis.accepted) == {e["Data"] for e in entries} - {b"r5"}
    assert len(queue.messages) == 1
    message = queue.messages[0]
    info = message["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == ("105", "105")
    assert (info["batchSize"], info["shardId"], info["streamArn"]) == (1, "shard-1", STREAM_ARN)
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["approximateInvokeCount"] == 3  # 1 + 2 retries
    assert message["requestContext"]["pipeArn"] == "arn:aws:pipes:us-east-1:1:pipe/p"
    assert message["responseContext"]["errorCode"] == "InternalFailure"
    assert worker.stats["dead_lettered_records"] == 1


def test_without_bisect_the_rest_of_the_batch_is_dead_lettered_after_the_retries():
    entries = [{"Data": f"r{i}".encode(), "PartitionKey": f"k{i}"} for i in range(6)]
    kinesis, queue = _RefusingKinesis(poison={b"r2"}), _Queue()
    worker = _bounded_worker(kinesis, queue, bisect=False)
    assert worker.put_in_order(entries, records=_records(6), shard_id="shard-1")
    assert kinesis.accepted[:2] == [b"r0", b"r1"]
    assert kinesis.calls == 3  # first attempt + 2 retries, then given up
    info = queue.messages[0]["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        "102",
        "105",
        4,
    )


def test_old_records_are_dead_lettered_by_age_and_infinite_retries_keep_trying():
    entries = [{"Data": b"r0", "PartitionKey": "k"}]
    kinesis, queue = _RefusingKinesis(poison={b"r0"}), _Queue()
    worker = _bounded_worker(kinesis, queue, bisect=False)
    worker.config = PipeConfig(
        "p", "arn:p", STREAM_ARN, "arn:aws:kinesis:r:1:stream/s", 10, 1, "TRIM_HORIZON", "$.k",
        maximum_retry_attempts=-1, maximum_record_age_seconds=60,
        dead_letter_arn="arn:aws:sqs:us-east-1:1:q",
    )  # fmt: skip
    old = [{"dynamodb": {"SequenceNumber": "7", "ApproximateCreationDateTime": 1_000_000_000}}]
    assert worker.put_in_order(entries, records=old, shard_id="s")
    assert queue.messages[0]["requestContext"]["condition"] == "RecordAgeExceeded"
    # Infinite retries and no age limit: stopping the runtime is the only way out.
    worker.config = PipeConfig(
        "p", "arn:p", STREAM_ARN, "arn:aws:kinesis:r:1:stream/s", 10, 1, "TRIM_HORIZON", "$.k"
    )
    assert not worker.put_in_order(entries, deadline=0.0, records=old, shard_id="s")
    assert len(queue.messages) == 1


def test_pipe_config_reads_the_retry_and_dead_letter_settings() -> None:
    described = {
        "Name": "p",
        "Arn": "arn:p",
        "Source": STREAM_ARN,
        "Target": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        "CurrentState": "RUNNING",
        "DesiredState": "RUNNING",
        "SourceParameters": {
            "DynamoDBStreamParameters": {
                "StartingPosition": "TRIM_HORIZON",
                "MaximumRetryAttempts": 3,
                "MaximumRecordAgeInSeconds": 120,
                "OnPartialBatchItemFailure": "AUTOMATIC_BISECT",
                "DeadLetterConfig": {"Arn": "arn:aws:sqs:us-east-1:123456789012:q"},
            }
        },
        "TargetParameters": {"KinesisStreamParameters": {"PartitionKey": "$.a"}},
    }
    config = PipeConfig.from_description(described)
    assert config is not None
    assert (config.maximum_retry_attempts, config.maximum_record_age_seconds) == (3, 120)
    assert config.bisect_on_failure and config.dead_letter_arn.endswith(":q")


class _Reader:
    def __init__(self) -> None:
        self.commits: list[tuple[str, str | None, bool]] = []

    def commit(self, shard_id: str, sequence: str | None, shard_end: bool = False) -> None:
        self.commits.append((shard_id, sequence, shard_end))


def test_the_shard_moves_on_past_a_dead_lettered_batch() -> None:
    kinesis, queue = _RefusingKinesis(poison=set()), _Queue()
    worker = _bounded_worker(kinesis, queue, bisect=False)
    worker.reader = _Reader()
    worker._partition_key = PartitionKey("$.dynamodb.Keys.orderId.S")
    worker._pending, worker._pending_since = {}, {}
    worker.stats.update(records=0, batches=0, put_seconds=0.0, checkpoint_seconds=0.0)
    records = [_stream_record() for _ in range(3)]
    for i, record in enumerate(records):
        record["eventID"] = f"e{i}"
        record["dynamodb"] = {**record["dynamodb"], "SequenceNumber": f"{200 + i}"}
    poison = stream_record_payload(records[1], STREAM_ARN)
    kinesis.poison = {json.dumps(poison, separators=(",", ":"), ensure_ascii=False).encode()}
    worker._pending["shard-1"] = records
    state = threading.local()
    state.shard_id, state.reached_end = "shard-1", False
    worker._deliver(state)  # type: ignore[arg-type]
    # e1 is refused on every attempt (1 + 2 retries); e2, resent after it each time, may land as
    # duplicates (allowed downstream); then e1..e2 are described in the queue.
    accepted = {json.loads(d)["eventID"] for d in kinesis.accepted}
    assert accepted == {"e0", "e2"} and kinesis.calls == 3
    assert worker.reader.commits == [("shard-1", "202", False)]  # checkpointed past the batch
    info = queue.messages[0]["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == ("201", "202")
