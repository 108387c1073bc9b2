"""`sales-cdc runtime` as a user runs it: a subprocess against the emulator, killed and restarted."""

import base64
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sales_cdc.resources.aws import AwsResource
from sales_cdc.stack import REPO_ROOT

pytestmark = pytest.mark.slow
LANDING_TIMEOUT = 60.0


def start_runtime(tmp_path: Path, name: str = "runtime") -> subprocess.Popen[bytes]:
    log = open(tmp_path / f"{name}-{uuid.uuid4().hex[:6]}.log", "wb")  # noqa: SIM115 - kept by Popen
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sales_cdc.cli",
            "runtime",
            "--discovery-interval",
            "0.5",
            "--pipe-poll-interval",
            "0.1",
            "--firehose-poll-interval",
            "0.1",
            "--lambda-cache-dir",
            str(tmp_path / "lambda-cache"),
        ],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def fast_buffering(aws: AwsResource, seconds: int = 1) -> None:
    """Deliver after `seconds` instead of the declared interval (tests only)."""
    firehose = aws.client("firehose")
    name = aws.stack().delivery_name
    description = firehose.describe_delivery_stream(DeliveryStreamName=name)[
        "DeliveryStreamDescription"
    ]
    firehose.update_destination(
        DeliveryStreamName=name,
        CurrentDeliveryStreamVersionId=description["VersionId"],
        DestinationId=description["Destinations"][0]["DestinationId"],
        ExtendedS3DestinationUpdate={
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": seconds}
        },
    )


def order_item(order_id: str, status: str, version: int) -> dict[str, Any]:
    now = "2026-11-21T21:55:39.123456Z"
    return {
        "orderId": {"S": order_id},
        "customerId": {"S": "c-1"},
        "customerName": {"S": "Zoë Müller"},
        "customerCity": {"S": "Berlin"},
        "customerCountry": {"S": "DE"},
        "productId": {"S": "p-1"},
        "productName": {"S": "Kettle"},
        "category": {"S": "Home"},
        "quantity": {"N": "2"},
        "unitPrice": {"N": "19.95"},
        "totalAmount": {"N": "39.90"},
        "currency": {"S": "EUR"},
        "paymentMethod": {"S": "card"},
        "channel": {"S": "web"},
        "status": {"S": status},
        "createdAt": {"S": now},
        "updatedAt": {"S": now},
        "version": {"N": str(version)},
    }


def write_changes(aws: AwsResource, orders: int, pause: float = 0.0) -> None:
    """Per order: insert, update; every third order is then deleted."""
    ddb = aws.client("dynamodb")
    table = aws.stack().table_name
    for i in range(orders):
        order_id = str(uuid.uuid4())
        ddb.put_item(TableName=table, Item=order_item(order_id, "PLACED", 1))
        ddb.update_item(
            TableName=table,
            Key={"orderId": {"S": order_id}},
            UpdateExpression="SET #s = :s, version = :v",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "PAID"}, ":v": {"N": "2"}},
        )
        if i % 3 == 0:
            ddb.delete_item(TableName=table, Key={"orderId": {"S": order_id}})
        if pause:
            time.sleep(pause)


def stream_events(aws: AwsResource) -> dict[str, dict[str, Any]]:
    """Every record of OrderTable's stream, by eventID, read straight from dynamodbstreams."""
    stack = aws.stack()
    stream_arn = aws.client("dynamodb").describe_table(TableName=stack.table_name)["Table"][
        "LatestStreamArn"
    ]
    streams = aws.client("dynamodbstreams")
    events: dict[str, dict[str, Any]] = {}
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                events[record["eventID"]] = record
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return events


def read_objects(aws: AwsResource, prefix: str) -> dict[str, bytes]:
    s3 = aws.client("s3")
    bucket = aws.stack().bucket
    bodies: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            bodies[item["Key"]] = gzip.decompress(body)
    return bodies


def landed_rows(aws: AwsResource) -> list[tuple[str, dict[str, Any]]]:
    rows = []
    for key, body in read_objects(aws, aws.stack().raw_prefix).items():
        assert body.endswith(b"\n"), key
        for line in body.decode().splitlines():
            rows.append((key, json.loads(line, parse_float=Decimal)))
    return rows


