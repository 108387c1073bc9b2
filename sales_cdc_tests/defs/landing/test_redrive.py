"""redrive_failed_records: Firehose error records run again through the deployed transform."""

import base64
import gzip
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from sales_cdc.defs.landing.redrive import (
    DeliveryTarget,
    PrefixError,
    landing_key,
    landing_prefix,
    redrive_failed_records,
    transform_results,
)
from sales_cdc.resources.aws import AwsResource
from sales_cdc.resources.transform import (
    EmbeddedTransformInvoker,
    TransformFunctionError,
    TransformInvoker,
)
from sales_cdc_tests.transform.test_handler import order_item, stream_record

ARRIVAL_MS = 1_763_762_139_000  # 2025-11-21 21:55:39 UTC
PREFIX = (
    "raw/orders_cdc/year=!{partitionKeyFromLambda:year}/month=!{partitionKeyFromLambda:month}/"
    "day=!{partitionKeyFromLambda:day}/hour=!{partitionKeyFromLambda:hour}/"
)
TARGET = DeliveryTarget(
    name="sales-cdc-orders-cdc-delivery",
    version_id="3",
    bucket="lake",
    prefix=PREFIX,
    compression="GZIP",
    lambda_arn="arn:aws:lambda:us-east-1:123456789012:function:t",
)
FIREHOSE_NAME = re.compile(
    r"^sales-cdc-orders-cdc-delivery-\d+-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d-[0-9a-f-]{36}\.gz$"
)


def test_landing_prefix_is_filled_from_the_partition_keys():
    keys = {"year": "2026", "month": "11", "day": "21", "hour": "09"}
    arrival = datetime(2026, 1, 2, 3, tzinfo=UTC)
    assert landing_prefix(PREFIX, keys, arrival) == (
        "raw/orders_cdc/year=2026/month=11/day=21/hour=09/"
    )
    with pytest.raises(PrefixError, match="'hour'"):
        landing_prefix(PREFIX, {k: v for k, v in keys.items() if k != "hour"}, arrival)
    # Without any expression Firehose appends the arrival time, yyyy/MM/dd/HH/.
    assert landing_prefix("raw/", {}, arrival) == "raw/2026/01/02/03/"


def test_landing_key_is_firehose_style_and_the_same_for_the_same_source():
    source = "errors/orders_cdc/processing-failed/year=2026/month=11/day=21/hour=09/sales-cdc-orders-cdc-delivery-1-2026-11-21-09-10-11-0c6f3f7e-1b0e-4a5e-8f43-2f1d3c4b5a69.gz"  # noqa: E501
    when = datetime(2026, 11, 21, 9, 10, 12, tzinfo=UTC)
    prefix = "raw/orders_cdc/year=2026/month=11/day=21/hour=09/"
    key = landing_key(prefix, TARGET, source, when)
    assert key.startswith(prefix + "sales-cdc-orders-cdc-delivery-1-2026-11-21-09-10-11-")
    assert FIREHOSE_NAME.match(key.rsplit("/", 1)[1])
    assert landing_key(prefix, TARGET, source, when) == key
    assert landing_key(prefix, TARGET, source.replace("hour=09", "hour=10"), when) != key
    other = landing_key(prefix.replace("hour=09", "hour=10"), TARGET, source, when)
    assert other != key
    assert "-3-" in landing_key(prefix, TARGET, "errors/x/copied-by-hand.gz", when)


class _Answering(TransformInvoker):
    """A transform that answers with `reply(event)`: pins how responses are judged."""

    def invoke(self, function_arn, event):
        return REPLIES[0](event)


REPLIES: list[Any] = []


def _results(reply: Any, count: int = 2) -> list[dict[str, Any]]:
    REPLIES[:] = [reply]
    documents = [error_document(b"{}", TARGET.lambda_arn) for _ in range(count)]
    invoker = _Answering(aws=AwsResource(env="local", prefix="t"))
    return transform_results(invoker, TARGET, documents, "us-east-1")


def _answer(record: dict[str, Any], result: str) -> dict[str, Any]:
    return {"recordId": record["recordId"], "result": result, "data": record["data"]}


# https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-status-model.html
def test_responses_are_judged_as_firehose_judges_them():
    ok, dropped = _results(
        lambda e: {"records": [_answer(e["records"][0], "Ok"), _answer(e["records"][1], "Dropped")]}
    )
    assert ok["result"] == "Ok" and ok["data"] == b"{}" and dropped["result"] == "Dropped"
    failed = _results(lambda e: {"records": [_answer(r, "ProcessingFailed") for r in e["records"]]})
    assert {f["errorCode"] for f in failed} == {"Lambda.ProcessingFailed"}
    assert failed[0]["attemptsMade"] == 5 and failed[0]["rawData"] == "e30="
    missing = _results(lambda e: {"records": [_answer(e["records"][0], "Ok")]})
    assert {f["errorCode"] for f in missing} == {"Lambda.MissingRecordId"}
    unknown = _results(lambda e: {"records": [_answer(r, "Maybe") for r in e["records"]]})
    assert {f["errorCode"] for f in unknown} == {"Lambda.JsonProcessingException"}


