"""Firehose semantics of the local runtime: prefixes, object names, Lambda contract, error records."""

import base64
import gzip
import json
import re
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from sales_cdc.emulator.firehose import (
    BufferedRecord,
    DeliveryConfig,
    DeliveryWorker,
    InvalidResponse,
    PrefixError,
    default_prefix,
    error_line,
    evaluate_prefix,
    format_timestamp,
    lambda_request,
    object_key,
    validate_response,
)
from sales_cdc.emulator.lambda_runtime import DeployedFunction

ARRIVAL = datetime(2026, 3, 7, 4, 5, 6, 789000, tzinfo=UTC)
PREFIX = (
    "raw/orders_cdc/year=!{partitionKeyFromLambda:year}/month=!{partitionKeyFromLambda:month}/"
    "day=!{partitionKeyFromLambda:day}/hour=!{partitionKeyFromLambda:hour}/"
)
ERROR_PREFIX = (
    "errors/orders_cdc/!{firehose:error-output-type}/year=!{timestamp:yyyy}/"
    "month=!{timestamp:MM}/day=!{timestamp:dd}/hour=!{timestamp:HH}/"
)


def test_partition_keys_from_lambda_fill_the_prefix() -> None:
    keys = {"year": "2025", "month": "12", "day": "31", "hour": "23"}
    assert (
        evaluate_prefix(PREFIX, arrival=ARRIVAL, partition_keys=keys)
        == "raw/orders_cdc/year=2025/month=12/day=31/hour=23/"
    )


def test_missing_partition_key_is_a_partitioning_error() -> None:
    with pytest.raises(PrefixError) as raised:
        evaluate_prefix(PREFIX, arrival=ARRIVAL, partition_keys={"year": "2025"})
    assert raised.value.error_code == "DynamicPartitioning.MetadataExtractionFailed"


def test_error_prefix_uses_error_type_and_utc_arrival_time() -> None:
    local = ARRIVAL.astimezone(timezone(timedelta(hours=5)))  # same instant, another zone
    assert (
        evaluate_prefix(ERROR_PREFIX, arrival=local, error_output_type="processing-failed")
        == "errors/orders_cdc/processing-failed/year=2026/month=03/day=07/hour=04/"
    )


def test_timestamp_patterns_and_random_string() -> None:
    assert format_timestamp("yyyy/MM/dd/HH/mm/ss.SSS 'at' yy", ARRIVAL) == (
        "2026/03/07/04/05/06.789 at 26"
    )
    template = "x/!{firehose:random-string}/"
    assert evaluate_prefix(template, arrival=ARRIVAL) == template  # drawn per object, later
    filled = evaluate_prefix(template, arrival=ARRIVAL, random_string="abc")
    assert filled == "x/abc/"
    with pytest.raises(PrefixError):
        evaluate_prefix("!{partitionKeyFromQuery:x}/", arrival=ARRIVAL)


def test_default_prefixes_add_the_time_folders() -> None:
    assert default_prefix("", error=False) == "!{timestamp:yyyy/MM/dd/HH}/"
    assert default_prefix(PREFIX, error=False) == PREFIX
    assert default_prefix("err/", error=True).startswith("err/!{firehose:error-output-type}/")


def test_object_names_follow_firehose() -> None:
    key = object_key("p/!{firehose:random-string}/", "stream-x", "3", ARRIVAL, ".gz")
    match = re.fullmatch(
        r"p/([A-Za-z0-9]{11})/stream-x-3-2026-03-07-04-05-06-"
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.gz",
        key,
    )
    assert match, key


def _record(data: bytes, sequence: str = "7", shard: str = "shardId-000000000000"):
    return BufferedRecord(
        shard_id=shard, sequence_number=sequence, partition_key="k", data=data, arrival=ARRIVAL
    )


def _config(**overrides: Any) -> DeliveryConfig:
    values: dict[str, Any] = {
        "name": "d",
        "arn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/d",
        "version_id": "1",
        "source_stream_arn": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        "bucket": "b",
        "prefix": PREFIX,
        "error_prefix": ERROR_PREFIX,
        "buffer_bytes": 1024,
        "buffer_seconds": 1,
        "compression": "GZIP",
        "lambda_arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
        "lambda_retries": 2,
    }
    values.update(overrides)
    return DeliveryConfig(**values)