def wait_for_landing(aws: AwsResource, event_ids: set[str]) -> list[tuple[str, dict[str, Any]]]:
    deadline = time.monotonic() + LANDING_TIMEOUT
    while True:
        rows = landed_rows(aws)
        missing = event_ids - {row["event_id"] for _, row in rows}
        if not missing:
            return rows
        if time.monotonic() > deadline:
            pytest.fail(f"{len(missing)} of {len(event_ids)} stream events never landed")
        time.sleep(1.0)


def assert_landing_rows(rows: list[tuple[str, dict[str, Any]]], events: dict[str, Any]) -> None:
    for key, row in rows:
        event = events[row["event_id"]]
        assert row["event_name"] == event["eventName"]
        assert row["sequence_number"] == event["dynamodb"]["SequenceNumber"]
        assert row["order_id"] == event["dynamodb"]["Keys"]["orderId"]["S"]
        assert row["is_deleted"] is (event["eventName"] == "REMOVE")
        day, clock = row["event_time"].split(" ")
        year, month, day_of_month = day.split("-")
        partition = f"year={year}/month={month}/day={day_of_month}/hour={clock[:2]}/"
        assert f"raw/orders_cdc/{partition}" in key, (key, row["event_time"])


def test_every_change_lands_once_at_least_and_sigterm_exits_cleanly(
    provisioned: AwsResource, tmp_path: Path
) -> None:
    fast_buffering(provisioned)
    runtime = start_runtime(tmp_path)
    try:
        write_changes(provisioned, orders=20)
        events = stream_events(provisioned)
        assert {e["eventName"] for e in events.values()} == {"INSERT", "MODIFY", "REMOVE"}
        rows = wait_for_landing(provisioned, set(events))
        assert_landing_rows(rows, events)
        assert rows[0][1]["customer_name"] == "Zoë Müller"
        runtime.send_signal(signal.SIGTERM)
        assert runtime.wait(timeout=30) == 0
    finally:
        stop(runtime)
    # Restarted, the runtime resumes from its checkpoints: nothing is delivered a second time.
    delivered = set(read_objects(provisioned, provisioned.stack().raw_prefix))
    runtime = start_runtime(tmp_path, "again")
    try:
        time.sleep(4)
        assert set(read_objects(provisioned, provisioned.stack().raw_prefix)) == delivered
    finally:
        stop(runtime)


def test_sigkill_mid_stream_loses_nothing(provisioned: AwsResource, tmp_path: Path) -> None:
    fast_buffering(provisioned)
    # ~280 changes over ~9 s; the runtime is killed three times while they are being written.
    writer = threading.Thread(target=write_changes, args=(provisioned, 120, 0.06))
    runtime = start_runtime(tmp_path)
    try:
        writer.start()
        for kill in range(3):
            time.sleep(2.6)
            assert writer.is_alive(), "the writer finished before the kill: slow it down"
            runtime.kill()
            runtime.wait(timeout=10)
            runtime = start_runtime(tmp_path, f"restart{kill}")
        writer.join(timeout=120)
        events = stream_events(provisioned)
        assert len(events) == 120 * 2 + 40
        rows = wait_for_landing(provisioned, set(events))
        assert_landing_rows(rows, events)
    finally:
        stop(runtime)
        writer.join(timeout=120)