def test_a_function_error_fails_the_records_of_that_invocation():
    def raising(event: dict[str, Any]) -> Any:
        raise TransformFunctionError("Lambda t failed (Unhandled): KeyError: 'x'")

    failed = _results(raising)
    assert {f["errorCode"] for f in failed} == {"Lambda.FunctionError"}
    assert "KeyError" in failed[0]["errorMessage"]


# -- against the emulator ---------------------------------------------------------------------


def change(order_id: str, sequence: str, hour: int) -> dict[str, Any]:
    """A stream record of one order change at 2026-11-21 <hour>:00 UTC."""
    created = f"2026-11-21T{hour:02d}:00:00.000000Z"
    item = order_item(orderId={"S": order_id}, createdAt={"S": created})
    record = stream_record(
        "INSERT",
        new=item,
        Keys={"orderId": {"S": order_id}},
        SequenceNumber=sequence,
        ApproximateCreationDateTime=datetime(2026, 11, 21, hour, tzinfo=UTC).timestamp(),
    )
    record["eventID"] = uuid.uuid4().hex
    return record


def error_document(data: bytes, lambda_arn: str) -> dict[str, Any]:
    """What Firehose writes for a record the transform failed (the local runtime's shape)."""
    return {
        "attemptsMade": 4,
        "arrivalTimestamp": ARRIVAL_MS,
        "errorCode": "Lambda.ProcessingFailed",
        "errorMessage": "The Lambda function returned ProcessingFailed for this record.",
        "attemptEndingTimestamp": ARRIVAL_MS + 900,
        "rawData": base64.b64encode(data).decode(),
        "lambdaArn": lambda_arn,
    }


def put_error_object(aws: AwsResource, payloads: list[bytes]) -> str:
    stack = aws.stack()
    key = (
        f"{stack.errors_prefix}processing-failed/year=2025/month=11/day=21/hour=21/"
        f"{stack.delivery_name}-1-2025-11-21-21-55-40-{uuid.uuid4()}.gz"
    )
    lines = "".join(json.dumps(error_document(p, stack.function_arn)) + "\n" for p in payloads)
    aws.client("s3").put_object(
        Bucket=stack.bucket, Key=key, Body=gzip.compress(lines.encode(), mtime=0)
    )
    return key


def objects(aws: AwsResource, prefix: str) -> dict[str, bytes]:
    s3 = aws.client("s3")
    bucket = aws.stack().bucket
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found[item["Key"]] = gzip.decompress(body)
    return found


def landed_event_ids(aws: AwsResource) -> list[str]:
    return [
        json.loads(line)["event_id"]
        for body in objects(aws, aws.stack().raw_prefix).values()
        for line in body.splitlines()
    ]


def redrive(aws: AwsResource, cache: Path, **config: Any) -> dg.ExecuteInProcessResult:
    return redrive_failed_records.execute_in_process(
        resources={
            "aws": aws,
            "transform": EmbeddedTransformInvoker(aws=aws, lambda_cache_dir=str(cache)),
        },
        run_config={"ops": {"redrive_processing_failed": {"config": config}}} if config else None,
        raise_on_error=False,
    )


def output_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (event,) = [
        e
        for e in result.events_for_node("redrive_processing_failed")
        if e.event_type_value == "STEP_OUTPUT"
    ]
    return {k: v.value for k, v in event.step_output_data.metadata.items()}