def test_lambda_request_is_a_firehose_event() -> None:
    event, ids = lambda_request(_config(), [_record(b"{}\n"), _record(b"[]", "8")], "us-east-1")
    assert set(event) == {
        "invocationId",
        "deliveryStreamArn",
        "sourceKinesisStreamArn",
        "region",
        "records",
    }
    assert len(set(ids)) == 2
    first = event["records"][0]
    assert base64.b64decode(first["data"]) == b"{}\n"
    assert first["approximateArrivalTimestamp"] == int(ARRIVAL.timestamp() * 1000)
    assert first["kinesisRecordMetadata"] == {
        "shardId": "shardId-000000000000",
        "partitionKey": "k",
        "approximateArrivalTimestamp": first["approximateArrivalTimestamp"],
        "sequenceNumber": "7",
        "subsequenceNumber": 0,
    }


def _ok(record_id: str, data: bytes = b"x\n") -> dict[str, Any]:
    return {"recordId": record_id, "result": "Ok", "data": base64.b64encode(data).decode()}


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (None, "Lambda.JsonProcessingException"),
        ({"records": "nope"}, "Lambda.JsonProcessingException"),
        ({"records": [_ok("a")]}, "Lambda.MissingRecordId"),
        ({"records": [_ok("a"), _ok("a"), _ok("b")]}, "Lambda.DuplicatedRecordId"),
        ({"records": [_ok("a"), _ok("b"), _ok("c")]}, "Lambda.JsonProcessingException"),
        (
            {"records": [_ok("a"), {"recordId": "b", "result": "Fine"}]},
            "Lambda.JsonProcessingException",
        ),
        (
            {"records": [_ok("a"), {"recordId": "b", "result": "Ok", "data": "%%%"}]},
            "Lambda.JsonProcessingException",
        ),
    ],
)
def test_invalid_responses_are_rejected(response: Any, code: str) -> None:
    with pytest.raises(InvalidResponse) as raised:
        validate_response(response, ["a", "b"])
    assert raised.value.error_code == code


def test_valid_response_answers_every_record() -> None:
    outcomes = validate_response(
        {
            "records": [
                {**_ok("b", b"row\n"), "metadata": {"partitionKeys": {"year": "2026"}}},
                {"recordId": "a", "result": "Dropped"},
            ]
        },
        ["a", "b"],
    )
    assert outcomes["a"].result == "Dropped"
    assert outcomes["b"].data == b"row\n"
    assert outcomes["b"].partition_keys == {"year": "2026"}


class _FakeS3:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:  # noqa: N803 - boto3 names
        self.objects[Key] = Body


class _FakeReader:
    def __init__(self) -> None:
        self.commits: list[tuple[str, str]] = []
        self.states = {
            "shardId-000000000000": type("S", (), {"reached_end": False})(),
            "shardId-000000000001": type("S", (), {"reached_end": False})(),
        }

    def commit(self, shard_id: str, sequence: str, shard_end: bool = False) -> None:
        self.commits.append((shard_id, sequence))


class _Functions:
    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.calls = 0

    def get(self, arn: str) -> DeployedFunction:
        def counted(event: dict[str, Any], context: Any) -> Any:
            self.calls += 1
            return self.handler(event, context)

        return DeployedFunction(arn, "f", "sha", counted, 128, 3)


def _worker(handler: Any) -> tuple[DeliveryWorker, _FakeS3, _Functions, _FakeReader]:
    s3, functions = _FakeS3(), _Functions(handler)
    worker = DeliveryWorker.__new__(DeliveryWorker)
    worker.config = _config()
    worker.s3 = s3
    worker.functions = functions  # type: ignore[assignment]
    worker.stop = threading.Event()
    worker.region = "us-east-1"
    worker.reader = _FakeReader()  # type: ignore[assignment]
    worker._buffer, worker._buffer_bytes = [], 0
    worker.stats = {k: 0.0 for k in ("records", "objects", "lambda_seconds", "s3_seconds")}
    worker.stats["checkpoint_seconds"] = 0.0
    return worker, s3, functions, worker.reader  # type: ignore[return-value]