def test_waits_for_provisioning_and_routes_a_broken_record_to_the_error_prefix(
    aws: AwsResource, tmp_path: Path
) -> None:
    from sales_cdc.defs.infrastructure.provision import provision_all

    runtime = start_runtime(tmp_path)
    try:
        time.sleep(2)
        assert runtime.poll() is None
        provision_all(aws)
        fast_buffering(aws)
        stack = aws.stack()
        broken = b'{"eventID": "broken", "dynamodb": '
        aws.client("kinesis").put_record(
            StreamName=stack.stream_name, Data=broken, PartitionKey="x"
        )
        write_changes(aws, orders=3)
        events = stream_events(aws)
        rows = wait_for_landing(aws, set(events))
        assert_landing_rows(rows, events)
        deadline = time.monotonic() + LANDING_TIMEOUT
        while not (errors := read_objects(aws, stack.errors_prefix)):
            assert time.monotonic() < deadline, "the broken record never reached the error prefix"
            time.sleep(1)
        (key, body), *_ = errors.items()
        assert key.startswith(f"{stack.errors_prefix}processing-failed/year=")
        assert key.endswith(".gz")
        document = json.loads(body.decode().splitlines()[0])
        assert document["errorCode"] == "Lambda.ProcessingFailed"
        assert base64.b64decode(document["rawData"]) == broken
        assert document["lambdaArn"] == stack.function_arn
        assert {"attemptsMade", "arrivalTimestamp", "errorMessage", "attemptEndingTimestamp"} <= set(document)  # fmt: skip
    finally:
        stop(runtime)
    logs = b"".join(p.read_bytes() for p in tmp_path.glob("runtime-*.log")).decode()
    assert "waiting for provision_infrastructure" in logs
    assert "delivered s3://" in logs and "lag=" in logs


def test_refuses_the_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALES_CDC_ENV", "aws")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    result = subprocess.run(
        [sys.executable, "-m", "sales_cdc.cli", "runtime"],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"SALES_CDC_ENV=local" in result.stderr
    assert b"run the data plane themselves" in result.stderr


def start_emulator(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """`sales-cdc emulator --port <port>` as a user starts it; returns once it answers."""
    from sales_cdc.emulator.server import wait_until_ready

    log = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "sales_cdc.cli", "emulator", "--port", str(port)],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_until_ready(f"http://127.0.0.1:{port}", timeout=60)
    return process


def test_resumes_delivery_after_an_emulator_restart_and_reprovisioning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sales_cdc.defs.infrastructure.provision import provision_all
    from sales_cdc.emulator.server import free_port
    from sales_cdc.settings import load_settings

    port = free_port()
    monkeypatch.setenv("SALES_CDC_ENV", "local")
    monkeypatch.setenv("SALES_CDC_PREFIX", f"r{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    emulator = start_emulator(port, tmp_path / "emulator.log")
    runtime = None
    try:
        aws = AwsResource.from_settings(load_settings())
        provision_all(aws)
        fast_buffering(aws)
        runtime = start_runtime(tmp_path)
        write_changes(aws, orders=2)
        wait_for_landing(aws, set(stream_events(aws)))

        emulator.send_signal(signal.SIGTERM)  # all emulator state is gone with it
        emulator.wait(timeout=120)  # a loaded 2-core machine may take a while to stop it
        time.sleep(3)
        emulator = start_emulator(port, tmp_path / "emulator.log")
        aws = AwsResource.from_settings(load_settings())
        provision_all(aws)
        fast_buffering(aws)
        write_changes(aws, orders=3)
        events = stream_events(aws)
        rows = wait_for_landing(aws, set(events))  # the same runtime process delivered them
        assert_landing_rows(rows, events)
        assert runtime.poll() is None
    finally:
        if runtime is not None:
            stop(runtime)
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=120)  # a loaded 2-core machine may take a while to stop it
    logs = b"".join(p.read_bytes() for p in tmp_path.glob("runtime-*.log")).decode()
    assert f"the emulator at http://127.0.0.1:{port} (AWS_ENDPOINT_URL) is not reachable" in logs
    assert "re-created it; restarting the workers" in logs


@pytest.mark.parametrize("command", [["runtime"], ["query", "SELECT 1"]])
def test_unreachable_emulator_is_one_line_within_seconds(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sales_cdc.emulator.server import free_port

    port = free_port()  # nothing listens there
    monkeypatch.setenv("SALES_CDC_ENV", "local")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "sales_cdc.cli", *command],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        capture_output=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert elapsed < 15, elapsed  # python start-up included; no retry loop
    (line,) = stderr.strip().splitlines()
    assert f"the emulator at http://127.0.0.1:{port} (AWS_ENDPOINT_URL) is not reachable" in line
    assert f"sales-cdc emulator --port {port}" in line and "make demo" in line