def check_evaluations(result: dg.ExecuteInProcessResult) -> list[Any]:
    return [
        e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def test_successes_land_failures_are_archived_then_the_error_object_goes(
    provisioned: AwsResource, tmp_path: Path
):
    stack = provisioned.stack()
    changes = [
        change(str(uuid.uuid4()), "100000000000000000001", hour=9),
        change(str(uuid.uuid4()), "100000000000000000002", hour=9),
        change(str(uuid.uuid4()), "100000000000000000003", hour=14),
    ]
    broken = b'{"eventID": "broken", "dynamodb": '
    source = put_error_object(
        provisioned,
        [json.dumps(changes[0]).encode(), broken, *(json.dumps(c).encode() for c in changes[1:])],
    )
    result = redrive(provisioned, tmp_path)
    assert result.success

    landed = objects(provisioned, stack.raw_prefix)
    assert sorted(k.rsplit("/", 1)[0] for k in landed) == [
        "raw/orders_cdc/year=2026/month=11/day=21/hour=09",
        "raw/orders_cdc/year=2026/month=11/day=21/hour=14",
    ]
    names = [k.rsplit("/", 1)[1] for k in landed]
    assert all(n.startswith(f"{stack.delivery_name}-1-2025-11-21-21-55-40-") for n in names)
    assert all(n.endswith(".gz") for n in names)
    assert sorted(landed_event_ids(provisioned)) == sorted(c["eventID"] for c in changes)

    archived = objects(provisioned, "errors-archive/orders_cdc/")
    today = datetime.now(UTC).date().isoformat()
    ((archive_key, body),) = archived.items()
    assert archive_key == source.replace(stack.errors_prefix, f"errors-archive/orders_cdc/{today}/")
    (document,) = [json.loads(line) for line in body.splitlines()]
    assert base64.b64decode(document["rawData"]) == broken
    assert document["errorCode"] == "Lambda.ProcessingFailed"
    assert document["attemptsMade"] == 5
    assert document["arrivalTimestamp"] == ARRIVAL_MS
    assert document["lambdaArn"] == stack.function_arn
    assert document["attemptEndingTimestamp"] > ARRIVAL_MS

    assert objects(provisioned, stack.errors_prefix) == {}
    metadata = output_metadata(result)
    assert metadata["error_objects_redriven"] == 1
    assert metadata["records_read"] == 4
    assert metadata["records_landed"] == 3
    assert metadata["records_archived"] == 1
    assert metadata["landing_objects_written"] == 2
    assert metadata["error_records_left"] == 0
    (evaluation,) = check_evaluations(result)
    assert evaluation.check_name == "no_error_records" and evaluation.passed

    # A second run finds nothing to do and changes nothing.
    again = redrive(provisioned, tmp_path)
    assert again.success
    assert objects(provisioned, stack.raw_prefix) == landed
    assert objects(provisioned, "errors-archive/orders_cdc/") == archived
    assert output_metadata(again)["error_objects_redriven"] == 0


def test_a_run_that_stops_before_the_delete_lands_nothing_twice(
    provisioned: AwsResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    stack = provisioned.stack()
    changes = [change(str(uuid.uuid4()), f"20000000000000000000{i}", hour=i) for i in range(3)]
    source = put_error_object(provisioned, [json.dumps(c).encode() for c in changes])

    real_client = AwsResource.client

    def crashing_client(self: AwsResource, service: str) -> Any:
        client = real_client(self, service)
        if service == "s3":

            def delete_object(**kwargs: Any) -> Any:
                raise ConnectionError("the run stopped here")

            client.delete_object = delete_object
        return client

    monkeypatch.setattr(AwsResource, "client", crashing_client)
    assert not redrive(provisioned, tmp_path).success
    monkeypatch.setattr(AwsResource, "client", real_client)
    landed = objects(provisioned, stack.raw_prefix)
    assert len(landed) == 3
    assert source in objects(provisioned, stack.errors_prefix)

    result = redrive(provisioned, tmp_path)
    assert result.success
    assert objects(provisioned, stack.raw_prefix) == landed
    assert sorted(landed_event_ids(provisioned)) == sorted(c["eventID"] for c in changes)
    assert objects(provisioned, stack.errors_prefix) == {}
    metadata = output_metadata(result)
    assert metadata["landing_objects_already_there"] == 3
    assert metadata["landing_objects_written"] == 0


def test_without_a_transform_to_run_nothing_moves(provisioned: AwsResource, tmp_path: Path):
    stack = provisioned.stack()
    source = put_error_object(provisioned, [json.dumps(change("o-1", "1", hour=1)).encode()])
    provisioned.client("lambda").delete_function(FunctionName=stack.function_name)
    result = redrive(provisioned, tmp_path)
    assert not result.success
    assert "cannot be read" in str(result.failure_data_for_node("redrive_processing_failed"))
    assert list(objects(provisioned, stack.errors_prefix)) == [source]
    assert objects(provisioned, stack.raw_prefix) == {}


def test_max_objects_leaves_the_rest_for_the_next_run(provisioned: AwsResource, tmp_path: Path):
    stack = provisioned.stack()
    for i in range(3):
        put_error_object(provisioned, [json.dumps(change(f"o-{i}", str(i + 1), hour=i)).encode()])
    first = redrive(provisioned, tmp_path, max_objects=2)
    assert output_metadata(first)["error_objects_remaining"] == 1
    assert len(objects(provisioned, stack.errors_prefix)) == 1
    (evaluation,) = check_evaluations(first)
    assert not evaluation.passed  # one object still waits: the check says so
    second = redrive(provisioned, tmp_path, max_objects=2)
    assert output_metadata(second)["error_objects_remaining"] == 0
    assert len(landed_event_ids(provisioned)) == 3
    assert check_evaluations(second)[0].passed


def test_an_object_that_is_not_gzip_is_archived_as_it_is(provisioned: AwsResource, tmp_path: Path):
    stack = provisioned.stack()
    key = f"{stack.errors_prefix}processing-failed/year=2025/month=11/day=21/hour=21/truncated.gz"
    body = gzip.compress(b'{"rawData": "e30="}\n')[:15]
    provisioned.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=body)
    result = redrive(provisioned, tmp_path)
    assert result.success
    today = datetime.now(UTC).date().isoformat()
    archived_key = key.replace(stack.errors_prefix, f"errors-archive/orders_cdc/{today}/")
    s3 = provisioned.client("s3")
    assert s3.get_object(Bucket=stack.bucket, Key=archived_key)["Body"].read() == body
    assert output_metadata(result)["unreadable_objects_archived"] == 1
    assert objects(provisioned, stack.errors_prefix) == {}


# -- end to end: the local runtime delivers, the transform rejects, is fixed, records re-driven --


def deploy_rejecting_transform(aws: AwsResource) -> None:
    """A transform version that fails every record, deployed as provisioning deploys one."""
    import hashlib
    import io
    import zipfile

    stack = aws.stack()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "handler.py",
            "def lambda_handler(event, context):\n"
            "    return {'records': [{'recordId': r['recordId'], 'result': 'ProcessingFailed',\n"
            "                         'data': r['data']} for r in event['records']]}\n",
        )
    body = buffer.getvalue()
    key = f"{stack.artifact_prefix}{hashlib.sha256(body).hexdigest()}.zip"
    aws.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=body)
    aws.client("lambda").update_function_code(
        FunctionName=stack.function_name, S3Bucket=stack.bucket, S3Key=key
    )