def _partitioned(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    out = []
    for record in event["records"]:
        data = base64.b64decode(record["data"])
        if data == b"drop":
            out.append({"recordId": record["recordId"], "result": "Dropped"})
        elif data == b"bad":
            out.append({"recordId": record["recordId"], "result": "ProcessingFailed"})
        else:
            hour = data.decode()
            out.append(
                {
                    **_ok(record["recordId"], data + b"\n"),
                    "metadata": {
                        "partitionKeys": {"year": "2026", "month": "01", "day": "02", "hour": hour}
                    },
                }
            )
    return {"records": out}


def _read(s3: _FakeS3, prefix: str) -> list[bytes]:
    return [gzip.decompress(body) for key, body in sorted(s3.objects.items()) if key.startswith(prefix)]  # fmt: skip


def test_flush_groups_by_prefix_writes_errors_and_checkpoints_each_shard() -> None:
    worker, s3, _functions, reader = _worker(_partitioned)
    worker._buffer = [
        _record(b"01", "1"),
        _record(b"02", "2", shard="shardId-000000000001"),
        _record(b"drop", "3"),
        _record(b"01", "4"),
        _record(b"bad", "5", shard="shardId-000000000001"),
    ]
    worker.flush()
    hour1 = _read(s3, "raw/orders_cdc/year=2026/month=01/day=02/hour=01/")
    hour2 = _read(s3, "raw/orders_cdc/year=2026/month=01/day=02/hour=02/")
    assert hour1 == [b"01\n01\n"] and hour2 == [b"02\n"]
    errors = _read(s3, "errors/orders_cdc/processing-failed/year=2026/month=03/day=07/hour=04/")
    assert len(errors) == 1
    document = json.loads(errors[0])
    assert document["errorCode"] == "Lambda.ProcessingFailed"
    assert base64.b64decode(document["rawData"]) == b"bad"
    assert document["attemptsMade"] == 1
    assert sorted(reader.commits) == [("shardId-000000000000", "4"), ("shardId-000000000001", "5")]
    for key in s3.objects:
        assert re.search(r"/d-1-\d{4}(-\d\d){5}-[0-9a-f-]{36}\.gz$", key), key


def test_raising_handler_fails_every_record_after_the_retries() -> None:
    def broken(_event: dict[str, Any], _context: Any) -> Any:
        raise RuntimeError("boom")

    worker, s3, functions, reader = _worker(broken)
    worker._buffer = [_record(b"01", "1"), _record(b"02", "2")]
    worker.flush()
    assert functions.calls == 3  # NumberOfRetries 2
    (errors,) = _read(s3, "errors/orders_cdc/processing-failed/")
    lines = [json.loads(line) for line in errors.splitlines()]
    assert [base64.b64decode(line["rawData"]) for line in lines] == [b"01", b"02"]
    assert {line["errorCode"] for line in lines} == {"Lambda.FunctionError"}
    assert all(line["attemptsMade"] == 3 for line in lines)
    assert reader.commits == [("shardId-000000000000", "2")]


def test_error_line_has_firehose_shape() -> None:
    from sales_cdc.emulator.firehose import RecordOutcome

    outcome = RecordOutcome(
        "ProcessingFailed", error_code="Lambda.ProcessingFailed", error_message="m", attempts=1,
        ending_ms=5,
    )  # fmt: skip
    document = error_line(_record(b"raw"), outcome, "arn:l")
    assert list(document) == [
        "attemptsMade",
        "arrivalTimestamp",
        "errorCode",
        "errorMessage",
        "attemptEndingTimestamp",
        "rawData",
        "lambdaArn",
    ]
    assert document["rawData"] == base64.b64encode(b"raw").decode()


def test_delivery_config_from_the_firehose_api_description() -> None:
    description = {
        "DeliveryStreamName": "d",
        "DeliveryStreamARN": "arn:d",
        "DeliveryStreamStatus": "ACTIVE",
        "VersionId": "4",
        "Source": {"KinesisStreamSourceDescription": {"KinesisStreamARN": "arn:k:stream/s"}},
        "Destinations": [
            {
                "ExtendedS3DestinationDescription": {
                    "BucketARN": "arn:aws:s3:::bkt",
                    "Prefix": PREFIX,
                    "ErrorOutputPrefix": ERROR_PREFIX,
                    "BufferingHints": {"SizeInMBs": 2, "IntervalInSeconds": 7},
                    "CompressionFormat": "GZIP",
                    "ProcessingConfiguration": {
                        "Enabled": True,
                        "Processors": [
                            {
                                "Type": "Lambda",
                                "Parameters": [
                                    {"ParameterName": "LambdaArn", "ParameterValue": "arn:l"},
                                    {"ParameterName": "NumberOfRetries", "ParameterValue": "5"},
                                ],
                            }
                        ],
                    },
                    "DynamicPartitioningConfiguration": {"Enabled": True},
                }
            }
        ],
    }
    config = DeliveryConfig.from_description(description)
    assert config is not None
    assert (config.bucket, config.source_stream_name, config.version_id) == ("bkt", "s", "4")
    assert (config.buffer_bytes, config.buffer_seconds) == (2 * 1024 * 1024, 7.0)
    assert (config.lambda_arn, config.lambda_retries, config.dynamic_partitioning) == (
        "arn:l",
        5,
        True,
    )
    assert DeliveryConfig.from_description({**description, "DeliveryStreamStatus": "CREATING"}) is None  # fmt: skip