def error_records(aws: AwsResource) -> list[dict[str, Any]]:
    prefix = f"{aws.stack().errors_prefix}processing-failed/"
    return [
        json.loads(line) for body in objects(aws, prefix).values() for line in body.splitlines()
    ]


@pytest.mark.slow
def test_fail_fix_redrive_lands_every_change_once_and_orders_current_has_them(
    provisioned: AwsResource, tmp_path: Path
):
    import time

    from sales_cdc.defs.infrastructure.provision import provision_all
    from sales_cdc.defs.lake.catalog import glue_orders_cdc
    from sales_cdc.defs.lake.projection import orders_current
    from sales_cdc.resources.crawler import EmbeddedCrawlerResource
    from sales_cdc.resources.query import DuckDBQueryEngine
    from sales_cdc_tests.emulator.test_runtime_end_to_end import (
        fast_buffering,
        start_runtime,
        stop,
        stream_events,
        write_changes,
    )

    deploy_rejecting_transform(provisioned)
    fast_buffering(provisioned)
    runtime = start_runtime(tmp_path)
    try:
        write_changes(provisioned, orders=6)  # 6 inserts, 6 updates, 2 deletes
        events = stream_events(provisioned)
        assert len(events) == 14
        deadline = time.monotonic() + 60
        while len(error_records(provisioned)) < len(events):
            assert time.monotonic() < deadline, "the rejected records never reached errors/"
            time.sleep(1)
    finally:
        stop(runtime)
    assert landed_event_ids(provisioned) == []
    raw_changes = {base64.b64decode(d["rawData"]) for d in error_records(provisioned)}
    assert {json.loads(r)["eventID"] for r in raw_changes} == set(events)

    provision_all(provisioned)  # the fix: the real transform is deployed again
    result = redrive(provisioned, tmp_path / "cache")
    assert result.success
    assert sorted(landed_event_ids(provisioned)) == sorted(events)  # each exactly once
    assert error_records(provisioned) == []
    assert check_evaluations(result)[0].passed

    lake = dg.materialize(
        [glue_orders_cdc, orders_current],
        resources={
            "aws": provisioned,
            "crawler": EmbeddedCrawlerResource(aws=provisioned),
            "query_engine": DuckDBQueryEngine(aws=provisioned),
        },
    )
    assert lake.success
    rows = DuckDBQueryEngine(aws=provisioned).query("SELECT order_id, status FROM orders_current")
    live = {
        e["dynamodb"]["Keys"]["orderId"]["S"] for e in events.values() if e["eventName"] == "INSERT"
    } - {
        e["dynamodb"]["Keys"]["orderId"]["S"] for e in events.values() if e["eventName"] == "REMOVE"
    }
    assert sorted(r[0] for r in rows.rows) == sorted(live)  # 4 live orders, once each
    assert {r[1] for r in rows.rows} == {"PAID"}

    landed = objects(provisioned, provisioned.stack().raw_prefix)
    again = redrive(provisioned, tmp_path / "cache")
    assert again.success
    assert output_metadata(again)["error_objects_redriven"] == 0
    assert objects(provisioned, provisioned.stack().raw_prefix) == landed
